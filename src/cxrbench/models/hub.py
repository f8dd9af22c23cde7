"""Offline look-ups of Hugging Face ids: the adapters' settings may name a local path or a hub id.

Nothing here downloads. A hub id resolves only through the local Hugging Face cache (``HF_HUB_CACHE`` /
``HF_HOME``), the way ``HF_HUB_OFFLINE=1`` would; a missing entry is None and each adapter turns that into a
WeightsNotAvailable that says which setting to point at a folder instead.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
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


def snapshot_folder(repo_id: str, filename: str, revisions: Iterable[str] = ("main",)) -> Path | None:
    """The local Hugging Face cache folder (snapshot) holding ``filename`` of ``repo_id``, or None."""
    found = cached_file(repo_id, filename, revisions)
    return None if found is None else found.parent


#: The weight files of an open_clip model folder, in open_clip's order of preference.
OPEN_CLIP_WEIGHT_FILES = (
    "open_clip_model.safetensors", "open_clip_pytorch_model.safetensors", "open_clip_pytorch_model.bin",
    "open_clip_pytorch_model.pth", "model.safetensors", "pytorch_model.bin", "pytorch_model.pth", "model.pth",
)

_OFFLINE_ENV = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")


@contextmanager
def offline() -> Iterator[None]:
    """Within this block Hugging Face libraries resolve ids from the local cache only (``HF_HUB_OFFLINE=1``),
    whatever the environment says; libraries that look up ids themselves (open_clip's text towers and
    tokenizers, ``from_pretrained``) then never touch the network."""
    import huggingface_hub.constants as hub_constants

    old_flag = hub_constants.HF_HUB_OFFLINE
    old_env = {k: os.environ.get(k) for k in _OFFLINE_ENV}
    hub_constants.HF_HUB_OFFLINE = True
    os.environ.update({k: "1" for k in _OFFLINE_ENV})
    try:
        yield
    finally:
        hub_constants.HF_HUB_OFFLINE = old_flag
        for key, value in old_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
