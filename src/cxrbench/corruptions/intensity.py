"""Intensity changes from MedMNIST-C's chest set: brightness, contrast and gamma, each up and down.

They reproduce the 8-bit arithmetic of the libraries MedMNIST-C calls, so a test can compare them with those
libraries pixel for pixel: Pillow's ``ImageEnhance`` (a float32 blend with a degenerate image, truncated to
uint8) for brightness and contrast, torchvision's ``adjust_gamma`` on PIL images (a 256-entry table) for gamma.
Input is taken as grey levels (uint8 geometry tensors; float input is rounded first). No randomness and no
frame mapping.
"""

from __future__ import annotations

import functools

import torch

from cxrbench.corruptions.base import MEDMNIST_C, SeverityCorruption, grey_levels

_PER_IMAGE = "no spatial parameter: unchanged"
_EXACT = "exact (float32 multiply and add, or a table lookup; integer per-image means)"


def _blend(degenerate: torch.Tensor, x: torch.Tensor, factor: float) -> torch.Tensor:
    """Pillow's ``Image.blend(degenerate, x, factor)`` on 8-bit values: trunc(d + f * (x - d)), clipped."""
    f = torch.tensor(factor, dtype=torch.float32, device=x.device)
    return torch.floor(((x - degenerate) * f + degenerate).clamp_(0, 255))


def luminance(x: torch.Tensor) -> torch.Tensor:
    """Pillow's 8-bit "L" of (B, C, H, W) grey levels: the channel itself, or (19595 R + 38470 G + 7471 B + 2**15)
    >> 16 for RGB; (B, 1, H, W) int64."""
    v = x.to(torch.int64)
    if v.shape[1] == 1:
        return v
    if v.shape[1] != 3:
        raise ValueError(f"luminance of {v.shape[1]}-channel images is undefined; give 1 or 3 channels")
    return (v[:, :1] * 19595 + v[:, 1:2] * 38470 + v[:, 2:3] * 7471 + 0x8000) >> 16


class _Brightness(SeverityCorruption):
    parameter = "factor"
    formula = "y = trunc(f * x), clipped (Pillow ImageEnhance.Brightness: blend with black)"
    frame = _PER_IMAGE
    exact = _EXACT

    def corrupt(self, x, keys, value, state):
        x = grey_levels(x)
        return _blend(torch.zeros((), device=x.device), x, value)


class BrightnessUp(_Brightness):
    family = "brightness_up"
    values = (1.1, 1.2, 1.3, 1.4, 1.5)
    source = MEDMNIST_C + " 'brightness_up'"


class BrightnessDown(_Brightness):
    family = "brightness_down"
    values = (0.9, 0.8, 0.7, 0.6, 0.5)
    source = MEDMNIST_C + " 'brightness_down'"


class _Contrast(SeverityCorruption):
    parameter = "factor"
    formula = ("y = trunc(m + f * (x - m)), clipped; m = int(mean(L) + 0.5) per image (Pillow "
               "ImageEnhance.Contrast)")
    frame = _PER_IMAGE
    exact = _EXACT

    def corrupt(self, x, keys, value, state):
        x = grey_levels(x)
        lum = luminance(x).to(torch.float64)
        mean = torch.floor(lum.sum(dim=(1, 2, 3)) / lum[0].numel() + 0.5)  # sums of integers: exact in float64
        return _blend(mean.to(torch.float32).view(-1, 1, 1, 1), x, value)


class ContrastUp(_Contrast):
    family = "contrast_up"
    values = (1.1, 1.2, 1.3, 1.4, 1.6)
    source = MEDMNIST_C + " 'contrast_up'"


class ContrastDown(_Contrast):
    family = "contrast_down"
    values = (0.9, 0.8, 0.7, 0.6, 0.4)
    source = MEDMNIST_C + " 'contrast_down'"


@functools.lru_cache(maxsize=32)
def gamma_table(gamma: float) -> torch.Tensor:
    """torchvision's 8-bit gamma table (PIL path, gain 1): int(255.999 * (i / 255) ** gamma), float32 (256,)."""
    return torch.tensor([float(int((255 + 1 - 1e-3) * pow(i / 255.0, gamma))) for i in range(256)])


class _Gamma(SeverityCorruption):
    parameter = "gamma"
    formula = "y = int(255.999 * (x / 255) ** gamma) (torchvision adjust_gamma on a PIL image, gain 1)"
    frame = _PER_IMAGE
    exact = "exact (a 256-entry table computed on the CPU)"

    def corrupt(self, x, keys, value, state):
        index = grey_levels(x).to(torch.int64)
        return gamma_table(float(value)).to(x.device)[index]


class GammaUp(_Gamma):
    family = "gamma_up"
    values = (1.1, 1.2, 1.3, 1.4, 1.6)
    source = MEDMNIST_C + " 'gamma_corr_up' (gamma > 1 darkens)"


class GammaDown(_Gamma):
    family = "gamma_down"
    values = (0.9, 0.8, 0.7, 0.6, 0.4)
    source = MEDMNIST_C + " 'gamma_corr_down' (gamma < 1 brightens)"
