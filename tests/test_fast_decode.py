"""``--decode fast``: JPEGs decoded reduced (Pillow draft on the CPU; the nvjpeg path's reduction checked with
torchvision's CPU decoder), never below what every geometry of the pass needs; opt-in and recorded."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from cxrbench.config import SweepConfig
from cxrbench.data import load_dataset
from cxrbench.data.images import decode_image
from cxrbench.decode import (
    combined_need,
    decode_jpegs_on_device,
    longer_side_at_least,
    need_size,
    reduction_factor,
    shorter_side_at_least,
)
from cxrbench.embed_cache import chunk_keys, image_embedding_key
from cxrbench.engine import image_chunks
from cxrbench.prepared import Prepared
from cxrbench.results import records
from cxrbench.runner import run_sweep


def _jpeg(path, width, height, mode="L", orientation=None, seed=0):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = (127 + 60 * np.sin(x / 37.0) * np.cos(y / 23.0) + rng.normal(0, 8, (height, width))).clip(0, 255)
    arr = base.astype(np.uint8) if mode == "L" else np.stack([base, base[::-1], base[:, ::-1]], -1).astype(np.uint8)
    image = Image.fromarray(arr)
    exif = None
    if orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = orientation
    image.save(path, format="JPEG", quality=95, **({"exif": exif.tobytes()} if exif else {}))
    return path


@pytest.mark.parametrize("size, side, kind", [((2544, 3056), 224, "shorter"), ((2544, 3056), 320, "longer"),
                                              ((1000, 800), 224, "shorter"), ((900, 900), 320, "longer"),
                                              ((500, 300), 224, "shorter"), ((640, 480), 100, "longer")])
def test_draft_decodes_at_the_smallest_dct_scale_still_at_least_the_need(tmp_path, size, side, kind):
    w, h = size
    path = _jpeg(tmp_path / "a.jpg", w, h)
    need = (lambda a, b: shorter_side_at_least(a, b, side)) if kind == "shorter" else \
        (lambda a, b: longer_side_at_least(a, b, side))
    got = decode_image(path, draft=need)
    want = need(w, h)
    assert got.size[0] >= want[0] and got.size[1] >= want[1]  # never below the need
    factor = reduction_factor(w, h, want)
    assert got.size == (math.ceil(w / factor), math.ceil(h / factor))
    if factor < 8:  # the next DCT scale would have gone below the need
        assert math.ceil(w / (2 * factor)) < want[0] or math.ceil(h / (2 * factor)) < want[1]
    assert decode_image(path).size == (w, h)  # exact unless asked


def test_draft_need_is_asked_about_the_upright_image(tmp_path):
    path = _jpeg(tmp_path / "rot.jpg", 1200, 800, orientation=6)  # stored landscape, shown portrait
    asked = []

    def need(w, h):
        asked.append((w, h))
        return shorter_side_at_least(w, h, 200)

    got = decode_image(path, draft=need)
    assert asked == [(800, 1200)]
    assert got.size == (200, 300)  # upright, reduced by 4
    assert decode_image(path).size == (800, 1200)


def test_other_formats_decode_in_full(tmp_path):
    Image.fromarray(np.zeros((400, 300), np.uint8)).save(tmp_path / "a.png")
    assert decode_image(tmp_path / "a.png", draft=lambda w, h: (10, 10)).size == (300, 400)


def test_combined_need_satisfies_every_need_and_full_size_wins():
    a, b = ("shorter", 224), ("longer", 320)
    assert need_size(a, 2544, 3056) == (224, 270) and need_size(b, 2544, 3056) == (267, 320)
    assert combined_need([a, b])(2544, 3056) == (267, 320)
    assert need_size(a, 100, 150) == (100, 150)  # never enlarged
    assert combined_need([a, None]) is None and combined_need([]) is None
    with pytest.raises(ValueError, match="shorter"):
        combined_need([("middle", 3)])


def test_the_paper_models_say_what_their_geometry_resizes(paper_encoders):
    assert {m: e.decode_need() for m, e in paper_encoders.items()} == {
        "clip": ("shorter", 224), "cxr_repair": ("longer", 320), "medclip": ("longer", 224),
        "cxr_clip": ("shorter", 224)}
    need = combined_need(e.decode_need() for e in paper_encoders.values())
    assert reduction_factor(2544, 3056, need(2544, 3056)) == 8  # MIMIC size: 1/8 serves all four


def test_device_path_reduces_like_the_draft_and_leaves_what_it_cannot_take(tmp_path):
    """decode_jpegs_on_device, run with torchvision's CPU decoder: same sizes as Pillow's draft, pixels within a few
    grey levels of it; rotated JPEGs and other formats are left (None) for the CPU path."""
    paths = [_jpeg(tmp_path / "g.jpg", 1600, 1900), _jpeg(tmp_path / "c.jpg", 900, 700, mode="RGB", seed=1),
             _jpeg(tmp_path / "r.jpg", 800, 600, orientation=6)]
    Image.fromarray(np.zeros((50, 40), np.uint8)).save(tmp_path / "p.png")
    paths.append(tmp_path / "p.png")
    need = lambda w, h: shorter_side_at_least(w, h, 200)  # noqa: E731
    got = decode_jpegs_on_device(paths, need, torch.device("cpu"))
    assert got[2] is None and got[3] is None
    for image, path in zip(got[:2], paths[:2]):
        draft = decode_image(path, draft=need)
        assert image.size == draft.size and image.mode == draft.mode
        diff = np.abs(np.asarray(image, np.float32) - np.asarray(draft, np.float32))
        assert diff.mean() < 2.0, diff.mean()
    f = reduction_factor(1600, 1900, need(1600, 1900))
    assert f == 4  # 1900 / 8 would fall below the height the need asks for
    full = np.asarray(decode_image(paths[0]), np.float32)
    box = full[: 1900 // f * f, : 1600 // f * f].reshape(1900 // f, f, 1600 // f, f).mean(axis=(1, 3))
    assert np.abs(np.asarray(got[0], np.float32)[: 1900 // f, : 1600 // f] - box).max() <= 0.5  # a box average


@pytest.fixture(scope="module")
def dataset(paper_data):
    return load_dataset("manifest", root=paper_data["manifest"], progress=False)


def test_fast_sweep_is_opt_in_recorded_and_keyed_apart(dataset, paper_encoders):
    models = ["clip", "cxr_repair"]
    encoders = {m: paper_encoders[m] for m in models}
    cfg = SweepConfig(models=models, levels=(0.0, 0.5), bootstrap=0, device="cpu", use_cache=False)
    assert cfg.decode == "exact"
    exact = run_sweep(cfg, progress=False, dataset=dataset, encoders=dict(encoders))
    fast_cfg = SweepConfig(models=models, levels=(0.0, 0.5), bootstrap=0, device="cpu", use_cache=False,
                           decode="fast")
    fast = run_sweep(fast_cfg, progress=False, dataset=dataset, encoders=dict(encoders))
    assert {r["decode"] for r in records(exact)} == {"exact"} and {r["decode"] for r in records(fast)} == {"fast"}
    assert fast.timings.images_decoded == len(dataset.images)

    enc = encoders["clip"]
    prep_exact, prep_fast = Prepared(dataset), Prepared(dataset, decode="fast")
    prep_fast.register(encoders.values())
    occ = __import__("cxrbench.corruptions", fromlist=["get"]).get("pixels")
    chunk = image_chunks(enc, prep_exact, fast_cfg)[0]
    key_exact = image_embedding_key(enc, prep_exact, occ, cfg, 0.0, chunk)
    assert "decode" not in key_exact  # exact-decode keys are as they always were
    key_fast = image_embedding_key(enc, prep_fast, occ, fast_cfg, 0.0, chunk)
    assert key_fast["decode"] == {"mode": "fast", "backend": "pil-draft", "needs": ["longer320", "shorter224"]}
    assert chunk_keys(enc, prep_fast, occ, fast_cfg, [chunk]) != chunk_keys(enc, prep_exact, occ, cfg, [chunk])


def test_fast_geometry_stays_close_to_exact_at_full_scale(tmp_path, paper_encoders):
    """A 1600 x 1920 JPEG decoded at 1/4 for clip and medclip: the model-frame pixels differ by a few grey levels."""
    from cxrbench.data.common import decode_record
    from cxrbench.data.records import Dataset, ImageRecord, Study

    path = _jpeg(tmp_path / "x.jpg", 1600, 1920, seed=3)
    ds = Dataset("one", "test", "findings", [Study("s", (ImageRecord("i", str(path)),), "text", "")],
                 image_loader=decode_record)
    encoders = [paper_encoders["clip"], paper_encoders["medclip"]]
    exact, fast = Prepared(ds), Prepared(ds, decode="fast")
    exact.compute_geometry([(e, None) for e in encoders])
    fast.compute_geometry([(e, None) for e in encoders])
    for enc in encoders:
        a = exact.geometry(enc, False).float()
        b = fast.geometry(enc, False).float()
        assert a.shape == b.shape and 0 < (a - b).abs().mean() < 3


def test_fast_pixels_follow_the_needs_of_the_run_not_what_was_made_before(tmp_path, paper_encoders):
    """medclip alone decodes a 1600 x 1920 JPEG at 1/8; with clip in the run, at 1/4 (clip needs more). Geometry
    made at the old scale is not served once the run's needs change, and the cache key says which needs."""
    from cxrbench.data.common import decode_record
    from cxrbench.data.records import Dataset, ImageRecord, Study

    path = _jpeg(tmp_path / "x.jpg", 1600, 1920, seed=5)
    ds = Dataset("one", "test", "findings", [Study("s", (ImageRecord("i", str(path)),), "text", "")],
                 image_loader=decode_record)
    clip, medclip = paper_encoders["clip"], paper_encoders["medclip"]
    prep = Prepared(ds, decode="fast")
    alone = prep.geometry(medclip, False).clone()
    assert prep.decode_identity()["needs"] == ["longer224"]
    prep.register([clip])
    assert prep.decode_identity()["needs"] == ["longer224", "shorter224"]
    together = prep.geometry(medclip, False)
    assert prep.decode_stats.images == 2 and not torch.equal(alone, together)
    fresh = Prepared(ds, decode="fast")
    fresh.register([clip, medclip])
    assert torch.equal(fresh.geometry(medclip, False), together)
