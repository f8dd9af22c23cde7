"""``cxrbench bench``: the optimised sweep against a naive baseline, on the same data and model, in one run.

The naive loop has the shape of clip_benchmark's retrieval evaluation (the peer a user would otherwise adapt),
repeated once per occlusion level: for every level, decode every image from disk with PIL, run the model's
preprocessing per image on the CPU (geometry, then occlusion and intensity), embed the images batch by batch, and
embed every report text again. The optimised pipeline is :func:`cxrbench.runner.run_sweep` (decode once, geometry
once, occlusion state once per batch, texts once, device-side intensity). Both use the same occlusion masks and the
same batches, so in fp32 their Recall@k must agree; the comparison checks it and reports the largest difference.
"""

from __future__ import annotations

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
from cxrbench.prepared import Prepared
from cxrbench.provenance import device_description, resolve_device
from cxrbench.runner import run_sweep


def _peak_rss_mib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


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
    """The baseline: per level, decode + preprocess per image, embed images, re-embed every text."""
    device = device or torch.device("cpu")
    occ = corruptions.get(mode)
    recs = dataset.images
    study_of = dataset.image_study
    texts = dataset.texts
    unique, label = metrics.merge_texts(texts)
    first = {u: texts.index(u) for u in unique}
    labels = torch.tensor([label[j] for j in study_of])
    keys = corruptions.image_keys([r.image_id for r in recs], seed)
    out, timings = {}, {"decode_preprocess_s": 0.0, "image_forward_s": 0.0, "text_s": 0.0, "score_s": 0.0}
    for lv in levels:
        t0 = time.perf_counter()
        encoder.clear_caches()
        text_emb = encoder.encode_texts(texts)  # every study's text, again at every level
        text_emb = text_emb[[first[u] for u in unique]]
        timings["text_s"] += time.perf_counter() - t0
        embs = []
        for start, end in study_chunks(study_of, batch_size):  # the optimised pipeline's batches
            t1 = time.perf_counter()
            geo = torch.stack([encoder.geometry(dataset.load_image(r)) for r in recs[start:end]])
            x = occ.apply(geo, keys[start:end], lv)
            t2 = time.perf_counter()
            with inference_context(device, "fp32"):
                embs.append(encoder.embed_pixels(encoder.intensity(x.to(device))).float().cpu())
            t3 = time.perf_counter()
            timings["decode_preprocess_s"] += t2 - t1
            timings["image_forward_s"] += t3 - t2
        t4 = time.perf_counter()
        out[lv] = metrics.retrieval_metrics(torch.cat(embs), text_emb, labels, ks=metrics.DEFAULT_KS)
        timings["score_s"] += time.perf_counter() - t4
    return out, timings


def compare(model: str = "reference", dataset: str = "iu-phantom", levels: Sequence[float] = corruptions.PAPER_LEVELS,
            max_studies: int | None = None, device: str = "auto", batch_size: int = 64, seed: int = 0,
            checkpoint: str | None = None, progress: bool = False, encoder: Encoder | None = None,
            dataset_options: dict | None = None, tile: int = 1, naive: bool = True,
            channels_last: bool = True, models_config: str | None = None) -> dict:
    """Run both pipelines on the same data and model; return timings, throughput, speed-up and agreement.

    ``dataset_options`` go to :func:`cxrbench.data.load_dataset` (e.g. ``{"root": ...}`` for ``manifest``);
    ``tile`` repeats the dataset (a larger gallery); ``naive=False`` runs only the optimised sweep (for memory
    measurements: the process's peak resident memory is reported); ``models_config`` is the models.yaml that
    defines or configures ``model``."""
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

    max_diff = 0.0
    for lv in naive_out:
        got = fast.get(enc.name, "pixels", lv).metrics
        for d in metrics.DIRECTIONS:
            for k, v in naive_out[lv][d]["recall"].items():
                max_diff = max(max_diff, abs(v - got[d]["recall"][k]))
    work = n_images * len(levels)
    return {
        "model": enc.name, "dataset": dataset, "tile": tile, "images": n_images, "texts": len(ds.studies),
        "levels": list(levels), "peak_rss_mib": round(_peak_rss_mib(), 1),
        "device": device_description(dev), "batch_size": batch_size, "channels_last": channels_last,
        "naive_s": round(naive_s, 2), "optimised_s": round(fast_s, 2), "speedup": round(naive_s / fast_s, 2) if naive else None,
        "naive_images_per_s": round(work / naive_s, 1) if naive else None, "optimised_images_per_s": round(work / fast_s, 1),
        "naive_breakdown_s": {k: round(v, 2) for k, v in naive_t.items()},
        "optimised_breakdown_s": fast.timings.as_dict(digits=2),
        "max_recall_abs_diff": max_diff if naive else None,
    }
