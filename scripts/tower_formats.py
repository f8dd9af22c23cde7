"""Image-tower memory format and precision, measured in one run (issue 15, item 5; docs/performance.md).

For each model, on one batch of its own geometry tensors (the first images of a small paper-size set), interleaved
and repeated (median), as :func:`cxrbench.bench_paper.tower_check` does it:

* ``plain``: ``embed_pixels(intensity(x))`` with model and input contiguous (what a plain ``encode_image`` does);
* ``sweep path``: :func:`cxrbench.engine.embed_levels` at level 0, model contiguous;
* ``sweep path, channels-last``: the same with model and input in channels-last format;

at every ``--precisions`` entry. Models: the paper models from full-size random checkpoints in their release
formats (:mod:`cxrbench.random_checkpoints`) and ``reference`` / ``reference_occaug`` (shipped weights). With
``--resnet50``, a randomly initialised torchvision ResNet-50 (the image tower of GLoRIA and BioViL) is timed too,
contiguous against channels-last at 224 x 224, as a plain module.

    PYTHONPATH=src python scripts/tower_formats.py --models clip,reference --resnet50 --batch 16
    PYTHONPATH=src python scripts/tower_formats.py --models clip --precisions fp32,bf16 --batch 16

Writes a JSON report with ``--out``. Figures compare only within one run on one machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path


def _resnet50(batch: int, precisions: list[str], reps: int) -> list[dict]:
    import torch
    from torchvision.models import resnet50

    from cxrbench.engine import inference_context

    torch.manual_seed(0)
    net = resnet50(weights=None).eval()
    x = torch.randn(batch, 3, 224, 224)
    rows = []
    for precision in precisions:
        times: dict[str, list[float]] = {"contiguous": [], "channels_last": []}
        for rep in range(reps + 1):  # the first round warms up
            for label in times:
                fmt = torch.channels_last if label == "channels_last" else torch.contiguous_format
                net.to(memory_format=fmt)
                inp = x.contiguous(memory_format=fmt)
                t0 = time.perf_counter()
                with inference_context(torch.device("cpu"), precision):
                    net(inp)
                if rep:
                    times[label].append(time.perf_counter() - t0)
        rows.append({"model": "resnet50 (torchvision, random)", "family": "cnn", "precision": precision,
                     "batch": batch, **{f"{k}_images_per_s": round(batch / statistics.median(v), 1)
                                        for k, v in times.items()}})
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="clip,reference", help="comma-separated (paper models and reference models)")
    p.add_argument("--precisions", default="fp32", help="comma-separated: fp32, bf16, fp16")
    p.add_argument("--batch", type=int, default=16, help="images in the timed batch")
    p.add_argument("--reps", type=int, default=3, help="timed repetitions (median) after one warm-up round")
    p.add_argument("--resnet50", action="store_true", help="also time a random torchvision ResNet-50")
    p.add_argument("--checkpoint-dir", help="random paper checkpoints (written when missing)")
    p.add_argument("--data-dir", help="the small image set (built when missing)")
    p.add_argument("--out", help="write the report as JSON here")
    args = p.parse_args(argv)

    import torch

    from cxrbench.bench_paper import tower_check
    from cxrbench.data import load_dataset
    from cxrbench.models import load_model
    from cxrbench.paper_size import PaperData, build_paper_data
    from cxrbench.precision import cpu_native_formats
    from cxrbench.prepared import Prepared
    from cxrbench.provenance import device_description, environment
    from cxrbench.random_checkpoints import PAPER_MODELS, write_checkpoints

    models = [m for m in args.models.split(",") if m]
    precisions = [p for p in args.precisions.split(",") if p]
    root = Path(tempfile.gettempdir()) / "cxrbench-tower-formats"
    spec = PaperData.for_images(args.batch, width=512, height=615)  # geometry resizes: the JPEG size is moot
    data = build_paper_data(Path(args.data_dir or root / "data") / spec.folder_name(), spec, workers=2)
    prep = Prepared(load_dataset("manifest", root=data["manifest"], progress=False), workers=2)
    paper = [m for m in models if m in PAPER_MODELS]
    settings, _ = write_checkpoints(Path(args.checkpoint_dir or root / "checkpoints"), paper, "full") if paper \
        else ({}, {})
    dev = torch.device("cpu")
    report = {"what": "scripts/tower_formats.py", "device": device_description(dev),
              "cpu_native_formats": sorted(cpu_native_formats()), "environment": environment(), "rows": []}
    for name in models:
        enc = load_model(name, device="cpu", **settings.get(name, {}))
        for row in tower_check({name: enc}, prep, dev, precisions, args.batch, reps=args.reps):
            report["rows"].append(row)
            print(f"{row['model']} ({row['family']}, {row['precision']}, batch {row['batch']}): plain "
                  f"{row['plain_images_per_s']} img/s, sweep path {row['sweep_contiguous_images_per_s']}, "
                  f"sweep path channels-last {row['sweep_channels_last_images_per_s']}", flush=True)
        del enc
    if args.resnet50:
        for row in _resnet50(args.batch, precisions, args.reps):
            report["rows"].append(row)
            print(f"{row['model']} ({row['precision']}, batch {row['batch']}): contiguous "
                  f"{row['contiguous_images_per_s']} img/s, channels-last {row['channels_last_images_per_s']}",
                  flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
