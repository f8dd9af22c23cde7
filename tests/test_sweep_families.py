"""The sweep runs every corruption family end to end: levels per kind (fractions for occlusion, severities for the
others) checked before any data is read, every corruption through its own prepare / apply in the engine (occlusion
bit-identical to the path it replaced), records that say what a level is, lung masks brought into each model's
frame for ``lungs(masks)`` (and the template, named so, without them), tables labelled per kind, and the
``cxrbench corruptions`` listing."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image

from cxrbench import cli, corruptions
from cxrbench.config import SweepConfig
from cxrbench.corruptions import PAPER_LEVELS, Occlusion, image_keys
from cxrbench.data.records import Dataset
from cxrbench.engine import embed_levels
from cxrbench.errors import ConfigError
from cxrbench.mask_geometry import MaskGeometry, frame_mask
from cxrbench.models import load_model
from cxrbench.options import sweep_config
from cxrbench.prepared import Prepared
from cxrbench.report.tables import markdown_tables
from cxrbench.results import records
from cxrbench.runner import run_sweep

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def random_encoder():
    return load_model("random")


def _parse(argv: list[str]) -> SweepConfig:
    args = cli.build_parser().parse_args(["run", *argv])
    return sweep_config(vars(args).get)


# --- options and config ---------------------------------------------------------------------------------------


def test_levels_are_per_kind():
    mixed = _parse(["--corruption", "pixels,motion_blur,jpeg"])
    assert mixed.levels == {"fraction": PAPER_LEVELS, "severity": (0, 1, 2, 3, 4, 5)}
    assert mixed.levels_for("pixels") == PAPER_LEVELS and mixed.levels_for("jpeg") == (0, 1, 2, 3, 4, 5)
    assert all(isinstance(s, int) for s in mixed.levels_for("motion_blur"))
    assert _parse(["--corruption", "center,periphery"]).levels == PAPER_LEVELS
    assert _parse(["--corruption", "gaussian_noise", "--levels", "1,3,5"]).levels == (1, 3, 5)
    per_kind = _parse(["--corruption", "lungs,jpeg", "--levels", "fraction=0,0.25;severity=0,3,5"])
    assert per_kind.levels == {"fraction": (0.0, 0.25), "severity": (0, 3, 5)}
    assert _parse(["--corruption", "pixels,jpeg", "--levels", "severity=all"]).levels == {
        "fraction": PAPER_LEVELS, "severity": (0, 1, 2, 3, 4, 5)}
    both = _parse(["--corruption", "pixels,jpeg", "--levels", "0"])  # 0 is clean for both kinds
    assert both.levels == (0.0,) and both.levels_for("jpeg") == (0,)
    cfg = SweepConfig(corruptions=["jpeg", "pixels"], levels={"severity": [0, 2]})
    cfg.validate()
    assert cfg.levels == {"severity": (0, 2), "fraction": PAPER_LEVELS}


@pytest.mark.parametrize(("argv", "message"), [
    (["--corruption", "pixels,jpeg", "--levels", "0,1,3"], r"give them per kind, e\.g\. 'fraction=0,0\.25,0\.5;"),
    (["--corruption", "jpeg", "--levels", "0,6"], r"severity 6\.0 is outside 0\.\.5"),
    (["--corruption", "jpeg", "--levels", "0,2.5"], r"severity 2\.5 is not an integer"),
    (["--corruption", "pixels", "--levels", "0,1.5"], r"level '1\.5' is outside \[0, 1\)"),
    (["--corruption", "pixels", "--levels", "0,x"], r"level 'x' is not a number"),
    (["--corruption", "pixels", "--levels", "colour=0"], r"kind=levels with kind one of fraction, severity"),
    (["--corruption", "motion_blurr"], r"unknown corruption 'motion_blurr'; available: pixels, block"),
    (["--corruption", "lungs(masks)", "--dataset", "manifest", "--root", "."], r"lungs\(masks\) needs per-image "
                                                                                r"lung masks"),
    (["--data-option", "lung_masks=/nonexistent/masks"], r"lung_masks=/nonexistent/masks: no such folder"),
])
def test_bad_corruption_options_fail_before_any_data(argv, message):
    with pytest.raises(ConfigError, match=message):
        _parse(argv)


def test_all_means_every_corruption_and_repeats_run_once():
    assert list(_parse(["--corruption", "all"]).corruptions) == corruptions.available()
    assert len(corruptions.available()) >= 26
    with pytest.warns(UserWarning, match="more than once"):
        assert list(_parse(["--corruption", "jpeg,jpeg,center"]).corruptions) == ["jpeg", "center"]


def test_lungs_uses_masks_where_the_dataset_has_them():
    assert SweepConfig().corruption("lungs").name == "lungs(masks)"  # iu-phantom renders them
    manifest = SweepConfig(dataset="manifest", dataset_options={"root": "."})
    assert manifest.corruption("lungs").name == "lungs(template)"
    assert manifest.corruption("lungs(template)").name == "lungs(template)"
    assert SweepConfig().corruption("lungs(template)").name == "lungs(template)"


# --- the engine -----------------------------------------------------------------------------------------------


def test_occlusion_through_prepare_apply_is_bit_identical_to_the_replaced_path(tiny_dataset, random_encoder):
    prep = Prepared(tiny_dataset)
    pixels = prep.geometry(random_encoder, progress=False)
    keys = image_keys(prep.image_ids, 3)
    for occ in (Occlusion("pixels"), Occlusion("patches", "noise", 5), Occlusion("center", "mean"),
                Occlusion("lungs")):
        levels = [0.0, 0.25, 0.64]
        got = embed_levels(random_encoder, pixels, keys, occ, levels, CPU, "fp32", chunks=[4, 3])
        start = 0
        for size, chunk in zip([4, 3], got):  # the former engine: mask state and fill drawn apart, per chunk
            batch, k = pixels[start : start + size], keys[start : start + size]
            start += size
            state, fill = occ.prepare(k, *batch.shape[-2:]), occ.fill_values(batch, k)
            for lv in levels:
                want = random_encoder.embed_pixels(random_encoder.intensity(occ.apply(batch, k, lv, state=state,
                                                                                       fill=fill)))
                assert torch.equal(chunk[lv], want), (occ.name, lv)


@pytest.mark.parametrize("name", ["motion_blur", "gaussian_noise", "jpeg", "bias_field", "collimation"])
def test_severity_families_embed_as_applied_to_each_image_alone(name, tiny_dataset, random_encoder):
    """Batch split and order do not matter: the engine's embeddings equal those of each image corrupted alone."""
    corr = corruptions.get(name)
    prep = Prepared(tiny_dataset)
    pixels = prep.geometry(random_encoder, progress=False)
    keys = image_keys(prep.image_ids, 0)
    got = embed_levels(random_encoder, pixels, keys, corr, [0, 2, 5], CPU, "fp32", chunks=[2, 5])
    emb = {lv: torch.cat([c[lv] for c in got]) for lv in (0, 2, 5)}
    for i in range(len(pixels)):
        for lv in (0, 2, 5):
            alone = corr.apply(pixels[i : i + 1], keys[i : i + 1], lv)
            want = random_encoder.embed_pixels(random_encoder.intensity(alone))
            assert torch.allclose(emb[lv][i : i + 1], want, atol=1e-5), (name, i, lv)
    assert not torch.allclose(emb[0], emb[5])


# --- lung masks in the model frame ----------------------------------------------------------------------------


def _left_half_masks(dataset: Dataset) -> Dataset:
    """tiny_dataset with a lung mask per image: the left half of the image (72 x 64)."""

    def masks(record):
        arr = np.zeros((64, 72), np.uint8)
        arr[:, :36] = 255
        return Image.fromarray(arr, mode="L")

    masks.source = "test: left halves"
    return replace(dataset, lung_masks=masks)


def test_masks_go_through_each_models_geometry(tiny_dataset, random_encoder):
    prep = Prepared(_left_half_masks(tiny_dataset))
    frame = MaskGeometry(prep).masks(random_encoder)
    pixels = prep.geometry(random_encoder, progress=False)
    assert frame.dtype == torch.bool and frame.shape == (len(prep.image_ids), *pixels.shape[-2:])
    # the reference geometry: shorter side (64) to 128, centre crop: the image's left half (x < 36 of 72) spans
    # x < 36 * 128 / 64 = 72 of the resized 144 columns, minus the 8 cropped on the left: columns 0..63
    cols = frame[0].any(dim=0).nonzero().flatten()
    assert cols.min() == 0 and abs(int(cols.max()) - 63) <= 1 and frame[0][:, :63].all()
    grey = Image.fromarray(np.where(np.arange(72)[None, :].repeat(64, 0) < 36, 255, 0).astype(np.uint8), "L")
    assert torch.equal(frame_mask(random_encoder, grey), frame[0])


def test_lungs_with_masks_blocks_only_the_mask_and_is_recorded_so(tiny_dataset, random_encoder):
    ds = _left_half_masks(tiny_dataset)
    cfg = SweepConfig(models=["random"], corruptions=["lungs", "pixels"], levels=(0.0, 0.5), bootstrap=0,
                      device="cpu", use_cache=False)
    result = run_sweep(cfg, progress=False, dataset=ds, encoders={"random": random_encoder})
    names = {lr.corruption for lr in result.levels}
    assert names == {"lungs(masks)", "pixels"}
    lungs = [e for e in result.examples["entries"] if e["corruption"] == "lungs(masks)"]
    clean = next(e["pixels"] for e in lungs if e["level"] == 0.0)
    half = next(e["pixels"] for e in lungs if e["level"] == 0.5)
    changed = (clean != half).any(axis=1)  # (N, H, W)
    assert changed[:, :, :63].mean() > 0.3 and not changed[:, :, 65:].any()  # inside the mask only
    without = run_sweep(replace(cfg, corruptions=["lungs"]), progress=False, dataset=tiny_dataset,
                        encoders={"random": random_encoder})
    assert {lr.corruption for lr in without.levels} == {"lungs(template)"}
    with pytest.raises(ConfigError, match=r"lungs\(masks\) needs per-image lung masks"):
        run_sweep(replace(cfg, corruptions=["lungs(masks)"], dataset="iu-phantom"), progress=False,
                  dataset=tiny_dataset, encoders={"random": random_encoder})


# --- records, cache, tables -----------------------------------------------------------------------------------


def test_a_mixed_sweep_records_every_family_with_its_kind_and_resumes_from_the_cache(tiny_dataset, random_encoder,
                                                                                     monkeypatch):
    import cxrbench.engine as engine

    embedded = []
    original = engine.embed_levels

    def counting(*args, on_batch=None, **kwargs):
        return original(*args, on_batch=lambda n: (embedded.append(n), on_batch and on_batch(n)), **kwargs)

    monkeypatch.setattr(engine, "embed_levels", counting)
    cfg = SweepConfig(models=["random"], corruptions=["center", "motion_blur", "jpeg"],
                      levels={"fraction": (0.0, 0.36), "severity": (0, 2, 5)}, bootstrap=20, device="cpu")
    first = run_sweep(cfg, progress=False, dataset=tiny_dataset, encoders={"random": random_encoder})
    # the clean level is embedded once for all three corruptions: 2 + 2 + 2 levels of the 7 images, not 2 + 3 + 3
    assert sum(embedded) == 7 * 6 and not any(lr.cached for lr in first.levels)
    recs = records(first)
    kinds = {(r["corruption"], r["level"], r["level_kind"], r["corruption_params"]["family"]) for r in recs}
    assert kinds == {("center", 0.0, "fraction", "occlusion"), ("center", 0.36, "fraction", "occlusion"),
                     *{(c, s, "severity", c) for c in ("motion_blur", "jpeg") for s in (0, 2, 5)}}
    assert all(isinstance(r["level"], int) for r in recs if r["level_kind"] == "severity")
    assert {r["achieved_level"] for r in recs if r["level_kind"] == "severity"} == {None}
    assert {tuple(r["auc_range"]) for r in recs if r["corruption"] == "jpeg"} == {(0, 5)}
    # the clean level is the same images whatever the corruption
    clean = {lr.corruption: lr.metrics["image_to_text"]["ranks"] for lr in first.levels if lr.level == 0}
    assert clean["center"] == clean["motion_blur"] == clean["jpeg"]
    embedded.clear()
    again = run_sweep(cfg, progress=False, dataset=tiny_dataset, encoders={"random": random_encoder})
    assert all(lr.cached for lr in again.levels) and embedded == []
    assert [lr.metrics["text_to_image"]["ranks"] for lr in again.levels] == [
        lr.metrics["text_to_image"]["ranks"] for lr in first.levels]
    table = markdown_tables(recs)
    assert "### image_to_text — `jpeg` (quality 50 / 30 / 15 / 10 / 7 at severities 1-5;" in table
    assert "| random | 0 (clean) |" in table and "| random | 5 |" in table and "| random | 500% |" not in table
    assert "### image_to_text — occlusion `center` (fill zero;" in table and "| random | 36% |" in table


def test_corruptions_command_lists_every_family_with_its_severities(capsys):
    assert cli.main(["corruptions"]) == 0
    out = capsys.readouterr().out
    families = [line.split()[0] for line in out.splitlines()[5:] if line.startswith("  ") and line.split()]
    families = [f for f in families if f in corruptions.SEVERITY_FAMILIES]
    assert len(families) == len(corruptions.SEVERITY_FAMILIES) >= 15
    assert "motion_blur      radius_sigma    (10, 3)" in out and "jpeg             quality         50" in out
    assert "lungs(masks)" in out and "lungs(template)" in out


def test_a_protocols_levels_are_the_occlusion_levels(tmp_path):
    """``--protocol paper`` fixes the occlusion levels; severity families beside it (the pytest suite's default
    corruptions include some) keep theirs, and a per-kind --levels is compared on its fraction part."""
    base = ["--protocol", "paper", "--root", str(tmp_path)]
    assert _parse(base).levels == PAPER_LEVELS
    assert _parse([*base, "--corruption", "pixels,jpeg"]).levels == {"fraction": PAPER_LEVELS,
                                                                      "severity": (0, 1, 2, 3, 4, 5)}
    assert _parse([*base, "--corruption", "pixels,jpeg", "--levels", "severity=0,3"]).levels == {
        "fraction": PAPER_LEVELS, "severity": (0, 3)}
    with pytest.raises(ConfigError, match="protocol 'paper' fixes levels"):
        _parse([*base, "--corruption", "pixels,jpeg", "--levels", "fraction=0,0.5;severity=0,3"])
