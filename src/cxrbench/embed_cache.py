"""The on-disk image-embedding cache: an interrupted or repeated run resumes where it stopped.

One entry (a float32 ``(n_images, D)`` tensor file under ``<cache root>/embeddings/``) per image-embedding key.
The key names everything that changes the embeddings: the model and its checkpoint hash, the dataset's images
and their text labels, the model's geometry, the corruption and its parameters, the seed, the precision, the
memory format and the level, plus :data:`CODE_VERSION`. :func:`image_embedding_key` is the one place that builds
keys, :meth:`EmbeddingCache.read` the one place that reads an entry and :meth:`EmbeddingCache.write` the one that
writes one (atomically), so integrity checks, finer-grained keys or another kind of entry each change one place.
"""

from __future__ import annotations

from pathlib import Path

import torch

from cxrbench.cache import cache_root, stable_hash
from cxrbench.config import SweepConfig
from cxrbench.corruptions import Occlusion
from cxrbench.io import atomic_path
from cxrbench.models import Encoder
from cxrbench.prepared import Prepared

#: bump when the embedding pipeline changes in a way the key does not capture: every old entry is then unused
CODE_VERSION = "embed-v1"


def image_embedding_key(encoder: Encoder, prep: Prepared, occlusion: Occlusion, cfg: SweepConfig,
                        level: float) -> dict:
    """Everything that determines one level's image embeddings, as a JSON-serialisable dict."""
    info = encoder.info
    return {"model": info.name, "sha": info.checkpoint_sha256, "images": prep.images_hash(),
            "geometry": encoder.geometry_key, "corruption": occlusion.params(), "seed": cfg.seed,
            "precision": cfg.precision, "channels_last": cfg.channels_last, "code": CODE_VERSION, "level": level}


class EmbeddingCache:
    """Reads and writes embedding entries by key; a disabled cache (``--no-cache``) reads nothing, writes nothing."""

    def __init__(self, enabled: bool = True, root: str | Path | None = None):
        self.enabled = enabled
        self.root = Path(root) if root is not None else cache_root() / "embeddings"

    def path(self, key: dict) -> Path:
        return self.root / f"{stable_hash(key, length=24)}.pt"

    def read(self, key: dict) -> torch.Tensor | None:
        """The cached tensor for ``key``, or None when there is none (or the cache is disabled)."""
        if not self.enabled:
            return None
        path = self.path(key)
        return torch.load(path, weights_only=True) if path.is_file() else None

    def write(self, key: dict, embeddings: torch.Tensor) -> None:
        if self.enabled:
            with atomic_path(self.path(key)) as tmp:
                torch.save(embeddings, tmp)

    def read_levels(self, keys: dict[float, dict]) -> dict[float, torch.Tensor]:
        """``{level: tensor}`` for every level whose key has an entry (``keys``: level -> key)."""
        found = {lv: self.read(key) for lv, key in keys.items()}
        return {lv: emb for lv, emb in found.items() if emb is not None}

    def write_levels(self, keys: dict[float, dict], embeddings: dict[float, torch.Tensor]) -> None:
        """One entry per level of ``embeddings``, under that level's key."""
        for lv, emb in embeddings.items():
            self.write(keys[lv], emb)
