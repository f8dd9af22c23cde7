"""Digital degradations from MedMNIST-C's chest set: pixelation and JPEG compression."""

from __future__ import annotations

import functools
import io

import numpy as np
import torch
from PIL import Image

from cxrbench.corruptions.base import MEDMNIST_C, SeverityCorruption, grey_levels

_PRECISION_BITS = 22  # Pillow's fixed-point precision for 8-bit resampling


@functools.lru_cache(maxsize=64)
def box_resample_matrix(in_size: int, out_size: int) -> torch.Tensor:
    """(out, in) float64 matrix of Pillow's fixed-point BOX-filter coefficients (integers summing to ~2**22).

    Output pixel j averages the input pixels whose centres fall in its footprint ``((j + 0.5) * scale +- 0.5 *
    max(scale, 1)]`` with scale = in/out: an area average when shrinking, nearest-pixel copy when enlarging.
    The weights are 1/n rounded to multiples of 2**-22, as Pillow's ``Image.resize(..., Image.BOX)`` uses them.
    """
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    support = 0.5 * filterscale
    m = torch.zeros(out_size, in_size, dtype=torch.float64)
    for j in range(out_size):
        center = (j + 0.5) * scale
        lo = max(int(center - support + 0.5), 0)
        hi = min(int(center + support + 0.5), in_size)
        hits = [i for i in range(lo, hi) if -0.5 < (i - center + 0.5) / filterscale <= 0.5]
        if hits:
            m[j, hits] = float(int(0.5 + (1.0 / len(hits)) * (1 << _PRECISION_BITS)))
    return m


def _resample_rows(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """Apply ``m`` along the last axis with Pillow's rounding: (sum + 2**21) >> 22, clipped to 0..255.

    Products and sums are integers below 2**53, so float64 gives the same result in any summation order.
    """
    acc = torch.matmul(x.to(torch.float64), m.to(x.device).T)
    return torch.floor((acc + (1 << (_PRECISION_BITS - 1))) / (1 << _PRECISION_BITS)).clamp_(0, 255)


def box_resize(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Pillow's BOX resize of (B, C, H, W) grey levels to (h, w): horizontal pass, round, vertical pass, round."""
    out = x
    if w != x.shape[3]:
        out = _resample_rows(out, box_resample_matrix(x.shape[3], w))
    if h != x.shape[2]:
        out = _resample_rows(out.transpose(2, 3), box_resample_matrix(x.shape[2], h)).transpose(2, 3)
    return out.to(torch.float32)


class Pixelate(SeverityCorruption):
    family = "pixelate"
    parameter = "resize_factor"
    values = (0.30, 0.25, 0.20, 0.15, 0.10)
    source = MEDMNIST_C + " 'pixelate' (Pillow BOX resize down and back up)"
    formula = ("BOX-resize to (int(H f), int(W f)), then BOX-resize back to (H, W), each with Pillow's fixed-point "
               "arithmetic and 8-bit rounding (own code, checked against Pillow)")
    frame = "relative to the frame (int(H f) x int(W f)): the same blocks per anatomy at any frame size"
    exact = "exact (integer arithmetic in float64)"

    def corrupt(self, x, keys, value, state):
        _, _, h, w = x.shape
        small = box_resize(x, max(1, int(h * value)), max(1, int(w * value)))
        return box_resize(small, h, w)


def jpeg_roundtrip(image: np.ndarray, quality: int) -> np.ndarray:
    """Encode an (H, W) grey or (H, W, 3) RGB uint8 array as JPEG at ``quality`` with Pillow and decode it."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=int(quality))
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return np.array(decoded.convert("L" if image.ndim == 2 else "RGB"))


class JPEG(SeverityCorruption):
    family = "jpeg"
    parameter = "quality"
    values = (50, 30, 15, 10, 7)
    source = MEDMNIST_C + " 'jpeg_compression' (Pillow JPEG save at quality q)"
    formula = ("encode and decode with libjpeg through Pillow (Pillow's defaults, as MedMNIST-C), on the CPU, one "
               "image at a time; an image whose channels are equal is coded as one grey channel, which gives the "
               "grey level MedMNIST-C's RGB-then-grey path gives")
    frame = "quality unchanged; JPEG's 8x8 blocks are frame pixels (as on MedMNIST-C's 224-px images)"
    exact = "exact: always runs on the CPU (the batch is copied there and back)"

    def corrupt(self, x, keys, value, state):
        b, c, h, w = x.shape
        if c not in (1, 3):
            raise ValueError(f"jpeg corrupts 1- or 3-channel images, got {c} channels")
        cpu = grey_levels(x).to("cpu", torch.uint8)
        grey = (cpu == cpu[:, :1]).flatten(1).all(1).tolist()
        out = torch.empty(b, c, h, w, dtype=torch.uint8)
        for i in range(b):  # one image at a time: the codec works on single images
            if grey[i]:
                out[i] = torch.from_numpy(jpeg_roundtrip(cpu[i, 0].numpy(), value)).expand(c, h, w)
            else:
                out[i] = torch.from_numpy(jpeg_roundtrip(cpu[i].permute(1, 2, 0).numpy(), value)).permute(2, 0, 1)
        return out.to(x.device, torch.float32)
