"""The sweep end to end on a tiny in-memory dataset with the untrained `random` model."""

from __future__ import annotations

import json

import pytest
import torch

from cxrbench.config import SweepConfig
from cxrbench.errors import ConfigError
from cxrbench.models import load_model
from cxrbench.report import write_run
from cxrbench.results import records
from cxrbench.runner import run_sweep

LEVELS = (0.0, 0.25, 0.5)


@pytest.fixture(scope="module")
def random_encoder():
    return load_model("random")


def _cfg(**kw):
    base = dict(models=["random"], levels=LEVELS, bootstrap=50, device="cpu")
    base.update(kw)
    return SweepConfig(**base)


def test_sweep_writes_every_output_and_records_are_complete(tiny_dataset, random_encoder, tmp_path):
    calls = []
    original = random_encoder.encode_texts

    def counting(texts, *a, **k):
        calls.append(list(texts))
        return original(texts, *a, **k)

    random_encoder.encode_texts = counting
    try:
        # no cache: the text-embedding cache would serve texts another test of the session embedded
        result = run_sweep(_cfg(use_cache=False), progress=False, dataset=tiny_dataset,
                           encoders={"random": random_encoder})
    finally:
        del random_encoder.encode_texts
    assert len(calls) == 1, "texts must be embedded once per model, not once per level"
    assert len(calls[0]) == 5  # 6 studies, two share a text
    assert len(result.levels) == len(LEVELS)
    recs = records(result, run_id="t")
    assert len(recs) == len(LEVELS) * 2 * 7
    r = recs[0]
    for key in ("dataset", "split", "model", "checkpoint_sha256", "corruption", "corruption_params", "level", "seed",
                "direction", "k", "value", "code_version", "device", "wall_time_s", "ci95", "dataset_counts"):
        assert key in r, key
    assert r["checkpoint_sha256"] == "untrained-seed-1234"
    assert {x["n_queries"] for x in recs if x["direction"] == "image_to_text"} == {7}
    assert {x["n_gallery"] for x in recs if x["direction"] == "image_to_text"} == {5}
    paths = write_run(result, tmp_path / "run", "t")
    for p in paths.values():
        assert p.is_file() and p.stat().st_size > 0
    lines = paths["records"].read_text().splitlines()
    assert len(lines) == len(recs) and json.loads(lines[0])["run_id"] == "t"
    assert "| random | 25% |" in paths["table"].read_text()
    assert paths["plot_pixels"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cached_embeddings_give_identical_results(tiny_dataset, random_encoder):
    a = run_sweep(_cfg(), progress=False, dataset=tiny_dataset, encoders={"random": random_encoder})
    b = run_sweep(_cfg(), progress=False, dataset=tiny_dataset, encoders={"random": random_encoder})
    assert all(lv.cached for lv in b.levels)
    for x, y in zip(a.levels, b.levels):
        for d in x.metrics:
            assert x.metrics[d]["ranks"] == y.metrics[d]["ranks"]


def test_embeddings_match_encode_images_at_level_zero(tiny_dataset, random_encoder):
    """The runner's split pipeline (geometry -> occlusion -> intensity -> tower) equals encode_images."""
    from cxrbench.corruptions import Occlusion, image_keys
    from cxrbench.engine import embed_levels
    from cxrbench.prepared import Prepared

    prep = Prepared(tiny_dataset)
    pixels = prep.geometry(random_encoder, progress=False)
    chunks = embed_levels(random_encoder, pixels, image_keys(prep.image_ids, 0), Occlusion(), [0.0],
                          torch.device("cpu"), "fp32", chunks=3)
    got = torch.cat([c[0.0] for c in chunks])
    want = random_encoder.encode_images(prep.map_images())  # the decoded images
    assert torch.allclose(got, want, atol=1e-6)


def test_occlusion_changes_embeddings_progressively(tiny_dataset, random_encoder):
    from cxrbench.corruptions import Occlusion, image_keys
    from cxrbench.engine import embed_levels
    from cxrbench.prepared import Prepared

    prep = Prepared(tiny_dataset)
    pixels = prep.geometry(random_encoder, progress=False)
    chunks = embed_levels(random_encoder, pixels, image_keys(prep.image_ids, 0), Occlusion(), [0.0, 0.1, 0.8],
                          torch.device("cpu"), "fp32", chunks=[4, 3])
    emb = {lv: torch.cat([c[lv] for c in chunks]) for lv in (0.0, 0.1, 0.8)}
    d1 = (emb[0.0] - emb[0.1]).norm(dim=1).mean()
    d8 = (emb[0.0] - emb[0.8]).norm(dim=1).mean()
    assert 0 < d1 < d8


def test_bad_options_are_clear_errors(tiny_dataset):
    with pytest.raises(ConfigError, match="outside"):
        run_sweep(_cfg(levels=(0.0, 1.0)), progress=False, dataset=tiny_dataset)
    with pytest.raises(ConfigError, match="unknown model"):
        run_sweep(_cfg(models=["nope"]), progress=False, dataset=tiny_dataset)
    with pytest.raises(ConfigError, match="corruption"):
        run_sweep(_cfg(corruptions=["blur"]), progress=False, dataset=tiny_dataset)


def _with_corrupt_image(ds, on_bad_image):
    from dataclasses import replace

    from cxrbench.errors import DataError

    good = ds.image_loader

    def loader(rec):
        if rec.image_id == "s3_im0":
            raise DataError(f"{rec.source}: cannot decode image (truncated)")
        return good(rec)

    return replace(ds, image_loader=loader, on_bad_image=on_bad_image)


def test_undecodable_image_stops_the_run_naming_the_file(tiny_dataset):
    from cxrbench.errors import DataError

    with pytest.raises(DataError, match="mem://3/0"):
        run_sweep(_cfg(levels=(0.0,), use_cache=False), progress=False,
                  dataset=_with_corrupt_image(tiny_dataset, "error"))


def test_undecodable_image_is_skipped_with_a_warning_and_counted(tiny_dataset, random_encoder):
    ds = _with_corrupt_image(tiny_dataset, "skip")
    with pytest.warns(UserWarning, match="mem://3/0"):
        result = run_sweep(_cfg(levels=(0.0,)), progress=False, dataset=ds, encoders={"random": random_encoder})
    assert result.dataset["skipped_undecodable_images"] == 1
    assert result.dataset["dropped_studies_without_decodable_images"] == 1  # study s3 had only that image
    assert result.dataset["images"] == 6 and result.dataset["bad_images"][0]["image_id"] == "s3_im0"
    rec = records(result)[0]
    assert rec["dataset_counts"]["skipped_undecodable_images"] == 1
    assert rec["n_queries"] == 6 if rec["direction"] == "image_to_text" else True
