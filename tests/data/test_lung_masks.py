"""Lung-field masks: iu-phantom renders them with the images (without changing a pixel of the images) and caches
them checksummed next to the PNGs; ``lung_masks=DIR`` reads a folder of mask PNGs for any dataset, with clear errors
for missing, undecodable, empty or misfitting masks, or the image left out and counted under --on-bad-image skip."""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cxrbench import phantom
from cxrbench.cache import CacheWarning
from cxrbench.data import iu_phantom, load_dataset, lung_masks, manifest, provides_lung_masks
from cxrbench.errors import ConfigError, DataError

#: sha256 of render(parse_mesh(majors), seed=11, view, size=128), taken before the lung masks were added: the
#: renderer's pixels (and RENDERER_VERSION) must not change because it now also reports the lung fields
RENDER_GOLDEN = {
    ((), "frontal"): "70ad79c9ef4b6c93bf143f82179ae184ca713c3c45811ddc7b3040ade74b91a3",
    ((), "lateral"): "33ba93244b7dea83d58cccf862a70b05f275a9b135a3dfda1d9376b8ce34e864",
    (("Cardiomegaly/mild",), "frontal"): "9b9dd1fd6c250e1e14b20eab1b70e3e195c6766ad24f332691b151edcc71dfd7",
    (("Cardiomegaly/mild",), "lateral"): "745fee320ccfabb427b7fd654235991ce8e6be7caa02ddd8a6000b66da417abf",
    (("Pleural Effusion/right/small",), "frontal"): "266cd90d16752a1708ffca0bce14eabc7f3ff1cd7feb80ff1fa4a51d0d54d541",
    (("Pleural Effusion/right/small",), "lateral"): "a40ca4405029619c8a77f65da390bb76a5def1561c42c5fb7de9536becd580ae",
    (("Pneumothorax/left",), "frontal"): "211101e748e06a7e7bd238b4ce347d4c6a135f40fba03e7c114d1dad6c3e31c7",
    (("Pneumothorax/left",), "lateral"): "3ff878940f7679bd2c361a03eee7f27f19233a732b74c5a215091ab4fccfbacb",
}


@pytest.mark.parametrize(("majors", "view"), list(RENDER_GOLDEN))
def test_rendering_the_lungs_leaves_the_image_pixels_unchanged(majors, view):
    spec = phantom.parse_mesh(majors)
    pixels, lungs = phantom.render_with_lungs(spec, seed=11, view=view, size=128)
    assert hashlib.sha256(pixels.tobytes()).hexdigest() == RENDER_GOLDEN[(majors, view)]
    assert np.array_equal(phantom.render(spec, seed=11, view=view, size=128), pixels)
    assert lungs.dtype == bool and lungs.shape == (128, 128)
    assert phantom.RENDERER_VERSION == "1"


@pytest.mark.parametrize("view", ["frontal", "lateral"])
def test_lung_fields_are_dark_air_inside_the_chest_without_the_heart(view):
    normal, lungs = phantom.render_with_lungs(phantom.parse_mesh(()), seed=4, view=view, size=256)
    assert 0.12 < lungs.mean() < 0.35
    body = ~lungs & (normal > 30)  # the rest of the body (not the black background)
    assert normal[lungs].mean() < normal[body].mean() - 20  # lungs are air: darker than the rest of the body
    assert not lungs[:, :8].any() and not lungs[:, -8:].any()  # never outside the body
    if view == "frontal":  # the two lungs, split by the mediastinum: the centre column is not lung
        assert lungs[:, :128].sum() > 0 and lungs[:, 128:].sum() > 0 and not lungs[:, 126:130].any()
    _, big_heart = phantom.render_with_lungs(phantom.parse_mesh(("Cardiomegaly/severe",)), seed=4, view=view,
                                             size=256)
    assert big_heart.sum() < lungs.sum()  # a larger heart leaves less lung field


@pytest.fixture
def phantoms(tmp_path, monkeypatch):
    """iu-phantom's first two test studies rendered into this test's own cache."""
    from cxrbench import cache

    monkeypatch.setenv("CXRBENCH_CACHE", str(tmp_path / "cache"))
    cache.reset_unusable()
    ds = iu_phantom.load(split="test", render=False, progress=False).subset(2)
    assert iu_phantom.render_missing(ds.studies, workers=1, progress=False) == len(ds.images)
    return ds


def test_phantom_masks_are_cached_checksummed_next_to_the_images(phantoms):
    ds = phantoms
    assert provides_lung_masks("iu-phantom") and ds.lung_masks is not None
    assert ds.summary["lung_masks"] == iu_phantom.PhantomLungMasks.source
    for im in ds.images:
        path = iu_phantom.mask_path(im.source)
        assert path.parent == iu_phantom.mask_dir() and path.parent.parent == Path(im.source).parent
        with Image.open(path) as png:
            assert iu_phantom.CHECKSUM_CHUNK in png.info
        mask = np.asarray(ds.load_lung_mask(im))
        pixels, lungs = iu_phantom.render_with_lungs(ds.image_loader.jobs[im.image_id])
        assert np.array_equal(mask, lungs) and set(np.unique(mask)) <= {0, 255}
        assert np.array_equal(np.asarray(ds.load_image(im)), pixels)
    # an image folder rendered before masks existed gets its masks, and only its masks, rendered once
    first = ds.images[0]
    image_bytes = Path(first.source).read_bytes()
    iu_phantom.mask_path(first.source).unlink()
    assert iu_phantom.render_missing(ds.studies, workers=1, progress=False) == 1
    assert iu_phantom.mask_path(first.source).is_file() and Path(first.source).read_bytes() == image_bytes
    assert iu_phantom.render_missing(ds.studies, workers=1, progress=False) == 0


def test_damaged_phantom_mask_is_reported_and_rendered_again(phantoms):
    ds = phantoms
    first = ds.images[0]
    fresh = np.asarray(ds.load_lung_mask(first))
    path = iu_phantom.mask_path(first.source)
    path.write_bytes(path.read_bytes()[:100])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        again = np.asarray(ds.load_lung_mask(first))
    messages = [str(w.message) for w in caught if issubclass(w.category, CacheWarning)]
    assert len(messages) == 1 and str(path) in messages[0] and "rendering it again" in messages[0]
    assert np.array_equal(again, fresh)
    assert np.array_equal(np.asarray(ds.load_lung_mask(first)), fresh)  # written again, valid


# --- lung_masks=DIR -----------------------------------------------------------------------------------------------


def _manifest(root: Path, sizes: dict[str, tuple[int, int]]) -> Path:
    rows = ["study_id,image_path,findings,impression,view,split"]
    for i, (name, (w, h)) in enumerate(sizes.items()):
        path = root / "images" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.random.default_rng(i).integers(0, 256, (h, w), dtype=np.uint8)).save(path)
        rows.append(f"s{i},images/{name},Finding {i}.,Impression {i}.,frontal,test")
    (root / "manifest.csv").write_text("\n".join(rows) + "\n")
    return root


def _mask_array(w: int, h: int, value: int = 255) -> np.ndarray:
    arr = np.zeros((h, w), np.uint8)
    arr[h // 4 : 3 * h // 4, w // 5 : w // 2] = value
    return arr


def _mask(path: Path, w: int, h: int, mode: str = "L", value: int = 255) -> np.ndarray:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = _mask_array(w, h, value)
    img = Image.fromarray(arr, mode="L")
    (img.convert(mode) if mode != "L" else img).save(path)
    return arr != 0


@pytest.fixture
def masked(tmp_path):
    root = _manifest(tmp_path / "ds", {"a.png": (40, 30), "b.png": (40, 30), "c.png": (60, 30)})
    masks = tmp_path / "masks"
    return root, masks


def _load(root, masks, **kw):
    return load_dataset("manifest", root=str(root), progress=False, lung_masks=str(masks), **kw)


def test_mask_folder_reads_masks_named_after_the_image_ids(masked):
    root, masks = masked
    want_a = _mask(masks / "images" / "a.png.png", 40, 30)  # <image id>.png
    want_b = _mask(masks / "images" / "b.png", 40, 30, mode="1")  # <id without its suffix>.png, 1-bit
    _mask(masks / "images" / "c.png", 30, 15, mode="P", value=3)  # half size, same aspect: resized
    ds = _load(root, masks)
    assert provides_lung_masks("manifest", {"lung_masks": str(masks)}) and not provides_lung_masks("manifest")
    assert ds.summary["lung_masks"].startswith("folder ")
    got = {im.image_id: np.asarray(ds.load_lung_mask(im)) for im in ds.images}
    assert np.array_equal(got["images/a.png"] != 0, want_a) and np.array_equal(got["images/b.png"] != 0, want_b)
    c = got["images/c.png"]
    assert c.shape == (30, 60) and set(np.unique(c)) == {0, 255}
    assert np.array_equal(c[::2, ::2] != 0, _mask_array(30, 15) != 0)
    assert lung_masks.check_masks(ds) is ds


def test_bad_masks_are_errors_naming_the_file_or_skipped_and_counted(masked):
    root, masks = masked
    _mask(masks / "images" / "a.png", 40, 30)
    (masks / "images" / "b.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=r"images/c\.png\.png: lung mask of image 'images/c\.png' not found"):
        lung_masks.check_masks(_load(root, masks))
    _mask(masks / "images" / "c.png", 30, 30)  # another aspect ratio
    ds = _load(root, masks)
    with pytest.raises(DataError, match=r"b\.png: cannot decode the lung mask"):
        ds.load_lung_mask(ds.images[1])
    with pytest.raises(DataError, match=r"c\.png: lung mask of 30x30 does not fit its image of 60x30"):
        ds.load_lung_mask(ds.images[2])
    _mask(masks / "images" / "a.png", 40, 30, value=0)
    with pytest.raises(DataError, match=r"a\.png: lung mask has no lung pixel"):
        ds.load_lung_mask(ds.images[0])
    _mask(masks / "images" / "a.png", 40, 30)
    with pytest.warns(UserWarning, match=r"left out 2 image\(s\) whose lung mask is missing or bad"):
        kept = lung_masks.check_masks(_load(root, masks, on_bad_image="skip"))
    assert [im.image_id for im in kept.images] == ["images/a.png"]
    assert kept.summary["skipped_missing_lung_masks"] == 2 and kept.summary["images"] == 1
    assert {b["image_id"] for b in kept.summary["bad_lung_masks"]} == {"images/b.png", "images/c.png"}


def test_mask_folder_must_exist(masked):
    root, masks = masked
    with pytest.raises(ConfigError, match=r"lung_masks=.*masks: no such folder"):
        _load(root, masks)
    with pytest.raises(ConfigError, match="no such folder"):  # any dataset takes the option
        load_dataset("iu-phantom", render=False, progress=False, lung_masks=str(masks))
    assert manifest  # the loader itself never sees the option (it is not in its signature)
