"""The one interface every corruption implements, and the base class of the severity families.

A corruption acts on a batch of geometry-stage tensors ``pixels`` (B, C, H, W) on the 0..255 scale (usually
uint8), in the model's input frame, on any device, given one 32-bit key per image (``hashing.image_keys``):

``name``                    what results call it (``gaussian_noise``, ``pixels``, ``lungs(template)``, ...)
``params() -> dict``        recorded with every result and in the embedding-cache key; always has ``family``
``level_kind``              ``"fraction"`` (occlusion: blocked fraction in [0, 1)) or ``"severity"`` (0..5)
``check_level(level)``      the level as float / int, or ConfigError naming the value
``prepare(pixels, keys, masks=None) -> state``
                            all randomness for the batch, drawn once and reused for every level
``apply(pixels, keys, level, state=None) -> Tensor``
                            float32 on the 0..255 scale, same device and shape; level 0 is the identity
``uses_masks``              True when ``prepare`` needs per-image lung masks (B, H, W) bool

Severity families (this module's ``SeverityCorruption``) return integral values in 0..255 (a float32 tensor that
round-trips to uint8 exactly), as if the corrupted image had been stored as an 8-bit image.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Protocol, runtime_checkable

import torch

from cxrbench.errors import ConfigError

LEVEL_KINDS = ("fraction", "severity")
SEVERITIES = (1, 2, 3, 4, 5)
#: The side length (pixels) that MedMNIST-C's and ImageNet-C's parameters were set for.
REFERENCE_SIDE = 224

#: Where published severity parameters come from (repository, file, commit read).
MEDMNIST_C = ("MedMNIST-C, francescodisalvo05/medmnistc-api medmnistc/corruptions/registry.py @ 8acfd27, "
              "CORRUPTIONS_DS['chestmnist']")
IMAGENET_C = "ImageNet-C, hendrycks/robustness ImageNet-C/create_c/make_imagenet_c.py @ 8190fe3"


@runtime_checkable
class Corruption(Protocol):
    name: str
    level_kind: str
    uses_masks: bool

    def params(self) -> dict: ...

    def check_level(self, level: Any) -> float | int: ...

    def prepare(self, pixels: torch.Tensor, keys: torch.Tensor, masks: torch.Tensor | None = None) -> Any: ...

    def apply(self, pixels: torch.Tensor, keys: torch.Tensor, level: Any, state: Any = None) -> torch.Tensor: ...


def check_severity(level: Any) -> int:
    """``level`` as an int in 0..5 (0 = clean); ConfigError for anything else (2.5, 6, -1, 'x', True)."""
    if isinstance(level, bool):
        raise ConfigError(f"severity {level!r} is not an integer; give 0 (clean) or 1..5")
    try:
        value = float(level)
    except (TypeError, ValueError):
        raise ConfigError(f"severity {level!r} is not a number; give 0 (clean) or an integer 1..5") from None
    if not math.isfinite(value) or value != int(value):
        raise ConfigError(f"severity {level!r} is not an integer; severities are 0 (clean) and 1..5")
    if not 0 <= int(value) <= SEVERITIES[-1]:
        raise ConfigError(f"severity {level!r} is outside 0..5; severities are 0 (clean) and 1..5")
    return int(value)


def frame_scale(h: int, w: int) -> float:
    """How much larger the model frame is than the 224-px images the published parameters were set for."""
    return min(h, w) / REFERENCE_SIDE


def check_batch(pixels: torch.Tensor, keys: torch.Tensor) -> None:
    if pixels.dim() != 4:
        raise ValueError(f"corruptions take a (B, C, H, W) batch, got shape {tuple(pixels.shape)}")
    if keys.dim() != 1 or keys.shape[0] != pixels.shape[0]:
        raise ValueError(f"need one key per image: {pixels.shape[0]} images, keys of shape {tuple(keys.shape)}")


def grey_levels(x: torch.Tensor) -> torch.Tensor:
    """Round to the nearest grey level (half to even) and clip to 0..255; float32."""
    return x.round().clamp_(0, 255).to(torch.float32)


class SeverityCorruption:
    """A corruption with five published severities. Subclasses set the class attributes and ``corrupt``.

    ``values`` holds the five per-severity parameters (JSON-able), ``parameter`` names them, ``formula`` says
    what the corruption computes, ``source`` where the values come from, ``frame`` how they map to the model
    frame, ``exact`` what is bit-identical across devices. ``draw`` returns the batch's randomness (default:
    none).
    """

    family: ClassVar[str]
    parameter: ClassVar[str]
    values: ClassVar[tuple]
    formula: ClassVar[str]
    source: ClassVar[str]
    frame: ClassVar[str]
    exact: ClassVar[str]
    level_kind: ClassVar[str] = "severity"
    uses_masks: ClassVar[bool] = False
    #: bump when the implementation changes the output (part of params, so of the embedding-cache key)
    version: ClassVar[int] = 1

    @property
    def name(self) -> str:
        return self.family

    def options(self) -> dict:
        """Constructor options (recorded in params)."""
        return {}

    def params(self) -> dict:
        return {"family": self.family, self.parameter: list(self.values), **self.options(), "version": self.version}

    def check_level(self, level: Any) -> int:
        return check_severity(level)

    def value(self, level: Any) -> Any:
        """The parameter at severity ``level`` (1..5)."""
        s = self.check_level(level)
        if s == 0:
            raise ConfigError(f"{self.name}: severity 0 is the clean image and has no parameter")
        return self.values[s - 1]

    def draw(self, pixels: torch.Tensor, keys: torch.Tensor) -> dict:
        """The batch's randomness (per-pixel fields on the device of ``pixels``, per-image scalars)."""
        return {}

    def prepare(self, pixels: torch.Tensor, keys: torch.Tensor, masks: torch.Tensor | None = None) -> dict:
        check_batch(pixels, keys)
        return self.draw(pixels, keys.to(pixels.device))

    def corrupt(self, x: torch.Tensor, keys: torch.Tensor, value: Any, state: dict) -> torch.Tensor:
        """``x``: float32 grey levels (B, C, H, W); returns float32 integral values in 0..255."""
        raise NotImplementedError

    def apply(self, pixels: torch.Tensor, keys: torch.Tensor, level: Any, state: dict | None = None) -> torch.Tensor:
        s = self.check_level(level)
        x = pixels.to(torch.float32)
        if s == 0:
            return x
        check_batch(pixels, keys)
        keys = keys.to(pixels.device)
        if state is None:
            state = self.draw(pixels, keys)
        return self.corrupt(x, keys, self.values[s - 1], state)

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self.options().items())
        return f"{type(self).__name__}({opts})"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.params() == self.params()

    def __hash__(self) -> int:
        return hash((type(self).__name__, repr(self.options())))
