"""``cxrbench bench --paper-size`` in miniature: its random checkpoints have the releases' key layouts (checked
against the upstream-written golden fixtures), and one run shows each image decoded once for four models (four
times with one pass per geometry, images x levels x models in the naive loop) with Recall@k equal to the naive
loop in fp32."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from cxrbench.bench_paper import format_report, paper_size
from cxrbench.corruptions import parse_levels
from cxrbench.random_checkpoints import cxr_clip_state, medclip_state, openai_layout_state

GOLDEN = Path(__file__).resolve().parent / "fixtures" / "golden"


def _collapse(keys) -> set[str]:
    return {re.sub(r"\.\d+(?=\.|$)", ".N", k) for k in keys}


@pytest.mark.parametrize("size", ["tiny", "full"])
def test_random_checkpoint_layouts_are_the_releases(size):
    from cxrbench.models.cxr_clip import read_checkpoint

    manifest = json.loads((GOLDEN / "openai_clip" / "checkpoint_manifest.json").read_text())["openai"]
    openai = [e["key"] for e in manifest["tensors"]]
    roots = {"input_resolution", "context_length", "vocab_size"}
    assert _collapse(openai_layout_state(size)) | roots == _collapse(openai)
    golden_cxr_clip, _ = read_checkpoint(GOLDEN / "cxr_clip" / "cxr_clip_swin_tiny.tar", adapter="cxr_clip")
    assert _collapse(k for k, _ in cxr_clip_state(size)) == _collapse(golden_cxr_clip)
    golden_medclip = torch.load(GOLDEN / "medclip" / "vit" / "pytorch_model.bin", weights_only=True)
    assert _collapse(k for k, _ in medclip_state(size)) == _collapse(golden_medclip)


def test_paper_size_comparison_in_miniature(tmp_path, paper_settings):
    levels = parse_levels("0,0.25,0.64")
    checkpoints = Path(paper_settings["clip"]["checkpoint"]).parents[2]  # <dir>/tiny/clip/file
    report = paper_size(images=7, image_size=(400, 480), levels=levels, device="cpu", precision="fp32",
                        data_dir=tmp_path, checkpoint_dir=checkpoints, checkpoint_size="tiny", workers=2)
    rows = {r["pipeline"]: r for r in report["pipelines"]}
    n = report["dataset"]["images"]
    assert n == 7
    assert rows["decode per geometry (before)"]["images_decoded"] == 4 * n
    assert rows["naive"]["images_decoded"] == n * len(levels) * 4
    assert rows["optimised"]["images_decoded"] == n
    assert rows["optimised, fast decode"]["images_decoded"] == n
    assert report["naive_vs_optimised"] == {"clip": 0.0, "cxr_repair": 0.0, "medclip": 0.0, "cxr_clip": 0.0}
    for row in rows.values():
        assert row["wall_s"] > 0 and row["peak_rss_mib"] > 0
        if row["pipeline"] != "decode per geometry (before)":
            assert all(row[k] >= 0 for k in ("decode_s", "geometry_s", "text_s", "tower_s", "score_s"))
    assert set(report["fidelity"]) == {"clip", "cxr_repair", "medclip", "cxr_clip"}
    for f in report["fidelity"].values():
        assert -1 <= f["cosine_min"] <= f["cosine_mean"] <= 1 + 1e-6
    text = format_report(report)
    assert "naive vs optimised (fp32)" in text and "clip 0" in text
