"""Counter-based randomness for corruptions: every random number is a hash of (image key, position, stream).

An image's key is a 32-bit hash of (seed, image id) (``image_key``); a random value is then an integer hash of
(key, position index, stream salt) computed with int64 tensor arithmetic (``position_hash``). No generator state
is involved, so the value for one image does not depend on the batch it is in, its position in that batch, the
device, or how many other values were drawn before. Uniforms and normals are derived from those integers in
float64.

Two kinds of randomness are drawn:

* per-pixel fields (noise): ``uniforms`` / ``normals`` on the device of ``keys``;
* per-image scalars (an angle, a position): ``image_uniforms`` always on the CPU, so anything computed from them
  (offsets, matrices) is bit-identical whatever device the images are on.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import torch

_M32 = 0xFFFFFFFF
_TWO32 = float(1 << 32)


def image_key(image_id: str, seed: int) -> int:
    """A 32-bit key per (seed, image id); all of an image's randomness derives from it.

    (The ``cxrbench-occlusion`` prefix is historical: keys must stay unchanged so recorded masks stay valid.)
    """
    return int.from_bytes(hashlib.sha256(f"cxrbench-occlusion:{int(seed)}:{image_id}".encode()).digest()[:4], "little")


def image_keys(image_ids: Sequence[str], seed: int) -> torch.Tensor:
    return torch.tensor([image_key(i, seed) for i in image_ids], dtype=torch.int64)


def stream_salt(name: str) -> int:
    """A stable 32-bit salt for a named random stream (e.g. ``"gaussian_noise"``), independent of Python's hash."""
    return int.from_bytes(hashlib.sha256(f"cxrbench-stream:{name}".encode()).digest()[:4], "little")


def mix32(x: torch.Tensor) -> torch.Tensor:
    """A 32-bit integer hash (xor-shift-multiply, 3 rounds) on int64 tensors holding values in [0, 2**32).

    The multiplier is below 2**27, so no product overflows int64 on any device.
    """
    for _ in range(3):
        x = (((x >> 16) ^ x) * 0x045D9F3B) & _M32
    return (x >> 16) ^ x


def position_hash(keys: torch.Tensor, n: int, salt: int) -> torch.Tensor:
    """(B, n) uniform 32-bit values (int64), one per (image key, position index, salt)."""
    keys = keys.to(torch.int64).view(-1, 1)
    a = mix32(keys ^ salt)
    b = mix32((keys + 0x9E3779B9 + salt) & _M32)
    pos = torch.arange(n, device=keys.device, dtype=torch.int64).view(1, -1)
    return mix32(mix32((pos + a) & _M32) ^ b)


def uniforms(keys: torch.Tensor, n: int, salt: int) -> torch.Tensor:
    """(B, n) float64 uniforms in (0, 1): ``(h + 0.5) / 2**32`` (exact in float64, never 0 or 1)."""
    return (position_hash(keys, n, salt).to(torch.float64) + 0.5) / _TWO32


def normals(keys: torch.Tensor, n: int, salt: int) -> torch.Tensor:
    """(B, n) float64 standard normals by inverse CDF of ``uniforms`` (so |z| <= 6.3)."""
    return torch.special.ndtri(uniforms(keys, n, salt))


def image_uniforms(keys: torch.Tensor, m: int, salt: int) -> torch.Tensor:
    """(B, m) float64 uniforms in (0, 1) per image, computed on the CPU whatever the device of ``keys``."""
    return uniforms(keys.detach().to("cpu"), m, salt)
