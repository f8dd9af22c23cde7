"""A broken model scores as broken (issue 10, item 1, end to end through ``cxrbench run``): the packaged reference
weights with ``image.proj.weight`` set to NaN stop the run in one line with exit code 1 and write nothing; set to
zeros (constant image embeddings) they score exactly chance where every score ties, never 100%; weights of the
wrong dtype are refused by the loader."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from cxrbench.models.reference import read_metadata, weights_path

from reliability_harness import QUICK, leftovers, run_cli


def reference_weights(tmp_path: Path, **changes) -> Path:
    """The packaged reference weights with ``changes`` (key -> function of the tensor) applied, as safetensors."""
    from safetensors.torch import load_file, save_file

    src = weights_path("reference")
    state = load_file(str(src))
    for key, change in changes.items():
        state[key.replace("__", ".")] = change(state[key.replace("__", ".")])
    out = tmp_path / "reference-broken.safetensors"
    save_file(state, str(out), metadata=read_metadata(src))
    return out


def run_reference(manifest: Path, weights: Path, out: Path):
    argv = ["run", "--dataset", "manifest", "--root", manifest, *QUICK, "--models", "reference",
            "--checkpoint", f"reference={weights}", "--out", out, "--no-cache"]
    return run_cli(argv)


def records(out: Path) -> list[dict]:
    import json

    return [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_weights_stop_the_run_in_one_line_and_write_nothing(value, manifest, tmp_path):
    weights = reference_weights(tmp_path, image__proj__weight=lambda t: torch.full_like(t, value))
    out = tmp_path / "results" / "nan"
    run = run_reference(manifest, weights, out)
    assert run.rc == 1
    line = run.one_error()
    assert "model reference" in line and "image embeddings are NaN or infinite" in line and "level 0" in line
    assert not out.exists() and leftovers(out) == []


def test_non_finite_text_embeddings_name_the_text_tower(manifest, tmp_path):
    weights = reference_weights(tmp_path, text__net__2__bias=lambda t: torch.full_like(t, float("nan")))
    out = tmp_path / "results" / "nan-text"
    run = run_reference(manifest, weights, out)
    assert run.rc == 1 and "text embeddings are NaN or infinite" in run.one_error()
    assert not out.exists()


def test_zero_image_projection_scores_chance_not_100_percent(manifest, tmp_path):
    """``image.proj.weight`` = 0: every image gets the same embedding (the bias), so every text query ties all
    images: exactly chance. Image queries all rank the texts the same way: not 100% either."""
    weights = reference_weights(tmp_path, image__proj__weight=torch.zeros_like)
    out = tmp_path / "results" / "zeros"
    run = run_reference(manifest, weights, out)
    assert run.rc == 0, run.err
    recs = records(out)
    t2i = [r for r in recs if r["direction"] == "text_to_image"]
    assert t2i and all(r["value"] == pytest.approx(r["chance"], abs=1e-12) for r in t2i)
    assert all(r["value"] < 1.0 for r in recs if r["k"] < r["n_gallery"])


def test_constant_embeddings_in_both_towers_score_exactly_chance(manifest, tmp_path):
    weights = reference_weights(tmp_path, image__proj__weight=torch.zeros_like, image__proj__bias=torch.zeros_like,
                                text__net__2__weight=torch.zeros_like, text__net__2__bias=torch.zeros_like)
    out = tmp_path / "results" / "const"
    run = run_reference(manifest, weights, out)
    assert run.rc == 0, run.err
    recs = records(out)
    assert len(recs) == 2 * 2 * 7
    for r in recs:
        assert r["value"] == pytest.approx(r["chance"], abs=1e-12), r
        assert r["chance"] == pytest.approx(min(1.0, r["k"] / r["n_gallery"]), abs=1e-12)


@pytest.mark.parametrize("dtype", [torch.int8, torch.bool, torch.int32])
def test_weights_of_the_wrong_dtype_are_refused(dtype, manifest, tmp_path):
    weights = reference_weights(tmp_path, image__proj__weight=lambda t: t.to(dtype))
    out = tmp_path / "results" / "dtype"
    run = run_reference(manifest, weights, out)
    assert run.rc == 1
    line = run.one_error()
    assert "wrong dtype" in line and "image.proj.weight" in line and str(dtype).removeprefix("torch.") in line
    assert not out.exists()
