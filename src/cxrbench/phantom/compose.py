"""The stages shared by both views after the base anatomy: lung texture, composition of ``D`` and film.

``parenchyma`` mottles the lung air; ``compose_density`` adds soft tissue minus lung air, bones and the gated
vessels to ``D`` (after the air hooks, before the overlay hooks); ``film_tone`` maps ``D`` through the film
curve ``I = 1 - exp(-k * D)`` with the patient's window and gamma (a lookup table), then rotates, blurs and
adds detector noise, giving uint8.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageFilter

from cxrbench.phantom.anatomy import Anatomy
from cxrbench.phantom.canvas import Canvas, lowfreq, ramp


def parenchyma(cv: Canvas, rng: np.random.Generator) -> None:
    """Mottle the lung air with a coarse and a fine smooth random texture (superimposed small vessels)."""
    n = cv.n
    coarse = lowfreq(rng, 18, n, n)
    fine = lowfreq(rng, max(8, n // 6), n, n)
    cv.air *= 0.84 + 0.17 * coarse + 0.12 * fine


def compose_density(A: Anatomy, cv: Canvas, T: np.ndarray, vessels: np.ndarray) -> None:
    """D += soft tissue minus lung air, bones and gated vessels."""
    air = np.clip(cv.air * A.air, 0.0, 1.08)
    dens = T * A.soft * (1.0 - 0.7 * air)
    v = cv.c[:, None]
    upper = 1.0 + (A.vessel_upper - 1.0) * ramp(0.5 - v, 0.2)
    gate = np.clip(cv.air * 1.6, 0.0, 1.0) * cv.vgate * upper
    cv.D += dens + cv.ribs + cv.bones + (0.13 * A.vessel_gain) * vessels * gate


def film_tone(A: Anatomy, cv: Canvas, rng: np.random.Generator) -> np.ndarray:
    """Film curve (lookup table), rotation, blur and detector noise -> uint8."""
    n = cv.n
    steps = 512
    k, lo, span = 1.6 * A.exposure, A.lo, A.hi - A.lo
    curve = [min(max((1.0 - math.exp(-k * i / steps) - lo) / span, 0.0), 1.0) ** A.gamma for i in range(4 * steps + 1)]
    lut = (np.array(curve) * 255.0 + 0.5).astype(np.uint8)
    heel = (1.0 + A.heel * (cv.c - 0.5)) * steps
    idx = cv.D * heel[:, None].astype(np.float32)
    np.clip(idx, 0, 4 * steps, out=idx)
    pil = Image.fromarray(lut[idx.astype(np.intp)], mode="L")
    angle = math.radians(A.rotation)
    zoom = A.zoom * (1.0 + abs(math.sin(angle)) * 1.1) * (1.0 + A.crop)
    ca, sa = math.cos(angle) / zoom, math.sin(angle) / zoom
    c = n / 2.0
    shift_v = -A.crop * 0.35 * n
    pil = pil.transform((n, n), Image.AFFINE, (ca, -sa, c - ca * c + sa * c, sa, ca, c - sa * c - ca * c + shift_v),
                        resample=Image.BILINEAR)
    pil = pil.filter(ImageFilter.GaussianBlur(A.blur * n / 512.0))
    out = np.asarray(pil, dtype=np.float32)
    # detector noise: triangular (sum of two uniform bytes), std ~ noise * 255, stronger in bright areas
    a = np.frombuffer(rng.bytes(n * n), np.uint8).reshape(n, n).astype(np.float32)
    b = np.frombuffer(rng.bytes(n * n), np.uint8).reshape(n, n)
    a += b
    a -= 255.0
    gain = A.noise / 0.408
    out += a * (out * (0.55 * gain / 255.0) + 0.45 * gain)
    np.clip(out, 0.0, 255.0, out=out)
    return (out + 0.5).astype(np.uint8)
