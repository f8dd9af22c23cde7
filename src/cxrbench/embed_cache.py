"""The on-disk embedding caches: an interrupted or repeated run resumes where it stopped, and texts are embedded
once per model and text set, not once per run.

One entry (a float32 ``(chunk images, D)`` tensor, a checksummed entry of :mod:`cxrbench.cache`) per
image-embedding key. The key names everything that changes the embeddings: the model and its checkpoint hash, the
dataset and the images of one *chunk of studies* (the batch they are embedded in, :func:`cxrbench.engine.image_chunks`),
the model's geometry, the corruption's name and parameters (``params()``: a severity family's include its
per-severity values and an implementation version; ``lungs`` says where its lung fields come from), the seed, the
precision, the memory format and the level, plus :data:`CODE_VERSION` (and, under ``--decode fast`` only, the decode
identity: exact-decode keys are unchanged). A chunk's entries are written as soon as the chunk is embedded, so a run killed at any
point loses at most the chunk in progress, and a rerun embeds only what is missing.

:func:`image_embedding_key` is the one place that builds keys, :meth:`EmbeddingCache.read` the one place that reads
an entry (verifying its checksum: a damaged entry is reported, deleted and recomputed) and
:meth:`EmbeddingCache.write` the one that writes one (atomically).

Text embeddings are another kind, ``EmbeddingCache(kind="texts")``: one float32 ``(unique texts, D)`` entry per
:func:`text_embedding_key`: the model and its checkpoint hash, the adapter's tokenizer settings
(:meth:`cxrbench.models.Encoder.text_settings`), the text policy, a hash of the texts in order, the precision and
:data:`TEXT_CODE_VERSION`. :func:`cached_text_embeddings` reads it or embeds and writes it. A model without a
checkpoint hash is never cached (nothing names its weights).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import torch

from cxrbench.cache import EntryStore, cache_root, stable_hash
from cxrbench.config import SweepConfig
from cxrbench.corruptions import Corruption
from cxrbench.engine import uses_channels_last
from cxrbench.models import Encoder
from cxrbench.prepared import Prepared

#: bump when the embedding pipeline changes in a way the key does not capture: every old entry is then unused
CODE_VERSION = "embed-v2"
#: the same for text embeddings
TEXT_CODE_VERSION = "texts-v1"

#: (chunk index, level): what one image-embedding entry holds
ChunkLevel = tuple[int, float]


def image_embedding_key(encoder: Encoder, prep: Prepared, corruption: Corruption, cfg: SweepConfig,
                        level: float, chunk: tuple[int, int], lung_masks: str | None = None) -> dict:
    """Everything that determines one level's image embeddings of the images ``chunk`` = (start, end) (one batch
    of whole studies), as a JSON-serialisable dict. ``lung_masks`` names where a ``lungs(masks)`` corruption's
    masks come from (``Dataset.lung_masks.source``)."""
    info = encoder.info
    key = {"model": info.name, "sha": info.checkpoint_sha256, "images": prep.chunk_hash(*chunk),
           "geometry": encoder.geometry_key, "corruption": corruption.params(), "seed": cfg.seed,
           "precision": cfg.precision, "channels_last": uses_channels_last(encoder, cfg.channels_last),
           "code": CODE_VERSION, "level": level}
    if corruption.uses_masks:  # added only here, so the keys of every other corruption stay as they were
        key["lung_masks"] = lung_masks
    decode = prep.decode_identity()
    if decode is not None:  # --decode fast: other pixels; exact-decode keys stay as they always were
        key["decode"] = decode
    return key


def text_embedding_key(encoder: Encoder, prep: Prepared, precision: str) -> dict | None:
    """Everything that determines a model's embeddings of the run's unique texts (see the module docstring);
    None when the model has no checkpoint hash."""
    info = encoder.info
    if not info.checkpoint_sha256:
        return None
    return {"model": info.name, "sha": info.checkpoint_sha256, "text": encoder.text_settings(),
            "policy": prep.dataset.policy, "texts": stable_hash(list(prep.unique_texts), length=32),
            "n_texts": len(prep.unique_texts), "precision": precision, "code": TEXT_CODE_VERSION}


def cached_text_embeddings(cache: EmbeddingCache, key: dict | None,
                           embed: Callable[[], torch.Tensor]) -> tuple[torch.Tensor, bool]:
    """(the text embeddings, whether they came from the cache): read ``key``'s entry (checked: a damaged entry is
    reported, deleted and recomputed; one of the wrong shape is ignored), else ``embed()`` and write it."""
    if key is not None:
        found = cache.read(key)
        if found is not None and found.dim() == 2 and len(found) == key["n_texts"]:
            return found, True
    embeddings = embed()
    if key is not None:
        cache.write(key, embeddings)
    return embeddings, False


def model_text_embeddings(cache: EmbeddingCache, encoder: Encoder, prep: Prepared, precision: str,
                          embed: Callable[[], torch.Tensor]) -> tuple[torch.Tensor, bool]:
    """(the model's embeddings of the run's unique texts, whether they came from the cache): through
    :func:`cached_text_embeddings` when the cache is on, else ``embed()``."""
    key = text_embedding_key(encoder, prep, precision) if cache.enabled else None
    return cached_text_embeddings(cache, key, embed)


class EmbeddingCache:
    """Reads and writes embedding entries by key; a disabled cache (``--no-cache``) never touches the disk."""

    def __init__(self, enabled: bool = True, root: str | Path | None = None, kind: str = "embeddings"):
        self.store = EntryStore(kind, enabled=enabled, root=root if root is not None else cache_root())

    @property
    def enabled(self) -> bool:
        return self.store.active

    def path(self, key: dict) -> Path:
        return self.store.path(key)

    def read(self, key: dict) -> torch.Tensor | None:
        """The cached tensor for ``key``, or None: no entry, a damaged one (deleted, with a warning), or no cache."""
        return self.store.read(key)

    def write(self, key: dict, embeddings: torch.Tensor) -> None:
        self.store.write(key, embeddings)

    def present(self, keys: Mapping[ChunkLevel, dict]) -> set[ChunkLevel]:
        """The (chunk, level)s of ``keys`` whose entry exists (not read: :meth:`read` still checks each one)."""
        if not self.enabled:
            return set()
        return {ck for ck, key in keys.items() if self.path(key).is_file()}

    def read_chunks(self, keys: Mapping[ChunkLevel, dict]) -> dict[ChunkLevel, torch.Tensor]:
        """``{(chunk, level): tensor}`` for every entry of ``keys`` that is cached."""
        if not self.enabled:
            return {}
        found = {ck: self.read(key) for ck, key in keys.items()}
        return {ck: emb for ck, emb in found.items() if emb is not None}

    def write_chunk(self, keys: Mapping[ChunkLevel, dict], chunk: int, embeddings: Mapping[float, torch.Tensor]) -> None:
        """One entry per level of one chunk's ``embeddings``, under that (chunk, level)'s key."""
        for lv, emb in embeddings.items():
            self.write(keys[(chunk, lv)], emb)


def chunk_keys(encoder: Encoder, prep: Prepared, corruption: Corruption, cfg: SweepConfig,
               chunks: list[tuple[int, int]], levels: Sequence[float] | None = None,
               lung_masks: str | None = None) -> dict[ChunkLevel, dict]:
    """The key of every (chunk, level) of a sweep's (model, corruption), at ``levels`` (default: the corruption's
    levels in ``cfg``)."""
    levels = cfg.levels_for(corruption) if levels is None else levels
    return {(c, lv): image_embedding_key(encoder, prep, corruption, cfg, lv, chunk, lung_masks)
            for c, chunk in enumerate(chunks) for lv in levels}


class CleanChunks:
    """One model's clean (level 0) image embeddings per chunk, shared by every corruption of the run: level 0 is
    the identity for every corruption, so the images are embedded once (or read from the cache once), not once per
    corruption. Off under torch.distributed (each rank holds only its own chunks)."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self.chunks: dict[int, torch.Tensor] = {}

    def remember(self, embeddings: dict[tuple[int, float], torch.Tensor]) -> None:
        """Keep the level-0 entries of ``{(chunk, level): embeddings}``."""
        for (c, lv), emb in embeddings.items():
            if self.enabled and lv == 0:
                self.chunks.setdefault(c, emb)

    def remember_chunk(self, chunk: int, embeddings: dict[float, torch.Tensor]) -> None:
        if self.enabled and 0 in embeddings:
            self.chunks.setdefault(chunk, embeddings[0].clone())

    def share(self, keys: dict[tuple[int, float], dict], cached: dict, cache: EmbeddingCache) -> dict:
        """``{(chunk, 0): embeddings}`` for this corruption's level-0 keys not in ``cached`` that an earlier
        corruption embedded; written to the cache under this corruption's keys too."""
        out = {}
        for (c, lv), key in keys.items():
            if lv == 0 and (c, lv) not in cached and c in self.chunks:
                out[(c, lv)] = self.chunks[c]
                cache.write(key, self.chunks[c])
        return out


__all__ = ["CODE_VERSION", "CleanChunks", "TEXT_CODE_VERSION", "EmbeddingCache", "cached_text_embeddings", "chunk_keys",
           "image_embedding_key", "model_text_embeddings", "text_embedding_key"]
