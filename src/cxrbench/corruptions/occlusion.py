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
``center``   one square of side ``s`` (as ``block``) at the centre of the frame: top-left corner
             ``((H-s)//2, (W-s)//2)``. No randomness.
``periphery`` everything outside a centred rectangle of the frame's aspect ratio that keeps ``1-p`` of the area:
             kept size ``min(H, floor(H*sqrt(1-p) + 0.5)) x min(W, floor(W*sqrt(1-p) + 0.5))`` (a square in a
             square frame), top-left corner ``((H-kh)//2, (W-kw)//2)``. No randomness.
``lungs``    scattered pixels inside the lung fields: each image's lung pixels get a random ranking and level p
             blocks the first ``floor(p*n_lung + 0.5)`` of them (nothing outside the lungs). The lung fields are
             per-image masks given to ``prepare(pixels, keys, masks=...)`` (``lung_fields="masks"``, recorded
             as ``lungs(masks)``) or the fixed template of :mod:`cxrbench.corruptions.lung_template`
             (``lung_fields="template"``, recorded as ``lungs(template)``: NOT a segmentation).

Achieved level
--------------
Rounding to whole pixels, squares or patches means the blocked fraction differs a little from the nominal level.
:meth:`Occlusion.achieved_level` gives the fraction actually blocked in an H x W frame (of the frame's pixels;
for ``lungs``, of the lung-field pixels): exact for every mode but ``patches`` and ``lungs(masks)``; for
``patches`` it is the mean over the random patch orders, ``k / n_patches``, which is exact when the patch size
divides the frame (each patch is equally likely to be among the k blocked, so the expected blocked area is
``k / n`` of the frame even with cut edge patches); ``lungs(masks)`` depends on each image's mask (None).
Results record it next to the nominal level, and a sweep refuses a configuration where the two differ by more
than :data:`LEVEL_TOLERANCE` (``--patch-size 1000`` on a 224-pixel frame blocks 100% at level 0.5 and 0% at
0.25): :meth:`Occlusion.check_achieved` names the patch sizes that would work.

All modes are *nested*: whatever is blocked at level p stays blocked at every higher level (one ranking or one
(u, v) per image, shared across levels), and *deterministic per (seed, image id)*: the randomness is a
counter-based integer hash of (image key, position) computed with int64 tensor arithmetic, so the mask does not
depend on the batch, the device or the order in which images are processed.

Interface
---------
``prepare(pixels, keys, masks=None)`` (the interface of :mod:`cxrbench.corruptions.base`) returns the mask state
*and* the fill values, drawn once per batch; ``apply(pixels, keys, level, state=state)`` then needs nothing
else. The older form ``prepare(keys, h, w)`` (three arguments) returns the mask state alone, for ``mask`` and for
callers that pass ``fill=`` to ``apply`` themselves.

Fills
-----
``zero``   0 (black). ``mean``: the image's own per-channel mean over all its pixels (clean image, so the value does
not depend on the level). ``noise``: uniform integers in 0..255, a hash of (image key, pixel, channel), so a blocked
pixel's value is the same at every level.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from cxrbench.corruptions.base import check_batch
from cxrbench.corruptions.hashing import image_key, image_keys, mix32  # noqa: F401  (re-exported)
from cxrbench.corruptions.hashing import position_hash as _position_hash
from cxrbench.corruptions.lung_template import TEMPLATE_VERSION, lung_template
from cxrbench.errors import ConfigError, DataError

MODES = ("pixels", "block", "patches", "center", "periphery", "lungs")
#: where ``lungs`` takes the lung fields from
LUNG_FIELDS = ("template", "masks")
FILLS = ("zero", "mean", "noise")
#: 8 levels from 0% to 81%. The paper states 8 levels from 0 to 81%; its intermediate values are a
#: reconstruction (the squares of 0..0.9 without 0.01), see README "Occlusion".
PAPER_LEVELS = (0.0, 0.09, 0.16, 0.25, 0.36, 0.49, 0.64, 0.81)
LEVEL_PRESETS = {"paper": PAPER_LEVELS}

#: the largest |achieved - nominal| blocked fraction a sweep accepts (2 percentage points)
LEVEL_TOLERANCE = 0.02

_MAX_POSITIONS = 1 << 24  # positions must fit beside a 32-bit hash in an int64 sort key


def check_level(level: float) -> float:
    """Return ``level`` as float if it lies in [0, 1); else raise ConfigError naming the value."""
    try:
        value = float(level)
    except (TypeError, ValueError):
        raise ConfigError(f"occlusion level {level!r} is not a number; give a fraction in [0, 1)") from None
    if not (math.isfinite(value) and 0.0 <= value < 1.0):
        shown = f"{level:g}" if isinstance(level, float) else str(level)  # as typed: '1', not 1.0
        raise ConfigError(
            f"occlusion level {shown!r} is outside [0, 1): give the blocked fraction, e.g. 0.25 for 25%"
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


def _ranks(keys: torch.Tensor, n: int, salt: int, last: torch.Tensor | None = None) -> torch.Tensor:
    """(B, n) int32: a uniformly random permutation rank of each position (0 = first to be blocked).

    Positions where ``last`` (B, n) bool is True are ranked after all others (their order among themselves is
    random too), so the others take ranks 0..count-1.
    """
    if n > _MAX_POSITIONS:
        raise ConfigError(f"occlusion supports at most {_MAX_POSITIONS} positions per image, got {n}")
    sort_key = (_position_hash(keys, n, salt) << 24) | torch.arange(n, device=keys.device).view(1, -1)
    if last is not None:
        sort_key = sort_key | (last.to(torch.int64) << 56)
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


def kept_size(level: float, h: int, w: int) -> tuple[int, int]:
    """``periphery``: the centred rectangle that stays visible, (kh, kw), about (1 - level) of the area."""
    f = math.sqrt(1.0 - check_level(level))
    return min(h, _round_half_up(h * f)), min(w, _round_half_up(w * f))


def _ranges(values: Sequence[int]) -> str:
    """``[1, 2, 3, 5, 7, 8]`` -> ``"1-3, 5, 7-8"``."""
    parts: list[str] = []
    for v in values:
        if parts and v == int(parts[-1].split("-")[-1]) + 1:
            parts[-1] = f"{parts[-1].split('-')[0]}-{v}"
        else:
            parts.append(str(v))
    return ", ".join(parts)


def check_masks(masks: Any, b: int, h: int, w: int, device: torch.device) -> torch.Tensor:
    """Lung masks as (B, H, W) bool on ``device`` (non-bool: nonzero = lung); DataError otherwise."""
    if not isinstance(masks, torch.Tensor) or tuple(masks.shape) != (b, h, w):
        got = tuple(masks.shape) if isinstance(masks, torch.Tensor) else type(masks).__name__
        raise DataError(f"lung masks must be a (B, H, W) = ({b}, {h}, {w}) tensor in the model frame, got {got}")
    return (masks if masks.dtype == torch.bool else masks != 0).to(device)


@dataclass(frozen=True)
class Occlusion:
    """One occlusion configuration. ``prepare`` draws the per-image randomness once; ``mask`` gives any level."""

    mode: str = "pixels"
    fill: str = "zero"
    patch_size: int = 16
    lung_fields: str = "template"

    level_kind = "fraction"

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"unknown occlusion mode {self.mode!r}; choose one of {', '.join(MODES)}")
        if self.fill not in FILLS:
            raise ConfigError(f"unknown occlusion fill {self.fill!r}; choose one of {', '.join(FILLS)}")
        if self.mode == "patches" and (not isinstance(self.patch_size, int) or self.patch_size < 1):
            raise ConfigError(f"patch_size must be a positive integer, got {self.patch_size!r}")
        if self.lung_fields not in LUNG_FIELDS:
            raise ConfigError(f"unknown lung_fields {self.lung_fields!r}; choose one of {', '.join(LUNG_FIELDS)} "
                              "(template: a fixed lung-field template; masks: per-image masks from the data)")

    @property
    def name(self) -> str:
        return f"lungs({self.lung_fields})" if self.mode == "lungs" else self.mode

    @property
    def uses_masks(self) -> bool:
        """True when ``prepare`` needs per-image lung masks (``lungs(masks)``)."""
        return self.mode == "lungs" and self.lung_fields == "masks"

    def params(self) -> dict:
        out = {"family": "occlusion", "mode": self.mode, "fill": self.fill}
        if self.mode == "patches":
            out["patch_size"] = self.patch_size
        if self.mode == "lungs":
            out["lung_fields"] = self.lung_fields
            if self.lung_fields == "template":
                out["template_version"] = TEMPLATE_VERSION
        return out

    def check_level(self, level: Any) -> float:
        return check_level(level)

    # -- randomness, once per image -------------------------------------------------------
    def prepare(self, *args: Any, masks: torch.Tensor | None = None) -> dict:
        """The batch's state, drawn once and reused for every level. Two forms:

        ``prepare(pixels, keys, masks=None)``: mask state plus the fill values (``state["fill"]``), so that
        ``apply(pixels, keys, level, state=state)`` needs nothing else (the corruption interface).
        ``prepare(keys, h, w, masks=None)``: the mask state alone (ranks, block anchor or lung ranks).
        """
        if len(args) == 3:
            keys, h, w = args
            return self._mask_state(keys, int(h), int(w), masks)
        if len(args) != 2:
            raise TypeError("prepare takes (pixels, keys) or (keys, h, w)")
        pixels, keys = args
        check_batch(pixels, keys)
        keys = keys.to(pixels.device)
        _, _, h, w = pixels.shape
        state = self._mask_state(keys, h, w, masks)
        state["fill"] = self.fill_values(pixels, keys)
        return state

    def _mask_state(self, keys: torch.Tensor, h: int, w: int, masks: torch.Tensor | None) -> dict:
        if self.mode == "pixels":
            return {"ranks": _ranks(keys, h * w, salt=1).view(-1, h, w), "h": h, "w": w}
        if self.mode == "patches":
            gh, gw = math.ceil(h / self.patch_size), math.ceil(w / self.patch_size)
            return {"ranks": _ranks(keys, gh * gw, salt=2).view(-1, gh, gw), "h": h, "w": w}
        if self.mode == "block":
            uv = _position_hash(keys, 2, salt=3).to(torch.float64) / float(1 << 32)
            return {"uv": uv, "h": h, "w": w}
        if self.mode in ("center", "periphery"):
            return {"b": int(keys.shape[0]), "device": keys.device, "h": h, "w": w}
        return self._lung_state(keys, h, w, masks)

    def _lung_state(self, keys: torch.Tensor, h: int, w: int, masks: torch.Tensor | None) -> dict:
        b = int(keys.shape[0])
        if self.lung_fields == "masks":
            if masks is None:
                raise ConfigError("lungs(masks) occlusion needs per-image lung masks: pass masks=(B, H, W) bool to "
                                  "prepare, or use lung_fields='template'")
            lungs = check_masks(masks, b, h, w, keys.device)
        else:
            if masks is not None:
                raise ConfigError("lungs(template) occlusion was given lung masks; use lung_fields='masks' so "
                                  "results are recorded as lungs(masks)")
            lungs = lung_template(h, w, keys.device).unsqueeze(0).expand(b, h, w)
        flat = lungs.reshape(b, h * w)
        ranks = _ranks(keys, h * w, salt=5, last=~flat).view(-1, h, w)
        return {"ranks": ranks, "n_lung": flat.sum(1), "h": h, "w": w}

    def mask(self, state: dict, level: float) -> torch.Tensor:
        """(B, H, W) bool, True where a pixel is blocked at ``level``."""
        level = check_level(level)
        h, w = state["h"], state["w"]
        if self.mode == "pixels":
            return state["ranks"] < blocked_count(level, h * w)
        if self.mode == "lungs":
            count = torch.floor(state["n_lung"].to(torch.float64) * level + 0.5).to(torch.int64)
            return state["ranks"] < count.view(-1, 1, 1)
        if self.mode in ("center", "periphery"):
            out = torch.zeros(state["b"], h, w, dtype=torch.bool, device=state["device"])
            if self.mode == "center":
                s = block_side(level, h, w)
                top, left = (h - s) // 2, (w - s) // 2
                out[:, top : top + s, left : left + s] = True
                return out
            kh, kw = kept_size(level, h, w)
            top, left = (h - kh) // 2, (w - kw) // 2
            out[:] = True
            out[:, top : top + kh, left : left + kw] = False
            return out
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

    # -- achieved levels ---------------------------------------------------------------------
    def achieved_level(self, level: float, h: int, w: int) -> float | None:
        """The fraction of an H x W frame's pixels (``lungs``: of its lung pixels) that ``level`` blocks (see the
        module docstring; None for ``lungs(masks)``, which depends on each image)."""
        level = check_level(level)
        n = h * w
        if self.mode == "pixels":
            return blocked_count(level, n) / n
        if self.mode in ("block", "center"):
            return block_side(level, h, w) ** 2 / n
        if self.mode == "periphery":
            kh, kw = kept_size(level, h, w)
            return 1.0 - kh * kw / n
        if self.mode == "patches":
            cells = math.ceil(h / self.patch_size) * math.ceil(w / self.patch_size)
            return blocked_count(level, cells) / cells
        if self.lung_fields == "masks":
            return None
        n_lung = int(lung_template(h, w).sum())
        return math.floor(level * n_lung + 0.5) / n_lung if n_lung else 0.0

    def check_achieved(self, levels: Sequence[float], h: int, w: int,
                       tolerance: float = LEVEL_TOLERANCE) -> dict[float, float | None]:
        """``{level: achieved}`` in an H x W frame; ConfigError when a level's achieved fraction is more than
        ``tolerance`` from it, naming the levels and (for ``patches``) the patch sizes that would work."""
        achieved = {lv: self.achieved_level(lv, h, w) for lv in levels}
        off = {lv: a for lv, a in achieved.items() if a is not None and abs(a - lv) > tolerance}
        if not off:
            return achieved
        shown = ", ".join(f"{lv:g} blocks {a:.1%}" for lv, a in off.items())
        hint = "choose other levels"
        if self.mode == "patches":
            fits = [ps for ps in range(1, max(h, w) + 1)
                    if all(abs(Occlusion("patches", self.fill, ps).achieved_level(lv, h, w) - lv) <= tolerance
                           for lv in levels)]
            hint = f"patch sizes that keep every level within it here: {_ranges(fits)}" if fits else hint
        elif self.mode in ("block", "center", "periphery", "pixels"):
            hint = "the frame is too small for these levels; choose other levels"
        raise ConfigError(f"occlusion {self.name}{f' (patch size {self.patch_size})' if self.mode == 'patches' else ''}"
                          f" in the model's {h}x{w} frame: level {shown}, more than {tolerance * 100:g} percentage points "
                          f"off (LEVEL_TOLERANCE); {hint}")

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
        """Occlude a (B, C, H, W) batch (any dtype, 0..255 scale); returns float32 on the same device.

        ``state`` from either form of ``prepare``; the fill comes from ``fill``, else ``state["fill"]``, else is
        computed here.
        """
        x = pixels.float()
        if check_level(level) == 0.0:
            return x
        _, _, h, w = x.shape
        state = state if state is not None else self.prepare(keys.to(x.device), h, w)
        m = self.mask(state, level).unsqueeze(1)  # (B, 1, H, W) broadcasts over channels
        if fill is None:
            fill = state.get("fill")
        value = self.fill_values(pixels, keys) if fill is None else fill
        if isinstance(value, float):
            return x.masked_fill(m, value)
        return torch.where(m, value.to(x.dtype).expand_as(x), x)
