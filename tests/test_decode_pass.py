"""One decode, every geometry: the sweep decodes each image once per run, whatever the number of models, runs every
model's geometry stage on that one decoded image, keeps no full-size image beyond its pass, and computes exactly
what one model alone computes."""

from __future__ import annotations

import threading
import weakref
from dataclasses import replace

import pytest
import torch

from cxrbench.config import SweepConfig
from cxrbench.data import load_dataset
from cxrbench.models import load_model
from cxrbench.prepared import Prepared
from cxrbench.runner import run_sweep

LEVELS = (0.0, 0.25, 0.64)


def _cfg(models, **kw):
    return SweepConfig(**{"models": list(models), "levels": LEVELS, "bootstrap": 0, "device": "cpu",
                          "use_cache": False, **kw})


@pytest.fixture(scope="module")
def dataset(paper_data):
    return load_dataset("manifest", root=paper_data["manifest"], progress=False)


def test_four_geometries_decode_each_image_once(dataset, paper_encoders):
    keys = {e.geometry_key for e in paper_encoders.values()}
    assert len(keys) == 4, "the paper's four models have four geometries"
    n = len(dataset.images)
    result = run_sweep(_cfg(paper_encoders), progress=False, dataset=dataset, encoders=dict(paper_encoders))
    assert result.timings.images_decoded == n
    # before: one pass per geometry key, each decoding every image
    prep = Prepared(dataset)
    for enc in paper_encoders.values():
        prep.compute_geometry([(enc, None)])
    assert prep.decode_stats.images == 4 * n and len(prep.decode_stats.passes) == 4


def test_the_shared_pass_gives_each_model_what_it_gives_alone(dataset, paper_encoders):
    together = run_sweep(_cfg(paper_encoders), progress=False, dataset=dataset, encoders=dict(paper_encoders))
    shared = Prepared(dataset)
    shared.compute_geometry([(e, None) for e in paper_encoders.values()])
    for name, enc in paper_encoders.items():
        alone_prep = Prepared(dataset)
        assert torch.equal(shared.geometry(enc, progress=False), alone_prep.geometry(enc, progress=False))
        alone = run_sweep(_cfg([name]), progress=False, dataset=dataset, encoders={name: enc})
        for lv in LEVELS:
            a, b = together.get(name, "pixels", lv).metrics, alone.get(name, "pixels", lv).metrics
            for d in a:
                assert a[d]["ranks"] == b[d]["ranks"], (name, lv, d)


def test_shared_geometry_keys_run_their_stage_once_per_image(dataset, paper_settings):
    """cxr_repair and chexzero share the 320-pixel canvas: one geometry call per image for both."""
    repair = load_model("cxr_repair", device="cpu", **paper_settings["cxr_repair"])
    chexzero = load_model("chexzero", device="cpu", **paper_settings["cxr_repair"])
    assert repair.geometry_key == chexzero.geometry_key
    calls = []
    original = repair.geometry
    repair.geometry = lambda image: calls.append(1) or original(image)
    prep = Prepared(dataset)
    prep.compute_geometry([(repair, None), (chexzero, None)])
    assert len(calls) == len(dataset.images) == prep.decode_stats.images
    assert prep.geometry(chexzero, progress=False) is prep.geometry(repair, progress=False)


def test_no_decoded_image_outlives_its_pass_step(dataset, paper_encoders):
    """Streaming: at any time at most one decoded full-size image per decode thread is alive."""
    alive, peak, lock = [0], [0], threading.Lock()
    load = dataset.image_loader

    def freed():
        with lock:
            alive[0] -= 1

    def tracking(record, **kw):
        image = load(record, **kw)
        with lock:
            alive[0] += 1
            peak[0] = max(peak[0], alive[0])
        weakref.finalize(image, freed)
        return image

    tracked = replace(dataset, image_loader=tracking)
    prep = Prepared(tracked, workers=2)
    prep.compute_geometry([(e, None) for e in paper_encoders.values()])
    assert prep.decode_stats.images == len(dataset.images)
    assert 1 <= peak[0] <= 2 and alive[0] == 0


def test_indices_of_several_models_are_merged_into_one_pass(dataset, paper_encoders):
    clip, medclip = paper_encoders["clip"], paper_encoders["medclip"]
    prep = Prepared(dataset)
    prep.compute_geometry([(clip, [0, 2]), (medclip, [2, 5]), (clip, [4])])
    assert prep.decode_stats.images == 4  # images 0, 2, 4, 5, once each
    whole = Prepared(dataset)
    assert torch.equal(prep.geometry(clip, False, indices=[4, 0]), whole.geometry(clip, False)[[4, 0]])
    assert torch.equal(prep.geometry(medclip, False, indices=[5]), whole.geometry(medclip, False)[[5]])
    assert prep.decode_stats.images == 4  # served from memory


def test_geometry_cache_entries_keep_their_meaning_and_a_rerun_decodes_nothing(dataset, paper_encoders, tmp_path,
                                                                               monkeypatch):
    import cxrbench.embed_cache as embed_cache
    import cxrbench.prepared as prepared
    from cxrbench.cache import EntryStore

    monkeypatch.setattr(embed_cache, "cache_root", lambda: tmp_path)
    monkeypatch.setattr(prepared, "cache_root", lambda: tmp_path)
    cfg = _cfg(paper_encoders, use_cache=True)
    first = run_sweep(cfg, progress=False, dataset=dataset, encoders=dict(paper_encoders))
    assert first.timings.images_decoded == len(dataset.images)
    store = EntryStore("geometry", root=tmp_path)
    prep = Prepared(dataset)
    for enc in paper_encoders.values():  # the entry of each geometry key: that key's tensors of every image
        entry = store.read({"images": prep.images_hash(), "geometry": enc.geometry_key})
        assert torch.equal(entry, Prepared(dataset).geometry(enc, progress=False))
    again = run_sweep(cfg, progress=False, dataset=dataset, encoders=dict(paper_encoders))
    assert again.timings.images_decoded == 0
    assert all(lv.cached for lv in again.levels)


def test_images_decoded_is_in_run_json(dataset, paper_encoders, tmp_path):
    import json

    from cxrbench.report import write_run

    result = run_sweep(_cfg(["clip", "medclip"]), progress=False, dataset=dataset,
                       encoders={k: paper_encoders[k] for k in ("clip", "medclip")})
    paths = write_run(result, tmp_path / "run", "t")
    timings = json.loads(paths["run"].read_text())["timings_s"]
    assert timings["images_decoded"] == len(dataset.images)
    assert timings["decode_s"] > 0 and timings["geometry_s"] > 0
