"""On-disk cache locations and content hashing.

Everything cxrbench caches (rendered phantoms, decoded geometry tensors, embeddings) lives under one root:
``$CXRBENCH_CACHE`` if set, else ``$XDG_CACHE_HOME/cxrbench``, else ``~/.cache/cxrbench``. Entries are keyed by
content (hashes of what produced them), so a stale entry is never reused, and written atomically
(:mod:`cxrbench.io`), so an interrupted run never leaves a half-written entry behind.
"""

from __future__ import annotations

import hashlib
import json
import os
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
