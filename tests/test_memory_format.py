"""The image tower's memory format per family (issue 15, item 5; docs/performance.md, "Memory format"): a run that
asks for channels-last (the default) puts convolutional towers in it and keeps ViT towers (the openai_clip family)
contiguous, whatever format a passed-in encoder was left in; the embedding cache key names the format used; and
the two formats give the same Recall@k."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from cxrbench.bench import level_metrics, max_recall_diff
from cxrbench.config import SweepConfig
from cxrbench.corruptions import Occlusion
from cxrbench.data import load_dataset
from cxrbench.embed_cache import image_embedding_key
from cxrbench.engine import set_memory_format, uses_channels_last
from cxrbench.models import load_model
from cxrbench.prepared import Prepared
from cxrbench.runner import run_sweep


@pytest.fixture(scope="module")
def dataset(paper_data):
    return load_dataset("manifest", root=paper_data["manifest"], progress=False)


@pytest.fixture
def encoders(paper_settings):
    """Fresh clip (ViT) and cxr_clip (Swin, convolutional patch embedding) encoders, each left in the format the
    sweep should NOT pick for it."""
    out = {name: load_model(name, device="cpu", **paper_settings[name]) for name in ("clip", "cxr_clip")}
    set_memory_format(out["clip"], True)
    set_memory_format(out["cxr_clip"], False)
    return out


def _conv_weights(encoder) -> list[torch.Tensor]:
    return [m.weight for v in vars(encoder).values() if isinstance(v, torch.nn.Module)
            for m in v.modules() if isinstance(m, torch.nn.Conv2d)]


def _channels_last(encoder) -> bool:
    weights = _conv_weights(encoder)
    assert weights, f"{encoder.info.name} has no convolution to check"
    formats = {w.is_contiguous(memory_format=torch.channels_last) and not w.is_contiguous() for w in weights}
    assert len(formats) == 1, "mixed memory formats"
    return formats.pop()


def test_families_declare_their_format():
    from cxrbench.models.base import Encoder
    from cxrbench.models.openai_clip import OpenAIClipEncoder
    from cxrbench.models.reference import ReferenceEncoder

    assert Encoder.channels_last_tower is True
    assert OpenAIClipEncoder.channels_last_tower is False
    assert ReferenceEncoder.channels_last_tower is True


def test_the_sweep_puts_each_tower_in_its_familys_format(dataset, encoders):
    assert _channels_last(encoders["clip"]) and not _channels_last(encoders["cxr_clip"])  # the wrong way round
    cfg = SweepConfig(models=list(encoders), levels=(0.0, 0.5), bootstrap=0, device="cpu", use_cache=False)
    run_sweep(cfg, progress=False, dataset=dataset, encoders=dict(encoders))
    assert not _channels_last(encoders["clip"])
    assert _channels_last(encoders["cxr_clip"])
    assert uses_channels_last(encoders["clip"], True) is False
    assert uses_channels_last(encoders["cxr_clip"], True) is True
    assert uses_channels_last(encoders["cxr_clip"], False) is False
    # --no-channels-last: every tower contiguous, as the cache key says, whatever an earlier run left
    run_sweep(replace(cfg, channels_last=False), progress=False, dataset=dataset, encoders=dict(encoders))
    assert not _channels_last(encoders["clip"]) and not _channels_last(encoders["cxr_clip"])


def test_cache_key_names_the_format_the_tower_ran_in(dataset, encoders):
    prep = Prepared(dataset)
    cfg = SweepConfig(models=list(encoders), levels=(0.0,), bootstrap=0, device="cpu")
    for name, expected in (("clip", False), ("cxr_clip", True)):
        key = image_embedding_key(encoders[name], prep, Occlusion(), cfg, 0.0, (0, 1))
        assert key["channels_last"] is expected
        off = image_embedding_key(encoders[name], prep, Occlusion(), replace(cfg, channels_last=False), 0.0, (0, 1))
        assert off["channels_last"] is False
        assert (key == off) is (not expected)  # a ViT's entries are the same with and without --no-channels-last


def test_both_formats_give_the_same_recall(dataset, encoders):
    cfg = SweepConfig(models=["cxr_clip"], levels=(0.0, 0.5), bootstrap=0, device="cpu", use_cache=False)
    enc = {"cxr_clip": encoders["cxr_clip"]}
    a = run_sweep(cfg, progress=False, dataset=dataset, encoders=enc)
    b = run_sweep(replace(cfg, channels_last=False), progress=False, dataset=dataset, encoders=enc)
    assert len(level_metrics(a, "cxr_clip")) == 2
    assert max_recall_diff(level_metrics(a, "cxr_clip"), level_metrics(b, "cxr_clip")) == 0.0
