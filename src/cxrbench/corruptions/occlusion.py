"""Random occlusion in the model's input frame.

Occlusion is applied to a batch of geometry-stage tensors (B, C, H, W) on the 0..255 scale, after the model's
resize/crop/pad and before its intensity normalisation, so every model sees the stated fraction of *its*
input pixels blocked. A blocked pixel is blocked in all channels.

Modes
-----
``pixels``   scattered pixels: each image gets one random ranking of its H*W pixel positions and level p blocks the
             first ``floor(p*H*W + 0.5)`` of them (the paper's "p% of the pixels").
``block``    one contiguous square of side ``s = floor(sqrt(p*H*W) + 0.5)``, clipped to min(H, W), at a random
             position: the top-left corner is ``(floor(u*(H-s+1)), floor(v*(W-s+1)))`` with (u, v) in [0, 1) drawn
             once per image. Blocked pixels: ``s*s`` (less than p*H*W only when the clip applies).
``patches``  a grid of square patches of ``patch_size`` (edge patches are cut by the border); a random ranking
             of the patches and level p blocks the first ``floor(p*n_patches + 0.5)``.

All three are *nested*: whatever is blocked at level p stays blocked at every higher level (one ranking or one
(u, v) per image, shared across levels), and *deterministic per (seed, image id)*: the randomness is a
counter-based integer hash of (image key, position) computed with int64 tensor arithmetic, so the mask does not
depend on the batch, the device or the order in which images are processed.

Fills
-----
``zero``   0 (black). ``mean``: the image's own per-channel mean over all its pixels (clean image, so the value does
not depend on the level). ``noise``: uniform integers in 0..255, a hash of (image key, pixel, channel), so a blocked
pixel's value is the same at every level.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch

from cxrbench.errors import ConfigError

MODES = ("pixels", "block", "patches")
FILLS = ("zero", "mean", "noise")
#: 8 levels from 0% to 81%. The paper states 8 levels from 0 to 81%; its intermediate values are a
#: reconstruction (the squares of 0..0.9 without 0.01), see README "Occlusion".
PAPER_LEVELS = (0.0, 0.09, 0.16, 0.25, 0.36, 0.49, 0.64, 0.81)
LEVEL_PRESETS = {"paper": PAPER_LEVELS}

_M32 = 0xFFFFFFFF
_MAX_POSITIONS = 1 << 24  # positions must fit beside a 32-bit hash in an int64 sort key


def check_level(level: float) -> float:
    """Return ``level`` as float if it lies in [0, 1); else raise ConfigError naming the value."""
    try:
        value = float(level)
    except (TypeError, ValueError):
        raise ConfigError(f"occlusion level {level!r} is not a number; give a fraction in [0, 1)") from None
    if not (math.isfinite(value) and 0.0 <= value < 1.0):
        raise ConfigError(
            f"occlusion level {level!r} is outside [0, 1): give the blocked fraction, e.g. 0.25 for 25%"
        )
    return value


def parse_levels(spec: str | Iterable[float]) -> tuple[float, ...]:
    """Levels from a preset name (``paper``), a comma-separated string, or an iterable of numbers."""
    if isinstance(spec, str):
        if spec.strip() in LEVEL_PRESETS:
            return LEVEL_PRESETS[spec.strip()]
        items: Sequence = [x for x in spec.replace(" ", "").split(",") if x]
        if not items:
            raise ConfigError(f"no occlusion levels in {spec!r}; use 'paper' or e.g. '0,0.25,0.5'")
    else:
        items = list(spec)
    levels = tuple(check_level(x) for x in items)
    if len(set(levels)) != len(levels):
        raise ConfigError(f"occlusion levels {list(levels)} contain duplicates")
    return levels


def image_key(image_id: str, seed: int) -> int:
    """A 32-bit key per (seed, image id); all of an image's randomness derives from it."""
    return int.from_bytes(hashlib.sha256(f"cxrbench-occlusion:{int(seed)}:{image_id}".encode()).digest()[:4], "little")


def image_keys(image_ids: Sequence[str], seed: int) -> torch.Tensor:
    return torch.tensor([image_key(i, seed) for i in image_ids], dtype=torch.int64)


def mix32(x: torch.Tensor) -> torch.Tensor:
    """A 32-bit integer hash (xor-shift-multiply, 3 rounds) on int64 tensors holding values in [0, 2**32).

    The multiplier is below 2**27, so no product overflows int64 on any device.
    """
    for _ in range(3):
        x = (((x >> 16) ^ x) * 0x045D9F3B) & _M32
    return (x >> 16) ^ x


def _position_hash(keys: torch.Tensor, n: int, salt: int) -> torch.Tensor:
    """(B, n) uniform 32-bit values, one per (image key, position index, salt)."""
    keys = keys.to(torch.int64).view(-1, 1)
    a = mix32(keys ^ salt)
    b = mix32((keys + 0x9E3779B9 + salt) & _M32)
    pos = torch.arange(n, device=keys.device, dtype=torch.int64).view(1, -1)
    return mix32(mix32((pos + a) & _M32) ^ b)


def _ranks(keys: torch.Tensor, n: int, salt: int) -> torch.Tensor:
    """(B, n) int32: a uniformly random permutation rank of each position (0 = first to be blocked)."""
    if n > _MAX_POSITIONS:
        raise ConfigError(f"occlusion supports at most {_MAX_POSITIONS} positions per image, got {n}")
    sort_key = (_position_hash(keys, n, salt) << 24) | torch.arange(n, device=keys.device).view(1, -1)
    order = torch.argsort(sort_key, dim=1)
    ranks = torch.empty_like(order, dtype=torch.int32)
    src = torch.arange(n, device=keys.device, dtype=torch.int32).expand_as(order)
    ranks.scatter_(1, order, src)
    return ranks


def _round_half_up(x: float) -> int:
    return int(math.floor(x + 0.5))


def blocked_count(level: float, n: int) -> int:
    """How many of ``n`` positions (pixels or patches) a level blocks: floor(level*n + 0.5)."""
    return _round_half_up(check_level(level) * n)


def block_side(level: float, h: int, w: int) -> int:
    return min(_round_half_up(math.sqrt(check_level(level) * h * w)), h, w)


@dataclass(frozen=True)
class Occlusion:
    """One occlusion configuration. ``prepare`` draws the per-image randomness once; ``mask`` gives any level."""

    mode: str = "pixels"
    fill: str = "zero"
    patch_size: int = 16

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"unknown occlusion mode {self.mode!r}; choose one of {', '.join(MODES)}")
        if self.fill not in FILLS:
            raise ConfigError(f"unknown occlusion fill {self.fill!r}; choose one of {', '.join(FILLS)}")
        if self.mode == "patches" and (not isinstance(self.patch_size, int) or self.patch_size < 1):
            raise ConfigError(f"patch_size must be a positive integer, got {self.patch_size!r}")

    @property
    def name(self) -> str:
        return self.mode

    def params(self) -> dict:
        out = {"family": "occlusion", "mode": self.mode, "fill": self.fill}
        if self.mode == "patches":
            out["patch_size"] = self.patch_size
        return out

    # -- randomness, once per image -------------------------------------------------------
    def prepare(self, keys: torch.Tensor, h: int, w: int) -> dict:
        """Per-image random state for a batch: ranks (pixels / patches) or the block anchor (block)."""
        if self.mode == "pixels":
            return {"ranks": _ranks(keys, h * w, salt=1).view(-1, h, w), "h": h, "w": w}
        if self.mode == "patches":
            gh, gw = math.ceil(h / self.patch_size), math.ceil(w / self.patch_size)
            return {"ranks": _ranks(keys, gh * gw, salt=2).view(-1, gh, gw), "h": h, "w": w}
        uv = _position_hash(keys, 2, salt=3).to(torch.float64) / float(1 << 32)
        return {"uv": uv, "h": h, "w": w}

    def mask(self, state: dict, level: float) -> torch.Tensor:
        """(B, H, W) bool, True where a pixel is blocked at ``level``."""
        level = check_level(level)
        h, w = state["h"], state["w"]
        if self.mode == "pixels":
            return state["ranks"] < blocked_count(level, h * w)
        if self.mode == "patches":
            ranks = state["ranks"]
            blocked = ranks < blocked_count(level, ranks.shape[1] * ranks.shape[2])
            ps = self.patch_size
            full = blocked.repeat_interleave(ps, dim=1).repeat_interleave(ps, dim=2)
            return full[:, :h, :w]
        s = block_side(level, h, w)
        uv = state["uv"]
        b = uv.shape[0]
        out = torch.zeros(b, h, w, dtype=torch.bool, device=uv.device)
        if s == 0:
            return out
        tops = torch.floor(uv[:, 0] * (h - s + 1)).long().tolist()
        lefts = torch.floor(uv[:, 1] * (w - s + 1)).long().tolist()
        for i, (t, left) in enumerate(zip(tops, lefts)):
            out[i, t : t + s, left : left + s] = True
        return out

    # -- filling ---------------------------------------------------------------------------
    def fill_values(self, pixels: torch.Tensor, keys: torch.Tensor) -> torch.Tensor | float:
        """What blocked pixels become: a scalar, (B, C, 1, 1) means, or (B, C, H, W) noise (0..255 scale)."""
        if self.fill == "zero":
            return 0.0
        if self.fill == "mean":
            return pixels.float().mean(dim=(2, 3), keepdim=True)
        b, c, h, w = pixels.shape
        noise = _position_hash(keys.to(pixels.device), c * h * w, salt=4) & 0xFF
        return noise.view(b, c, h, w).to(torch.float32)

    def apply(self, pixels: torch.Tensor, keys: torch.Tensor, level: float, state: dict | None = None,
              fill: torch.Tensor | float | None = None) -> torch.Tensor:
        """Occlude a (B, C, H, W) batch (any dtype, 0..255 scale); returns float32 on the same device."""
        x = pixels.float()
        if check_level(level) == 0.0:
            return x
        _, _, h, w = x.shape
        state = state if state is not None else self.prepare(keys.to(x.device), h, w)
        m = self.mask(state, level).unsqueeze(1)  # (B, 1, H, W) broadcasts over channels
        value = self.fill_values(pixels, keys) if fill is None else fill
        if isinstance(value, float):
            return x.masked_fill(m, value)
        return torch.where(m, value.to(x.dtype).expand_as(x), x)
