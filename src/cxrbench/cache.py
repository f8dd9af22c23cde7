"""On-disk cache: locations, content hashing, checksummed entries, and what to do when the disk says no.

Everything cxrbench caches lives under one root: ``$CXRBENCH_CACHE`` if set, else ``$XDG_CACHE_HOME/cxrbench``,
else ``~/.cache/cxrbench``. One folder per kind (:data:`KINDS`):

``embeddings/``  image embeddings, one entry per (model + checkpoint hash, dataset images, geometry, corruption
                 and its parameters, seed, precision, memory format, level, chunk of studies)
``geometry/``    decoded images in a model's input frame (uint8), one entry per (dataset images, geometry key)
``texts/``       text embeddings, one entry per (model + checkpoint hash, tokenizer settings, text policy, texts,
                 precision)
``iu-phantom/``  the rendered ``iu-phantom`` radiographs (PNG), per renderer version and size

Entries are keyed by content (hashes of what produced them), so a stale entry is never reused; written atomically
(:mod:`cxrbench.io`), so an interrupted run never leaves a half-written entry behind; and they carry a checksum of
their content that is verified on every read. Tensor entries (embeddings, geometry) use this module's own format
(:func:`write_entry`, :func:`read_entry`): a magic line, a JSON header with the dtype, shape, the key the entry
was written for and a SHA-256 over header and data, then the raw bytes. Nothing is unpickled. A rendered phantom
carries the SHA-256 of its pixels in a PNG text chunk (:mod:`cxrbench.data.iu_phantom`).

A bad entry (truncated, bit flips, the wrong key) is reported in one warning line, deleted and recomputed: never
used. A cache that cannot be written or read (a full disk, a read-only or missing location) turns into no cache
for the rest of the process, with one warning (:class:`EntryStore`); the run goes on. ``cxrbench cache info`` and
``cxrbench cache clear [--older-than 30d]`` show and empty it (:func:`info`, :func:`clear`).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import time
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cxrbench.errors import ConfigError
from cxrbench.io import atomic_path

if TYPE_CHECKING:
    import torch

#: cache kinds (folders under the root) and what each holds
KINDS = {
    "embeddings": "image embeddings per (model, checkpoint, dataset images, geometry, corruption, seed, precision, "
                  "memory format, level, chunk of studies)",
    "geometry": "decoded images in each model's input frame (uint8) per (dataset images, geometry)",
    "texts": "text embeddings per (model, checkpoint, tokenizer settings, text policy, texts, precision)",
    "iu-phantom": "rendered iu-phantom radiographs (PNG) per renderer version and size",
}
ENTRY_MAGIC = b"CXRBENCH-ENTRY-1\n"
ENTRY_SUFFIX = ".entry"
_MAX_HEADER = 1 << 20
_DTYPES = ("float32", "float16", "bfloat16", "float64", "uint8", "int8", "int16", "int32", "int64", "bool")


class CacheWarning(UserWarning):
    """A cache entry was bad (and recomputed), or the cache cannot be used (and the run goes on without it)."""


class CorruptEntry(Exception):
    """A cache entry failed its checksum or its format check; the message says how."""


def cache_root() -> Path:
    env = os.environ.get("CXRBENCH_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "cxrbench"


def stable_hash(*parts: object, length: int = 16) -> str:
    """A short hex digest of JSON-serialisable parts (stable across runs and machines)."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:length]


# --- checksummed tensor entries -----------------------------------------------------------------------------------


def _canonical(meta: dict) -> bytes:
    return json.dumps(meta, sort_keys=True, separators=(",", ":"), default=str).encode()


def write_entry(path: str | Path, tensor: torch.Tensor, key: dict | None = None) -> None:
    """Write ``tensor`` (any shape, a dtype of :data:`_DTYPES`) atomically as a checksummed entry for ``key``."""
    import torch

    t = tensor.detach().to("cpu").contiguous()
    dtype = str(t.dtype).removeprefix("torch.")
    if dtype not in _DTYPES:
        raise ValueError(f"cache entries hold tensors of dtype {', '.join(_DTYPES)}, not {dtype}")
    data = t.reshape(-1).view(torch.uint8).numpy() if t.numel() else b""
    meta = {"dtype": dtype, "shape": list(t.shape), "nbytes": int(t.numel() * t.element_size()), "key": key}
    digest = hashlib.sha256(_canonical(meta))
    digest.update(data)
    header = json.dumps({**meta, "sha256": digest.hexdigest()}, sort_keys=True, default=str).encode() + b"\n"
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        fh.write(ENTRY_MAGIC)
        fh.write(header)
        fh.write(data)


def read_header(path: str | Path) -> dict:
    """The JSON header of an entry (not verified against the data; :func:`read_entry` does that)."""
    with open(path, "rb") as fh:
        return _read_header(fh)


def _read_header(fh) -> dict:
    if fh.read(len(ENTRY_MAGIC)) != ENTRY_MAGIC:
        raise CorruptEntry("not a cxrbench cache entry (bad magic line)")
    line = fh.readline(_MAX_HEADER)
    if not line.endswith(b"\n"):
        raise CorruptEntry("header line is truncated")
    try:
        header = json.loads(line)
    except ValueError as exc:
        raise CorruptEntry(f"header is not JSON ({exc})") from None
    if not isinstance(header, dict) or not {"dtype", "shape", "nbytes", "sha256"} <= set(header):
        raise CorruptEntry("header lacks dtype/shape/nbytes/sha256")
    return header


def read_entry(path: str | Path, key: dict | None = None) -> torch.Tensor:
    """The tensor stored at ``path``, after checking its format, its length, its checksum and (when given) that
    it was written for ``key``. Raises :class:`CorruptEntry` saying what is wrong, FileNotFoundError when there
    is no entry, and OSError when it cannot be read."""
    import torch

    with open(path, "rb") as fh:
        header = _read_header(fh)
        dtype, shape, nbytes = header["dtype"], header["shape"], header["nbytes"]
        if dtype not in _DTYPES or not isinstance(shape, list) or not all(isinstance(s, int) and s >= 0
                                                                            for s in shape):
            raise CorruptEntry(f"header has an invalid dtype or shape ({dtype!r}, {shape!r})")
        torch_dtype = getattr(torch, dtype)
        count = 1
        for s in shape:
            count *= s
        expected = count * torch.empty((), dtype=torch_dtype).element_size()
        if nbytes != expected:
            raise CorruptEntry(f"header says {nbytes} bytes but dtype and shape make {expected}")
        rest = os.fstat(fh.fileno()).st_size - fh.tell()
        if rest != nbytes:
            raise CorruptEntry(f"{rest} data bytes where the header says {nbytes} (truncated or appended to)")
        buf = torch.empty(nbytes, dtype=torch.uint8)
        view = memoryview(buf.numpy()) if nbytes else memoryview(b"")
        got = 0
        while got < nbytes:
            n = fh.readinto(view[got:])
            if not n:
                raise CorruptEntry(f"only {got} of {nbytes} data bytes could be read")
            got += n
    meta = {k: v for k, v in header.items() if k != "sha256"}
    digest = hashlib.sha256(_canonical(meta))
    digest.update(view)
    if digest.hexdigest() != header["sha256"]:
        raise CorruptEntry("checksum mismatch (the file was changed or damaged after it was written)")
    if key is not None and _canonical({"k": header.get("key")}) != _canonical({"k": key}):
        raise CorruptEntry("written for another key")
    return buf.view(torch_dtype).reshape(shape) if nbytes else torch.empty(shape, dtype=torch_dtype)


# --- stores: where entries live, and degrading to no cache ------------------------------------------------------

#: cache roots found unusable in this process -> the reason (one warning each; see :func:`cache_unusable`)
_UNUSABLE: dict[str, str] = {}


def warn(message: str, stacklevel: int = 3) -> None:
    """One warning line about the cache (:class:`CacheWarning`)."""
    warnings.warn(message, CacheWarning, stacklevel=stacklevel)


def cache_unusable(root: Path, exc: OSError, doing: str) -> None:
    """Note that the cache at ``root`` cannot be used (``exc`` while ``doing``); warn once per root."""
    key = str(root)
    if key in _UNUSABLE:
        return
    reason = exc.strerror or str(exc)
    _UNUSABLE[key] = reason
    warn(f"cache {root} cannot be used ({doing}: {reason}); continuing without the cache "
         "(set CXRBENCH_CACHE to a writable folder, or pass --no-cache)", stacklevel=4)


def is_unusable(root: Path) -> bool:
    return str(root) in _UNUSABLE


def reset_unusable() -> None:
    """Forget which caches were found unusable (tests; a long-lived process after freeing space)."""
    _UNUSABLE.clear()


class EntryStore:
    """Checksummed tensor entries of one kind (``<root>/<kind>/<hash of key>.entry``), read by key.

    ``read`` returns None when there is no entry; a bad entry is reported in one warning line, deleted, and None
    returned (the caller recomputes it). ``write`` writes atomically. When the disk refuses (full, read-only,
    unreadable), the store and every other store on the same root stop being used for the rest of the process,
    after one warning. A disabled store (``--no-cache``) never touches the disk.
    """

    def __init__(self, kind: str, enabled: bool = True, root: str | Path | None = None):
        self.kind = kind
        self.enabled = enabled
        self.root = Path(root) if root is not None else cache_root()

    @property
    def folder(self) -> Path:
        return self.root / self.kind

    @property
    def active(self) -> bool:
        return self.enabled and not is_unusable(self.root)

    def path(self, key: dict) -> Path:
        return self.folder / f"{stable_hash(key, length=24)}{ENTRY_SUFFIX}"

    def read(self, key: dict) -> torch.Tensor | None:
        if not self.active:
            return None
        path = self.path(key)
        try:
            tensor = read_entry(path, key)
        except FileNotFoundError:
            return None
        except CorruptEntry as exc:
            warn(f"cache entry {path} is damaged ({exc}); deleted, it will be recomputed")
            self._remove(path)
            return None
        except OSError as exc:
            if exc.errno in (errno.ENOTDIR, errno.ENOENT):
                return None
            cache_unusable(self.root, exc, f"reading {path.name}")
            return None
        with contextlib.suppress(OSError):
            os.utime(path)  # last use, for `cxrbench cache clear --older-than`
        return tensor

    def write(self, key: dict, tensor: torch.Tensor) -> None:
        if not self.active:
            return
        path = self.path(key)
        try:
            write_entry(path, tensor, key)
        except OSError as exc:
            cache_unusable(self.root, exc, f"writing {path.name}")

    def _remove(self, path: Path) -> None:
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            cache_unusable(self.root, exc, f"deleting the damaged {path.name}")


# --- cxrbench cache info / clear ----------------------------------------------------------------------------------


@dataclass
class KindInfo:
    kind: str
    folder: Path
    files: int = 0
    bytes: int = 0
    oldest: float | None = None  # mtime (last written or used)
    newest: float | None = None


def _files(folder: Path) -> Iterator[Path]:
    if not folder.is_dir():
        return
    for dirpath, _, names in os.walk(folder):
        for name in names:
            yield Path(dirpath) / name


def info(root: Path | None = None) -> list[KindInfo]:
    """Files, bytes and age of each kind of cache entry under ``root`` (default :func:`cache_root`)."""
    root = root or cache_root()
    out = []
    for kind in KINDS:
        k = KindInfo(kind, root / kind)
        for f in _files(k.folder):
            try:
                st = f.stat()
            except OSError:
                continue
            k.files += 1
            k.bytes += st.st_size
            k.oldest = st.st_mtime if k.oldest is None else min(k.oldest, st.st_mtime)
            k.newest = st.st_mtime if k.newest is None else max(k.newest, st.st_mtime)
        out.append(k)
    return out


def parse_age(text: str) -> float:
    """``30d``, ``12h``, ``45m``, ``90s`` or ``2w`` -> seconds; ConfigError naming the value otherwise."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
    value = str(text).strip().lower()
    try:
        number = float(value[:-1]) if value and value[-1] in units else float("nan")
    except ValueError:
        number = float("nan")
    if not (number >= 0) or number == float("inf"):
        raise ConfigError(f"--older-than {text!r}: give an age such as 30d, 12h, 45m or 2w")
    return number * units[value[-1]]


def clear(root: Path | None = None, kinds: Iterable[str] | None = None, older_than_s: float | None = None,
          now: float | None = None) -> tuple[int, int]:
    """Delete cache files (of ``kinds``, default all; only those not written or used for ``older_than_s``).
    Returns (files, bytes) deleted. Unknown kinds are a ConfigError."""
    root = root or cache_root()
    kinds = list(kinds or KINDS)
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise ConfigError(f"unknown cache kind(s) {', '.join(unknown)}; choose from {', '.join(KINDS)}")
    now = time.time() if now is None else now
    files = size = 0
    for kind in kinds:
        folder = root / kind
        if older_than_s is None and folder.is_dir():
            for f in _files(folder):
                files += 1
                size += _size(f)
            shutil.rmtree(folder)
            continue
        for f in list(_files(folder)):
            try:
                st = f.stat()
            except OSError:
                continue
            if now - st.st_mtime >= (older_than_s or 0):
                f.unlink(missing_ok=True)
                files += 1
                size += st.st_size
    return files, size


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0

