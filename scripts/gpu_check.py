"""GPU check, per model: the optimised sweep at MIMIC-CXR's evaluation size, full-size models with random weights.

``scripts/gpu_check.sh`` runs the paper-size comparison (``cxrbench bench --paper-size``: decode per geometry,
the naive loop, the optimised sweep and ``--decode fast`` with all four models in one run). This script gives the
per-model detail (``python scripts/gpu_check.py --device cuda``; see docs/performance.md, "GPU check"):

1. Synthetic data of MIMIC-CXR's evaluation size (:mod:`cxrbench.paper_size`; default 994 studies / 1,770
   images: 776 studies with two images, 218 with one), grayscale JPEGs of 2544 x 3056 (quality 95), reused when
   the folder already holds the same data (``--data-dir``).
2. Randomly initialised FULL-SIZE checkpoints in each upstream file format (:mod:`cxrbench.random_checkpoints`:
   clip's TorchScript release container, CXR-RePaiR's state dict, MedCLIP-ViT's ``pytorch_model.bin``, a CXR-CLIP
   trainer ``.tar``, a Bio_ClinicalBERT-shaped tokenizer folder), loaded through
   :func:`cxrbench.models.load_model` exactly as a user would load the released files. Key names are first checked
   against the golden fixtures' upstream-written checkpoints (``scripts/gpu_check_checkpoints.py``).
3. Per model: the optimised sweep (:func:`cxrbench.runner.run_sweep`, paper levels, ``pixels`` occlusion,
   ``--precision``, plus one fp32 run of ``clip``), its throughput (images x levels / image-embedding time), the
   time split into decode, geometry, text, image embedding and scoring, the peak GPU memory, and the naive vs
   optimised ratio of :func:`cxrbench.bench.compare` on the first ``--naive-studies`` studies.
4. One table, and a JSON report (``--out``), rewritten after every run so that a run cut short keeps what it did.

CPU smoke mode (slow, tiny): ``python scripts/gpu_check.py --device cpu --studies 6 --image-size 320 --models clip``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gpu_check_checkpoints import MODELS, atomic_write, log, write_checkpoints  # scripts/, beside this file

from cxrbench.paper_size import MIMIC_SIZE, MIMIC_STUDIES, MIMIC_TWO_IMAGE_STUDIES

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

if TYPE_CHECKING:
    import torch


# --------------------------------------------------------------------------------------------------------------
# 1. synthetic data (cxrbench.paper_size)
# --------------------------------------------------------------------------------------------------------------


def parse_size(text: str) -> tuple[int, int]:
    from cxrbench.errors import ConfigError
    from cxrbench.paper_size import parse_size as parse

    try:
        return parse(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_data(args: argparse.Namespace) -> dict:
    """Write (or reuse) the JPEGs and manifest.csv (:func:`cxrbench.paper_size.build_paper_data`)."""
    from cxrbench.errors import ConfigError
    from cxrbench.paper_size import PaperData, build_paper_data

    width, height = args.image_size
    spec = PaperData(studies=args.studies, two_image_studies=args.two_image_studies, width=width, height=height,
                     render_size=args.render_size, jpeg_quality=args.jpeg_quality)
    try:
        return build_paper_data(args.data_dir, spec, workers=args.workers, log=log)
    except ConfigError as exc:
        raise SystemExit(str(exc)) from None


# --------------------------------------------------------------------------------------------------------------
# 3. the runs
# --------------------------------------------------------------------------------------------------------------


def _cuda(device: torch.device) -> bool:
    return device.type == "cuda"


def _sync(device: torch.device) -> None:
    import torch

    if _cuda(device):
        torch.cuda.synchronize(device)


def _recall(result, name: str, level: float, direction: str, k: int = 1) -> float | None:
    lr = result.get(name, "pixels", level)
    return None if lr is None else lr.metrics[direction]["recall"][k]


def run_one(name: str, precision: str, settings: dict, prep, dataset_root: str, device: torch.device,
            levels: tuple[float, ...], args: argparse.Namespace, decode_s: float, naive: bool,
            geometry_done: set[str]) -> tuple[dict, Any]:
    """Load ``name`` with load_model, warm it up, run the optimised sweep, then (``naive``) bench.compare."""
    import torch

    from cxrbench.bench import compare
    from cxrbench.config import SweepConfig
    from cxrbench.engine import inference_context
    from cxrbench.models import load_model
    from cxrbench.runner import run_sweep

    label = name if precision == args.precision else f"{name} ({precision})"
    row: dict[str, Any] = {"run": label, "model": name, "precision": precision}
    gc.collect()
    if _cuda(device):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()
    encoder = load_model(name, device=str(device), **settings)
    _sync(device)
    row["load_s"] = time.perf_counter() - t0

    # warm-up (CUDA context, cuBLAS/cuDNN algorithm choice) on one batch of the real shape; not in the timings
    batch = args.batch_size or encoder.image_batch_size
    t0 = time.perf_counter()
    first = prep.map_images(encoder.geometry, indices=[0])[0]
    dummy = first.unsqueeze(0).expand(min(batch, len(prep.image_ids)), *first.shape).contiguous()
    with inference_context(device, precision):
        encoder.embed_pixels(encoder.intensity(dummy.to(device)))
    encoder.encode_texts(prep.unique_texts[:2])
    _sync(device)
    row["warmup_s"] = time.perf_counter() - t0

    cfg = SweepConfig(dataset="manifest", dataset_options={"root": dataset_root}, models=[name],
                      corruptions=("pixels",), levels=levels, device=str(device), precision=precision,
                      batch_size=args.batch_size, bootstrap=args.bootstrap, use_cache=False)
    geometry_cached = encoder.geometry_key in geometry_done  # computed by an earlier run: Prepared keeps it
    geometry_done.add(encoder.geometry_key)
    result = run_sweep(cfg, progress=False, prepared=prep, encoders={name: encoder})
    _sync(device)
    t = result.timings
    stage = t.stage(name, "pixels")
    n_images, n_levels = len(prep.image_ids), len(levels)
    row.update({
        "images": n_images, "texts": len(prep.unique_texts), "levels": n_levels, "batch_size": batch,
        "decode_s": decode_s,  # shared by every run: images are decoded once per dataset (Prepared)
        "geometry_s": stage.geometry_s, "geometry_cached": geometry_cached,
        "text_s": t.model(name).texts_s, "embed_s": stage.embed_s,
        "score_s": stage.score_s, "sweep_total_s": t.total_s,
    })
    row["images_per_s"] = n_images * n_levels / row["embed_s"] if row["embed_s"] > 0 else None
    stages = row["decode_s"] + row["geometry_s"] + row["text_s"] + row["embed_s"] + row["score_s"]
    row["end_to_end_images_per_s"] = n_images * n_levels / stages if stages > 0 else None
    row["peak_gpu_mib"] = torch.cuda.max_memory_allocated(device) / 2**20 if _cuda(device) else None
    row["recall@1_clean"] = {d: _recall(result, name, levels[0], d) for d in ("image_to_text", "text_to_image")}
    row["recall@1_last_level"] = {d: _recall(result, name, levels[-1], d)
                                  for d in ("image_to_text", "text_to_image")}
    row["chance@1"] = {"image_to_text": 1 / len(prep.unique_texts), "text_to_image": 1 / n_images}
    row["model_info"] = result.models.get(name, {})

    if naive:
        n_sub = min(args.naive_studies, len(prep.dataset.studies))
        log(f"{label}: naive vs optimised (bench.compare, fp32 both) on the first {n_sub} studies")
        rep = compare(model=name, dataset="manifest", dataset_options={"root": dataset_root}, levels=levels,
                      max_studies=n_sub, device=str(device), batch_size=batch, encoder=encoder)
        row["naive"] = {"studies": n_sub, **rep}
        row["naive_speedup"] = rep["speedup"]
    del encoder
    gc.collect()
    if _cuda(device):
        torch.cuda.empty_cache()
    return row, result


def _max_recall_diff(a, b, name: str, levels: tuple[float, ...]) -> float:
    worst = 0.0
    for lv in levels:
        ra, rb = a.get(name, "pixels", lv).metrics, b.get(name, "pixels", lv).metrics
        for d in ra:
            for k, v in ra[d]["recall"].items():
                worst = max(worst, abs(v - rb[d]["recall"][k]))
    return worst


# --------------------------------------------------------------------------------------------------------------
# 4. report
# --------------------------------------------------------------------------------------------------------------

COLUMNS = (("run", "run", "{}"), ("images/s", "images_per_s", "{:.1f}"), ("e2e/s", "end_to_end_images_per_s", "{:.1f}"),
           ("load", "load_s", "{:.1f}"), ("decode*", "decode_s", "{:.1f}"), ("geometry", "geometry_s", "{:.2f}"),
           ("text", "text_s", "{:.2f}"), ("embed", "embed_s", "{:.2f}"), ("score", "score_s", "{:.2f}"),
           ("peak MiB", "peak_gpu_mib", "{:.0f}"), ("naive x", "naive_speedup", "{:.2f}"))


def table(rows: list[dict]) -> str:
    cells = [[h for h, _, _ in COLUMNS]]
    for row in rows:
        line = []
        for _, key, fmt in COLUMNS:
            value = row.get(key)
            text = "-" if value is None else fmt.format(value)
            if key == "geometry_s" and row.get("geometry_cached"):
                text += " (cached)"
            line.append(text)
        cells.append(line)
    widths = [max(len(c[i]) for c in cells) for i in range(len(COLUMNS))]
    out = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cell, widths)))
           for cell in cells]
    out.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(out)


def write_report(path: Path, report: dict) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(report, indent=1, default=str)))


# --------------------------------------------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    tmp = Path(tempfile.gettempdir()) / "cxrbench-gpu-check"
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--device", default="auto", help="cuda, cuda:N, cpu or auto")
    p.add_argument("--models", default=",".join(MODELS), help=f"comma-separated, from {', '.join(MODELS)}")
    p.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default=None,
                   help="sweep precision (default: bf16 on CUDA, fp32 on the CPU)")
    p.add_argument("--no-fp32-clip", action="store_true", help="skip the extra fp32 run of clip")
    p.add_argument("--studies", type=int, default=MIMIC_STUDIES)
    p.add_argument("--two-image-studies", type=int, default=None,
                   help=f"studies with two images (default: --studies x {MIMIC_TWO_IMAGE_STUDIES}/{MIMIC_STUDIES})")
    p.add_argument("--image-size", type=parse_size, default=MIMIC_SIZE,
                   help="JPEG size WxH, or the height alone (MIMIC's aspect ratio); default 2544x3056")
    p.add_argument("--render-size", type=int, default=512, help="phantom render size before the resize")
    p.add_argument("--jpeg-quality", type=int, default=95)
    p.add_argument("--workers", type=int, default=None, help="render processes (default: all CPUs)")
    p.add_argument("--data-dir", default=None, help=f"dataset folder, reused when present (default: under {tmp})")
    p.add_argument("--checkpoint-dir", default=str(tmp / "checkpoints"), help="random checkpoints, reused")
    p.add_argument("--levels", default="paper", help="occlusion levels: 'paper' or e.g. 0,0.25,0.5")
    p.add_argument("--batch-size", type=int, default=None, help="image batch (default: each adapter's own)")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for the CIs (as a run)")
    p.add_argument("--naive-studies", type=int, default=100,
                   help="studies (from the first) for the naive-vs-optimised comparison; 0 skips it")
    p.add_argument("--out", default="gpu_check.json", help="JSON report")
    args = p.parse_args(argv)
    if args.data_dir is None:
        w, h = args.image_size
        n2 = "" if args.two_image_studies is None else f"-{args.two_image_studies}x2"
        args.data_dir = str(tmp / f"data-{args.studies}{n2}-{w}x{h}-r{args.render_size}-q{args.jpeg_quality}")
    if args.studies < 1:
        p.error("--studies must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    t_main = time.perf_counter()
    import torch

    from cxrbench.corruptions import parse_levels
    from cxrbench.data import load_dataset
    from cxrbench.prepared import Prepared
    from cxrbench.provenance import device_description, environment, resolve_device

    device = resolve_device(args.device)
    if args.device in ("auto", "") and not _cuda(device):
        log("no CUDA device found: running on the CPU (use the smoke sizes; see --help)")
    args.precision = args.precision or ("bf16" if _cuda(device) else "fp32")
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    levels = tuple(parse_levels(args.levels))
    out = Path(args.out)
    report: dict[str, Any] = {
        "what": "cxrbench GPU check: optimised sweep on MIMIC-size synthetic data, full-size random-weight models",
        "argv": sys.argv[1:] if argv is None else argv, "device": device_description(device),
        "environment": {**environment(), "platform": platform.platform(), "cpus": os.cpu_count(),
                        "torch_threads": torch.get_num_threads(),
                        "cuda": torch.version.cuda if _cuda(device) else None,
                        "tf32_matmul": torch.backends.cuda.matmul.allow_tf32, "cudnn_tf32": torch.backends.cudnn.allow_tf32},
        "precision": args.precision, "levels": list(levels), "corruption": "pixels (zero fill, 16 px patches)",
        "timing_method": (
            "decode: Prepared.keep_decoded() once for the dataset (thread pool), shared by every run; geometry, "
            "embed (occlusion + intensity + image tower over all levels, host<->device copies included) and "
            "score (Recall@k + bootstrap CIs): run_sweep's result.timings.stage(model, 'pixels')"
            ".{geometry_s,embed_s,score_s}; text: result.timings.model(model).texts_s (texts are embedded once, "
            "under the run's precision); images/s = images x levels / "
            "embed; e2e/s = images x levels / (decode + geometry + text + embed + score); load and a one-batch "
            "warm-up are timed apart and left out; peak GPU memory = torch.cuda.max_memory_allocated, reset "
            "before each model is loaded (weights included, naive comparison excluded)"),
        "notes": ["weights are random: Recall@k is at chance level and says nothing about the models",
                  "naive x = bench.compare speed-up (naive loop / optimised sweep), both fp32, on a subset"],
        "runs": [],
    }
    if device.type == "cuda":
        report["gpu"] = {"name": torch.cuda.get_device_name(device),
                         "memory_gib": round(torch.cuda.get_device_properties(device).total_memory / 2**30, 1)}

    log(f"device {report['device']}, precision {args.precision}, models {models}, levels {list(levels)}")
    report["data"] = build_data(args)
    write_report(out, report)
    t0 = time.perf_counter()
    settings, report["checkpoints"] = write_checkpoints(models, Path(args.checkpoint_dir))
    report["checkpoints_s"] = round(time.perf_counter() - t0, 2)
    write_report(out, report)

    t0 = time.perf_counter()
    dataset = load_dataset("manifest", root=report["data"]["manifest"], progress=False)
    index_s = time.perf_counter() - t0
    prep = Prepared(dataset)
    t0 = time.perf_counter()
    prep.keep_decoded(False)
    decode_s = time.perf_counter() - t0
    report["dataset"] = {**prep.summary(), "index_s": round(index_s, 3), "decode_s": round(decode_s, 2),
                         "decode_threads": prep.workers}
    report["dataset"].pop("text_available", None)
    log(f"dataset: {len(prep.dataset.studies)} studies, {len(prep.image_ids)} images, {len(prep.unique_texts)} "
        f"unique texts; decoded in {decode_s:.1f} s ({prep.workers} threads)")

    plan = [(m, args.precision) for m in models]
    if "clip" in models and args.precision != "fp32" and not args.no_fp32_clip:
        plan.insert(models.index("clip") + 1, ("clip", "fp32"))
    results: dict[tuple[str, str], Any] = {}
    geometry_done: set[str] = set()
    for name, precision in plan:
        log(f"run {name} ({precision})")
        naive = args.naive_studies > 0 and precision == args.precision
        row, results[(name, precision)] = run_one(name, precision, settings[name], prep,
                                                  report["data"]["manifest"], device, levels, args, decode_s,
                                                  naive, geometry_done)
        log(f"{row['run']}: {row['images_per_s']:.1f} images/s (embed {row['embed_s']:.2f} s), text "
            f"{row['text_s']:.2f} s, geometry {row['geometry_s']:.2f} s, score {row['score_s']:.2f} s"
            + (f", peak {row['peak_gpu_mib']:.0f} MiB" if row["peak_gpu_mib"] is not None else "")
            + (f", naive x{row['naive_speedup']:.2f}" if "naive_speedup" in row else ""))
        report["runs"].append(row)
        write_report(out, report)
    if ("clip", "fp32") in results and ("clip", args.precision) in results and args.precision != "fp32":
        diff = _max_recall_diff(results[("clip", "fp32")], results[("clip", args.precision)], "clip", levels)
        report["clip_precision_max_recall_abs_diff"] = diff
    report["total_s"] = round(time.perf_counter() - t_main, 1)

    naive_rows = [r for r in report["runs"] if "naive" in r]
    print()
    print(f"GPU check: {report['device']}; {len(prep.image_ids)} images x {len(levels)} levels, "
          f"{len(prep.unique_texts)} texts; precision {args.precision}; data {report['data']['folder']}")
    print(table(report["runs"]))
    print(f"times in s. images/s = images x levels / embed; e2e/s over decode + geometry + text + embed + score; "
          f"decode* ({decode_s:.1f} s) is shared by all runs.")
    if naive_rows:
        n = naive_rows[0]["naive"]
        print(f"naive x: bench.compare on the first {n['studies']} studies ({n['images']} images), fp32, "
              f"max |dRecall| naive vs optimised: "
              + ", ".join(f"{r['model']} {r['naive']['max_recall_abs_diff']:.2g}" for r in naive_rows))
    if "clip_precision_max_recall_abs_diff" in report:
        print(f"clip {args.precision} vs fp32: max |dRecall@k| = {report['clip_precision_max_recall_abs_diff']:.3g}")
    print(f"data: {report['data']['images']} JPEGs, {report['data']['bytes'] / 2**20:.0f} MiB, rendered in "
          f"{report['data']['render_s']:.1f} s{' (reused)' if report['data']['reused'] else ''}; "
          f"total {report['total_s']:.0f} s; report {out}")
    write_report(out, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
