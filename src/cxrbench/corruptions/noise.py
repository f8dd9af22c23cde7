"""Pixel noise from MedMNIST-C's chest X-ray set: Gaussian, speckle, impulse (salt and pepper) and shot noise.

Every family draws one random value per pixel position (shared by all channels, so a grey image replicated
into RGB stays grey) from the counter-based hash of the image key (``hashing``), once per batch; every severity
reuses it, so severities are coupled (a pixel's noise only grows with the severity). MedMNIST-C draws per
channel of an RGB copy and then converts to grey (which shrinks Gaussian noise by a factor 0.67) and truncates
to uint8; here the stated parameter is the noise of the grey image and values are rounded to nearest.
"""

from __future__ import annotations

import torch

from cxrbench.corruptions.base import MEDMNIST_C, SeverityCorruption, grey_levels
from cxrbench.corruptions.hashing import normals, stream_salt, uniforms
from cxrbench.corruptions.sampling import poisson_quantile

_PER_PIXEL = ("per model-frame pixel, unchanged with the frame size (MedMNIST-C defines it per pixel of a "
              "224-px image)")


def _field(fn, keys: torch.Tensor, pixels: torch.Tensor, stream: str) -> torch.Tensor:
    b, _, h, w = pixels.shape
    return fn(keys, h * w, stream_salt(stream)).view(b, 1, h, w)


class GaussianNoise(SeverityCorruption):
    family = "gaussian_noise"
    parameter = "std"
    values = (0.04, 0.08, 0.12, 0.18, 0.26)
    source = MEDMNIST_C + " 'gaussian_noise'"
    formula = "y = x + 255 * std * z, z ~ N(0, 1) per pixel"
    frame = _PER_PIXEL
    exact = "within +-1 grey level (float64 normal quantile on the device); equal in practice"

    def draw(self, pixels: torch.Tensor, keys: torch.Tensor) -> dict:
        return {"z": _field(normals, keys, pixels, self.family)}

    def corrupt(self, x, keys, value, state):
        return grey_levels(x.to(torch.float64) + (255.0 * value) * state["z"])


class SpeckleNoise(SeverityCorruption):
    family = "speckle_noise"
    parameter = "std"
    values = (0.05, 0.15, 0.2, 0.35, 0.45)
    source = MEDMNIST_C + " 'speckle_noise'"
    formula = "y = x * (1 + std * z), z ~ N(0, 1) per pixel"
    frame = _PER_PIXEL
    exact = "within +-1 grey level (float64 normal quantile on the device); equal in practice"

    def draw(self, pixels: torch.Tensor, keys: torch.Tensor) -> dict:
        return {"z": _field(normals, keys, pixels, self.family)}

    def corrupt(self, x, keys, value, state):
        return grey_levels(x.to(torch.float64) * (1.0 + value * state["z"]))


class ImpulseNoise(SeverityCorruption):
    family = "impulse_noise"
    parameter = "amount"
    values = (0.01, 0.03, 0.06, 0.09, 0.17)
    source = MEDMNIST_C + " 'impulse_noise' (skimage random_noise mode='s&p')"
    formula = "a pixel with u1 < amount becomes 0 (u2 < 0.5) or 255; u1, u2 uniform per pixel"
    frame = _PER_PIXEL + "; nested: the pixels hit at a severity stay hit at every higher one"
    exact = "exact (integer hash, comparisons only)"

    def draw(self, pixels: torch.Tensor, keys: torch.Tensor) -> dict:
        return {"hit": _field(uniforms, keys, pixels, self.family + ":hit"),
                "salt": _field(uniforms, keys, pixels, self.family + ":salt") >= 0.5}

    def corrupt(self, x, keys, value, state):
        impulse = state["salt"].to(torch.float32) * 255.0
        return torch.where(state["hit"] < value, impulse, x)


class ShotNoise(SeverityCorruption):
    family = "shot_noise"
    parameter = "photons"
    values = (60, 25, 18, 10, 5)
    source = MEDMNIST_C + " 'shot_noise'"
    formula = "y = 255 * N / c, N ~ Poisson(c * x / 255) per pixel (c = photons at full scale)"
    frame = _PER_PIXEL
    exact = ("within one count (255/c grey levels) and equal in practice: the Poisson quantile uses float64 "
             "gammaincc on the device and can differ only when u lies within ~1e-13 of a CDF step")

    def draw(self, pixels: torch.Tensor, keys: torch.Tensor) -> dict:
        return {"u": _field(uniforms, keys, pixels, self.family)}

    def corrupt(self, x, keys, value, state):
        c = float(value)
        counts = poisson_quantile(x.to(torch.float64) * (c / 255.0), state["u"])
        return grey_levels(counts * (255.0 / c))
