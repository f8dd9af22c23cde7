"""The arrays of one render and the drawing primitives every other stage uses.

``Canvas`` holds the density map ``D``, the lung air map, the vessel gate, the per-side lung masks and the
named anchor points of one render; ``Canvas.win`` cuts a small window in normalised coordinates. Primitives:
soft elliptical densities (``blob``), bump and ramp profiles, low-frequency textures, and ``Sketch``, vector
lines and polygons rasterised with Pillow (2x supersampled) into a window. ``expneg`` is the bit-exact
replacement for ``np.exp(-x)`` (see the package docstring). This module imports nothing from the package.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter


@dataclass
class Window:
    rows: slice
    cols: slice
    u: np.ndarray   # (1, w) column coordinates
    v: np.ndarray   # (h, 1) row coordinates

    @property
    def idx(self) -> tuple[slice, slice]:
        return self.rows, self.cols


class Canvas:
    """Arrays of one render: density ``D``, lung ``air``, vessel gate, per-side lung masks and geometry."""

    def __init__(self, n: int, view: str) -> None:
        self.n = n
        self.view = view
        self.c = ((np.arange(n, dtype=np.float32) + 0.5) / n).astype(np.float32)
        self.D = np.zeros((n, n), np.float32)
        self.air = np.zeros((n, n), np.float32)
        self.vgate = np.ones((n, n), np.float32)
        self.hemi: dict[str, np.ndarray] = {}
        #: the heart's silhouette (soft edge, 0..1); recorded for the lung-field masks, never drawn from
        self.heart = np.zeros((n, n), np.float32)
        self.ribs = np.zeros((n, n), np.float32)
        self.bones = np.zeros((n, n), np.float32)
        self.anchor: dict[str, tuple[float, float]] = {}
        self.lung_rows: dict[str, tuple[np.ndarray, np.ndarray]] = {}   # side -> (medial u, lateral u) per row
        self.px = 1.0 / n
        self.lat: dict[str, float] = {}          # lateral view geometry (see _lat_geometry)
        self.lat_walls: tuple[np.ndarray, np.ndarray] | None = None

    def win(self, u0: float, u1: float, v0: float, v1: float) -> Window | None:
        n = self.n
        c0, c1 = max(0, int(math.floor(u0 * n))), min(n, int(math.ceil(u1 * n)))
        r0, r1 = max(0, int(math.floor(v0 * n))), min(n, int(math.ceil(v1 * n)))
        if c1 <= c0 or r1 <= r0:
            return None
        return Window(slice(r0, r1), slice(c0, c1), self.c[None, c0:c1], self.c[r0:r1, None])

    def gate(self, side: str | None) -> np.ndarray:
        """Where a lung finding may show: one hemithorax, or both for ``None``."""
        if side in self.hemi:
            return self.hemi[side]  # type: ignore[index]
        return self.hemi["both"]


def expneg(x2: np.ndarray) -> np.ndarray:
    """``exp(-x2)`` for ``x2 >= 0`` as ``(1 + x2/16)^-16``: only IEEE-exact + * / so every CPU agrees bit for bit
    (numpy's SIMD ``exp`` may differ in the last bit between machines)."""
    y = 1.0 / (1.0 + x2 * (1.0 / 16.0))
    y = y * y
    y = y * y
    y = y * y
    return y * y


def bell(x: np.ndarray) -> np.ndarray:
    """Gaussian bump ``exp(-x^2)`` (see :func:`expneg`)."""
    return expneg(x * x)


def ramp(x: np.ndarray, width: float) -> np.ndarray:
    return np.clip(x * (1.0 / width), 0.0, 1.0)


def smooth(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def ellipse_r2(w: Window, u: float, v: float, ru: float, rv: float, angle: float = 0.0) -> np.ndarray:
    du, dv = w.u - u, w.v - v
    if angle:
        ca, sa = math.cos(angle), math.sin(angle)
        du, dv = du * ca + dv * sa, dv * ca - du * sa
    return (du * (1.0 / ru)) ** 2 + (dv * (1.0 / rv)) ** 2


def blob(cv: Canvas, u: float, v: float, ru: float, rv: float | None = None, amp: float = 0.3, *,
          profile: str = "ball", angle: float = 0.0, gate: np.ndarray | None = None,
          target: np.ndarray | None = None, texture: np.ndarray | None = None) -> None:
    """Add an elliptical density. Profiles: ``ball`` (sphere thickness), ``gauss``, ``disk`` (sharp edge)."""
    rv = ru if rv is None else rv
    reach = 1.0 if profile != "gauss" else 1.9
    r = max(ru, rv) * reach + 2 * cv.px
    w = cv.win(u - r, u + r, v - r, v + r)
    if w is None:
        return
    r2 = ellipse_r2(w, u, v, ru, rv, angle)
    if profile == "gauss":
        shape = expneg(2.2 * r2)
    elif profile == "disk":
        edge = max(1.2 * cv.px / min(ru, rv), 0.04)
        shape = np.clip((1.0 - np.sqrt(r2)) / edge, 0.0, 1.0)
    else:
        shape = np.sqrt(np.clip(1.0 - r2, 0.0, 1.0))
    if texture is not None:
        shape = shape * _fit(texture, shape.shape)
    if gate is not None:
        shape = shape * gate[w.idx]
    (cv.D if target is None else target)[w.idx] += amp * shape


def _fit(tex: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    if tex.shape == shape:
        return tex
    img = Image.fromarray(tex.astype(np.float32), mode="F").resize((shape[1], shape[0]), Image.BILINEAR)
    return np.asarray(img, dtype=np.float32)


def lowfreq(rng: np.random.Generator, cells: int, h: int, w: int, lo: float = 0.0) -> np.ndarray:
    """Smooth random texture in [lo, 1] of shape (h, w), built from a (cells x cells) random grid."""
    g = rng.random((cells, cells)).astype(np.float32)
    img = Image.fromarray(g, mode="F").resize((max(w, 1), max(h, 1)), Image.BICUBIC)
    t = np.clip(np.asarray(img, dtype=np.float32), 0.0, 1.0)
    return lo + (1.0 - lo) * t


class Sketch:
    """Vector primitives in normalised coordinates, rasterised (2x supersampled) into a window of ``D``."""

    def __init__(self) -> None:
        self.ops: list[tuple[str, list[tuple[float, float]], float, float]] = []

    def line(self, pts: Sequence[tuple[float, float]], width: float, value: float = 1.0) -> Sketch:
        if len(pts) >= 2:
            self.ops.append(("line", [tuple(p) for p in pts], width, value))  # type: ignore[misc]
        return self

    def poly(self, pts: Sequence[tuple[float, float]], value: float = 1.0) -> Sketch:
        if len(pts) >= 3:
            self.ops.append(("poly", [tuple(p) for p in pts], 0.0, value))  # type: ignore[misc]
        return self

    def ellipse(self, u: float, v: float, ru: float, rv: float, value: float = 1.0, angle: float = 0.0,
                outline: float = 0.0) -> Sketch:
        pts = _ellipse_pts(u, v, ru, rv, angle)
        if outline > 0:
            return self.line(pts + [pts[0]], outline, value)
        return self.poly(pts, value)

    def render(self, cv: Canvas, amp: float, *, blur: float = 0.5, target: np.ndarray | None = None,
               gate: np.ndarray | None = None, ss: int = 2) -> None:
        if not self.ops:
            return
        us = [p[0] for op in self.ops for p in op[1]]
        vs = [p[1] for op in self.ops for p in op[1]]
        pad = max(op[2] for op in self.ops) + (blur * 3 + 3) * cv.px
        w = cv.win(min(us) - pad, max(us) + pad, min(vs) - pad, max(vs) + pad)
        if w is None:
            return
        n = cv.n
        c0, r0 = w.cols.start, w.rows.start
        width_px, height_px = w.cols.stop - c0, w.rows.stop - r0
        img = Image.new("L", (width_px * ss, height_px * ss), 0)
        draw = ImageDraw.Draw(img)
        for kind, pts, width, value in self.ops:
            xy = [((p[0] * n - c0) * ss, (p[1] * n - r0) * ss) for p in pts]
            fill = int(round(255 * min(max(value, 0.0), 1.0)))
            if kind == "line":
                draw.line(xy, fill=fill, width=max(1, int(round(width * n * ss))), joint="curve")
            else:
                draw.polygon(xy, fill=fill)
        if ss > 1:
            img = img.reduce(ss)
        if blur > 0:
            img = img.filter(ImageFilter.GaussianBlur(blur * n / 512.0))
        arr = np.asarray(img, dtype=np.float32) * (amp / 255.0)
        if gate is not None:
            arr *= gate[w.idx]
        (cv.D if target is None else target)[w.idx] += arr


_UNIT = {k: (np.array([math.cos(2 * math.pi * i / k) for i in range(k)]),
             np.array([math.sin(2 * math.pi * i / k) for i in range(k)])) for k in (12, 28)}


def _ellipse_pts(u: float, v: float, ru: float, rv: float, angle: float = 0.0, k: int = 28
                 ) -> list[tuple[float, float]]:
    cos_t, sin_t = _UNIT[k] if k in _UNIT else _UNIT[28]
    ca, sa = math.cos(angle), math.sin(angle)
    x, y = ru * cos_t, rv * sin_t
    return list(zip((u + x * ca - y * sa).tolist(), (v + x * sa + y * ca).tolist()))


def rect_pts(u: float, v: float, hw: float, hh: float, angle: float = 0.0) -> list[tuple[float, float]]:
    ca, sa = math.cos(angle), math.sin(angle)
    return [(u + x * ca - y * sa, v + x * sa + y * ca) for x, y in ((-hw, -hh), (hw, -hh), (hw, hh), (-hw, hh))]


def bezier(p0: tuple[float, float], p1: tuple[float, float], p2: tuple[float, float],
            p3: tuple[float, float] | None = None, k: int = 16) -> list[tuple[float, float]]:
    """Quadratic (3 points) or cubic (4 points) Bezier curve sampled at ``k + 1`` points."""
    out = []
    for i in range(k + 1):
        t = i / k
        if p3 is None:
            a, b, c = (1 - t) ** 2, 2 * t * (1 - t), t * t
            out.append((a * p0[0] + b * p1[0] + c * p2[0], a * p0[1] + b * p1[1] + c * p2[1]))
        else:
            a, b, c, d = (1 - t) ** 3, 3 * t * (1 - t) ** 2, 3 * t * t * (1 - t), t ** 3
            out.append((a * p0[0] + b * p1[0] + c * p2[0] + d * p3[0],
                        a * p0[1] + b * p1[1] + c * p2[1] + d * p3[1]))
    return out


def wobble(pts: list[tuple[float, float]], rng: np.random.Generator, amount: float
            ) -> list[tuple[float, float]]:
    jit = rng.normal(0.0, amount, (len(pts), 2))
    return [(p[0] + float(j[0]), p[1] + float(j[1])) for p, j in zip(pts, jit)]


def staples(cv: Canvas, path: list[tuple[float, float]], rng: np.random.Generator, amp: float = 1.1) -> None:
    sk = Sketch()
    pts = bezier(path[0], path[1], path[2], k=14)
    for (u0, v0), (u1, v1) in zip(pts[:-1], pts[1:]):
        mu, mv = 0.5 * (u0 + u1), 0.5 * (v0 + v1)
        du, dv = (u1 - u0) * 0.35, (v1 - v0) * 0.35
        sk.line([(mu - du, mv - dv), (mu + du, mv + dv)], 0.003, 1.0)
    sk.render(cv, amp, blur=0.5)
