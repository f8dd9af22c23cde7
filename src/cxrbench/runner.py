"""The sweep: models x corruptions x levels on one dataset, with each piece of work done once.

* Texts are merged (identical texts become one gallery entry) and embedded once per model; they do not depend on
  the image corruption.
* Each image is decoded once per run; each model's geometry stage runs once per image and is shared between models
  with the same geometry (``Encoder.geometry_key``), kept as uint8 tensors.
* Occlusion randomness is drawn once per image and batch (``Occlusion.prepare``) and reused for every level (the
  masks are nested), then intensity normalisation and the image tower run on the device, level by level.
* Image embeddings are cached on disk per (model checkpoint, dataset images, corruption, level, seed, precision),
  so an interrupted or repeated run resumes where it stopped.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch

from cxrbench import corruptions as corruption_registry
from cxrbench import distributed, metrics
from cxrbench.cache import atomic_path, cache_root, stable_hash
from cxrbench.data import Dataset, load_dataset
from cxrbench.data.records import count_summary
from cxrbench.distributed import gather_chunks, study_chunks
from cxrbench.errors import ConfigError, DataError, WeightsNotAvailable
from cxrbench.models import Encoder, load_model
from cxrbench.provenance import code_version, device_description, environment, resolve_device

DEFAULT_MODELS = ("reference", "reference_occaug", "random")
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass
class SweepConfig:
    dataset: str = "iu-phantom"
    split: str | None = None
    policy: str | None = None
    dataset_options: dict = field(default_factory=dict)
    models: Sequence[str] = DEFAULT_MODELS
    model_settings: dict = field(default_factory=dict)  # {model: {checkpoint: ..., ...}}
    models_config: str | None = None  # models.yaml
    corruptions: Sequence[str] = ("pixels",)
    fill: str = "zero"
    patch_size: int = 16
    levels: Sequence[float] = corruption_registry.PAPER_LEVELS
    seed: int = 0
    ks: Sequence[int] = metrics.DEFAULT_KS
    device: str = "auto"
    precision: str = "fp32"
    batch_size: int | None = None
    bootstrap: int = 1000
    max_studies: int | None = None
    use_cache: bool = True
    #: channels-last memory format for image towers: 1.5x faster for the reference CNN on this CPU (oneDNN);
    #: a no-op for models without convolutions after the patch embedding.
    channels_last: bool = True

    def validate(self) -> None:
        self.levels = tuple(corruption_registry.check_level(x) for x in self.levels)
        if not self.levels:
            raise ConfigError("no occlusion levels given")
        for name in self.corruptions:
            corruption_registry.get(name, fill=self.fill, patch_size=self.patch_size)
        if self.precision not in PRECISIONS:
            raise ConfigError(f"unknown precision {self.precision!r}; choose one of {', '.join(PRECISIONS)}")
        if any(int(k) < 1 for k in self.ks):
            raise ConfigError(f"k must be >= 1, got {list(self.ks)}")


@dataclass
class LevelResult:
    model: str
    corruption: str
    corruption_params: dict
    level: float
    metrics: dict  # direction -> direction_metrics(...)
    wall_time_s: float
    cached: bool = False


@dataclass
class SweepResult:
    config: SweepConfig
    dataset: dict
    models: dict = field(default_factory=dict)  # name -> ModelInfo as dict
    skipped: dict = field(default_factory=dict)  # name -> reason
    levels: list[LevelResult] = field(default_factory=list)
    timings: dict = field(default_factory=dict)
    device: str = ""
    environment: dict = field(default_factory=dict)
    #: torch.distributed rank that produced this object; only rank 0 holds metrics and writes results.
    rank: int = 0
    world_size: int = 1

    def get(self, model: str, corruption: str, level: float) -> LevelResult | None:
        for r in self.levels:
            if r.model == model and r.corruption == corruption and abs(r.level - level) < 1e-12:
                return r
        return None


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


@contextlib.contextmanager
def inference_context(device: torch.device, precision: str) -> Iterator[None]:
    """no_grad (+ autocast for bf16/fp16). CPU autocast under inference_mode re-casts weights on every call
    (measured ~2.5x slower here), so no_grad is used on the CPU."""
    dtype = PRECISIONS[precision]
    grad_ctx = torch.inference_mode() if device.type == "cuda" else torch.no_grad()
    with grad_ctx:
        if dtype is None:
            yield
        else:
            with torch.autocast(device_type=device.type, dtype=dtype):
                yield


class Prepared:
    """A dataset prepared for retrieval: merged texts, image->text labels and geometry tensors.

    Images are decoded in a thread pool (Pillow releases the GIL while decoding) straight into each model's
    geometry stage; only the uint8 geometry tensors are kept, and every model with the same geometry key shares
    them, so an image is decoded once per geometry key per run (and not at all when the on-disk geometry cache
    has it). With ``dataset.on_bad_image == "skip"`` every image is decoded once up front to validate it; those
    that fail are left out with a warning and listed in ``bad_images`` (and in the results).
    """

    def __init__(self, dataset: Dataset, progress: bool = False, workers: int | None = None,
                 use_cache: bool = False):
        self.workers = workers or min(8, os.cpu_count() or 1)
        self.use_cache = use_cache
        self.bad_images: list[dict] = []
        self._pil: list | None = None
        self._geometry: dict[tuple, torch.Tensor] = {}
        if dataset.on_bad_image == "skip":
            dataset = self._drop_undecodable(dataset, progress)
        elif dataset.on_bad_image != "error":
            raise ConfigError(f"on_bad_image must be 'error' or 'skip', not {dataset.on_bad_image!r}")
        self.dataset = dataset
        self.unique_texts, study_label = metrics.merge_texts(dataset.texts)
        self.image_records = dataset.images
        self.image_study = dataset.image_study
        self.image_text = [study_label[j] for j in self.image_study]
        self.image_ids = [im.image_id for im in self.image_records]
        if len(set(self.image_ids)) != len(self.image_ids):
            raise ConfigError(f"dataset {dataset.name}: image ids are not unique")
        if not self.image_ids:
            raise ConfigError(f"dataset {dataset.name}/{dataset.split}: no images to evaluate")

    def _decode(self, records: Sequence, loader: Callable, progress: bool, skip: bool) -> list:
        from tqdm.auto import tqdm

        def one(rec):
            try:
                return loader(rec)
            except DataError as exc:
                if not skip:
                    raise
                return exc

        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            return list(tqdm(pool.map(one, records), total=len(records), desc="decode images", unit="img",
                             disable=not progress))

    def _drop_undecodable(self, dataset: Dataset, progress: bool) -> Dataset:
        # decode to validate only: keeping every decoded image would hold GBs for full-size radiographs
        def validate(rec) -> bool:
            dataset.load_image(rec)
            return True

        decoded = self._decode(dataset.images, validate, progress, skip=True)
        ok = set()
        for rec, im in zip(dataset.images, decoded):
            if isinstance(im, Exception):
                self.bad_images.append({"image_id": rec.image_id, "source": str(rec.source), "error": str(im)})
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

    def pil_images(self, progress: bool, indices: Sequence[int] | None = None) -> list:
        """Decoded images (all, or those at ``indices``), kept in memory; each image is decoded at most once.

        The sweep itself does not call this: :meth:`geometry` streams decode -> geometry without keeping the
        decoded images, so memory holds only the (small, uint8) geometry tensors.
        """
        if self._pil is None:
            self._pil = [None] * len(self.image_records)
        want = range(len(self.image_records)) if indices is None else indices
        todo = [i for i in want if self._pil[i] is None]
        if todo:
            decoded = self._decode([self.image_records[i] for i in todo], self.dataset.load_image, progress, skip=False)
            for i, im in zip(todo, decoded):
                self._pil[i] = im
        return [self._pil[i] for i in want]

    def geometry(self, encoder: Encoder, progress: bool, indices: Sequence[int] | None = None) -> torch.Tensor:
        """uint8 geometry tensors (all images, or those at ``indices``), shared by models with one geometry key."""
        key = (encoder.geometry_key, None if indices is None else stable_hash(list(indices)))
        if key in self._geometry:
            return self._geometry[key]
        disk = cache_root() / "geometry" / f"{stable_hash(self.images_hash(), *key, length=24)}.pt"
        if self.use_cache and disk.is_file():
            self._geometry[key] = torch.load(disk, weights_only=True)
            return self._geometry[key]
        from tqdm.auto import tqdm

        want = range(len(self.image_records)) if indices is None else indices
        loader = self.dataset.load_image

        def one(i: int) -> torch.Tensor:  # decode and resize in one go: the full-size image is freed at once
            have = self._pil[i] if self._pil is not None else None
            return encoder.geometry(have if have is not None else loader(self.image_records[i]))

        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            tensors = list(tqdm(pool.map(one, want), total=len(want), desc=f"decode + geometry {key[0]}",
                                unit="img", disable=not progress))
        self._geometry[key] = torch.stack(tensors)
        del tensors
        release_freed_memory()
        if self.use_cache:  # reusable by later runs: decoding dominates on a GPU
            with atomic_path(disk) as tmp:
                torch.save(self._geometry[key], tmp)
        return self._geometry[key]


def to_channels_last(encoder: Encoder) -> None:
    """Put every module the encoder holds in channels-last memory format (helps convolutions on some devices)."""
    for value in vars(encoder).values():
        if isinstance(value, torch.nn.Module):
            value.to(memory_format=torch.channels_last)


def embed_levels(encoder: Encoder, pixels: torch.Tensor, keys: torch.Tensor, occlusion, levels: Sequence[float],
                 device: torch.device, precision: str, chunks: Sequence[int] | int,
                 on_batch: Callable[[int], None] | None = None,
                 channels_last: bool = False) -> list[dict[float, torch.Tensor]]:
    """Image embeddings at every level, one dict per chunk (``chunks``: chunk sizes, or one batch size).

    Per chunk, the occlusion state is drawn once and reused for every level; uint8 pixels go to the device
    (pinned, non-blocking on CUDA) and intensity normalisation runs there.
    """
    n = len(pixels)
    if isinstance(chunks, int):
        chunks = [min(chunks, n - s) for s in range(0, n, chunks)]
    if sum(chunks) != n:
        raise ValueError(f"chunk sizes add up to {sum(chunks)}, not {n} images")
    pin = device.type == "cuda"
    out: list[dict[float, torch.Tensor]] = []
    # one (n, D) buffer per level, filled chunk by chunk: many small long-lived tensors interleaved with the
    # tower's large transient ones fragment the heap (resident memory then grew with the gallery)
    buffers: dict[float, torch.Tensor] = {}
    start = 0
    with inference_context(device, precision):
        for size in chunks:
            batch = pixels[start : start + size]
            batch = (batch.pin_memory() if pin else batch).to(device, non_blocking=True)
            k = keys[start : start + size].to(device)
            rows = slice(start, start + size)
            start += size
            _, _, h, w = batch.shape
            state = occlusion.prepare(k, h, w) if any(lv > 0 for lv in levels) else None
            fill = occlusion.fill_values(batch, k) if state is not None else None
            embs = {}
            for lv in levels:
                x = encoder.intensity(occlusion.apply(batch, k, lv, state=state, fill=fill))
                if channels_last and x.dim() == 4:
                    x = x.contiguous(memory_format=torch.channels_last)
                emb = encoder.embed_pixels(x)
                if lv not in buffers:
                    buffers[lv] = torch.empty(n, emb.shape[1], dtype=torch.float32)
                buffers[lv][rows].copy_(emb)
                embs[lv] = buffers[lv][rows]
                if on_batch:
                    on_batch(size)
            out.append(embs)
    return out


def _cache_file(parts: dict) -> Path:
    return cache_root() / "embeddings" / f"{stable_hash(parts, length=24)}.pt"


def prepare(cfg: SweepConfig, progress: bool = True, dataset: Dataset | None = None) -> Prepared:
    """The configured dataset (or ``dataset``), cut to ``cfg.max_studies`` if set, prepared for the sweep."""
    if dataset is None:
        dataset = load_dataset(cfg.dataset, split=cfg.split, policy=cfg.policy, progress=progress,
                               **cfg.dataset_options)
    if cfg.max_studies is not None:
        dataset = dataset.subset(cfg.max_studies)
    return Prepared(dataset, progress=progress, use_cache=cfg.use_cache)


def run_sweep(cfg: SweepConfig, progress: bool = True, dataset: Dataset | None = None,
              encoders: dict[str, Encoder] | None = None, prepared: Prepared | None = None) -> SweepResult:
    """Run the sweep described by ``cfg``.

    ``dataset``, ``prepared`` (decoded images and geometry shared between runs) and ``encoders`` may be passed in
    by tests and benchmarks.
    """
    from tqdm.auto import tqdm

    cfg.validate()
    t_start = time.perf_counter()
    device = distributed.init(resolve_device(cfg.device))
    rank, size = distributed.world()
    if size > 1 and cfg.use_cache:
        cfg = replace(cfg, use_cache=False)  # ranks could disagree on what is cached
    if prepared is None:
        prepared = prepare(cfg, progress, dataset)
    prep, dataset = prepared, prepared.dataset
    t_data = time.perf_counter()
    result = SweepResult(config=cfg, dataset={"name": dataset.name, "split": dataset.split,
                                              "policy": dataset.policy, **prep.summary(),
                                              "provenance": dataset.provenance,
                                              "bad_images": prep.bad_images},
                         device=device_description(device), environment=environment())
    result.timings["dataset_s"] = t_data - t_start
    result.rank, result.world_size = rank, size
    keys = corruption_registry.image_keys(prep.image_ids, cfg.seed)
    labels = torch.tensor(prep.image_text)
    for name in cfg.models:
        try:
            encoder = (encoders or {}).get(name) or load_model(
                name, device=str(device), config=cfg.models_config, **cfg.model_settings.get(name, {}))
        except WeightsNotAvailable as exc:
            result.skipped[name] = str(exc)
            continue
        info = encoder.info
        result.models[info.name] = asdict(info)
        if cfg.channels_last:
            to_channels_last(encoder)
        t0 = time.perf_counter()
        text_emb = None
        if rank == 0:
            with inference_context(device, cfg.precision):
                text_emb = encoder.encode_texts(prep.unique_texts).float()
            metrics.check_finite(text_emb, "text", ids=[repr(t[:60]) for t in prep.unique_texts],
                                 context=f"model {info.name}")
        result.timings[f"{info.name}/texts_s"] = time.perf_counter() - t0
        for cname in cfg.corruptions:
            occ = corruption_registry.get(cname, fill=cfg.fill, patch_size=cfg.patch_size)
            base = {"model": info.name, "sha": info.checkpoint_sha256, "images": prep.images_hash(),
                    "geometry": encoder.geometry_key, "corruption": occ.params(), "seed": cfg.seed,
                    "precision": cfg.precision, "channels_last": cfg.channels_last, "code": "embed-v1"}
            cached: dict[float, torch.Tensor] = {}
            if cfg.use_cache:
                for lv in cfg.levels:
                    f = _cache_file({**base, "level": lv})
                    if f.is_file():
                        cached[lv] = torch.load(f, weights_only=True)
            todo = [lv for lv in cfg.levels if lv not in cached]
            t0 = time.perf_counter()
            geometry_s = score_s = 0.0
            if todo:
                chunks = study_chunks(prep.image_study, cfg.batch_size or encoder.image_batch_size)
                mine = list(range(rank, len(chunks), size))
                indices = [i for c in mine for i in range(*chunks[c])]
                local = []
                if mine:  # a rank can have no chunk when there are fewer chunks than ranks
                    t_geo = time.perf_counter()
                    pixels = prep.geometry(encoder, progress, indices=None if size == 1 else indices)
                    geometry_s = time.perf_counter() - t_geo
                    bar = tqdm(total=len(todo) * len(indices), desc=f"{info.name} {cname}", unit="img",
                               disable=not progress or rank != 0)
                    local = embed_levels(encoder, pixels, keys[indices], occ, todo, device, cfg.precision,
                                         [chunks[c][1] - chunks[c][0] for c in mine], on_batch=bar.update,
                                         channels_last=cfg.channels_last)
                    bar.close()
                gathered = gather_chunks(dict(zip(mine, local)), len(chunks))
                if gathered is None:  # not rank 0: rank 0 scores and writes
                    continue
                fresh = {lv: torch.cat([gathered[c][lv] for c in range(len(chunks))]) for lv in todo}
                del local, gathered
                release_freed_memory()
                if cfg.use_cache:
                    for lv, emb in fresh.items():
                        with atomic_path(_cache_file({**base, "level": lv})) as tmp:
                            torch.save(emb, tmp)
                cached.update(fresh)
            embed_s = time.perf_counter() - t0
            for lv in cfg.levels:
                t1 = time.perf_counter()
                metrics.check_finite(cached[lv], "image", ids=prep.image_ids,
                                     context=f"model {info.name}, {cname} level {lv:g}")
                m = metrics.retrieval_metrics(cached[lv].to(device), text_emb.to(device), labels.to(device),
                                              ks=cfg.ks, bootstrap=cfg.bootstrap, seed=cfg.seed)
                share = embed_s / len(todo) if lv in todo else 0.0
                score_s += time.perf_counter() - t1
                result.levels.append(LevelResult(info.name, cname, occ.params(), lv, m,
                                                 wall_time_s=share + time.perf_counter() - t1,
                                                 cached=lv not in todo))
            # stage split (scripts/gpu_check.py): geometry (plus decoding of images not decoded yet), the image
            # tower over all levels not cached (incl. gathering and writing the cache), and scoring
            result.timings[f"{info.name}/{cname}/geometry_s"] = geometry_s
            result.timings[f"{info.name}/{cname}/embed_s"] = embed_s - geometry_s
            result.timings[f"{info.name}/{cname}/score_s"] = score_s
        del encoder
    result.timings["total_s"] = time.perf_counter() - t_start
    return result


_COUNT_KEYS = ("studies", "images", "unique_texts", "dropped_empty_text", "skipped_missing_images",
               "skipped_undecodable_images")


def records(result: SweepResult, run_id: str = "") -> list[dict]:
    """One flat record per (dataset, model, corruption, level, direction, k)."""
    cfg = result.config
    out = []
    for lr in result.levels:
        info = result.models.get(lr.model, {})
        for direction, m in lr.metrics.items():
            for k, value in m["recall"].items():
                ci = m.get("recall_ci95", {}).get(k)
                out.append({
                    "run_id": run_id,
                    "dataset": result.dataset["name"],
                    "split": result.dataset["split"],
                    "policy": result.dataset["policy"],
                    "dataset_counts": {x: result.dataset.get(x) for x in _COUNT_KEYS if x in result.dataset},
                    "model": lr.model,
                    "model_family": info.get("family"),
                    "checkpoint": info.get("checkpoint"),
                    "checkpoint_sha256": info.get("checkpoint_sha256"),
                    "corruption": lr.corruption,
                    "corruption_params": lr.corruption_params,
                    "level": lr.level,
                    "seed": cfg.seed,
                    "direction": direction,
                    "k": k,
                    "metric": "recall",
                    "value": value,
                    "ci95": list(ci) if ci else None,
                    "bootstrap": cfg.bootstrap,
                    "mean_rank": m["mean_rank"],
                    "median_rank": m["median_rank"],
                    "n_queries": m["n_queries"],
                    "n_gallery": m["n_gallery"],
                    "chance": m["chance"][k],
                    "precision": cfg.precision,
                    "device": result.device,
                    "code_version": code_version(),
                    "wall_time_s": round(lr.wall_time_s, 4),
                    "from_cache": lr.cached,
                })
    return out
