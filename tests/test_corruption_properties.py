"""Properties every severity family must have (stated as sentences, checked with hypothesis on every family).

* severity 0 is the identity; any other level outside 0..5 or not an integer is a ConfigError;
* output is float32, same shape and device, integral grey levels in 0..255;
* a pure function of (image, severity, seed, image id): the same key gives the same output whatever else is in
  the batch and in which order, and twice the same;
* randomness comes from the seed: different seeds change the families that have randomness;
* ``prepare`` once and ``apply`` per level gives what ``apply`` alone gives;
* the corruption grows with the severity (a family-appropriate measure is non-decreasing over 1..5);
* on a GPU (when there is one): equal to the CPU result, exactly where the family says so, else within +-1.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cxrbench import corruptions
from cxrbench.corruptions import SEVERITY_FAMILIES, image_keys
from cxrbench.errors import ConfigError

from corruption_images import textured

FAMILIES = sorted(SEVERITY_FAMILIES)
#: families with no randomness at all (output depends on the image and severity only)
DETERMINISTIC = {"gaussian_blur", "defocus_blur", "zoom_blur", "pixelate", "jpeg", "brightness_up",
                 "brightness_down", "contrast_up", "contrast_down", "gamma_up", "gamma_down"}

seeds = st.integers(min_value=0, max_value=2**31 - 1)
ids = st.lists(st.text(min_size=1, max_size=8), min_size=2, max_size=4, unique=True)


def test_at_least_fifteen_severity_families():
    assert len(FAMILIES) >= 15
    assert {"gaussian_noise", "speckle_noise", "impulse_noise", "motion_blur", "zoom_blur", "defocus_blur",
            "pixelate", "jpeg", "brightness_up", "brightness_down", "contrast_up", "contrast_down", "gamma_up",
            "gamma_down", "quantum_noise", "bias_field", "rotation", "collimation"} <= set(FAMILIES)


@pytest.mark.parametrize("name", FAMILIES)
@settings(max_examples=8, deadline=None)
@given(seed=seeds, names=ids, c=st.sampled_from([1, 3]), h=st.integers(24, 56), w=st.integers(24, 56))
def test_severity_zero_is_the_identity(name, seed, names, c, h, w):
    x = textured(len(names), c, h, w, seed % 1000)
    y = corruptions.get(name).apply(x, image_keys(names, seed), 0)
    assert y.dtype == torch.float32 and torch.equal(y, x.float())


@pytest.mark.parametrize("name", FAMILIES)
@settings(max_examples=6, deadline=None)
@given(seed=seeds, names=ids, c=st.sampled_from([1, 3]), h=st.integers(24, 56), w=st.integers(24, 56),
       severity=st.integers(1, 5))
def test_output_is_integral_grey_levels_of_the_input_shape(name, seed, names, c, h, w, severity):
    """float32, same shape and device, integral values in 0..255 (they round-trip through uint8 exactly)."""
    x = textured(len(names), c, h, w, seed % 1000)
    y = corruptions.get(name).apply(x, image_keys(names, seed), severity)
    assert y.dtype == torch.float32 and y.shape == x.shape and y.device == x.device
    assert torch.isfinite(y).all()
    assert y.min() >= 0 and y.max() <= 255
    assert torch.equal(y, y.to(torch.uint8).float())


@pytest.mark.parametrize("name", FAMILIES)
@settings(max_examples=6, deadline=None)
@given(seed=seeds, names=ids, severity=st.integers(1, 5), data=st.data())
def test_same_key_same_output_whatever_the_batch(name, seed, names, severity, data):
    """Each image's output depends on its own pixels and key only: not on its batch-mates, their order, or
    how often it is computed."""
    x = textured(len(names), 1, 40, 48, seed % 1000)
    keys = image_keys(names, seed)
    corr = corruptions.get(name)
    together = corr.apply(x, keys, severity)
    assert torch.equal(corr.apply(x, keys, severity), together)
    for i in range(len(names)):
        alone = corr.apply(x[i : i + 1], keys[i : i + 1], severity)
        assert torch.equal(alone[0], together[i]), f"{name}: image {i} differs when corrupted alone"
    order = data.draw(st.permutations(list(range(len(names)))))
    shuffled = corr.apply(x[order], keys[order], severity)
    assert torch.equal(shuffled, together[order])


@pytest.mark.parametrize("name", FAMILIES)
def test_prepared_state_is_reused_across_levels(name):
    """``prepare`` once and ``apply(..., state=)`` at every level equals ``apply`` alone at that level."""
    x = textured(3, 1, 64, 64, 5)
    keys = image_keys(["a", "b", "c"], 11)
    corr = corruptions.get(name)
    state = corr.prepare(x, keys)
    for severity in range(6):
        assert torch.equal(corr.apply(x, keys, severity, state=state), corr.apply(x, keys, severity))


@pytest.mark.parametrize("name", FAMILIES)
def test_randomness_comes_from_the_seed(name):
    """A different seed changes the output of a family with randomness, and only of those."""
    x = textured(8, 1, 64, 64, 3)
    names = [f"img{i}" for i in range(8)]
    corr = corruptions.get(name)
    a = corr.apply(x, image_keys(names, 0), 3)
    b = corr.apply(x, image_keys(names, 1), 3)
    assert torch.equal(a, b) == (name in DETERMINISTIC)


@pytest.mark.parametrize("name", FAMILIES)
@pytest.mark.parametrize("bad", [-1, 6, 2.5, "x", None, float("nan"), True])
def test_levels_outside_zero_to_five_are_errors(name, bad):
    corr = corruptions.get(name)
    with pytest.raises(ConfigError, match="severit"):
        corr.check_level(bad)
    with pytest.raises(ConfigError):
        corr.apply(textured(1, 1, 32, 32, 0), image_keys(["a"], 0), bad)


def test_integral_floats_and_strings_are_accepted_severities():
    corr = corruptions.get("gaussian_noise")
    assert corr.check_level(3.0) == 3 and corr.check_level("4") == 4 and corr.check_level(0) == 0


# -- monotone severity ---------------------------------------------------------------------------------------

def _mean_abs_change(name: str, x: torch.Tensor, keys: torch.Tensor) -> list[float]:
    corr = corruptions.get(name)
    state = corr.prepare(x, keys)
    return [float((corr.apply(x, keys, s, state=state) - x.float()).abs().mean()) for s in range(6)]


#: families whose change is non-decreasing pixel by pixel (one random draw per pixel scaled by the severity,
#: nested hits, a fixed field or a monotone table): checked on random images
PIXELWISE_MONOTONE = ["gaussian_noise", "speckle_noise", "impulse_noise", "bias_field", "brightness_up",
                      "brightness_down", "contrast_up", "contrast_down", "gamma_up", "gamma_down"]


@pytest.mark.parametrize("name", PIXELWISE_MONOTONE)
@settings(max_examples=10, deadline=None)
@given(seed=seeds, names=ids)
def test_change_grows_with_severity_at_every_pixel(name, seed, names):
    x = textured(len(names), 1, 32, 40, seed % 1000)
    keys = image_keys(names, seed)
    corr = corruptions.get(name)
    state = corr.prepare(x, keys)
    prev = torch.zeros(x.shape)
    for s in range(1, 6):
        change = (corr.apply(x, keys, s, state=state) - x.float()).abs()
        assert (change >= prev).all(), f"{name}: a pixel changes less at severity {s} than at {s - 1}"
        prev = change


#: the rest: the mean absolute change over a batch of textured 224-px images is non-decreasing in the
#: severity (blur size, compression, dose, angle and noise grow); collimation is checked on its blocked area
MEAN_MONOTONE = ["shot_noise", "quantum_noise", "gaussian_blur", "defocus_blur", "motion_blur", "zoom_blur",
                 "pixelate", "jpeg", "rotation"]


@pytest.mark.parametrize("name", MEAN_MONOTONE)
def test_mean_change_grows_with_severity(name):
    x = textured(4, 1, 224, 224, 42)
    changes = _mean_abs_change(name, x, image_keys([f"m{i}" for i in range(4)], 9))
    assert changes[0] == 0.0
    assert all(b > a for a, b in zip(changes, changes[1:])), f"{name}: {changes}"


def test_collimation_blocks_more_area_with_severity():
    x = textured(4, 1, 96, 80, 1)
    keys = image_keys(list("abcd"), 2)
    corr = corruptions.get("collimation", outside="black")
    state = corr.prepare(x, keys)
    blocked = [float(((corr.apply(x, keys, s, state=state) == 0) & (x > 0)).float().mean()) for s in range(6)]
    assert all(b > a for a, b in zip(blocked, blocked[1:])), blocked


def test_every_family_is_classified_for_monotonicity():
    assert set(PIXELWISE_MONOTONE) | set(MEAN_MONOTONE) | {"collimation"} == set(FAMILIES)


# -- across devices ------------------------------------------------------------------------------------------

@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", FAMILIES)
def test_cuda_matches_cpu(name):
    """Exact where the family says "exact", else within +-1 grey level on under 0.1% of the pixels."""
    x = textured(8, 3, 224, 224, 7)
    keys = image_keys([f"d{i}" for i in range(8)], 3)
    corr = corruptions.get(name)
    for s in range(1, 6):
        cpu = corr.apply(x, keys, s)
        gpu = corr.apply(x.cuda(), keys.cuda(), s)
        assert gpu.device.type == "cuda"
        diff = (gpu.cpu() - cpu).abs()
        if corr.exact.startswith("exact"):
            assert diff.max() == 0, f"{name} severity {s}: {int((diff > 0).sum())} pixels differ"
        elif name in ("shot_noise", "quantum_noise"):
            assert (diff > 0).float().mean() < 1e-4, f"{name} severity {s}"
        else:
            assert diff.max() <= 1 and (diff > 0).float().mean() < 1e-3, f"{name} severity {s}: max {diff.max()}"
