"""The committed thresholds gate for real: a deliberately broken reference model fails them."""

from __future__ import annotations

import pytest
import torch

from cxrbench import thresholds
from cxrbench.config import SweepConfig
from cxrbench.data import load_dataset
from cxrbench.models import load_model
from cxrbench.prepared import Prepared
from cxrbench.results import records
from cxrbench.runner import run_sweep


@pytest.fixture(scope="module")
def prepared():
    return Prepared(load_dataset("iu-phantom", progress=False))


def _check(prepared, encoder, stored):
    cfg = SweepConfig(models=["reference"], levels=(0.0,), bootstrap=0, use_cache=False, device="cpu")
    result = run_sweep(cfg, progress=False, prepared=prepared, encoders={"reference": encoder})
    return thresholds.check(records(result), stored)


def test_shuffled_weights_fail_the_committed_thresholds(prepared, repo_root):
    stored = thresholds.load(repo_root / "thresholds.yaml")
    assert thresholds.lookup(stored, "iu-phantom/test", "reference", "pixels", 0.0, "image_to_text"), \
        "thresholds.yaml must hold the reference model's clean thresholds"
    intact = load_model("reference")
    failures, checked = _check(prepared, intact, stored)
    assert checked >= 10 and failures == [], failures  # the gate passes the real model ...

    broken = load_model("reference")
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in broken.net.image.parameters():  # shuffle every image-tower tensor's entries
            flat = p.view(-1)
            flat.copy_(flat[torch.randperm(flat.numel(), generator=g)])
    failures, checked = _check(prepared, broken, stored)
    assert len(failures) >= checked // 2, f"only {len(failures)}/{checked} thresholds caught the broken model"
