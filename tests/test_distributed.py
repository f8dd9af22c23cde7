"""Sharding: study chunks, and a 2-process torchrun (gloo, CPU) run equal to a single-process run."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from cxrbench.distributed import study_chunks


@given(sizes=st.lists(st.integers(1, 5), min_size=1, max_size=40), batch=st.integers(1, 8))
def test_chunks_cover_every_image_once_and_never_split_a_study(sizes, batch):
    image_study = [j for j, n in enumerate(sizes) for _ in range(n)]
    chunks = study_chunks(image_study, batch)
    assert chunks[0][0] == 0 and chunks[-1][1] == len(image_study)
    assert all(a[1] == b[0] for a, b in zip(chunks, chunks[1:]))
    for start, end in chunks:
        assert start == 0 or image_study[start] != image_study[start - 1]  # starts at a study boundary
        one_study = len(set(image_study[start:end])) == 1
        assert end - start <= batch or one_study


def _manifest(tmp_path):
    rng = np.random.default_rng(0)
    texts = ["Heart normal. Lungs clear.", "Small left effusion.", "Heart normal. Lungs clear.",
             "Right upper lobe opacity.", "Mild cardiomegaly.", "Calcified granuloma in the left apex.",
             "Large right effusion.", "Pacemaker in place.", "Hyperinflated lungs.", "Left basilar atelectasis."]
    rows = []
    for j, text in enumerate(texts):
        for k in range(1 + j % 2):
            name = f"im{j}_{k}.png"
            Image.fromarray(rng.integers(0, 256, (40, 48), dtype=np.uint8)).save(tmp_path / name)
            rows.append({"study_id": f"s{j}", "image_path": name, "findings": text})
    path = tmp_path / "manifest.csv"
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["study_id", "image_path", "findings"])
        w.writeheader()
        w.writerows(rows)
    return path


def _run(args, tmp_path, out, options=()):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "CXRBENCH_CACHE": str(tmp_path / "cache")}
    common = ["-m", "cxrbench", "run", "--dataset", "manifest", "--root", str(_manifest(tmp_path)), "--models",
              "random", "--levels", "0,0.5", "--bootstrap", "0", "--batch-size", "4", "--no-progress", "--no-cache",
              "--out", str(out), *options]
    proc = subprocess.run([sys.executable, *args, *common], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    records = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
    return records, torch.load(out / "ranks.pt")


@pytest.mark.slow
def test_two_process_torchrun_equals_single_process(tmp_path):
    single, single_ranks = _run([], tmp_path, tmp_path / "single")
    multi, multi_ranks = _run(["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"], tmp_path,
                              tmp_path / "multi")
    assert len(single) == len(multi) == 2 * 2 * 7
    key = lambda r: (r["level"], r["direction"], r["k"])  # noqa: E731
    assert {key(r): r["value"] for r in single} == {key(r): r["value"] for r in multi}
    assert single_ranks.keys() == multi_ranks.keys()
    for k in single_ranks:
        assert single_ranks[k].keys() == multi_ranks[k].keys(), k
        for field in single_ranks[k]:
            assert torch.equal(single_ranks[k][field], multi_ranks[k][field]), (k, field)


@pytest.mark.slow
def test_every_torchrun_worker_loads_the_model_modules(tmp_path):
    """Each worker parses the same command line, so each imports the --model-module files: a worker without them
    would stop at the unknown model name. The module registers the untrained ``random`` model under a new name, so
    the 2-process run must equal a single-process run of ``random``."""
    module = tmp_path / "more_models.py"
    module.write_text("from dataclasses import replace\n\nfrom cxrbench.models import get_spec, register\n\n"
                      "register(replace(get_spec('random'), name='random_from_module', origin=''))\n")
    single, _ = _run([], tmp_path, tmp_path / "single")
    multi, _ = _run(["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"], tmp_path,
                    tmp_path / "multi", options=["--model-module", str(module), "--models", "random_from_module"])
    assert {r["model"] for r in single} == {"random"} and {r["model"] for r in multi} == {"random_from_module"}
    key = lambda r: (r["level"], r["direction"], r["k"])  # noqa: E731
    assert len(multi) == 2 * 2 * 7 and {key(r): r["value"] for r in single} == {key(r): r["value"] for r in multi}
