"""``cxrbench bench --paper-size``: the paper's protocol at MIMIC size with its four models, in one run.

The paper evaluates clip, cxr_repair, medclip and cxr_clip on 1,770 MIMIC-CXR-JPG files of about 2544 x 3056
pixels, four models with four different geometries. This comparison builds data of that shape
(:mod:`cxrbench.paper_size`: a few dozen images on a CPU, the full 1,770 on a GPU), writes full-size randomly
initialised checkpoints in each release's format (:mod:`cxrbench.random_checkpoints`), loads them with
:func:`cxrbench.models.load_model`, and runs on the same data, one after the other:

``decode per geometry`` the decode pass as it was before issue 15 (one pass per geometry key, each decoding every
                        image; decode and geometry only, for the count and the time);
``naive``               the naive per-model, per-level loop shaped like clip_benchmark (:func:`cxrbench.bench.naive_sweep`),
                        fp32 (on ``naive_images``, the first images, when given);
``optimised``           :func:`cxrbench.runner.run_sweep` with all models in one run, fp32, exact decode;
``optimised, fast``     the same with ``--decode fast``;
``optimised, fast, <p>`` the same at ``precision`` (``auto``: bf16/fp16 where the device runs it natively), when
                        that is not fp32.

For each: wall time, the split (decode / geometry / text / tower / score; the naive geometry includes the
occlusion, the optimised tower includes occlusion, intensity and host/device copies), images decoded, peak resident
memory and peak GPU memory during that pipeline. Then: the largest Recall@k difference between the naive loop and
the optimised sweep per model (0 in fp32), and the fast-decode fidelity per model (cosine of each image's clean
embedding between the exact and the fast path, and Recall@k differences over every level). Optional: the tower
check (:func:`tower_check`) and the fidelity on the default set's images as JPEGs (:func:`default_fidelity`).
"""

from __future__ import annotations

import gc
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from cxrbench import corruptions
from cxrbench.bench import PeakMemory, level_metrics, max_recall_diff, naive_sweep
from cxrbench.config import SweepConfig
from cxrbench.corruptions import Occlusion, image_keys
from cxrbench.data import Dataset, load_dataset
from cxrbench.engine import embed_levels, inference_context, set_memory_format, uses_channels_last
from cxrbench.models import Encoder, load_model
from cxrbench.paper_size import MIMIC_SIZE, PaperData, build_paper_data
from cxrbench.precision import resolve_precision
from cxrbench.prepared import Prepared
from cxrbench.provenance import device_description, environment, resolve_device
from cxrbench.random_checkpoints import PAPER_MODELS, write_checkpoints
from cxrbench.runner import run_sweep

DEFAULT_CPU_IMAGES = 36


def default_dir() -> Path:
    return Path(tempfile.gettempdir()) / "cxrbench-paper-size"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _split_optimised(result, models: Sequence[str]) -> dict[str, float]:
    t = result.timings
    return {"decode_s": t.decode_s, "geometry_s": t.geometry_s,
            "text_s": sum(t.model(m).texts_s for m in models),
            "tower_s": sum(t.stage(m, c).embed_s + t.stage(m, c).geometry_s for m in models
                           for c in t.model(m).corruptions),
            "score_s": sum(t.stage(m, c).score_s for m in models for c in t.model(m).corruptions)}


def _rounded(d: dict, digits: int = 2) -> dict:
    return {k: round(v, digits) if isinstance(v, float) else v for k, v in d.items()}


def _warm_up(encoder: Encoder, prep: Prepared, device: torch.device, precision: str, batch: int) -> None:
    """One forward of the image and text towers on the real shapes (CUDA context, kernel choice): not timed."""
    first = prep.map_images(encoder.geometry, indices=[0])[0]
    dummy = first.unsqueeze(0).expand(batch, *first.shape).contiguous()
    with inference_context(device, precision):
        encoder.embed_pixels(encoder.intensity(dummy.to(device)))
        encoder.encode_texts(prep.unique_texts[:2])
    _sync(device)


def run_optimised(label: str, encoders: dict[str, Encoder], ds: Dataset, levels: Sequence[float],
                  device: torch.device, precision: str, decode: str, batch_size: int | None, seed: int,
                  workers: int | None) -> tuple[dict, Any, Prepared]:
    """One optimised sweep of every model on ``ds``: (its row, the SweepResult, the Prepared it decoded into)."""
    models = list(encoders)
    cfg = SweepConfig(models=models, levels=tuple(levels), seed=seed, device=str(device), precision=precision,
                      decode=decode, batch_size=batch_size, bootstrap=0, use_cache=False)
    for enc in encoders.values():
        enc.clear_caches()
    gc.collect()
    with PeakMemory(device) as mem:
        t0 = time.perf_counter()
        prep = Prepared(ds, workers=workers, decode=decode, device=device)
        result = run_sweep(cfg, progress=False, prepared=prep, encoders=dict(encoders))
        _sync(device)
        wall = time.perf_counter() - t0
    row = {"pipeline": label, "precision": result.config.precision, "decode": decode, "wall_s": wall,
           **_split_optimised(result, models), "images_decoded": result.timings.images_decoded,
           **mem.as_dict(),
           "per_model": {m: _rounded({"text_s": result.timings.model(m).texts_s,
                                      "tower_s": result.timings.stage(m, "pixels").embed_s,
                                      "score_s": result.timings.stage(m, "pixels").score_s}) for m in models}}
    return row, result, prep


def run_naive(encoders: dict[str, Encoder], ds: Dataset, levels: Sequence[float], device: torch.device,
              batch_size: int | None, seed: int) -> tuple[dict, dict[str, dict]]:
    """The naive loop for every model, one after the other (fp32): its row and each model's metrics."""
    split = {"decode_s": 0.0, "geometry_s": 0.0, "text_s": 0.0, "tower_s": 0.0, "score_s": 0.0}
    decoded, out, per_model = 0, {}, {}
    gc.collect()
    with PeakMemory(device) as mem:
        t0 = time.perf_counter()
        for name, enc in encoders.items():
            enc.clear_caches()
            out[name], t = naive_sweep(enc, ds, levels, seed=seed, device=device,
                                       batch_size=batch_size or enc.image_batch_size)
            for ours, theirs in (("decode_s", "decode_s"), ("geometry_s", "geometry_s"), ("text_s", "text_s"),
                                 ("tower_s", "image_forward_s"), ("score_s", "score_s")):
                split[ours] += t[theirs]
            decoded += t["images_decoded"]
            per_model[name] = _rounded({"text_s": t["text_s"], "tower_s": t["image_forward_s"]})
        _sync(device)
        wall = time.perf_counter() - t0
    row = {"pipeline": "naive", "precision": "fp32", "decode": "exact", "wall_s": wall, **split,
           "images_decoded": decoded, **mem.as_dict(), "per_model": per_model}
    return row, out


def run_per_key_decode(encoders: dict[str, Encoder], ds: Dataset, device: torch.device,
                       workers: int | None) -> dict:
    """The decode pass as before issue 15: one pass per geometry key, each decoding every image."""
    gc.collect()
    with PeakMemory(device) as mem:
        t0 = time.perf_counter()
        prep = Prepared(ds, workers=workers)
        for enc in encoders.values():
            prep.compute_geometry([(enc, None)])  # a key already computed is not decoded again (shared keys)
        wall = time.perf_counter() - t0
    decode_s, geometry_s = prep.decode_stats.split_s()
    return {"pipeline": "decode per geometry (before)", "precision": None, "decode": "exact", "wall_s": wall,
            "decode_s": decode_s, "geometry_s": geometry_s, "text_s": None, "tower_s": None, "score_s": None,
            "images_decoded": prep.decode_stats.images, "passes": len(prep.decode_stats.passes), **mem.as_dict()}


def clean_embeddings(encoder: Encoder, prep: Prepared, device: torch.device, batch: int) -> torch.Tensor:
    """Every image's level-0 embedding from ``prep``'s geometry tensors (fp32)."""
    pixels = prep.geometry(encoder, progress=False)
    keys = image_keys(prep.image_ids, 0)
    chunks = embed_levels(encoder, pixels, keys, Occlusion(), [0.0], device, "fp32", chunks=batch)
    return torch.cat([c[0.0] for c in chunks])


def fidelity_rows(encoders: dict[str, Encoder], exact: tuple[Any, Prepared], fast: tuple[Any, Prepared],
                  device: torch.device, batch_size: int | None) -> dict[str, dict]:
    """Per model: how far ``--decode fast`` moves the embeddings and Recall@k from the exact path (both fp32)."""
    out = {}
    for name, enc in encoders.items():
        batch = batch_size or enc.image_batch_size
        a = clean_embeddings(enc, exact[1], device, batch)
        b = clean_embeddings(enc, fast[1], device, batch)
        cos = (a * b).sum(dim=1)
        ga = exact[1].geometry(enc, progress=False).float()
        gb = fast[1].geometry(enc, progress=False).float()
        ma, mb = level_metrics(exact[0], name), level_metrics(fast[0], name)
        diffs = [abs(v - mb[lv][d]["recall"][k]) for lv in ma for d in ma[lv] for k, v in ma[lv][d]["recall"].items()]
        clean = [abs(v - mb[0.0][d]["recall"][k]) for d in ma.get(0.0, {}) for k, v in ma[0.0][d]["recall"].items()]
        out[name] = {"images": len(a), "cosine_mean": float(cos.mean()), "cosine_min": float(cos.min()),
                     "pixel_mean_abs_diff": float((ga - gb).abs().mean()),
                     "recall_max_abs_diff": max(diffs) if diffs else None,
                     "recall_mean_abs_diff": statistics.fmean(diffs) if diffs else None,
                     "recall_max_abs_diff_clean": max(clean) if clean else None}
    return out


def tower_check(encoders: dict[str, Encoder], prep: Prepared, device: torch.device, precisions: Sequence[str],
                batch_size: int | None, reps: int = 3) -> list[dict]:
    """Images/s of each model's image tower on one batch of its own geometry tensors, three ways, interleaved and
    repeated (median): ``plain`` (``embed_pixels(intensity(x))``, model and input contiguous: what a plain
    ``encode_image`` does), ``sweep path`` (:func:`cxrbench.engine.embed_levels` at level 0: host/device copy,
    occlusion, intensity, tower) with the model contiguous, and the sweep path in channels-last format (model and
    input), the sweep's default."""
    rows = []
    for name, enc in encoders.items():
        pixels = prep.geometry(enc, progress=False)
        n = min(batch_size or enc.image_batch_size, len(pixels))
        for precision in precisions:
            rates = _time_tower(enc, pixels[:n], image_keys(prep.image_ids[:n], 0), device, precision, reps)
            rows.append({"model": name, "family": enc.info.family, "precision": precision, "batch": n, **rates})
        _memory_format(enc, uses_channels_last(enc, True))  # as the sweep leaves it
    return rows


def _time_tower(enc: Encoder, x: torch.Tensor, keys: torch.Tensor, device: torch.device, precision: str,
                reps: int) -> dict[str, float]:
    def plain() -> None:
        with inference_context(device, precision):
            enc.embed_pixels(enc.intensity(x.to(device).float()))

    def path(channels_last: bool) -> None:
        embed_levels(enc, x, keys, Occlusion(), [0.0], device, precision, chunks=len(x), channels_last=channels_last)

    variants: dict[str, tuple[bool, Callable[[], Any]]] = {
        "plain": (False, plain), "sweep_contiguous": (False, lambda: path(False)),
        "sweep_channels_last": (True, lambda: path(True))}
    times: dict[str, list[float]] = {v: [] for v in variants}
    for rep in range(reps + 1):  # the first round warms up
        for label, (channels_last, fn) in variants.items():
            _memory_format(enc, channels_last)
            _sync(device)
            t0 = time.perf_counter()
            fn()
            _sync(device)
            if rep:
                times[label].append(time.perf_counter() - t0)
    return {f"{label}_images_per_s": round(len(x) / statistics.median(t), 1) for label, t in times.items()}


def _memory_format(encoder: Encoder, channels_last: bool) -> None:
    set_memory_format(encoder, channels_last)


def paper_size(images: int | None = None, image_size: tuple[int, int] = MIMIC_SIZE,
               models: Sequence[str] = PAPER_MODELS, levels: Sequence[float] = corruptions.PAPER_LEVELS,
               device: str = "auto", precision: str = "auto", data_dir: str | Path | None = None,
               checkpoint_dir: str | Path | None = None, checkpoint_size: str = "full", naive: bool = True,
               naive_images: int | None = None, fast: bool = True, per_key_decode: bool = True,
               tower: bool = False, batch_size: int | None = None, seed: int = 0, workers: int | None = None,
               log: Callable[[str], None] | None = None,
               on_update: Callable[[dict], None] | None = None) -> dict:
    """Run the comparison described in the module docstring; return the report (``on_update(report)`` is called
    after every stage, so a caller can save partial results)."""
    log = log or (lambda msg: None)
    update = on_update or (lambda report: None)
    dev = resolve_device(device)
    workers = workers or os.cpu_count() or 1
    if images is None:
        images = 1770 if dev.type == "cuda" else DEFAULT_CPU_IMAGES
    resolved = resolve_precision(precision, dev)
    root = Path(data_dir) if data_dir else default_dir()
    spec = PaperData.for_images(images, width=image_size[0], height=image_size[1])
    report: dict[str, Any] = {"what": "cxrbench bench --paper-size", "device": device_description(dev),
                              "environment": environment(), "models": list(models), "levels": list(levels),
                              "precision_requested": precision, "precision_resolved": resolved,
                              "decode_threads": workers, "checkpoint_size": checkpoint_size, "pipelines": []}
    t_all = time.perf_counter()
    report["data"] = build_paper_data(root / spec.folder_name(), spec, workers=workers, log=log)
    update(report)
    t0 = time.perf_counter()
    settings, report["checkpoints"] = write_checkpoints(Path(checkpoint_dir) if checkpoint_dir else root / "checkpoints",
                                                         models, checkpoint_size, progress=log)
    report["checkpoints_s"] = round(time.perf_counter() - t0, 1)
    update(report)

    ds = load_dataset("manifest", root=report["data"]["manifest"], progress=False)
    probe = Prepared(ds, workers=workers)
    encoders: dict[str, Encoder] = {}
    report["load_s"] = {}
    for name in models:
        t0 = time.perf_counter()
        encoders[name] = load_model(name, device=str(dev), **settings[name])
        _sync(dev)
        report["load_s"][name] = round(time.perf_counter() - t0, 2)
        batch = min(batch_size or encoders[name].image_batch_size, len(probe.image_ids)) if dev.type == "cuda" else 2
        _warm_up(encoders[name], probe, dev, resolved, batch)
    del probe
    n_images = len(ds.images)
    report["dataset"] = {"studies": len(ds.studies), "images": n_images, "texts": len(set(ds.texts))}
    log(f"paper-size: {n_images} images of {image_size[0]}x{image_size[1]}, {len(models)} models, {len(levels)} "
        f"levels, {device_description(dev)}")
    rows = report["pipelines"]

    def add(row: dict) -> None:
        rows.append(_rounded(row))
        log(f"{row['pipeline']}: {row['wall_s']:.1f} s, {row['images_decoded']} images decoded")
        update(report)

    if per_key_decode:
        add(run_per_key_decode(encoders, ds, dev, workers))
    exact = fast_run = None
    if naive:
        naive_ds = ds if naive_images is None or naive_images >= n_images else _first_images(ds, naive_images)
        row, naive_out = run_naive(encoders, naive_ds, levels, dev, batch_size, seed)
        row["images"] = len(naive_ds.images)
        add(row)
        if naive_ds is not ds:  # the comparison needs the optimised sweep on the same gallery
            sub_row, sub_result, _ = run_optimised("optimised (naive's images)", encoders, naive_ds, levels, dev, "fp32",
                                                   "exact", batch_size, seed, workers)
            sub_row["images"] = len(naive_ds.images)
            add(sub_row)
            report["naive_vs_optimised"] = {m: max_recall_diff(naive_out[m], level_metrics(sub_result, m))
                                            for m in models}
    row, result, prep = run_optimised("optimised", encoders, ds, levels, dev, "fp32", "exact", batch_size, seed,
                                      workers)
    add(row)
    exact = (result, prep)
    if naive and "naive_vs_optimised" not in report:
        report["naive_vs_optimised"] = {m: max_recall_diff(naive_out[m], level_metrics(result, m)) for m in models}
    if fast:
        row, result, prep = run_optimised("optimised, fast decode", encoders, ds, levels, dev, "fp32", "fast",
                                          batch_size, seed, workers)
        add(row)
        fast_run = (result, prep)
        report["fidelity"] = fidelity_rows(encoders, exact, fast_run, dev, batch_size)
        update(report)
    if resolved != "fp32":
        decode = "fast" if fast else "exact"
        row, result, _ = run_optimised(f"optimised, {decode} decode, {resolved}", encoders, ds, levels, dev,
                                       resolved, decode, batch_size, seed, workers)
        add(row)
        base = fast_run if fast else exact
        report["precision_vs_fp32"] = {m: max_recall_diff(level_metrics(base[0], m), level_metrics(result, m))
                                       for m in models}
    if tower:
        report["tower_check"] = tower_check(encoders, exact[1], dev, ["fp32"] + ([resolved] if resolved != "fp32"
                                                                               else []), batch_size)
    report["total_s"] = round(time.perf_counter() - t_all, 1)
    update(report)
    return report


def default_set_as_jpeg(folder: Path, quality: int = 95, log: Callable[[str], None] | None = None) -> Path:
    """The default dataset (iu-phantom, test split) written as JPEGs of the same pixels (``quality``) with a
    ``manifest.csv``; reused when present. Returns the manifest."""
    import csv

    from cxrbench.io import atomic_path

    manifest = folder / "manifest.csv"
    if manifest.is_file():
        return manifest
    ds = load_dataset("iu-phantom", progress=False)
    folder.mkdir(parents=True, exist_ok=True)
    if log:
        log(f"default set as JPEG: writing {len(ds.images)} images (quality {quality}) into {folder}")
    rows = []
    for study, text in zip(ds.studies, ds.texts):
        for im in study.images:
            rel = f"images/{im.image_id}.jpg"
            out = folder / rel
            if not out.is_file():
                out.parent.mkdir(parents=True, exist_ok=True)
                image = ds.load_image(im)
                with atomic_path(out) as tmp:
                    image.save(tmp, format="JPEG", quality=quality)
            rows.append((study.study_id, rel, text))
    with atomic_path(manifest) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["study_id", "image_path", "findings"])
        writer.writerows(rows)
    return manifest


def default_fidelity(models: Sequence[str] = ("reference", "reference_occaug"), device: str = "auto",
                     levels: Sequence[float] = corruptions.PAPER_LEVELS, data_dir: str | Path | None = None,
                     workers: int | None = None, log: Callable[[str], None] | None = None) -> dict:
    """Fast-decode fidelity on the default set: the iu-phantom test split written as JPEGs (512 px, quality 95),
    the default models, exact against fast decode (fp32), as :func:`fidelity_rows` gives it."""
    dev = resolve_device(device)
    root = Path(data_dir) if data_dir else default_dir()
    ds = load_dataset("manifest", root=str(default_set_as_jpeg(root / "iu-phantom-test-q95", log=log)),
                      progress=False)
    encoders = {m: load_model(m, device=str(dev)) for m in models}
    exact_row, exact, prep_exact = run_optimised("optimised", encoders, ds, levels, dev, "fp32", "exact", None, 0,
                                                 workers)
    fast_row, fast, prep_fast = run_optimised("optimised, fast decode", encoders, ds, levels, dev, "fp32", "fast",
                                              None, 0, workers)
    return {"dataset": "iu-phantom test split as JPEG (512 px, q95)", "images": len(ds.images),
            "pipelines": [_rounded(exact_row), _rounded(fast_row)],
            "fidelity": fidelity_rows(encoders, (exact, prep_exact), (fast, prep_fast), dev, None)}


def _first_images(ds: Dataset, n: int) -> Dataset:
    """The first studies holding about ``n`` images."""
    count, studies = 0, 0
    for s in ds.studies:
        if count >= n:
            break
        count += len(s.images)
        studies += 1
    return ds.subset(max(1, studies))


def format_report(report: dict) -> str:
    """The comparison as a text table (``cxrbench bench --paper-size`` prints it)."""
    lines = [f"paper-size comparison: {report['dataset']['images']} images "
             f"({report['data']['params']['width']}x{report['data']['params']['height']} JPEG), "
             f"{report['dataset']['texts']} texts, models {', '.join(report['models'])}, {len(report['levels'])} "
             f"levels; {report['device']}"]
    head = ("pipeline", "wall s", "decode", "geometry", "text", "tower", "score", "decoded", "peak RSS MiB",
            "peak GPU MiB")
    cells = [head]
    for r in report["pipelines"]:
        cells.append((r["pipeline"] + ("" if "images" not in r else f" [{r['images']} img]"),
                      *(("-" if r.get(k) is None else f"{r[k]:.1f}") for k in ("wall_s", "decode_s", "geometry_s",
                                                                              "text_s", "tower_s", "score_s")),
                      str(r["images_decoded"]),
                      "-" if r.get("peak_rss_mib") is None else f"{r['peak_rss_mib']:.0f}",
                      "-" if r.get("peak_gpu_mib") is None else f"{r['peak_gpu_mib']:.0f}"))
    widths = [max(len(c[i]) for c in cells) for i in range(len(head))]
    for j, c in enumerate(cells):
        lines.append("  ".join(x.ljust(w) if i == 0 else x.rjust(w) for i, (x, w) in enumerate(zip(c, widths))))
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    if "naive_vs_optimised" in report:
        lines.append("naive vs optimised (fp32), largest |Recall@k| difference: "
                     + ", ".join(f"{m} {v:.2g}" for m, v in report["naive_vs_optimised"].items()))
    if "fidelity" in report:
        lines.append("fast decode vs exact (fp32): model: mean / min cosine of clean embeddings, max |dRecall@k| "
                     "over levels (clean level)")
        for m, f in report["fidelity"].items():
            lines.append(f"  {m}: {f['cosine_mean']:.5f} / {f['cosine_min']:.5f}, {f['recall_max_abs_diff']:.4f} "
                         f"({f['recall_max_abs_diff_clean']:.4f}); mean |d pixel| {f['pixel_mean_abs_diff']:.2f}")
    if "precision_vs_fp32" in report:
        lines.append(f"{report['precision_resolved']} vs fp32, largest |Recall@k| difference: "
                     + ", ".join(f"{m} {v:.2g}" for m, v in report["precision_vs_fp32"].items()))
    for r in report.get("tower_check", []):
        lines.append(f"tower {r['model']} ({r['family']}, {r['precision']}, batch {r['batch']}): plain "
                     f"{r['plain_images_per_s']} img/s, sweep path {r['sweep_contiguous_images_per_s']} img/s, "
                     f"sweep path channels-last {r['sweep_channels_last_images_per_s']} img/s")
    return "\n".join(lines)


__all__ = ["DEFAULT_CPU_IMAGES", "clean_embeddings", "default_fidelity", "default_set_as_jpeg", "fidelity_rows", "format_report", "paper_size", "run_naive",
           "run_optimised", "run_per_key_decode", "tower_check"]
