"""On-disk cache locations and atomic writes.

Everything cxrbench caches (rendered phantoms, decoded geometry tensors, embeddings) lives under one root:
``$CXRBENCH_CACHE`` if set, else ``$XDG_CACHE_HOME/cxrbench``, else ``~/.cache/cxrbench``. Entries are keyed by
content (hashes of what produced them), so a stale entry is never reused, and written atomically (a temporary
file in the same folder, then ``os.replace``), so an interrupted run never leaves a half-written entry behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


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


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it is renamed onto ``path``, on error removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_path, 0o666 & ~umask)  # mkstemp creates 0600; results and weights are meant to be shared
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_text_atomic(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
