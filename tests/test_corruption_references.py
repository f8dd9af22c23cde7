"""Each severity family against an independent expectation: the library MedMNIST-C calls (Pillow, torchvision),
a brute-force loop, scipy, or the statistics its formula implies."""

from __future__ import annotations

import io
import math
import warnings

import numpy as np
import pytest
import torch
import torchvision.transforms.functional as TF
from PIL import Image, ImageEnhance
from scipy import ndimage
from scipy.stats import poisson

from cxrbench import corruptions
from cxrbench.corruptions import image_keys
from cxrbench.corruptions.blur import defocus_kernel, motion_offsets, motion_taps
from cxrbench.corruptions.sampling import poisson_quantile

from corruption_images import textured


def _keys(n: int, seed: int = 0) -> torch.Tensor:
    return image_keys([f"r{i}" for i in range(n)], seed)


def _rand_images(n: int, c: int, h: int, w: int, seed: int) -> torch.Tensor:
    """Half random noise, half smooth texture: both extremes of what codecs and filters see."""
    g = torch.Generator().manual_seed(seed)
    noise = torch.randint(0, 256, (n, c, h, w), generator=g, dtype=torch.uint8)
    smooth = textured(n, c, h, w, seed)
    return torch.cat([noise, smooth])


def _pil(x: torch.Tensor) -> Image.Image:
    arr = x.numpy()
    return Image.fromarray(arr[0] if arr.shape[0] == 1 else arr.transpose(1, 2, 0))


def _arr(im: Image.Image) -> np.ndarray:
    a = np.asarray(im).astype(np.int64)
    return a[None] if a.ndim == 2 else a.transpose(2, 0, 1)


# -- the 8-bit library operations MedMNIST-C calls: equal pixel for pixel --------------------------------------

@pytest.mark.parametrize("hw", [(224, 224), (37, 53), (96, 64)])
def test_pixelate_equals_pillow_box_resize_down_and_up(hw):
    h, w = hw
    x = _rand_images(2, 1, h, w, 1)
    corr = corruptions.get("pixelate")
    for s, f in enumerate(corr.values, start=1):
        y = corr.apply(x, _keys(len(x)), s)
        for i in range(len(x)):
            ref = _pil(x[i]).resize((int(w * f), int(h * f)), Image.BOX).resize((w, h), Image.BOX)
            assert np.array_equal(_arr(ref), y[i].numpy().astype(np.int64)), f"severity {s} image {i}"


def test_jpeg_equals_medmnist_c_rgb_then_grey_path():
    """MedMNIST-C saves the RGB copy with Pillow at quality q and converts the decoded image to grey."""
    x = _rand_images(2, 1, 224, 224, 2)
    x3 = x.expand(-1, 3, -1, -1)
    corr = corruptions.get("jpeg")
    for s, q in enumerate(corr.values, start=1):
        y = corr.apply(x3, _keys(len(x)), s)
        for i in range(len(x)):
            buf = io.BytesIO()
            _pil(x[i]).convert("RGB").save(buf, "JPEG", quality=q)
            ref = np.asarray(Image.open(buf).convert("L")).astype(np.int64)
            assert np.array_equal(ref, y[i, 0].numpy().astype(np.int64)) and torch.equal(y[i, 0], y[i, 2])


def test_jpeg_equals_torchvision_io():
    """torchvision.io's libjpeg (what transforms.v2.JPEG wraps) gives the same bytes back, grey and RGB."""
    io_mod = pytest.importorskip("torchvision.io")
    grey = _rand_images(2, 1, 64, 80, 3)
    rgb = torch.randint(0, 256, (2, 3, 48, 40), generator=torch.Generator().manual_seed(4), dtype=torch.uint8)
    corr = corruptions.get("jpeg")
    for s, q in enumerate(corr.values, start=1):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            ref_g = torch.stack(io_mod.decode_jpeg(io_mod.encode_jpeg(list(grey), quality=q)))
            ref_c = torch.stack(io_mod.decode_jpeg(io_mod.encode_jpeg(list(rgb), quality=q)))
        assert torch.equal(corr.apply(grey, _keys(4), s), ref_g.float())
        assert torch.equal(corr.apply(rgb, _keys(2), s), ref_c.float())


_ENHANCE = {
    "brightness_up": lambda im, f: ImageEnhance.Brightness(im).enhance(f),
    "brightness_down": lambda im, f: ImageEnhance.Brightness(im).enhance(f),
    "contrast_up": lambda im, f: ImageEnhance.Contrast(im).enhance(f),
    "contrast_down": lambda im, f: ImageEnhance.Contrast(im).enhance(f),
    "gamma_up": lambda im, g: TF.adjust_gamma(im, g),
    "gamma_down": lambda im, g: TF.adjust_gamma(im, g),
}


@pytest.mark.parametrize("name", sorted(_ENHANCE))
@pytest.mark.parametrize("channels", [1, 3])
def test_intensity_families_equal_pillow_and_torchvision(name, channels):
    x = _rand_images(2, channels, 41, 57, 5)
    if channels == 3:  # real colour too, not only grey replicated
        x[0] = torch.randint(0, 256, x[0].shape, generator=torch.Generator().manual_seed(6), dtype=torch.uint8)
    x[1] //= 4  # a dark image: the contrast mean moves
    corr = corruptions.get(name)
    for s, v in enumerate(corr.values, start=1):
        y = corr.apply(x, _keys(len(x)), s)
        for i in range(len(x)):
            ref = _arr(_ENHANCE[name](_pil(x[i]), v))
            assert np.array_equal(ref, y[i].numpy().astype(np.int64)), f"severity {s} image {i}"


def test_gaussian_blur_matches_torchvision_on_pil_images():
    """MedMNIST-C calls torchvision's gaussian_blur(kernel_size=k) on a PIL image (default sigma)."""
    x = _rand_images(2, 1, 224, 224, 7)
    corr = corruptions.get("gaussian_blur")
    for s, k in enumerate(corr.values, start=1):
        y = corr.apply(x, _keys(len(x)), s)
        for i in range(len(x)):
            ref = _arr(TF.gaussian_blur(_pil(x[i]), kernel_size=k))
            diff = np.abs(ref - y[i].numpy())
            assert diff.max() <= 1 and (diff > 0).mean() < 1e-3, f"severity {s}: {diff.max()}, {(diff > 0).mean()}"


# -- blurs against brute force / scipy -------------------------------------------------------------------------

def test_defocus_kernel_is_the_anti_aliased_disk():
    for radius, alias in corruptions.get("defocus_blur").values:
        k = defocus_kernel(radius, alias).numpy()
        half = 8 if radius <= 8 else math.ceil(radius)
        assert k.shape == (2 * half + 1, 2 * half + 1)
        assert np.allclose(k, k.T) and np.allclose(k, k[::-1])
        # mirrored borders fold the anti-aliasing back in where the disk touches the grid's edge (r = 8, 10):
        # the kernel then sums to a little over 1, as ImageNet-C's does
        assert abs(k.sum() - 1) < (1e-12 if radius < half else 0.02)
        yy, xx = np.mgrid[-half : half + 1, -half : half + 1]
        disk = (xx**2 + yy**2 <= radius**2).astype(float)
        disk /= disk.sum()
        taps = 3 if radius <= 8 else 5
        g = np.exp(-((np.arange(taps) - taps // 2) ** 2) / (2 * alias**2))
        g /= g.sum()
        ref = ndimage.correlate1d(ndimage.correlate1d(disk, g, axis=0, mode="mirror"), g, axis=1, mode="mirror")
        assert np.allclose(k, ref, atol=1e-12)


def test_defocus_blur_equals_a_mirrored_correlation_with_its_kernel():
    x = _rand_images(1, 1, 64, 72, 8)
    corr = corruptions.get("defocus_blur")
    s = 64 / 224
    for sev, (radius, alias) in enumerate(corr.values, start=1):
        k = defocus_kernel(radius * s, alias * s).numpy()
        y = corr.apply(x, _keys(2), sev)
        for i in range(2):
            ref = np.round(ndimage.correlate(x[i, 0].numpy().astype(float), k, mode="mirror"))
            diff = np.abs(ref - y[i, 0].numpy())
            assert diff.max() <= 1 and (diff > 0).mean() < 1e-2


def test_motion_blur_equals_a_brute_force_loop():
    """y(r, c) = sum_i w_i x(clamp(r + dy_i), clamp(c + dx_i)), per image with its own angle."""
    x = _rand_images(2, 1, 30, 34, 9)
    keys = _keys(len(x), 4)
    corr = corruptions.get("motion_blur")
    state = corr.prepare(x, keys)
    h, w = 30, 34
    s = min(h, w) / 224
    for sev, (radius, sigma) in enumerate(corr.values, start=1):
        y = corr.apply(x, keys, sev, state=state)
        weights = motion_taps(radius * s, sigma * s)
        dy, dx = motion_offsets(state["angle"], len(weights))
        for b in range(len(x)):
            img = x[b, 0].numpy().astype(np.float32)
            ref = np.zeros((h, w), np.float32)
            for i, wt in enumerate(weights):
                rr = np.clip(np.arange(h) + int(dy[b, i]), 0, h - 1)
                cc = np.clip(np.arange(w) + int(dx[b, i]), 0, w - 1)
                ref = ref + img[np.ix_(rr, cc)] * np.float32(wt)
            assert np.array_equal(np.clip(np.round(ref), 0, 255), y[b, 0].numpy())


def test_motion_blur_trail_follows_the_image_angle():
    """A single bright pixel becomes a trail of 2 ceil(r)+1 taps along the image's angle (ImageMagick offsets)."""
    x = torch.zeros(1, 1, 224, 224, dtype=torch.uint8)
    x[0, 0, 112, 112] = 255
    keys = _keys(1, 5)
    corr = corruptions.get("motion_blur")
    angle = float(corr.prepare(x, keys)["angle"][0])
    assert -45 <= angle <= 45
    y = corr.apply(x, keys, 1)[0, 0].double()  # radius 10, sigma 3
    rows, cols = torch.nonzero(y > 0, as_tuple=True)
    # y(p) = sum w_i x(p + o_i): the trail lies at 112 - o_i, i.e. against the angle direction
    di, dj = (112 - rows).double(), (112 - cols).double()
    assert float(di.max()) <= 21 and float(dj.max()) <= 21 and float(di.min()) >= 0 - 21
    weighted = (y[rows, cols] * di).sum() / y[rows, cols].sum(), (y[rows, cols] * dj).sum() / y[rows, cols].sum()
    assert math.isclose(math.degrees(math.atan2(weighted[0], weighted[1])), angle, abs_tol=3.0)


def test_zoom_blur_equals_an_average_of_centred_scipy_zooms():
    x = _rand_images(1, 1, 64, 64, 10)
    corr = corruptions.get("zoom_blur")
    h = w = 64
    rr, cc = np.mgrid[0:h, 0:w].astype(float)
    cy, cx = (h - 1) / 2, (w - 1) / 2
    for sev, factors in enumerate(corr.values, start=1):
        y = corr.apply(x, _keys(2), sev)
        for i in range(2):
            img = x[i, 0].numpy().astype(float)
            acc = img.copy()
            for z in factors:
                coords = [cy + (rr - cy) / z, cx + (cc - cx) / z]
                acc += ndimage.map_coordinates(img, coords, order=1, mode="nearest")
            ref = np.round(acc / (len(factors) + 1))
            diff = np.abs(ref - y[i, 0].numpy())
            assert diff.max() <= 1 and (diff > 0).mean() < 1e-2


# -- noise: distribution of the output -------------------------------------------------------------------------

def test_poisson_quantile_equals_scipy():
    lam = torch.tensor([0.0, 1e-3, 0.3, 1.0, 2.5, 7.0, 18.0, 60.0, 250.0, 3000.0, 20000.0]).repeat_interleave(3000)
    u = (torch.arange(lam.numel(), dtype=torch.float64) * 0.6180339887498949 + 0.01) % 1.0
    u = u.clamp(1e-9, 1 - 1e-9)
    ref = poisson.ppf(u.numpy(), lam.numpy())
    ref[lam.numpy() == 0] = 0
    assert np.array_equal(poisson_quantile(lam.double(), u).numpy(), ref)


def _flat(value: int, n: int = 4, side: int = 224, c: int = 1) -> torch.Tensor:
    return torch.full((n, c, side, side), value, dtype=torch.uint8)


def test_gaussian_noise_has_the_stated_std_and_is_shared_by_channels():
    x = _flat(128, c=3)
    corr = corruptions.get("gaussian_noise")
    for s, std in enumerate(corr.values[:3], start=1):  # no clipping at 128 up to 0.12 * 255 * 4.2
        d = corr.apply(x, _keys(4), s) - 128
        assert torch.equal(d[:, 0], d[:, 2])
        n = d[:, 0].numel()
        assert abs(float(d[:, 0].mean())) < 4 * 255 * std / math.sqrt(n)
        assert abs(float(d[:, 0].std()) / (255 * std) - 1) < 0.02


def test_speckle_noise_is_multiplicative_with_the_stated_std():
    corr = corruptions.get("speckle_noise")
    d = (corr.apply(_flat(100), _keys(4), 1) - 100) / 100
    assert abs(float(d.std()) / corr.values[0] - 1) < 0.05
    assert torch.equal(corr.apply(_flat(0), _keys(4), 5), _flat(0).float())  # black stays black


def test_impulse_noise_hits_the_stated_fraction_half_salt_half_pepper():
    corr = corruptions.get("impulse_noise")
    x = _flat(128)
    n = x.numel()
    state = corr.prepare(x, _keys(4))
    for s, amount in enumerate(corr.values, start=1):
        y = corr.apply(x, _keys(4), s, state=state)
        salt, pepper = int((y == 255).sum()), int((y == 0).sum())
        sd = math.sqrt(n * amount * (1 - amount))
        assert abs(salt + pepper - n * amount) < 5 * sd
        assert abs(salt - pepper) < 5 * math.sqrt(n * amount)
        assert set(torch.unique(y).tolist()) <= {0.0, 128.0, 255.0}


@pytest.mark.parametrize("grey", [40, 128, 200])
def test_shot_noise_is_poisson_in_photon_units(grey):
    """y = 255 N / c with N ~ Poisson(c x / 255): mean x, variance 255 x / c (grey levels squared)."""
    corr = corruptions.get("shot_noise")
    x = _flat(grey, n=2)
    state = corr.prepare(x, _keys(2))
    for s, c in enumerate(corr.values, start=1):
        y = corr.apply(x, _keys(2), s, state=state).double()
        counts = y * c / 255
        lam = c * grey / 255
        # counts are integers up to the 8-bit rounding of 255 N / c (each count is >= 4.25 grey levels)
        assert torch.allclose(counts, counts.round(), atol=0.5 * c / 255 + 1e-9)
        counts = counts.round()
        clipped = counts.max() >= c
        if not clipped:
            assert abs(float(counts.mean()) - lam) < 5 * math.sqrt(lam / counts.numel())
            assert abs(float(counts.var()) / lam - 1) < 0.03


def test_quantum_noise_variance_follows_the_dose_and_the_frame_area():
    """Delta method: Var(v') ~ (255 / K)^2 / lambda, lambda = N0 d t(v); a frame twice as large has a quarter
    of the photons per pixel, so four times the variance."""
    corr = corruptions.get("quantum_noise")
    k = math.log(corr.transmission_range)
    v = 60
    t = math.exp(-k * v / 255)
    prev = 0.0
    for s, d in enumerate(corr.values, start=1):
        y = corr.apply(_flat(v), _keys(4), s).double()
        lam = corr.photons * d * t
        predicted = (255 / k) ** 2 / lam
        assert abs(float(y.mean()) - v) < 0.5
        assert abs(float(y.var()) / (predicted + 1 / 12) - 1) < 0.1, (s, float(y.var()), predicted)
        assert float(y.var()) > prev
        prev = float(y.var())
    big = corr.apply(_flat(v, n=1, side=448), _keys(1), 3).double()
    small = corr.apply(_flat(v, n=4), _keys(4), 3).double()
    assert abs(float(big.var()) / float(small.var()) - 4) < 0.4


def test_quantum_noise_is_larger_where_the_image_is_bright():
    """Dense (bright) regions pass fewer photons: more noise there."""
    corr = corruptions.get("quantum_noise")
    dark = corr.apply(_flat(30), _keys(4), 4).std()
    bright = corr.apply(_flat(220), _keys(4), 4).std()
    assert bright > 3 * dark


# -- physics: geometry ----------------------------------------------------------------------------------------

def test_bias_field_spans_the_stated_exposure_ratio_smoothly():
    corr = corruptions.get("bias_field")
    x = _flat(128, n=6)
    for s, r in enumerate(corr.values, start=1):
        d = corr.apply(x, _keys(6), s) - 128
        amp = 255 * math.log(r) / (2 * math.log(corr.transmission_range))
        span = d.amax(dim=(1, 2, 3)) - d.amin(dim=(1, 2, 3))
        assert ((span - 2 * amp).abs() <= 1.0).all(), (s, span, amp)
        steps = torch.cat([d.diff(dim=2).abs().flatten(), d.diff(dim=3).abs().flatten()])
        assert steps.max() <= 1.0  # at most one grey level between neighbours at 224 px


def test_rotation_moves_a_dot_by_the_stated_angle_about_the_centre():
    x = torch.zeros(8, 1, 101, 101, dtype=torch.uint8)
    x[:, :, 50 - 30 - 1 : 50 - 30 + 2, 49:52] = 255  # a 3x3 dot 30 px above the centre (50, 50)
    corr = corruptions.get("rotation")
    state = corr.prepare(x, _keys(8, 3))
    assert set(state["sign"].tolist()) == {-1.0, 1.0}
    for s, deg in enumerate(corr.values, start=1):
        y = corr.apply(x, _keys(8, 3), s, state=state)[:, 0].double()
        rows, cols = torch.meshgrid(torch.arange(101.0), torch.arange(101.0), indexing="ij")
        m = y.sum(dim=(1, 2))
        cy = (y * rows).sum(dim=(1, 2)) / m - 50
        cx = (y * cols).sum(dim=(1, 2)) / m - 50
        # the dot started at angle -90 degrees (straight up in image coordinates)
        angles = torch.rad2deg(torch.atan2(cy, cx)) + 90
        assert torch.allclose(angles.abs(), torch.full_like(angles, float(deg)), atol=0.5)
        assert torch.allclose(torch.sign(angles), -state["sign"].double()) or torch.allclose(
            torch.sign(angles), state["sign"].double())


def test_collimation_keeps_a_rectangle_of_the_stated_area_and_whitens_the_rest():
    x = textured(6, 1, 90, 120, 4)
    x = x.clamp(max=250)  # so that 255 marks the collimated region only
    corr = corruptions.get("collimation")
    for s, a in enumerate(corr.values, start=1):
        y = corr.apply(x, _keys(6), s)
        keep = math.sqrt(1 - a)
        kh, kw = math.floor(90 * keep + 0.5), math.floor(120 * keep + 0.5)
        for i in range(6):
            inside = y[i, 0] != 255
            rows, cols = torch.nonzero(inside, as_tuple=True)
            assert int(inside.sum()) == kh * kw
            assert int(rows.max() - rows.min()) + 1 == kh and int(cols.max() - cols.min()) + 1 == kw
            assert torch.equal(y[i, 0][inside], x[i, 0].float()[inside])
    tops = [int(torch.nonzero(corr.apply(x, _keys(6), 5)[i, 0] != 255)[0, 0]) for i in range(6)]
    assert len(set(tops)) > 1  # the field's position varies between images
