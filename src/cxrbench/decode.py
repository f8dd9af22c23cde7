"""How the sweep decodes images: the decode modes, the counters a run records, and decoding JPEGs on a GPU.

``--decode exact`` (the default) decodes every image in full with Pillow, exactly as the models' own
preprocessing does. ``--decode fast`` (opt-in) lets a JPEG be decoded reduced:

* on the CPU, with Pillow's draft mode: libjpeg scales in the DCT domain by 1/2, 1/4 or 1/8, and the smallest scale
  whose size is still at least what every geometry of the run needs is used (:func:`combined_need` of each
  model's :meth:`cxrbench.models.Encoder.decode_need`: its shorter or longer side resized to n pixels);
* on CUDA, with torchvision's batched nvjpeg decoder (:func:`decode_jpegs_on_device`): the full-size image is
  decoded on the GPU, averaged down by the same power-of-two factor there, and only the reduced image is copied
  to the host for the geometry stage.

The geometry stages then resample from a smaller image, so the embeddings move a little; docs/performance.md gives
how far, per model. An image the fast path cannot take (not a JPEG, an unusual mode, an EXIF rotation on the GPU
path, a decoder error) is decoded in full as in ``exact``.
"""

from __future__ import annotations

import io
import math
import threading
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch
    from PIL import Image

DECODE_MODES = ("exact", "fast")
#: the reduction factors libjpeg's DCT scaling offers (Pillow's draft picks among these)
DCT_FACTORS = (8, 4, 2, 1)

#: ``need(width, height) -> (w, h) | None`` (see :data:`cxrbench.data.images.DraftSize`)
Need = Callable[[int, int], "tuple[int, int] | None"]
#: what a geometry resizes (:meth:`cxrbench.models.Encoder.decode_need`): ("shorter" | "longer", pixels)
DecodeNeed = tuple[str, int]


def shorter_side_at_least(width: int, height: int, side: int) -> tuple[int, int]:
    """(w, h) of ``width`` x ``height`` scaled so that its shorter side is ``side`` (rounded up, never enlarged)."""
    scale = side / min(width, height)
    return min(width, math.ceil(width * scale)), min(height, math.ceil(height * scale))


def longer_side_at_least(width: int, height: int, side: int) -> tuple[int, int]:
    """(w, h) of ``width`` x ``height`` scaled so that its longer side is ``side`` (rounded up, never enlarged)."""
    scale = side / max(width, height)
    return min(width, math.ceil(width * scale)), min(height, math.ceil(height * scale))


def need_size(need: DecodeNeed, width: int, height: int) -> tuple[int, int]:
    """The smallest size an upright ``width`` x ``height`` image may be decoded at for a geometry of ``need``."""
    kind, side = need
    if kind == "shorter":
        return shorter_side_at_least(width, height, side)
    if kind == "longer":
        return longer_side_at_least(width, height, side)
    raise ValueError(f"decode need {need!r}: the side must be 'shorter' or 'longer'")


def combined_need(needs: Iterable[DecodeNeed | None]) -> Need | None:
    """``need(width, height)``: the smallest size that serves every geometry of ``needs`` (the largest in each
    dimension); None when one of them needs the full-size image, or there are none."""
    needs = list(needs)
    if not needs or any(n is None for n in needs):
        return None
    for n in needs:
        need_size(n, 1, 1)  # a malformed need is an error here, not in a decode thread

    def need(width: int, height: int) -> tuple[int, int]:
        sizes = [need_size(n, width, height) for n in needs]
        return max(s[0] for s in sizes), max(s[1] for s in sizes)

    return need


def reduction_factor(width: int, height: int, want: tuple[int, int] | None) -> int:
    """The factor Pillow's draft mode picks for a ``width`` x ``height`` JPEG asked for at least ``want``: the
    largest of 8, 4, 2, 1 that divides both sides by no more than they allow (1 when ``want`` is None)."""
    if want is None:
        return 1
    room = min(width // max(1, want[0]), height // max(1, want[1]))
    return next(f for f in DCT_FACTORS if room >= f)


@dataclass
class DecodeStats:
    """What a run's decoding did: images decoded (each counted every time it is decoded), of which on the GPU,
    the thread-seconds spent decoding and in geometry stages, and the wall time of the decode passes."""

    images: int = 0
    on_device: int = 0
    decode_thread_s: float = 0.0
    geometry_thread_s: float = 0.0
    wall_s: float = 0.0
    passes: list[dict] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, images: int = 0, decode_s: float = 0.0, geometry_s: float = 0.0, on_device: int = 0) -> None:
        with self._lock:
            self.images += images
            self.on_device += on_device
            self.decode_thread_s += decode_s
            self.geometry_thread_s += geometry_s

    def copy(self) -> DecodeStats:
        return DecodeStats(self.images, self.on_device, self.decode_thread_s, self.geometry_thread_s, self.wall_s,
                           list(self.passes))

    def minus(self, before: DecodeStats) -> DecodeStats:
        """What was decoded since ``before`` (a :meth:`copy`)."""
        return DecodeStats(self.images - before.images, self.on_device - before.on_device,
                           self.decode_thread_s - before.decode_thread_s,
                           self.geometry_thread_s - before.geometry_thread_s, self.wall_s - before.wall_s,
                           self.passes[len(before.passes):])

    def split_s(self) -> tuple[float, float]:
        """(decode, geometry) seconds: the passes' wall time shared in proportion to the thread-seconds of each."""
        busy = self.decode_thread_s + self.geometry_thread_s
        if busy <= 0:
            return 0.0, 0.0
        return self.wall_s * self.decode_thread_s / busy, self.wall_s * self.geometry_thread_s / busy

    def as_dict(self) -> dict:
        decode_s, geometry_s = self.split_s()
        return {"images_decoded": self.images, "decoded_on_device": self.on_device, "decode_s": decode_s,
                "geometry_s": geometry_s, "passes": list(self.passes)}


def _header(raw: bytes, path: Path) -> tuple[tuple[int, int], str, int, str | None]:
    """(size, mode, EXIF orientation, format) from the file header (size limits checked: DataError)."""
    from PIL import Image

    from cxrbench.data.images import check_size

    with Image.open(io.BytesIO(raw)) as im:
        check_size(path, *im.size)
        return im.size, im.mode, im.getexif().get(0x0112, 1), im.format


def decode_jpegs_on_device(paths: Sequence[str | Path], need: Need | None,
                           device: torch.device) -> list[Image.Image | None]:
    """Decode the JPEGs among ``paths`` with nvjpeg on ``device`` (one batched call per colour mode), reduce each
    on the device by the factor the draft mode would use (box average), and return them as PIL images on the host;
    None where the file has to go through the CPU path instead (not a baseline 8-bit L/RGB JPEG, an EXIF rotation,
    unreadable, or the device decoder refused the batch)."""
    import numpy as np
    import torch
    import torch.nn.functional as F
    from PIL import Image

    from cxrbench.errors import DataError

    out: list[Image.Image | None] = [None] * len(paths)
    jobs: dict[str, list[tuple[int, torch.Tensor, int]]] = {"L": [], "RGB": []}
    for i, p in enumerate(paths):
        path = Path(p)
        try:
            raw = path.read_bytes()
            (w, h), mode, orientation, fmt = _header(raw, path)
        except (OSError, DataError, ValueError, SyntaxError):
            continue  # the CPU path names the problem
        if fmt != "JPEG" or mode not in jobs or orientation != 1:
            continue
        factor = reduction_factor(w, h, None if need is None else need(w, h))
        jobs[mode].append((i, torch.frombuffer(bytearray(raw), dtype=torch.uint8), factor))
    from torchvision.io import ImageReadMode, decode_jpeg

    for mode, items in jobs.items():
        if not items:
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # torchvision >= 0.29 marks its decoders deprecated
                decoded = decode_jpeg([data for _, data, _ in items], device=device,
                                      mode=ImageReadMode.GRAY if mode == "L" else ImageReadMode.RGB)
        except (RuntimeError, ValueError):
            continue  # e.g. a progressive or damaged JPEG nvjpeg refuses: the CPU path decodes these
        for (i, _, factor), pixels in zip(items, decoded):
            if factor > 1:
                pixels = F.avg_pool2d(pixels[None].float(), factor, factor, ceil_mode=True)[0].round_().to(torch.uint8)
            arr = np.ascontiguousarray(pixels.permute(1, 2, 0).cpu().numpy())
            out[i] = Image.fromarray(arr[:, :, 0], mode="L") if mode == "L" else Image.fromarray(arr, mode="RGB")
            del pixels
    return out


__all__ = ["DCT_FACTORS", "DECODE_MODES", "DecodeNeed", "DecodeStats", "Need", "combined_need",
           "decode_jpegs_on_device", "longer_side_at_least", "need_size", "reduction_factor", "shorter_side_at_least"]
