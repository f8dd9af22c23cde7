"""OpenCV's ``cv2.resize(..., interpolation=cv2.INTER_AREA)`` for 8-bit single-channel images, without OpenCV.

GLoRIA resizes with OpenCV's INTER_AREA; cxrbench does not depend on OpenCV, so this module computes the same
uint8 result in NumPy (verified against opencv-python-headless on random sizes in all three regimes; see
tests/fixtures/golden/gloria/README.md). OpenCV picks the method from ``scale = 1 / (dst / src)`` per axis:

* both scales integers (shrinking by whole factors): block means; a 2 x 2 block rounds half up
  (``(sum + 2) >> 2``), larger blocks round the float32 mean half to even;
* both scales >= 1 otherwise: area averaging with fractional pixel weights (float32 weights and sums, first
  along x, then along y, rounded half to even);
* any scale < 1 (enlarging): OpenCV's "area" flavour of bilinear interpolation, with 11-bit fixed-point weights.
"""

from __future__ import annotations

import math

import numpy as np

_COEF_BITS = 11
_COEF_SCALE = 1 << _COEF_BITS


def _scale(src: int, dst: int) -> float:
    return 1.0 / (dst / src)


def _area_taps(src: int, dst: int) -> list[list[tuple[int, np.float32]]]:
    """For each output index, the (source index, float32 weight) pairs of the area average, in OpenCV's order."""
    scale = _scale(src, dst)
    taps = []
    for d in range(dst):
        f1 = d * scale
        f2 = f1 + scale
        cell = min(scale, src - f1)
        s1, s2 = math.ceil(f1), math.floor(f2)
        s2 = min(s2, src - 1)
        s1 = min(s1, s2)
        row = []
        if s1 - f1 > 1e-3:
            row.append((s1 - 1, np.float32((s1 - f1) / cell)))
        row.extend((s, np.float32(1.0 / cell)) for s in range(s1, s2))
        if f2 - s2 > 1e-3:
            row.append((s2, np.float32(min(min(f2 - s2, 1.0), cell) / cell)))
        taps.append(row)
    return taps


def _area_along_x(img: np.ndarray, taps) -> np.ndarray:
    out = np.zeros((img.shape[0], len(taps)), np.float32)
    depth = max(len(t) for t in taps)
    for k in range(depth):  # accumulate tap k of every column, in order (float32, as OpenCV)
        cols = [d for d, t in enumerate(taps) if len(t) > k]
        src = np.array([taps[d][k][0] for d in cols])
        weight = np.array([taps[d][k][1] for d in cols], np.float32)
        out[:, cols] = out[:, cols] + img[:, src].astype(np.float32) * weight
    return out


def _area_general(img: np.ndarray, out_w: int, out_h: int) -> np.ndarray:
    rows = _area_along_x(img, _area_taps(img.shape[1], out_w))
    out = np.zeros((out_h, out_w), np.float32)
    for d, taps in enumerate(_area_taps(img.shape[0], out_h)):
        for k, (s, weight) in enumerate(taps):
            out[d] = rows[s] * weight if k == 0 else out[d] + rows[s] * weight
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _area_blocks(img: np.ndarray, fx: int, fy: int, out_w: int, out_h: int) -> np.ndarray:
    sums = img[: out_h * fy, : out_w * fx].astype(np.int64).reshape(out_h, fy, out_w, fx).sum(axis=(1, 3))
    if fx == fy == 2:
        return ((sums + 2) >> 2).astype(np.uint8)
    return np.rint(sums.astype(np.float32) * np.float32(1.0 / (fx * fy))).astype(np.uint8)


def _linear_taps(src: int, dst: int) -> tuple[np.ndarray, np.ndarray]:
    inv = dst / src
    scale = 1.0 / inv
    first = np.zeros(dst, np.int64)
    weights = np.zeros((dst, 2), np.int64)
    for d in range(dst):
        s = math.floor(d * scale)
        f = np.float32((d + 1) - (s + 1) * inv)
        f = np.float32(0.0) if f <= 0 else np.float32(f - np.floor(f))
        if s >= src - 1:
            s, f = src - 1, np.float32(0.0)
        w0 = int(round(float((np.float32(1.0) - f) * np.float32(_COEF_SCALE))))
        first[d], weights[d] = s, (w0, _COEF_SCALE - w0)
    return first, weights


def _area_enlarge(img: np.ndarray, out_w: int, out_h: int) -> np.ndarray:
    h, w = img.shape
    x0, wx = _linear_taps(w, out_w)
    y0, wy = _linear_taps(h, out_h)
    src = img.astype(np.int64)
    rows = src[:, x0] * wx[:, 0] + src[:, np.minimum(x0 + 1, w - 1)] * wx[:, 1]
    out = ((wy[:, :1] * (rows[y0] >> 4)) >> 16) + ((wy[:, 1:] * (rows[np.minimum(y0 + 1, h - 1)] >> 4)) >> 16)
    return np.clip((out + 2) >> 2, 0, 255).astype(np.uint8)


def resize_area(img: np.ndarray, out_w: int, out_h: int) -> np.ndarray:
    """``cv2.resize(img, (out_w, out_h), interpolation=cv2.INTER_AREA)`` for a 2-D uint8 array."""
    if img.dtype != np.uint8 or img.ndim != 2:
        raise ValueError(f"resize_area takes a 2-D uint8 array, got {img.dtype} {img.shape}")
    h, w = img.shape
    if (w, h) == (out_w, out_h):
        return img.copy()
    sx, sy = _scale(w, out_w), _scale(h, out_h)
    if sx >= 1 and sy >= 1:
        if sx == int(sx) and sy == int(sy):
            return _area_blocks(img, int(sx), int(sy), out_w, out_h)
        return _area_general(img, out_w, out_h)
    return _area_enlarge(img, out_w, out_h)
