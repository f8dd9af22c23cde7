"""A dataset prepared for retrieval: merged texts, image -> text labels, and the one decode path.

Images are decoded in a thread pool (Pillow releases the GIL while decoding) by :meth:`Prepared.map_images`, the
only place that decodes: each image is handed to a function (a model's geometry stage, a validity check) as soon as
it is decoded and the full-size image is dropped at once, so memory holds only what the function returns.

:meth:`Prepared.compute_geometry` is the sweep's decode pass: given every model of the run (and the images each
needs), it decodes each image once and runs every geometry stage that needs it on that one decoded image, keeping
the uint8 geometry tensors, shared by every model with the same geometry key, in memory and (with ``use_cache``)
on disk. An image is thus decoded once per run whatever the number of models, and not at all when the on-disk
geometry cache has it. :meth:`Prepared.geometry` serves one model's tensors from there (and runs the pass for that
model alone when nothing was computed before). ``decode="fast"`` decodes JPEGs reduced (:mod:`cxrbench.decode`);
:attr:`Prepared.decode_stats` counts every decode.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import torch

from cxrbench import metrics
from cxrbench.cache import CorruptEntry, EntryStore, cache_root, read_header, stable_hash
from cxrbench.config import SweepConfig
from cxrbench.data import Dataset, ImageRecord, load_dataset
from cxrbench.data.lung_masks import check_masks
from cxrbench.data.records import count_summary
from cxrbench.decode import DECODE_MODES, DecodeNeed, DecodeStats, Need, combined_need, decode_jpegs_on_device
from cxrbench.errors import ConfigError, DataError
from cxrbench.fingerprint import dataset_fingerprint
from cxrbench.models import Encoder
from cxrbench.provenance import resolve_device

#: images per batched nvjpeg call (``decode="fast"`` on CUDA): full-size radiographs, about 8 MB each on the GPU
DEVICE_DECODE_BATCH = 32


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
    are left out with a warning and listed in ``bad_images`` (and in the results). ``decode``: ``exact`` (default)
    or ``fast`` (:mod:`cxrbench.decode`); ``device``: where ``fast`` decodes JPEGs (CUDA: nvjpeg; else Pillow's
    draft mode).
    """

    def __init__(self, dataset: Dataset, progress: bool = False, workers: int | None = None,
                 use_cache: bool = False, decode: str = "exact", device: str | torch.device | None = None):
        if decode not in DECODE_MODES:
            raise ConfigError(f"decode must be one of {', '.join(DECODE_MODES)}, not {decode!r}")
        self.workers = workers or min(8, os.cpu_count() or 1)
        self.use_cache = use_cache
        self.decode = decode
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        #: every decode of this object, counted (``images_decoded`` in a run's timings)
        self.decode_stats = DecodeStats()
        self.bad_images: list[dict] = []
        self._kept: dict[str, Any] | None = None  # decoded images held by keep_decoded()
        # (geometry key, None) -> every image's tensors; (geometry key, hash of indices) -> those images' tensors
        self._geometry: dict[tuple[str, str | None], torch.Tensor] = {}
        self._rows: dict[tuple[str, str], dict[int, int]] = {}  # subset entry -> {image index: row}
        self._probe: dict[tuple[str, int], torch.Tensor] = {}  # (geometry key, image index) -> tensors (frame probe)
        self._needs: dict[str, DecodeNeed | None] = {}  # geometry key -> what it resizes (decode="fast")
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

    # -- the one decode path -----------------------------------------------------------------------------------
    def _decode_each(self, records: Sequence[ImageRecord], fn: Callable[[int, Any], Any], progress: bool, desc: str,
                     keep_errors: bool = False, need: Need | None = None) -> list:
        """The one decode path: ``fn(position, decoded image)`` for every record, in a thread pool, in order.

        An image held by :meth:`keep_decoded` is not decoded again. With ``keep_errors`` a :class:`DataError`
        (undecodable image) is returned in the image's place instead of raised. ``need`` (``decode="fast"``):
        decode JPEGs reduced to no less than ``need(width, height)``; on CUDA in batches with nvjpeg.
        """
        from tqdm.auto import tqdm

        kept, stats = self._kept, self.decode_stats
        fast = self.decode == "fast"
        load = self.dataset.load_image

        def one(position: int, image: Any = None):
            try:
                t0 = time.perf_counter()
                rec = records[position]
                decoded = 0
                if image is None:
                    if kept is not None and rec.image_id in kept:
                        image = kept[rec.image_id]
                    else:
                        image = load(rec, draft=need) if fast else load(rec)
                        decoded = 1
                t1 = time.perf_counter()
                out = fn(position, image)  # the full-size image is freed as soon as fn returns
                stats.add(images=decoded, decode_s=t1 - t0, geometry_s=time.perf_counter() - t1)
                return out
            except DataError as exc:
                if not keep_errors:
                    raise
                return exc

        positions = range(len(records))
        with ThreadPoolExecutor(max_workers=self.workers) as pool, \
                tqdm(total=len(records), desc=desc, unit="img", disable=not progress) as bar:
            if not (fast and self._decodes_on_device()):
                out = []
                for result in pool.map(one, positions):
                    out.append(result)
                    bar.update()
                return out
            out = []
            for start in range(0, len(records), DEVICE_DECODE_BATCH):
                batch = positions[start : start + DEVICE_DECODE_BATCH]
                t0 = time.perf_counter()
                images = decode_jpegs_on_device([records[p].source for p in batch], need, self.device)
                done = sum(im is not None for im in images)
                stats.add(images=done, on_device=done, decode_s=time.perf_counter() - t0)
                # the rest (and any image the device refused) go through the CPU path
                for result in pool.map(one, batch, images):
                    out.append(result)
                    bar.update()
                del images
            return out

    def _decodes_on_device(self) -> bool:
        """``decode="fast"`` on CUDA, for a dataset of image files: JPEGs are decoded with nvjpeg."""
        return self.device.type == "cuda" and self.dataset.loader_takes_draft

    def map_images(self, fn: Callable[[Any], Any] | None = None, indices: Sequence[int] | None = None,
                   progress: bool = False, desc: str = "decode images") -> list:
        """``fn(image)`` for every decoded image (all, or those at ``indices``); ``fn=None``: the decoded images.
        Always the exact decode. Training and scripts use this; the sweep goes through :meth:`compute_geometry`."""
        want = range(len(self.image_records)) if indices is None else indices
        fn = fn or (lambda image: image)
        exact, self.decode = self.decode, "exact"
        try:
            return self._decode_each([self.image_records[i] for i in want], lambda _, image: fn(image), progress,
                                     desc)
        finally:
            self.decode = exact

    def keep_decoded(self, progress: bool = False) -> None:
        """Decode every image once and hold it in memory, so later calls reuse it (scripts/gpu_check.py times
        decoding apart this way). The sweep does not: full-size radiographs held in memory cost GBs."""
        self._kept = None
        self._kept = dict(zip(self.image_ids, self.map_images(progress=progress)))

    def _drop_undecodable(self, progress: bool) -> Dataset:
        # decode to validate only: keeping every decoded image would hold GBs for full-size radiographs
        dataset = self.dataset
        decoded = self._decode_each(dataset.images, lambda _, image: True, progress, "decode images",
                                    keep_errors=True)
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

    # -- identities ----------------------------------------------------------------------------------------------
    def summary(self) -> dict:
        return {**self.dataset.summary, "unique_texts": len(self.unique_texts), "images": len(self.image_ids)}

    def run_summary(self) -> dict:
        """What a run records of its dataset: name, split, policy, counts, provenance, the images left out and the
        dataset fingerprint (the evaluation set's identity, :mod:`cxrbench.fingerprint`)."""
        dataset = self.dataset
        return {"name": dataset.name, "split": dataset.split, "policy": dataset.policy, **self.summary(),
                "provenance": dataset.provenance, "bad_images": self.bad_images,
                "fingerprint": dataset_fingerprint(dataset)}

    def images_hash(self) -> str:
        return stable_hash(self.dataset.name, self.dataset.split, self.dataset.provenance, self.image_ids,
                           self.image_text)

    def chunk_hash(self, start: int, end: int) -> str:
        """What identifies the images ``start:end`` (one batch of whole studies) wherever they sit in a dataset:
        the dataset, its provenance and the image ids, in order (the split and the text labels do not change an
        image's embedding, so ``--max-studies`` and ``--policy`` reuse the chunks they share)."""
        return stable_hash(self.dataset.name, self.dataset.provenance, self.image_ids[start:end])

    def decode_identity(self) -> dict | None:
        """What the decode mode adds to cache keys: None for ``exact`` (keys as they always were); for ``fast``, the
        backend and the size needs of the run's geometries, which set the reduction (:meth:`register`)."""
        if self.decode == "exact":
            return None
        needs = sorted({"full" if n is None else f"{n[0]}{n[1]}" for n in self._needs.values()})
        return {"mode": self.decode, "backend": "nvjpeg" if self._decodes_on_device() else "pil-draft",
                "needs": needs}

    # -- geometry --------------------------------------------------------------------------------------------------
    def register(self, encoders: Iterable[Encoder]) -> None:
        """Note the geometries of a run and what each resizes (:meth:`Encoder.decode_need`). ``decode="fast"``
        decodes each image at a scale that serves all of them, so that a geometry's pixels do not depend on which
        others happened to need decoding; should the set of needs grow (a model of another run on the same
        object), geometry tensors made at the old scale are forgotten and made again when asked for."""
        before = set(self._needs.values())
        for enc in encoders:
            self._needs.setdefault(enc.geometry_key, enc.decode_need())
        if self.decode == "fast" and set(self._needs.values()) != before:
            self._geometry.clear()
            self._rows.clear()
            self._probe.clear()

    def _need(self) -> Need | None:
        """The size need of the decode pass (None: full size)."""
        return None if self.decode == "exact" else combined_need(self._needs.values())

    def frame_size(self, encoder: Encoder) -> tuple[int, int]:
        """(H, W) of the encoder's input frame (see :meth:`frame_sizes`)."""
        return self.frame_sizes([encoder])[encoder.geometry_key]

    def frame_sizes(self, encoders: Sequence[Encoder]) -> dict[str, tuple[int, int]]:
        """``{geometry key: (H, W)}`` of each encoder's input frame: from its geometry tensors if present (in
        memory, or the header of the on-disk entry), else from the first image, decoded once for all of them (kept,
        so the decode pass does not decode it again)."""
        self.register(encoders)
        out: dict[str, tuple[int, int]] = {}
        missing: dict[str, Encoder] = {}
        for enc in encoders:
            key = enc.geometry_key
            tensors = next((t for (k, _), t in self._geometry.items() if k == key), None)
            if tensors is None and (key, 0) in self._probe:
                tensors = self._probe[(key, 0)][None]
            shape = tuple(tensors.shape) if tensors is not None else self._cached_shape(key)
            if shape is not None:
                out[key] = (int(shape[-2]), int(shape[-1]))
            else:
                missing.setdefault(key, enc)
        if missing:
            need = self._need()
            stages = {key: enc.geometry for key, enc in missing.items()}
            first = self._decode_each([self.image_records[0]], lambda _, image: {k: g(image) for k, g in stages.items()},
                                      False, "decode first image", need=need)[0]
            for key, tensor in first.items():
                self._probe[(key, 0)] = tensor
                out[key] = (int(tensor.shape[-2]), int(tensor.shape[-1]))
        return out

    def _cached_shape(self, key: str) -> tuple[int, ...] | None:
        """The shape of the on-disk geometry entry of every image for ``key``, from its header (the entry is
        checked in full when it is read for its pixels)."""
        store = self._store_on_disk()
        if not store.active:
            return None
        try:
            shape = read_header(store.path(self._disk_key(key, None))).get("shape")
        except (OSError, CorruptEntry, ValueError):
            return None
        return tuple(shape) if isinstance(shape, list) and len(shape) == 4 else None

    def geometry(self, encoder: Encoder, progress: bool, indices: Sequence[int] | None = None) -> torch.Tensor:
        """uint8 geometry tensors (all images, or those at ``indices``, in that order), shared by models with one
        geometry key: from memory (a :meth:`compute_geometry` pass), else computed by a pass for this model.

        With ``use_cache`` the tensors are also kept as one checksummed entry under ``<cache>/geometry/`` (a damaged
        entry is reported, deleted and recomputed); ``indices`` are then taken from that entry when it exists.
        """
        idx = None if indices is None else [int(i) for i in indices]
        found = self._lookup(encoder.geometry_key, idx)
        if found is None:
            self.compute_geometry([(encoder, idx)], progress)
            found = self._lookup(encoder.geometry_key, idx)
        return found

    def compute_geometry(self, requests: Sequence[tuple[Encoder, Sequence[int] | None]],
                         progress: bool = False) -> None:
        """Make the geometry tensors of every ``(encoder, indices or None for all)`` available, in one decode pass:
        each image is decoded once and every geometry stage that needs it runs on it. Geometry keys already in
        memory or in the on-disk cache are not recomputed; encoders sharing a geometry key share its tensors."""
        self.register(enc for enc, _ in requests)
        n = len(self.image_ids)
        wanted: dict[str, tuple[Encoder, set[int] | None]] = {}
        for enc, indices in requests:
            first, have = wanted.get(enc.geometry_key, (enc, set()))
            wanted[enc.geometry_key] = (first, None if indices is None or have is None else have | set(indices))
        todo: dict[str, tuple[Encoder, list[int] | None]] = {}
        for key, (enc, have) in wanted.items():
            indices = None if have is None or len(have) == n else sorted(have)
            if self._lookup(key, indices) is None and not self._read_cached(key, indices):
                todo[key] = (enc, indices)
        if todo:
            self._decode_pass(todo, progress)

    def _decode_pass(self, todo: dict[str, tuple[Encoder, list[int] | None]], progress: bool) -> None:
        t0 = time.perf_counter()
        n = len(self.image_ids)
        users: dict[int, list[str]] = {}  # image index -> the geometry keys that need it decoded
        for key, (_, indices) in todo.items():
            for i in range(n) if indices is None else indices:
                if (key, i) not in self._probe:
                    users.setdefault(i, []).append(key)
        order = sorted(users)
        stages = {key: enc.geometry for key, (enc, _) in todo.items()}
        need = self._need()
        desc = f"decode + geometry {', '.join(todo)}"
        decoded = self._decode_each([self.image_records[i] for i in order],
                                    lambda p, image: {k: stages[k](image) for k in users[order[p]]},
                                    progress, desc, need=need)
        results = dict(zip(order, decoded))
        del decoded
        for key, (_, indices) in todo.items():
            idx = range(n) if indices is None else indices
            rows = [self._probe[(key, i)] if (key, i) in self._probe else results[i].pop(key) for i in idx]
            tensors = torch.stack(rows)
            del rows
            self._store(key, indices, tensors)
            self._store_on_disk().write(self._disk_key(key, indices), tensors)  # later runs skip decoding
        del results
        release_freed_memory()
        wall = time.perf_counter() - t0
        self.decode_stats.wall_s += wall
        self.decode_stats.passes.append({"geometries": list(todo), "images": len(order), "wall_s": wall})

    def _lookup(self, key: str, indices: list[int] | None) -> torch.Tensor | None:
        """Tensors of ``key`` for ``indices`` (None: every image) from memory, or None."""
        whole = self._geometry.get((key, None))
        if whole is not None:
            return whole if indices is None else whole[indices]
        if indices is None:
            return None
        for (k, h), tensors in self._geometry.items():
            if k == key and h is not None:
                rows = self._rows[(k, h)]
                if all(i in rows for i in indices):
                    return tensors if list(rows) == indices else tensors[[rows[i] for i in indices]]
        return None

    def _store(self, key: str, indices: list[int] | None, tensors: torch.Tensor) -> None:
        if indices is None:
            self._geometry[(key, None)] = tensors
        else:
            h = stable_hash(list(indices))
            self._geometry[(key, h)] = tensors
            self._rows[(key, h)] = {i: r for r, i in enumerate(indices)}

    def _store_on_disk(self) -> EntryStore:
        return EntryStore("geometry", enabled=self.use_cache, root=cache_root())

    def _disk_key(self, key: str, indices: list[int] | None) -> dict:
        """The geometry cache key: the dataset's images and the geometry key (plus the indices for a subset, and the
        decode identity under ``--decode fast``)."""
        disk_key: dict = {"images": self.images_hash(), "geometry": key}
        identity = self.decode_identity()
        if identity is not None:
            disk_key["decode"] = identity
        if indices is not None:
            disk_key["indices"] = stable_hash(list(indices))
        return disk_key

    def _read_cached(self, key: str, indices: list[int] | None) -> bool:
        """Whether the on-disk cache had the tensors (now in memory): the whole set, else that subset."""
        store = self._store_on_disk()
        if not store.active:
            return False
        n = len(self.image_ids)
        if indices is not None:
            full = store.read(self._disk_key(key, None))
            if full is not None and len(full) == n:
                self._store(key, None, full)
                return True
        cached = store.read(self._disk_key(key, indices))
        if cached is not None and len(cached) == (n if indices is None else len(indices)):
            self._store(key, indices, cached)
            return True
        return False

def prepare(cfg: SweepConfig, progress: bool = True, dataset: Dataset | None = None) -> Prepared:
    """The configured dataset (or ``dataset``), cut to ``cfg.max_studies`` if set, prepared for the sweep."""
    if dataset is None:
        dataset = load_dataset(cfg.dataset, split=cfg.split, policy=cfg.policy, progress=progress,
                               **cfg.dataset_options)
    if cfg.max_studies is not None:
        dataset = dataset.subset(cfg.max_studies)
    if dataset.lung_masks is not None and any(cfg.corruption(n, lung_masks=True).uses_masks for n in cfg.corruptions):
        dataset = check_masks(dataset, progress)  # a missing mask: an error now, or its image left out (skip)
    return Prepared(dataset, progress=progress, use_cache=cfg.use_cache, decode=cfg.decode,
                    device=resolve_device(cfg.device))
