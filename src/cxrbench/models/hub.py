"""Offline look-ups of Hugging Face ids: the adapters' settings may name a local path or a hub id.

Nothing here downloads. A hub id resolves only through the local Hugging Face cache (``HF_HUB_CACHE`` /
``HF_HOME``), the way ``HF_HUB_OFFLINE=1`` would; a missing entry is None and each adapter turns that into a
WeightsNotAvailable that says which setting to point at a folder instead.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path


def split_setting(value: str | Path) -> tuple[str, bool]:
    """``(path or id, is_hub_id)`` for ``local-dir:PATH``, ``hf-hub:ID``, a path, or a bare ``org/name``.

    A bare ``org/name`` counts as a hub id only when no such path exists, so a relative folder of that shape
    still wins. Paths come back with ``~`` expanded.
    """
    value = str(value).strip()
    if value.startswith("local-dir:"):
        return str(Path(value[len("local-dir:"):]).expanduser()), False
    if value.startswith("hf-hub:"):
        return value[len("hf-hub:"):], True
    path = Path(value).expanduser()
    looks_like_id = value.count("/") == 1 and not value.startswith((".", "/", "~"))
    return (value, True) if looks_like_id and not path.exists() else (str(path), False)


def cached_file(repo_id: str, filename: str, revisions: Iterable[str] = ("main",)) -> Path | None:
    """``filename`` of ``repo_id`` in the local Hugging Face cache (first revision that has it), or None."""
    from huggingface_hub import try_to_load_from_cache

    for revision in revisions:
        found = try_to_load_from_cache(repo_id, filename, revision=revision)
        if isinstance(found, str):
            return Path(found)
    return None
