"""Device check for the corruption library: CPU vs CUDA, batch split on the GPU, and GPU timings.

Run on a machine with CUDA and kornia (from the repository root):

    PYTHONPATH=src:tests python scripts/corruptions_device_check.py
    PYTHONPATH=src:tests python -m pytest --noconftest -q tests/test_corruption_properties.py -k cuda

For every corruption (occlusion modes and severity families) it prints, for one 64x3x224x224 batch, how many
pixels differ between the CPU and the CUDA result over all levels and by how much (the family's stated claim:
``exact`` or ``+-1``), whether corrupting the batch in two parts on the GPU gives the same result as in one, and
the GPU time of ``prepare`` and of ``apply`` at one level on 64x1x224x224.
"""

from __future__ import annotations

import sys
import time

import torch

from cxrbench import corruptions

from corruption_images import textured


def main() -> int:
    if not torch.cuda.is_available():
        print("no CUDA device: nothing to compare")
        return 1
    x3 = textured(64, 3, 224, 224, 7)
    x1 = textured(64, 1, 224, 224, 8)
    keys = corruptions.image_keys([f"g{i}" for i in range(64)], 3)
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}")
    print("| name | claim | levels | pixels differing (summed over levels) | max diff | split ok on GPU |")
    print("|---|---|---|---|---|---|")
    for name in corruptions.available():
        corr = corruptions.get(name)
        levels = [0.09, 0.49, 0.81] if corr.level_kind == "fraction" else [1, 2, 3, 4, 5]
        claim = "exact" if getattr(corr, "exact", "exact").startswith("exact") else "+-1"
        differing, worst, split = 0, 0.0, True
        state = corr.prepare(x3.cuda(), keys.cuda())
        for level in levels:
            cpu = corr.apply(x3, keys, level)
            gpu = corr.apply(x3.cuda(), keys.cuda(), level, state=state)
            diff = (gpu.cpu() - cpu).abs()
            differing += int((diff > 0).sum())
            worst = max(worst, float(diff.max()))
            parts = torch.cat([corr.apply(x3[:20].cuda(), keys[:20].cuda(), level),
                               corr.apply(x3[20:].cuda(), keys[20:].cuda(), level)])
            split &= bool(torch.equal(parts, gpu))
        print(f"| {name} | {claim} | {levels} | {differing} | {worst:g} | {split} |", flush=True)

    print("\nGPU time on 64x1x224x224, ms (median of 10 after warm-up)")
    print("| name | prepare | apply (one level) |")
    print("|---|---|---|")
    xg, kg = x1.cuda(), keys.cuda()
    for name in corruptions.available():
        corr = corruptions.get(name)
        level = 0.49 if corr.level_kind == "fraction" else 3
        for _ in range(2):
            corr.apply(xg, kg, level, state=corr.prepare(xg, kg))
        t_prep, t_apply = [], []
        for _ in range(10):
            torch.cuda.synchronize()
            t = time.perf_counter()
            state = corr.prepare(xg, kg)
            torch.cuda.synchronize()
            t_prep.append(time.perf_counter() - t)
            t = time.perf_counter()
            corr.apply(xg, kg, level, state=state)
            torch.cuda.synchronize()
            t_apply.append(time.perf_counter() - t)
        print(f"| {name} | {sorted(t_prep)[5] * 1000:.1f} | {sorted(t_apply)[5] * 1000:.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
