"""A dataset prepared for retrieval: merged texts, image -> text labels, and the one decode path.

Images are decoded in a thread pool (Pillow releases the GIL while decoding) by :meth:`Prepared.map_images`, the
only place that decodes: each image is handed to a function (a model's geometry stage, a validity check) as soon as
it is decoded and the full-size image is dropped at once, so memory holds only what the function returns.
:meth:`Prepared.geometry` keeps the uint8 geometry tensors, shared by every model with the same geometry key, in
memory and (with ``use_cache``) on disk, so an image is decoded once per geometry key per run, and not at all when
the on-disk geometry cache has it.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import torch

from cxrbench import metrics
from cxrbench.cache import EntryStore, cache_root, stable_hash
from cxrbench.config import SweepConfig
from cxrbench.data import Dataset, ImageRecord, load_dataset
from cxrbench.data.lung_masks import check_masks
from cxrbench.data.records import count_summary
from cxrbench.errors import ConfigError, DataError
from cxrbench.models import Encoder


def release_freed_memory() -> None:
    """Hand freed heap memory back to the OS (glibc ``malloc_trim``) after decoding a dataset.

    glibc raises its mmap threshold once large blocks are freed, so decoded radiographs end up on the heap and
    their memory stays resident after they are freed: measured here, the sweep's peak resident memory on a 4x
    tiled iu-phantom gallery was 3.6 GB without trimming. (A fixed low mmap threshold also fixes it but made
    every large tensor allocation an mmap and the image tower 2x slower.) No effect outside glibc.
    """
    if sys.platform != "linux":
        return
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


class Prepared:
    """A dataset prepared for the sweep (see the module docstring).

    With ``dataset.on_bad_image == "skip"`` every image is decoded once up front to validate it; those that fail
    are left out with a warning and listed in ``bad_images`` (and in the results).
    """

    def __init__(self, dataset: Dataset, progress: bool = False, workers: int | None = None,
                 use_cache: bool = False):
        self.workers = workers or min(8, os.cpu_count() or 1)
        self.use_cache = use_cache
        self.bad_images: list[dict] = []
        self._kept: dict[str, Any] | None = None  # decoded images held by keep_decoded()
        self._geometry: dict[tuple, torch.Tensor] = {}
        self.dataset = dataset
        if dataset.on_bad_image == "skip":
            self.dataset = self._drop_undecodable(progress)
        elif dataset.on_bad_image != "error":
            raise ConfigError(f"on_bad_image must be 'error' or 'skip', not {dataset.on_bad_image!r}")
        dataset = self.dataset
        self.unique_texts, study_label = metrics.merge_texts(dataset.texts)
        self.image_records = dataset.images
        self.image_study = dataset.image_study
        self.image_text = [study_label[j] for j in self.image_study]
        self.image_ids = [im.image_id for im in self.image_records]
        if len(set(self.image_ids)) != len(self.image_ids):
            raise ConfigError(f"dataset {dataset.name}: image ids are not unique")
        if not self.image_ids:
            raise ConfigError(f"dataset {dataset.name}/{dataset.split}: no images to evaluate")

    def _decode_each(self, records: Sequence[ImageRecord], fn: Callable[[Any], Any], progress: bool, desc: str,
                     keep_errors: bool = False) -> list:
        """The one decode path: ``fn(decoded image)`` for every record, in a thread pool, in order.

        An image held by :meth:`keep_decoded` is not decoded again. With ``keep_errors`` a :class:`DataError`
        (undecodable image) is returned in the image's place instead of raised.
        """
        from tqdm.auto import tqdm

        load, kept = self.dataset.load_image, self._kept

        def one(rec: ImageRecord):
            try:
                image = kept[rec.image_id] if kept is not None and rec.image_id in kept else load(rec)
                return fn(image)  # the full-size image is freed as soon as fn returns
            except DataError as exc:
                if not keep_errors:
                    raise
                return exc

        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            return list(tqdm(pool.map(one, records), total=len(records), desc=desc, unit="img",
                             disable=not progress))

    def map_images(self, fn: Callable[[Any], Any] | None = None, indices: Sequence[int] | None = None,
                   progress: bool = False, desc: str = "decode images") -> list:
        """``fn(image)`` for every decoded image (all, or those at ``indices``); ``fn=None``: the decoded images.

        Training and scripts use this; the sweep goes through :meth:`geometry`, which uses it too.
        """
        want = range(len(self.image_records)) if indices is None else indices
        return self._decode_each([self.image_records[i] for i in want], fn or (lambda image: image), progress,
                                 desc)

    def keep_decoded(self, progress: bool = False) -> None:
        """Decode every image once and hold it in memory, so later calls reuse it (scripts/gpu_check.py times
        decoding apart this way). The sweep does not: full-size radiographs held in memory cost GBs."""
        self._kept = None
        self._kept = dict(zip(self.image_ids, self.map_images(progress=progress)))

    def _drop_undecodable(self, progress: bool) -> Dataset:
        # decode to validate only: keeping every decoded image would hold GBs for full-size radiographs
        dataset = self.dataset
        decoded = self._decode_each(dataset.images, lambda image: True, progress, "decode images", keep_errors=True)
        ok = set()
        for rec, outcome in zip(dataset.images, decoded):
            if isinstance(outcome, Exception):
                self.bad_images.append({"image_id": rec.image_id, "source": str(rec.source), "error": str(outcome)})
            else:
                ok.add(rec.image_id)
        if self.bad_images:
            shown = "; ".join(f"{b['source']}" for b in self.bad_images[:5])
            warnings.warn(f"{dataset.name}: left out {len(self.bad_images)} image(s) that could not be decoded "
                          f"(--on-bad-image skip): {shown}", stacklevel=3)
        studies, dropped_studies = [], 0
        for st in dataset.studies:
            images = tuple(im for im in st.images if im.image_id in ok)
            if images:
                studies.append(replace(st, images=images))
            else:
                dropped_studies += 1
        summary = {**dataset.summary, "skipped_undecodable_images": len(self.bad_images),
                   "dropped_studies_without_decodable_images": dropped_studies}
        summary.update(count_summary(studies))
        return replace(dataset, studies=studies, summary=summary)

    def summary(self) -> dict:
        return {**self.dataset.summary, "unique_texts": len(self.unique_texts), "images": len(self.image_ids)}

    def images_hash(self) -> str:
        return stable_hash(self.dataset.name, self.dataset.split, self.dataset.provenance, self.image_ids,
                           self.image_text)

    def chunk_hash(self, start: int, end: int) -> str:
        """What identifies the images ``start:end`` (one batch of whole studies) wherever they sit in a dataset:
        the dataset, its provenance and the image ids, in order (the split and the text labels do not change an
        image's embedding, so ``--max-studies`` and ``--policy`` reuse the chunks they share)."""
        return stable_hash(self.dataset.name, self.dataset.provenance, self.image_ids[start:end])

    def frame_size(self, encoder: Encoder) -> tuple[int, int]:
        """(H, W) of the encoder's input frame, from its geometry tensors if present, else from the first image."""
        for (geometry_key, _), tensors in self._geometry.items():
            if geometry_key == encoder.geometry_key:
                return int(tensors.shape[-2]), int(tensors.shape[-1])
        first = self.map_images(encoder.geometry, indices=[0])[0]
        return int(first.shape[-2]), int(first.shape[-1])

    def geometry(self, encoder: Encoder, progress: bool, indices: Sequence[int] | None = None) -> torch.Tensor:
        """uint8 geometry tensors (all images, or those at ``indices``), shared by models with one geometry key.

        With ``use_cache`` the tensors of every image are kept as one checksummed entry under
        ``<cache>/geometry/`` (a damaged entry is reported, deleted and recomputed); ``indices`` are then taken
        from that entry when it exists.
        """
        whole = (encoder.geometry_key, None)
        key = (encoder.geometry_key, None if indices is None else stable_hash(list(indices)))
        if key in self._geometry:
            return self._geometry[key]
        if indices is not None and whole in self._geometry:
            return self._geometry[whole][list(indices)]
        store = EntryStore("geometry", enabled=self.use_cache, root=cache_root())
        disk_key = {"images": self.images_hash(), "geometry": encoder.geometry_key}
        if indices is not None:
            full = store.read(disk_key)
            if full is not None and len(full) == len(self.image_ids):
                self._geometry[whole] = full
                return full[list(indices)]
            disk_key["indices"] = key[1]
        cached = store.read(disk_key)
        if cached is not None:
            self._geometry[key] = cached
            return cached
        tensors = self.map_images(encoder.geometry, indices, progress, desc=f"decode + geometry {key[0]}")
        self._geometry[key] = torch.stack(tensors)
        del tensors
        release_freed_memory()
        store.write(disk_key, self._geometry[key])  # reusable by later runs: decoding dominates on a GPU
        return self._geometry[key]


def prepare(cfg: SweepConfig, progress: bool = True, dataset: Dataset | None = None) -> Prepared:
    """The configured dataset (or ``dataset``), cut to ``cfg.max_studies`` if set, prepared for the sweep."""
    if dataset is None:
        dataset = load_dataset(cfg.dataset, split=cfg.split, policy=cfg.policy, progress=progress,
                               **cfg.dataset_options)
    if cfg.max_studies is not None:
        dataset = dataset.subset(cfg.max_studies)
    if dataset.lung_masks is not None and any(cfg.corruption(n, lung_masks=True).uses_masks for n in cfg.corruptions):
        dataset = check_masks(dataset, progress)  # a missing mask: an error now, or its image left out (skip)
    return Prepared(dataset, progress=progress, use_cache=cfg.use_cache)
