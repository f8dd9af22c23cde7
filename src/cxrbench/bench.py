"""``cxrbench bench``: the optimised sweep against a naive baseline, on the same data and model, in one run.

The naive loop has the shape of clip_benchmark's retrieval evaluation (the peer a user would otherwise adapt),
repeated once per occlusion level: for every level, decode every image from disk with PIL, run the model's
preprocessing per image on the CPU (geometry, then occlusion and intensity), embed the images batch by batch, and
embed every report text again. The optimised pipeline is :func:`cxrbench.runner.run_sweep` (decode once, geometry
once, occlusion state once per batch, texts once, device-side intensity). Both use the same occlusion masks and the
same batches, so in fp32 their Recall@k must agree; the comparison checks it and reports the largest difference.

Both run in fp32 (the exactness check). ``precision`` (``cxrbench bench --precision``, default ``auto``: bf16/fp16
where the device runs it natively, :mod:`cxrbench.precision`) adds a run of the optimised sweep at that precision
when it resolves to something other than fp32: the speed configuration, with its Recall@k difference to fp32.

The paper-size comparison (four models at MIMIC size, ``cxrbench bench --paper-size``) is
:mod:`cxrbench.bench_paper`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import replace

import torch

from cxrbench import corruptions, metrics
from cxrbench.config import SweepConfig
from cxrbench.data import Dataset, load_dataset
from cxrbench.data.records import ImageRecord, Study, count_summary
from cxrbench.distributed import study_chunks
from cxrbench.engine import inference_context
from cxrbench.models import Encoder, load_model
from cxrbench.precision import resolve_precision
from cxrbench.prepared import Prepared
from cxrbench.provenance import device_description, resolve_device
from cxrbench.runner import run_sweep


def _peak_rss_mib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _rss_mib() -> float | None:
    """The process's resident memory now (Linux /proc/self/statm), or None elsewhere."""
    import os

    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return None


class PeakMemory:
    """Peak resident memory of the process (sampled every ``interval`` s) and peak CUDA memory
    (``torch.cuda.max_memory_allocated``, reset on entry) while the block runs: the peak of one pipeline in a
    process that runs several (the process-wide peak RSS only grows)."""

    def __init__(self, device: torch.device | None = None, interval: float = 0.02):
        self.device, self.interval = device, interval
        self.peak_rss_mib: float | None = None
        self.peak_gpu_mib: float | None = None
        self._stop = threading.Event()

    def _sample(self) -> None:
        while not self._stop.is_set():
            now = _rss_mib()
            if now is not None:
                self.peak_rss_mib = max(self.peak_rss_mib or 0.0, now)
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakMemory:
        if self.device is not None and self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        now = _rss_mib()
        if now is not None:
            self.peak_rss_mib = max(self.peak_rss_mib or 0.0, now)
        if self.device is not None and self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak_gpu_mib = torch.cuda.max_memory_allocated(self.device) / 2**20

    def as_dict(self) -> dict:
        return {"peak_rss_mib": None if self.peak_rss_mib is None else round(self.peak_rss_mib, 1),
                "peak_gpu_mib": None if self.peak_gpu_mib is None else round(self.peak_gpu_mib, 1)}


def tile_dataset(ds: Dataset, times: int) -> Dataset:
    """``times`` copies of every study (new ids, same image files): a gallery ``times`` as large."""
    if times == 1:
        return ds
    studies = []
    for t in range(times):
        for s in ds.studies:
            images = tuple(ImageRecord(f"{im.image_id}#t{t}", im.source, im.view) for im in s.images)
            # suffix the text so tiles do not merge into one gallery entry
            studies.append(Study(f"{s.study_id}#t{t}", images, s.findings + (f" [{t}]" if t else ""),
                                 s.impression + (f" [{t}]" if t else ""), s.tags, s.meta))
    return replace(ds, studies=studies, summary={**ds.summary, **count_summary(studies), "tiled": times})


def naive_sweep(encoder: Encoder, dataset: Dataset, levels: Sequence[float], seed: int = 0, batch_size: int = 64,
                mode: str = "pixels", device: torch.device | None = None) -> tuple[dict, dict]:
    """The baseline: per level, decode + preprocess per image, embed images, re-embed every text.

    Returns the metrics per level and the timings: ``decode_s`` (file to PIL image), ``geometry_s`` (the model's
    geometry and the occlusion, per image on the CPU), ``decode_preprocess_s`` (their sum), ``image_forward_s``
    (intensity and the image tower), ``text_s``, ``score_s``, and ``images_decoded``."""
    device = device or torch.device("cpu")
    occ = corruptions.get(mode)
    recs = dataset.images
    study_of = dataset.image_study
    texts = dataset.texts
    unique, label = metrics.merge_texts(texts)
    first = {u: texts.index(u) for u in unique}
    labels = torch.tensor([label[j] for j in study_of])
    keys = corruptions.image_keys([r.image_id for r in recs], seed)
    out = {}
    timings = {"decode_preprocess_s": 0.0, "decode_s": 0.0, "geometry_s": 0.0, "image_forward_s": 0.0,
               "text_s": 0.0, "score_s": 0.0, "images_decoded": 0}
    for lv in levels:
        t0 = time.perf_counter()
        encoder.clear_caches()
        text_emb = encoder.encode_texts(texts)  # every study's text, again at every level
        text_emb = text_emb[[first[u] for u in unique]]
        timings["text_s"] += time.perf_counter() - t0
        embs = []
        for start, end in study_chunks(study_of, batch_size):  # the optimised pipeline's batches
            t1 = time.perf_counter()
            geo = []
            for r in recs[start:end]:
                t = time.perf_counter()
                image = dataset.load_image(r)
                timings["decode_s"] += time.perf_counter() - t
                timings["images_decoded"] += 1
                geo.append(encoder.geometry(image))
                del image
            x = occ.apply(torch.stack(geo), keys[start:end], lv)
            t2 = time.perf_counter()
            with inference_context(device, "fp32"):
                embs.append(encoder.embed_pixels(encoder.intensity(x.to(device))).float().cpu())
            t3 = time.perf_counter()
            timings["decode_preprocess_s"] += t2 - t1
            timings["image_forward_s"] += t3 - t2
        t4 = time.perf_counter()
        out[lv] = metrics.retrieval_metrics(torch.cat(embs), text_emb, labels, ks=metrics.DEFAULT_KS)
        timings["score_s"] += time.perf_counter() - t4
    timings["geometry_s"] = timings["decode_preprocess_s"] - timings["decode_s"]
    return out, timings


def max_recall_diff(a: dict, b: dict) -> float:
    """The largest |Recall@k| difference between two ``{level: metrics}`` (every level, direction and k of a)."""
    worst = 0.0
    for lv in a:
        for d in metrics.DIRECTIONS:
            for k, v in a[lv][d]["recall"].items():
                worst = max(worst, abs(v - b[lv][d]["recall"][k]))
    return worst


def level_metrics(result, model: str, corruption: str = "pixels") -> dict:
    """``{level: metrics}`` of one model and corruption of a :class:`cxrbench.results.SweepResult`."""
    return {lr.level: lr.metrics for lr in result.levels if lr.model == model and lr.corruption == corruption}


def compare(model: str = "reference", dataset: str = "iu-phantom", levels: Sequence[float] = corruptions.PAPER_LEVELS,
            max_studies: int | None = None, device: str = "auto", batch_size: int = 64, seed: int = 0,
            checkpoint: str | None = None, progress: bool = False, encoder: Encoder | None = None,
            dataset_options: dict | None = None, tile: int = 1, naive: bool = True,
            channels_last: bool = True, models_config: str | None = None, precision: str = "fp32") -> dict:
    """Run both pipelines on the same data and model; return timings, throughput, speed-up and agreement.

    ``dataset_options`` go to :func:`cxrbench.data.load_dataset` (e.g. ``{"root": ...}`` for ``manifest``);
    ``tile`` repeats the dataset (a larger gallery); ``naive=False`` runs only the optimised sweep (for memory
    measurements: the process's peak resident memory is reported); ``models_config`` is the models.yaml that
    defines or configures ``model``; ``precision`` other than fp32 (``auto`` resolved for the device) adds a run of
    the optimised sweep at that precision (see the module docstring)."""
    dev = resolve_device(device)
    ds = load_dataset(dataset, progress=progress, **(dataset_options or {}))
    if max_studies is not None:
        ds = ds.subset(max_studies)
    ds = tile_dataset(ds, tile)
    enc = encoder or load_model(model, checkpoint=checkpoint, device=str(dev), config=models_config)
    n_images = len(ds.images)

    naive_out, naive_t, naive_s = {}, {}, float("nan")
    if naive:
        t0 = time.perf_counter()
        naive_out, naive_t = naive_sweep(enc, ds, levels, seed=seed, batch_size=batch_size, device=dev)
        naive_s = time.perf_counter() - t0

    enc.clear_caches()
    cfg = SweepConfig(models=[enc.name], models_config=models_config, levels=tuple(levels), seed=seed,
                      device=str(dev), precision="fp32", batch_size=batch_size, bootstrap=0, use_cache=False,
                      channels_last=channels_last)
    t0 = time.perf_counter()
    fast = run_sweep(cfg, progress=progress, prepared=Prepared(ds), encoders={enc.name: enc})
    fast_s = time.perf_counter() - t0

    max_diff = max_recall_diff(naive_out, level_metrics(fast, enc.name)) if naive else 0.0
    work = n_images * len(levels)
    speed: dict = {}
    resolved = resolve_precision(precision, dev)
    if resolved != "fp32":
        enc.clear_caches()
        t0 = time.perf_counter()
        reduced = run_sweep(replace(cfg, precision=resolved), progress=progress, prepared=Prepared(ds),
                            encoders={enc.name: enc})
        reduced_s = time.perf_counter() - t0
        speed = {"precision": resolved, "optimised_s": round(reduced_s, 2),
                 "optimised_images_per_s": round(work / reduced_s, 1),
                 "speedup": round(naive_s / reduced_s, 2) if naive else None,
                 "max_recall_abs_diff_vs_fp32": max_recall_diff(level_metrics(fast, enc.name),
                                                                level_metrics(reduced, enc.name))}
    return {
        "model": enc.name, "dataset": dataset, "tile": tile, "images": n_images, "texts": len(ds.studies),
        "levels": list(levels), "peak_rss_mib": round(_peak_rss_mib(), 1),
        "device": device_description(dev), "batch_size": batch_size, "channels_last": channels_last,
        "naive_s": round(naive_s, 2), "optimised_s": round(fast_s, 2), "speedup": round(naive_s / fast_s, 2) if naive else None,
        "naive_images_per_s": round(work / naive_s, 1) if naive else None, "optimised_images_per_s": round(work / fast_s, 1),
        "naive_breakdown_s": {k: round(v, 2) for k, v in naive_t.items()},
        "optimised_breakdown_s": fast.timings.as_dict(digits=2),
        "max_recall_abs_diff": max_diff if naive else None,
        "reduced_precision": speed or None,
    }


def format_report(report: dict) -> str:
    """``cxrbench bench``'s summary of a :func:`compare` report: wall time, images/s, speed-up and agreement."""
    lines = [f"{report['model']} on {report['dataset']} (x{report['tile']}): {report['images']} images x "
             f"{len(report['levels'])} levels, {report['device']}; peak RSS {report['peak_rss_mib']:.0f} MiB"]
    if report["speedup"] is not None:
        lines.append(f"  naive loop   {report['naive_s']:8.1f} s  {report['naive_images_per_s']:8.1f} img/s  "
                     f"{report['naive_breakdown_s']}")
    lines.append(f"  optimised    {report['optimised_s']:8.1f} s  {report['optimised_images_per_s']:8.1f} img/s")
    if report["speedup"] is not None:
        lines.append(f"  speed-up     {report['speedup']:.2f}x; largest Recall@k difference "
                     f"{report['max_recall_abs_diff']:.2e}")
    reduced = report["reduced_precision"]
    if reduced:
        lines.append(f"  optimised, {reduced['precision']} {reduced['optimised_s']:8.1f} s  "
                     f"{reduced['optimised_images_per_s']:8.1f} img/s; largest Recall@k difference to fp32 "
                     f"{reduced['max_recall_abs_diff_vs_fp32']:.2e}")
    return "\n".join(lines)
