"""Test images for the corruption tests (imported by name: pytest puts the tests folder on sys.path)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def textured(n: int, c: int, h: int, w: int, seed: int) -> torch.Tensor:
    """(n, c, h, w) uint8: a smooth random field plus fine texture, in 10..245 (grey images: equal channels)."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(n, 1, h // 8 + 2, w // 8 + 2, generator=g)
    img = F.interpolate(low, size=(h, w), mode="bicubic", align_corners=False)
    img = img + 0.25 * torch.rand(n, 1, h, w, generator=g)
    lo, hi = img.amin(dim=(2, 3), keepdim=True), img.amax(dim=(2, 3), keepdim=True)
    img = 10 + 235 * (img - lo) / (hi - lo)
    return img.round().to(torch.uint8).expand(n, c, h, w).contiguous()
