"""Device check for the sweep with every corruption kind: the headline corruptions on CUDA against the CPU.

Run on a machine with CUDA, from the repository root (about a minute on a GPU, a few on the CPU side):

    PYTHONPATH=src python scripts/sweep_families_device_check.py [--max-studies 200]

It runs ``pixels, center, periphery, lungs, motion_blur, gaussian_noise, jpeg`` for the two reference models on
the first iu-phantom test studies, once with ``--device cpu`` and once with ``--device cuda`` (fp32, no cache),
and prints, per (model, corruption), the largest |Recall@k difference| over levels, directions and k, and the GPU
and CPU embedding times. The corruptions agree across devices exactly or within one grey level
(docs/corruptions.md); the towers' float32 arithmetic differs a little between devices, so small recall
differences (a few tenths of a point on a few hundred queries) are expected and larger ones are a finding. It
exits 1 when a difference exceeds ``--tolerance`` (default 0.02).
"""

from __future__ import annotations

import argparse
import sys

import torch

from cxrbench.config import SweepConfig
from cxrbench.runner import run_sweep

HEADLINE = ("pixels", "center", "periphery", "lungs", "motion_blur", "gaussian_noise", "jpeg")


def sweep(device: str, max_studies: int):
    cfg = SweepConfig(models=["reference", "reference_occaug"], corruptions=HEADLINE, max_studies=max_studies,
                      device=device, bootstrap=0, use_cache=False)
    return run_sweep(cfg, progress=False)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--max-studies", type=int, default=200)
    p.add_argument("--tolerance", type=float, default=0.02)
    args = p.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device: nothing to compare")
        return 1
    cpu, gpu = sweep("cpu", args.max_studies), sweep("cuda", args.max_studies)
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}; {args.max_studies} studies")
    print("| model | corruption | levels | max abs Recall@k diff | GPU embed s | CPU embed s |")
    print("|---|---|---|---|---|---|")
    worst = 0.0
    for lr_cpu in cpu.levels:
        lr_gpu = gpu.get(lr_cpu.model, lr_cpu.corruption, lr_cpu.level)
        assert lr_gpu is not None, (lr_cpu.model, lr_cpu.corruption, lr_cpu.level)
    for model in ("reference", "reference_occaug"):
        for name in dict.fromkeys(lr.corruption for lr in cpu.levels):
            diff = 0.0
            levels = [lr.level for lr in cpu.levels if lr.model == model and lr.corruption == name]
            for lv in levels:
                a, b = cpu.get(model, name, lv).metrics, gpu.get(model, name, lv).metrics
                for d in a:
                    diff = max(diff, *(abs(a[d]["recall"][k] - b[d]["recall"][k]) for k in a[d]["recall"]))
            worst = max(worst, diff)
            g, c = gpu.timings.stage(model, name), cpu.timings.stage(model, name)
            print(f"| {model} | {name} | {len(levels)} | {diff:.4f} | {g.embed_s:.1f} | {c.embed_s:.1f} |")
    print(f"largest difference {worst:.4f} (tolerance {args.tolerance})")
    return 0 if worst <= args.tolerance else 1


if __name__ == "__main__":
    sys.exit(main())
