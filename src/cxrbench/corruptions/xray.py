"""X-ray physics corruptions (our own models): quantum noise at a reduced dose, uneven exposure (bias field),
patient/detector rotation and a tighter collimation.

Display model shared by the first two: a radiograph's grey level v (0..255, bright = attenuating) is taken as
the logarithm of the transmitted fraction of the beam, ``t = exp(-K v / 255)`` with ``K = ln(transmission
range)``: grey 0 is full transmission and grey 255 is 1/range of it (range 100 by default). Exposure then
multiplies photon counts, and a change of exposure by a factor g shifts every grey level by ``-255 ln(g) / K``.
"""

from __future__ import annotations

import math

import torch
from kornia.geometry.transform import rotate

from cxrbench.corruptions.base import REFERENCE_SIDE, SeverityCorruption, grey_levels
from cxrbench.corruptions.hashing import image_uniforms, stream_salt, uniforms
from cxrbench.corruptions.sampling import poisson_quantile
from cxrbench.errors import ConfigError

OURS = "cxrbench physics model (no published severities; the values are ours, see docs/corruptions.md)"


def _positive(name: str, value: float, minimum: float = 0.0) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number, got {value!r}") from None
    if not (math.isfinite(v) and v > minimum):
        raise ConfigError(f"{name} must be a finite number above {minimum:g}, got {value!r}")
    return v


class QuantumNoise(SeverityCorruption):
    """Poisson (quantum) noise of an exposure at a fraction of the full dose.

    Expected counts ``lambda = N0 * d * t(v)`` with ``N0 = photons * (224^2 / (H W))`` photons per frame pixel at
    full dose and full transmission (a fixed photon fluence per unit area: a larger frame's smaller pixels get
    fewer photons each), ``N ~ Poisson(lambda)`` by exact inverse-CDF sampling from the per-pixel uniform, and
    ``v' = -255 / K * ln(N / (N0 d))`` (N = 0 gives 255). The clean image is treated as the noise-free
    expectation, so the noise adds to whatever noise the image already has.
    """

    family = "quantum_noise"
    parameter = "dose_fraction"
    values = (0.5, 0.25, 0.125, 0.0625, 0.03125)
    source = OURS
    formula = "v' = -255/K ln(N / (N0 d)), N ~ Poisson(N0 d exp(-K v / 255)), K = ln(transmission_range)"
    frame = "photon fluence per unit area fixed: N0 per pixel = photons * 224^2 / (H W)"
    exact = ("equal in practice; within one count: the Poisson quantile uses float64 gammaincc on the device, "
             "the grey mapping float64 log")

    def __init__(self, photons: float = 10000.0, transmission_range: float = 100.0) -> None:
        self.photons = _positive("photons", photons)
        self.transmission_range = _positive("transmission_range", transmission_range, minimum=1.0)

    def options(self) -> dict:
        return {"photons": self.photons, "transmission_range": self.transmission_range}

    def draw(self, pixels: torch.Tensor, keys: torch.Tensor) -> dict:
        b, _, h, w = pixels.shape
        return {"u": uniforms(keys, h * w, stream_salt(self.family)).view(b, 1, h, w)}

    def corrupt(self, x, keys, value, state):
        _, _, h, w = x.shape
        k = math.log(self.transmission_range)
        full = self.photons * (REFERENCE_SIDE * REFERENCE_SIDE) / (h * w) * float(value)
        lam = full * torch.exp(x.to(torch.float64) * (-k / 255.0))
        counts = poisson_quantile(lam, state["u"])
        return grey_levels(torch.log(counts / full) * (-255.0 / k))


def bias_basis(h: int, w: int, device: torch.device) -> torch.Tensor:
    """(5, H, W) float64: u, v, u^2, v^2, u v over pixel centres with u, v in [-1, 1]."""
    v = ((torch.arange(h, dtype=torch.float64, device=device) + 0.5) / h * 2 - 1).view(-1, 1).expand(h, w)
    u = ((torch.arange(w, dtype=torch.float64, device=device) + 0.5) / w * 2 - 1).view(1, -1).expand(h, w)
    return torch.stack([u, v, u * u, v * v, u * v])


class BiasField(SeverityCorruption):
    """Uneven exposure (anode heel effect, off-centre beam, grid cut-off) as a smooth random exposure field.

    Per image, ``f = sum_j c_j b_j(u, v)`` over the basis u, v, u^2, v^2, uv (frame coordinates in [-1, 1]) with
    coefficients uniform in [-1, 1] (linear terms) or [-0.5, 0.5] (quadratic terms), rescaled so that f spans
    exactly [-1, 1] over the frame. The exposure is ``g = r^(f/2)``: the most exposed pixel gets r times the
    exposure of the least exposed one, and ``v' = v - 255 ln(g) / K = v - A f`` with ``A = 255 ln(r) / (2K)``.
    """

    family = "bias_field"
    parameter = "exposure_ratio"
    values = (1.25, 1.5, 2.0, 3.0, 4.0)
    source = OURS
    formula = "v' = v - A f(u, v), A = 255 ln(r) / (2 ln(transmission_range)), f a random smooth field in [-1, 1]"
    frame = "defined in normalised frame coordinates: the same field at any frame size"
    exact = ("exact (CPU coefficients; the field is a fixed sequence of float64 elementwise multiplies and adds, "
             "then exact min / max)")

    def __init__(self, transmission_range: float = 100.0) -> None:
        self.transmission_range = _positive("transmission_range", transmission_range, minimum=1.0)

    def options(self) -> dict:
        return {"transmission_range": self.transmission_range}

    def draw(self, pixels: torch.Tensor, keys: torch.Tensor) -> dict:
        b, _, h, w = pixels.shape
        u = image_uniforms(keys, 5, stream_salt(self.family))
        coef = (2 * u - 1) * torch.tensor([1.0, 1.0, 0.5, 0.5, 0.5], dtype=torch.float64)
        basis = bias_basis(h, w, pixels.device)
        coef = coef.to(pixels.device).view(b, 5, 1, 1)
        field = coef[:, 0] * basis[0]
        for j in range(1, 5):  # one elementwise multiply and add at a time: no fused or reordered sums
            field = field + coef[:, j] * basis[j]
        lo, hi = field.amin(dim=(1, 2), keepdim=True), field.amax(dim=(1, 2), keepdim=True)
        half = (hi - lo) / 2
        field = torch.where(half > 1e-12, (field - (hi + lo) / 2) / half.clamp_min(1e-12), torch.zeros_like(field))
        return {"field": field.unsqueeze(1)}

    def corrupt(self, x, keys, value, state):
        amplitude = 255.0 * math.log(float(value)) / (2.0 * math.log(self.transmission_range))
        return grey_levels(x.to(torch.float64) - amplitude * state["field"])


class Rotation(SeverityCorruption):
    family = "rotation"
    parameter = "degrees"
    values = (3, 6, 9, 12, 15)
    source = OURS
    formula = ("kornia rotate about the frame centre by +-degrees (sign per image from the hash), bilinear, "
               "outside the original frame filled with 0")
    frame = "angles are scale-free: unchanged"
    exact = "within +-1 grey level (float32 bilinear sampling on the device)"

    def draw(self, pixels: torch.Tensor, keys: torch.Tensor) -> dict:
        u = image_uniforms(keys, 1, stream_salt(self.family))[:, 0]
        return {"sign": torch.where(u < 0.5, -1.0, 1.0)}

    def corrupt(self, x, keys, value, state):
        angle = (state["sign"] * float(value)).to(x.device, torch.float32)
        return grey_levels(rotate(x, angle, mode="bilinear", padding_mode="zeros", align_corners=True))


OUTSIDE = {"white": 255.0, "black": 0.0}


class Collimation(SeverityCorruption):
    """Collimator blades closed in: only a rectangle of the frame is exposed, placed off-centre at random.

    The exposed field keeps the frame's aspect ratio and ``1 - a`` of its area: ``kh = floor(H sqrt(1-a) + 0.5)``
    by ``kw`` likewise, with its top-left corner at ``(floor(u (H - kh + 1)), floor(v (W - kw + 1)))`` for (u, v)
    uniform per image. Outside the field nothing reaches the detector: white (255, as unexposed film and most
    processed radiographs show it) or black (an electronic shutter).
    """

    family = "collimation"
    parameter = "blocked_area"
    values = (0.1, 0.2, 0.3, 0.4, 0.5)
    source = OURS
    formula = "outside an exposed rectangle of (1 - a) of the frame area, at a random position: 255 (or 0)"
    frame = "fractions of the frame: unchanged"
    exact = "exact (integer geometry from CPU uniforms)"

    def __init__(self, outside: str = "white") -> None:
        if outside not in OUTSIDE:
            raise ConfigError(f"collimation outside={outside!r}: choose one of {', '.join(OUTSIDE)}")
        self.outside = outside

    def options(self) -> dict:
        return {"outside": self.outside}

    def draw(self, pixels: torch.Tensor, keys: torch.Tensor) -> dict:
        return {"uv": image_uniforms(keys, 2, stream_salt(self.family))}

    def field(self, state: dict, level_value: float, h: int, w: int, device: torch.device) -> torch.Tensor:
        """(B, H, W) bool: True inside the exposed field."""
        keep = math.sqrt(1.0 - float(level_value))
        kh, kw = min(h, math.floor(h * keep + 0.5)), min(w, math.floor(w * keep + 0.5))
        uv = state["uv"]
        top = torch.floor(uv[:, 0] * (h - kh + 1)).long().view(-1, 1, 1)
        left = torch.floor(uv[:, 1] * (w - kw + 1)).long().view(-1, 1, 1)
        rows = torch.arange(h).view(1, -1, 1)
        cols = torch.arange(w).view(1, 1, -1)
        inside = (rows >= top) & (rows < top + kh) & (cols >= left) & (cols < left + kw)
        return inside.to(device)

    def corrupt(self, x, keys, value, state):
        _, _, h, w = x.shape
        inside = self.field(state, value, h, w, x.device).unsqueeze(1)
        return torch.where(inside, grey_levels(x), torch.full_like(x, OUTSIDE[self.outside]))
