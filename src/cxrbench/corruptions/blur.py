"""Blurs: Gaussian (MedMNIST-C chest set) and defocus, motion and zoom (ImageNet-C parameters).

MedMNIST-C's chest X-ray set (chestmnist / pneumoniamnist) has only a Gaussian blur; defocus, motion and zoom
blur take ImageNet-C's 224-px parameters, which MedMNIST-C itself reuses for other datasets (dermamnist's zoom
blur is ImageNet-C's). Spatial parameters (radii, sigmas, kernel sizes) were set for 224-px images and are
scaled by ``s = min(H, W) / 224`` in the model frame, so a blur covers the same part of the anatomy at any frame
size; zoom factors are scale-free.
"""

from __future__ import annotations

import math

import torch
from kornia.filters import filter2d, gaussian_blur2d
from kornia.geometry.transform import scale as kornia_scale

from cxrbench.corruptions.base import IMAGENET_C, MEDMNIST_C, SeverityCorruption, frame_scale, grey_levels
from cxrbench.corruptions.hashing import image_uniforms, stream_salt

_SCALED = "radii, sigmas and kernel sizes x s = min(H, W) / 224"


def _round_half_up(x: float) -> int:
    return int(math.floor(x + 0.5))


class GaussianBlur(SeverityCorruption):
    family = "gaussian_blur"
    parameter = "kernel_size"
    values = (3, 5, 7, 9, 11)
    source = (MEDMNIST_C + " 'gaussian_blur' (torchvision gaussian_blur, default sigma = 0.15 k + 0.35; the "
              "registry lists a sixth value, 13, that no severity uses)")
    formula = ("kornia gaussian_blur2d, kernel k' = 2 floor((k-1)/2 * s + 0.5) + 1, sigma' = (0.15 k + 0.35) * s, "
               "reflect border")
    frame = _SCALED
    exact = "within +-1 grey level (float32 convolution)"

    def corrupt(self, x, keys, value, state):
        s = frame_scale(x.shape[2], x.shape[3])
        k = 2 * _round_half_up((value - 1) / 2 * s) + 1
        if k < 3:
            return grey_levels(x)
        sigma = (0.15 * value + 0.35) * s
        return grey_levels(gaussian_blur2d(x, (k, k), (sigma, sigma), border_type="reflect"))


def _gaussian_taps(ksize: int, sigma: float) -> torch.Tensor:
    i = torch.arange(ksize, dtype=torch.float64) - (ksize - 1) / 2
    g = torch.exp(-(i * i) / (2 * sigma * sigma))
    return g / g.sum()


def defocus_kernel(radius: float, alias_blur: float) -> torch.Tensor:
    """ImageNet-C's defocus kernel, float64 (K, K), summing to 1.

    An aliased disk ``x^2 + y^2 <= r^2`` on the grid -8..8 (r <= 8) or -ceil(r)..ceil(r), normalised, then
    smoothed by a Gaussian of ``alias_blur`` (3 taps for r <= 8, else 5) with mirrored (reflect-101) borders,
    as OpenCV's GaussianBlur does.
    """
    half = 8 if radius <= 8 else math.ceil(radius)
    taps = 3 if radius <= 8 else 5
    grid = torch.arange(-half, half + 1, dtype=torch.float64)
    disk = ((grid.view(-1, 1) ** 2 + grid.view(1, -1) ** 2) <= radius * radius).to(torch.float64)
    disk /= disk.sum()
    g = _gaussian_taps(taps, alias_blur)
    p = taps // 2
    padded = torch.nn.functional.pad(disk[None, None], (p, p, p, p), mode="reflect")[0, 0]
    rows = sum(g[i] * padded[i : i + disk.shape[0], :] for i in range(taps))
    return sum(g[j] * rows[:, j : j + disk.shape[1]] for j in range(taps))


class DefocusBlur(SeverityCorruption):
    family = "defocus_blur"
    parameter = "radius_alias"
    values = ((3, 0.1), (4, 0.5), (6, 0.5), (8, 0.5), (10, 0.5))
    source = IMAGENET_C + " defocus_blur (MedMNIST-C's chest set has none)"
    formula = ("kornia filter2d with ImageNet-C's disk kernel of radius r * s, anti-aliased by a Gaussian of "
               "sigma alias * s; reflect border (OpenCV filter2D's default)")
    frame = _SCALED
    exact = "within +-1 grey level (float32 convolution)"

    def corrupt(self, x, keys, value, state):
        s = frame_scale(x.shape[2], x.shape[3])
        radius, alias = value
        kernel = defocus_kernel(radius * s, alias * s).to(torch.float32).to(x.device)
        if kernel.shape[0] > min(x.shape[2], x.shape[3]):
            raise ValueError(f"defocus_blur needs frames of at least {kernel.shape[0]} px, got {tuple(x.shape[2:])}")
        return grey_levels(filter2d(x, kernel[None], border_type="reflect"))


def motion_taps(radius: float, sigma: float) -> list[float]:
    """ImageMagick's motion-blur weights: ``2 ceil(radius) + 1`` taps, exp(-i^2 / (2 sigma^2)), normalised."""
    width = 2 * math.ceil(radius) + 1
    w = [math.exp(-(i * i) / (2.0 * sigma * sigma)) for i in range(width)]
    total = sum(w)
    return [v / total for v in w]


def motion_offsets(angles_deg: torch.Tensor, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, width) int64 row and column offsets of tap i: (ceil(i sin a - 0.5), ceil(i cos a - 0.5)) (CPU)."""
    a = torch.deg2rad(angles_deg.to("cpu", torch.float64)).view(-1, 1)
    i = torch.arange(width, dtype=torch.float64).view(1, -1)
    return torch.ceil(i * torch.sin(a) - 0.5).long(), torch.ceil(i * torch.cos(a) - 0.5).long()


class MotionBlur(SeverityCorruption):
    family = "motion_blur"
    parameter = "radius_sigma"
    values = ((10, 3), (15, 5), (15, 8), (15, 12), (20, 15))
    source = (IMAGENET_C + " motion_blur (ImageMagick MotionBlurImage(radius, sigma, angle), angle uniform in "
              "[-45, 45] degrees; MedMNIST-C's chest set has none)")
    formula = ("y(p) = sum_i w_i x(p + round(i (cos a, sin a))), i = 0..2 ceil(r)+1-1, w_i ~ exp(-i^2 / 2 sigma^2) "
               "(a one-sided trail, ImageMagick's kernel); edge pixels repeat; angle a per image from the hash")
    frame = _SCALED + "; angle unchanged"
    exact = ("exact: offsets and weights are computed on the CPU, the sum is a fixed sequence of float32 "
             "multiplies and adds")

    def draw(self, pixels: torch.Tensor, keys: torch.Tensor) -> dict:
        u = image_uniforms(keys, 1, stream_salt(self.family))[:, 0]
        return {"angle": -45.0 + 90.0 * u}

    def corrupt(self, x, keys, value, state):
        b, c, h, w = x.shape
        s = frame_scale(h, w)
        weights = motion_taps(value[0] * s, value[1] * s)
        dy, dx = (t.to(x.device) for t in motion_offsets(state["angle"], len(weights)))
        rows = torch.arange(h, device=x.device).view(1, -1)
        cols = torch.arange(w, device=x.device).view(1, -1)
        flat = x.reshape(b, c, h * w)
        out = torch.zeros_like(x)
        for i, wt in enumerate(weights):
            r = (rows + dy[:, i : i + 1]).clamp_(0, h - 1)
            q = (cols + dx[:, i : i + 1]).clamp_(0, w - 1)
            index = (r.unsqueeze(2) * w + q.unsqueeze(1)).view(b, 1, h * w).expand(b, c, h * w)
            tap = flat.gather(2, index).view(b, c, h, w) * wt
            out = out + tap
        return grey_levels(out)


def _factors(step: float, count: int) -> tuple[float, ...]:
    return tuple(round(1.0 + step * i, 2) for i in range(count))


class ZoomBlur(SeverityCorruption):
    family = "zoom_blur"
    parameter = "zoom_factors"
    #: np.arange(1, 1.11, .01), (1, 1.16, .01), (1, 1.21, .02), (1, 1.26, .02), (1, 1.31, .03) as numpy makes
    #: them (the first has 12 factors, up to 1.11)
    values = (_factors(0.01, 12), _factors(0.01, 16), _factors(0.02, 11), _factors(0.02, 13), _factors(0.03, 11))
    source = IMAGENET_C + " zoom_blur (= MedMNIST-C dermamnist's; the chest set has none)"
    formula = ("y = (x + sum_z zoom(x, z)) / (n + 1), zoom = kornia scale about the frame centre, bilinear (ImageNet-C "
               "crops the centre and rescales with scipy, which can shift the centre by half a pixel)")
    frame = "zoom factors are scale-free: unchanged"
    exact = "within +-1 grey level (float32 bilinear sampling)"

    def corrupt(self, x, keys, value, state):
        out = x.clone()
        for z in value:
            factor = torch.full((x.shape[0],), float(z), dtype=x.dtype, device=x.device)
            out = out + kornia_scale(x, factor, mode="bilinear", padding_mode="border", align_corners=True)
        return grey_levels(out / (len(value) + 1))
