"""Properties of the occlusion corruption (stated as sentences, checked with hypothesis)."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cxrbench.corruptions import FILLS, PAPER_LEVELS, Occlusion, check_level, image_keys, parse_levels
from cxrbench.corruptions.occlusion import block_side, blocked_count
from cxrbench.errors import ConfigError

levels = st.floats(min_value=0.0, max_value=0.999, allow_nan=False, allow_infinity=False)
sizes = st.integers(min_value=4, max_value=48)
seeds = st.integers(min_value=0, max_value=2**31 - 1)
ids = st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=4, unique=True)


def _batch(n: int, c: int, h: int, w: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(n * 1000 + h * 10 + w)
    return torch.randint(1, 256, (n, c, h, w), generator=g, dtype=torch.uint8)


@settings(max_examples=60, deadline=None)
@given(level=levels, h=sizes, w=sizes, seed=seeds, names=ids)
def test_pixels_mode_blocks_exactly_round_p_times_n(level, h, w, seed, names):
    """Pixel occlusion blocks exactly floor(p*H*W + 0.5) pixels of every image."""
    occ = Occlusion("pixels")
    mask = occ.mask(occ.prepare(image_keys(names, seed), h, w), level)
    expected = math.floor(level * h * w + 0.5)
    assert mask.flatten(1).sum(1).tolist() == [expected] * len(names)


@settings(max_examples=60, deadline=None)
@given(level=levels, h=sizes, w=sizes, seed=seeds, names=ids)
def test_block_mode_blocks_one_square_of_the_stated_side(level, h, w, seed, names):
    """Block occlusion blocks one contiguous square of side min(floor(sqrt(pHW)+0.5), H, W)."""
    occ = Occlusion("block")
    mask = occ.mask(occ.prepare(image_keys(names, seed), h, w), level)
    s = min(math.floor(math.sqrt(level * h * w) + 0.5), h, w)
    assert s == block_side(level, h, w)
    for m in mask:
        assert int(m.sum()) == s * s
        if s:
            rows = torch.nonzero(m.any(1)).flatten()
            cols = torch.nonzero(m.any(0)).flatten()
            assert rows.max() - rows.min() + 1 == s and cols.max() - cols.min() + 1 == s  # contiguous square


@settings(max_examples=60, deadline=None)
@given(level=levels, h=sizes, w=sizes, seed=seeds, names=ids, ps=st.integers(1, 9))
def test_patch_mode_blocks_round_p_times_patches(level, h, w, seed, names, ps):
    """Patch occlusion blocks floor(p*n_patches + 0.5) whole grid cells (cut at the border)."""
    occ = Occlusion("patches", patch_size=ps)
    mask = occ.mask(occ.prepare(image_keys(names, seed), h, w), level)
    gh, gw = math.ceil(h / ps), math.ceil(w / ps)
    want = blocked_count(level, gh * gw)
    for m in mask:
        padded = torch.zeros(gh * ps, gw * ps, dtype=torch.bool)
        padded[:h, :w] = m
        cells = padded.view(gh, ps, gw, ps).permute(0, 2, 1, 3).reshape(gh, gw, -1)
        full = cells.any(-1)
        assert int(full.sum()) == want
        # each blocked cell is blocked entirely (within the image)
        inside = torch.zeros(gh * ps, gw * ps, dtype=torch.bool)
        inside[:h, :w] = True
        inside = inside.view(gh, ps, gw, ps).permute(0, 2, 1, 3).reshape(gh, gw, -1)
        assert torch.equal(cells[full], inside[full])


@settings(max_examples=40, deadline=None)
@given(mode=st.sampled_from(["pixels", "block", "patches"]), a=levels, b=levels, h=sizes, w=sizes, seed=seeds,
       names=ids)
def test_masks_are_nested_across_levels(mode, a, b, h, w, seed, names):
    """A pixel blocked at level p stays blocked at every higher level."""
    lo, hi = sorted((a, b))
    occ = Occlusion(mode, patch_size=5)
    state = occ.prepare(image_keys(names, seed), h, w)
    m_lo, m_hi = occ.mask(state, lo), occ.mask(state, hi)
    assert not bool((m_lo & ~m_hi).any())


@settings(max_examples=30, deadline=None)
@given(mode=st.sampled_from(["pixels", "block", "patches"]), fill=st.sampled_from(FILLS), seed=seeds, names=ids)
def test_level_zero_is_the_identity(mode, fill, seed, names):
    """Level 0 returns the input unchanged (as float)."""
    x = _batch(len(names), 3, 12, 10)
    y = Occlusion(mode, fill=fill, patch_size=4).apply(x, image_keys(names, seed), 0.0)
    assert torch.equal(y, x.float())


@settings(max_examples=30, deadline=None)
@given(mode=st.sampled_from(["pixels", "block", "patches"]), level=levels, seed=seeds, names=ids)
def test_same_seed_same_mask_and_independent_of_batch(mode, level, seed, names):
    """Same (seed, image id) gives the same mask, whatever else is in the batch and in which order."""
    occ = Occlusion(mode, patch_size=3)
    keys = image_keys(names, seed)
    together = occ.mask(occ.prepare(keys, 11, 13), level)
    for i, name in enumerate(names):
        alone = occ.mask(occ.prepare(image_keys([name], seed), 11, 13), level)
        assert torch.equal(alone[0], together[i])
    again = occ.mask(occ.prepare(image_keys(names, seed), 11, 13), level)
    assert torch.equal(again, together)


def test_different_seeds_give_different_masks():
    occ = Occlusion("pixels")
    a = occ.mask(occ.prepare(image_keys(["img"], 0), 32, 32), 0.5)
    b = occ.mask(occ.prepare(image_keys(["img"], 1), 32, 32), 0.5)
    assert not torch.equal(a, b)


@settings(max_examples=30, deadline=None)
@given(mode=st.sampled_from(["pixels", "block", "patches"]), fill=st.sampled_from(FILLS), level=levels, seed=seeds,
       names=ids)
def test_fill_values_land_only_where_the_mask_is(mode, fill, level, seed, names):
    """Unblocked pixels keep their value; blocked pixels take the fill value in every channel."""
    x = _batch(len(names), 3, 9, 14)
    keys = image_keys(names, seed)
    occ = Occlusion(mode, fill=fill, patch_size=4)
    y = occ.apply(x, keys, level)
    m = occ.mask(occ.prepare(keys, 9, 14), level).unsqueeze(1).expand_as(y)
    assert torch.equal(y[~m], x.float()[~m])
    if fill == "zero":
        expected = torch.zeros_like(y)
    elif fill == "mean":
        expected = x.float().mean(dim=(2, 3), keepdim=True).expand_as(y)
    else:
        expected = occ.fill_values(x, keys)
        assert expected.min() >= 0 and expected.max() <= 255 and torch.equal(expected, expected.round())
    assert torch.equal(y[m], expected[m])


def test_noise_fill_is_deterministic_and_not_constant():
    occ = Occlusion("pixels", fill="noise")
    keys = image_keys(["a", "b"], 7)
    x = _batch(2, 1, 32, 32)
    n1, n2 = occ.fill_values(x, keys), occ.fill_values(x, keys)
    assert torch.equal(n1, n2)
    assert n1.std() > 50  # roughly uniform on 0..255 (std ~74)
    assert not torch.equal(n1[0], n1[1])


def test_pixel_mask_is_spatially_uniform():
    """No structure in the scattered mask: every row and column gets close to p of its pixels blocked."""
    occ = Occlusion("pixels")
    m = occ.mask(occ.prepare(image_keys([f"i{i}" for i in range(64)], 0), 64, 64), 0.25).float()
    assert abs(m.mean().item() - 0.25) < 1e-6
    assert (m.mean(dim=(0, 2)) - 0.25).abs().max() < 0.05
    assert (m.mean(dim=(0, 1)) - 0.25).abs().max() < 0.05


@pytest.mark.parametrize("bad", [-0.01, 1.0, 1.5, float("nan"), float("inf"), "x"])
def test_levels_outside_unit_interval_are_errors(bad):
    with pytest.raises(ConfigError, match="level"):
        check_level(bad)
    with pytest.raises(ConfigError):
        Occlusion("pixels").apply(_batch(1, 1, 4, 4), image_keys(["a"], 0), bad)


def test_level_presets_and_lists():
    assert parse_levels("paper") == PAPER_LEVELS == (0.0, 0.09, 0.16, 0.25, 0.36, 0.49, 0.64, 0.81)
    assert parse_levels("0, 0.5") == (0.0, 0.5)
    assert parse_levels([0.1, 0.2]) == (0.1, 0.2)
    with pytest.raises(ConfigError, match="outside"):
        parse_levels("0,1")
    with pytest.raises(ConfigError, match="duplicates"):
        parse_levels("0.1,0.1")


def test_unknown_mode_and_fill_are_errors():
    with pytest.raises(ConfigError, match="mode"):
        Occlusion("holes")
    with pytest.raises(ConfigError, match="fill"):
        Occlusion("pixels", fill="blue")
