"""Structured occlusion (center, periphery, lungs) and the corruption interface of Occlusion."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cxrbench import corruptions
from cxrbench.corruptions import FILLS, MODES, Occlusion, image_keys, lung_template
from cxrbench.corruptions.occlusion import block_side, kept_size
from cxrbench.errors import ConfigError, DataError

levels = st.floats(min_value=0.0, max_value=0.999, allow_nan=False, allow_infinity=False)
sizes = st.integers(min_value=4, max_value=48)
seeds = st.integers(min_value=0, max_value=2**31 - 1)
ids = st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=4, unique=True)


def _batch(n: int, c: int, h: int, w: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(n * 1000 + h * 10 + w)
    return torch.randint(1, 256, (n, c, h, w), generator=g, dtype=torch.uint8)


def _random_masks(n: int, h: int, w: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, h, w, generator=g) < torch.rand(n, 1, 1, generator=g)


@settings(max_examples=60, deadline=None)
@given(level=levels, h=sizes, w=sizes, seed=seeds, names=ids)
def test_center_blocks_one_centred_square(level, h, w, seed, names):
    """Center occlusion blocks one square of side min(floor(sqrt(pHW)+0.5), H, W) centred in the frame."""
    occ = Occlusion("center")
    mask = occ.mask(occ.prepare(image_keys(names, seed), h, w), level)
    s = block_side(level, h, w)
    for m in mask:
        assert int(m.sum()) == s * s
        if s:
            rows = torch.nonzero(m.any(1)).flatten()
            cols = torch.nonzero(m.any(0)).flatten()
            assert int(rows.min()) == (h - s) // 2 and int(rows.max()) == (h - s) // 2 + s - 1
            assert int(cols.min()) == (w - s) // 2 and int(cols.max()) == (w - s) // 2 + s - 1
            assert m[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1].all()
    assert torch.equal(mask, occ.mask(occ.prepare(image_keys(names, seed + 1), h, w), level))  # no randomness


@settings(max_examples=60, deadline=None)
@given(level=levels, h=sizes, w=sizes, seed=seeds, names=ids)
def test_periphery_keeps_one_centred_rectangle_of_the_remaining_area(level, h, w, seed, names):
    """Periphery occlusion blocks everything outside a centred rectangle of the frame's aspect ratio whose area is
    (1-p) of the frame (to the rounding of its sides): a square in a square frame."""
    occ = Occlusion("periphery")
    mask = occ.mask(occ.prepare(image_keys(names, seed), h, w), level)
    kh, kw = kept_size(level, h, w)
    assert kh == min(h, math.floor(h * math.sqrt(1 - level) + 0.5))
    assert abs(kh * kw - (1 - level) * h * w) <= (h + w) / 2 + 1
    for m in mask:
        kept = ~m
        assert int(kept.sum()) == kh * kw
        if kh and kw:
            rows = torch.nonzero(kept.any(1)).flatten()
            cols = torch.nonzero(kept.any(0)).flatten()
            assert int(rows.min()) == (h - kh) // 2 and int(cols.min()) == (w - kw) // 2
            assert kept[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1].all()
    if h == w:
        assert kh == kw


def test_periphery_and_center_are_complementary_in_spirit():
    """At the same level on a square frame, center blocks the middle and periphery blocks the border."""
    occ_c, occ_p = Occlusion("center"), Occlusion("periphery")
    keys = image_keys(["a"], 0)
    c = occ_c.mask(occ_c.prepare(keys, 64, 64), 0.25)[0]
    p = occ_p.mask(occ_p.prepare(keys, 64, 64), 0.25)[0]
    assert c[32, 32] and not p[32, 32] and p[0, 0] and not c[0, 0]


def test_lung_template_is_two_lungs_in_normalised_coordinates():
    t = lung_template(224, 224)
    assert 0.2 < float(t.float().mean()) < 0.32
    assert not t[:, 112].any()  # the mediastinum separates the lungs
    assert t[:, :112].any() and t[:, 112:].any()
    assert not t[:20].any() and not t[-40:].any() and not t[:, :20].any() and not t[:, -20:].any()
    # the image-right lung (the patient's left) is the smaller one: the heart cuts into it
    assert int(t[:, 112:].sum()) < int(t[:, :112].sum())
    # the same shape at any frame size: a 2x frame, pooled, matches to the boundary pixels
    big = lung_template(448, 448).float().view(224, 2, 224, 2).mean(dim=(1, 3))
    assert float((big.round().bool() ^ t).float().mean()) < 0.01
    wide = lung_template(100, 300)
    assert abs(float(wide.float().mean()) - float(t.float().mean())) < 0.01


@settings(max_examples=40, deadline=None)
@given(level=levels, h=st.integers(16, 48), w=st.integers(16, 48), seed=seeds, names=ids)
def test_lungs_template_blocks_p_of_the_template_pixels(level, h, w, seed, names):
    occ = Occlusion("lungs")
    mask = occ.mask(occ.prepare(image_keys(names, seed), h, w), level)
    t = lung_template(h, w)
    n = int(t.sum())
    for m in mask:
        assert not bool((m & ~t).any())
        assert int(m.sum()) == math.floor(level * n + 0.5)


@settings(max_examples=40, deadline=None)
@given(level=levels, seed=seeds, names=ids, mseed=st.integers(0, 1000))
def test_lungs_masks_blocks_p_of_each_images_lung_pixels(level, seed, names, mseed):
    h, w = 20, 24
    masks = _random_masks(len(names), h, w, mseed)
    occ = Occlusion("lungs", lung_fields="masks")
    x = _batch(len(names), 1, h, w)
    state = occ.prepare(x, image_keys(names, seed), masks=masks)
    mask = occ.mask(state, level)
    for m, lung in zip(mask, masks):
        assert not bool((m & ~lung).any())
        assert int(m.sum()) == math.floor(level * int(lung.sum()) + 0.5)


@settings(max_examples=30, deadline=None)
@given(mode=st.sampled_from(["center", "periphery", "lungs"]), a=levels, b=levels, seed=seeds, names=ids)
def test_structured_masks_are_nested_across_levels(mode, a, b, seed, names):
    lo, hi = sorted((a, b))
    occ = Occlusion(mode)
    state = occ.prepare(image_keys(names, seed), 23, 31)
    assert not bool((occ.mask(state, lo) & ~occ.mask(state, hi)).any())


@settings(max_examples=20, deadline=None)
@given(level=levels, seed=seeds, names=ids)
def test_lungs_mask_is_the_same_whatever_the_batch(level, seed, names):
    occ = Occlusion("lungs")
    together = occ.mask(occ.prepare(image_keys(names, seed), 30, 30), level)
    for i, name in enumerate(names):
        alone = occ.mask(occ.prepare(image_keys([name], seed), 30, 30), level)
        assert torch.equal(alone[0], together[i])


def test_lungs_masks_with_lung_masks_given_per_image_follow_each_image():
    masks = torch.zeros(2, 16, 16, dtype=torch.bool)
    masks[0, :8] = True
    masks[1, 8:] = True
    occ = Occlusion("lungs", lung_fields="masks")
    x = _batch(2, 1, 16, 16)
    y = occ.apply(x, image_keys(["a", "b"], 0), 0.5, state=occ.prepare(x, image_keys(["a", "b"], 0), masks=masks))
    blocked = y[:, 0] == 0
    assert int(blocked[0, :8].sum()) == 64 and not blocked[0, 8:].any()
    assert int(blocked[1, 8:].sum()) == 64 and not blocked[1, :8].any()


def test_lung_fields_source_is_explicit():
    x = _batch(2, 1, 16, 16)
    keys = image_keys(["a", "b"], 0)
    masks = torch.ones(2, 16, 16, dtype=torch.bool)
    with pytest.raises(ConfigError, match="needs per-image lung masks"):
        Occlusion("lungs", lung_fields="masks").prepare(x, keys)
    with pytest.raises(ConfigError, match="lungs\\(masks\\)"):
        Occlusion("lungs").prepare(x, keys, masks=masks)
    with pytest.raises(DataError, match="\\(B, H, W\\)"):
        Occlusion("lungs", lung_fields="masks").prepare(x, keys, masks=masks[:, :8])
    with pytest.raises(ConfigError, match="lung_fields"):
        Occlusion("lungs", lung_fields="segmentation")
    # 0/255 uint8 masks are read as nonzero = lung
    occ = Occlusion("lungs", lung_fields="masks")
    as_bool = occ.prepare(x, keys, masks=masks)
    as_uint8 = occ.prepare(x, keys, masks=masks.to(torch.uint8) * 255)
    assert torch.equal(occ.mask(as_bool, 0.3), occ.mask(as_uint8, 0.3))


def test_lungs_names_and_params_say_where_the_lung_fields_come_from():
    t, m = corruptions.get("lungs(template)"), corruptions.get("lungs(masks)")
    assert t.name == "lungs(template)" and corruptions.get("lungs").name == "lungs(template)"
    assert m.name == "lungs(masks)" and m.uses_masks and not t.uses_masks
    assert t.params() == {"family": "occlusion", "mode": "lungs", "fill": "zero", "lung_fields": "template",
                          "template_version": 1}
    assert m.params()["lung_fields"] == "masks" and "template_version" not in m.params()
    assert not Occlusion("pixels").uses_masks and Occlusion("pixels").level_kind == "fraction"


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("fill", FILLS)
def test_prepare_with_pixels_carries_the_fill_and_equals_apply_alone(mode, fill):
    """The interface form prepare(pixels, keys) draws masks and fill once; apply(state=) then equals apply()."""
    x = _batch(3, 3, 24, 20)
    keys = image_keys(["a", "b", "c"], 5)
    occ = Occlusion(mode, fill=fill, patch_size=5)
    state = occ.prepare(x, keys)
    assert "fill" in state
    for level in (0.0, 0.09, 0.49, 0.81):
        assert torch.equal(occ.apply(x, keys, level, state=state), occ.apply(x, keys, level))
        legacy = occ.prepare(keys, 24, 20)
        assert torch.equal(occ.apply(x, keys, level, state=legacy, fill=occ.fill_values(x, keys)),
                           occ.apply(x, keys, level))


def test_occlusion_check_level_is_the_fraction_check():
    occ = Occlusion("center")
    assert occ.check_level(0.25) == 0.25
    with pytest.raises(ConfigError, match="outside"):
        occ.check_level(1)
