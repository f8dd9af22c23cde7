"""Which precision a device runs natively, and ``--precision auto``.

Autocast to bf16 or fp16 is only faster where the hardware computes in that format: CUDA GPUs with bf16 support
(Ampere and later; fp16 tensor cores from Volta on), and CPUs with AVX512-BF16 or AMX. On a CPU without them
(for example AMD EPYC with AVX2 only), bf16 autocast emulates the arithmetic: a ViT-B/32 sweep ran 1.85x slower
than in fp32 there (issue 15). So:

* ``--precision auto`` picks bf16 on CUDA with bf16 support (fp16 on older CUDA GPUs with tensor cores), bf16 on a
  CPU that reports native bf16, and fp32 everywhere else;
* ``--precision bf16`` (or fp16) on a CPU without native support still runs as asked, with a one-line warning.

``cxrbench run`` keeps fp32 by default (its records are the exact comparison the thresholds gate); ``cxrbench
bench`` uses ``auto`` for its speed runs (docs/performance.md).
"""

from __future__ import annotations

import warnings
from functools import lru_cache

import torch

PRECISION_CHOICES = ("fp32", "bf16", "fp16", "auto")


@lru_cache(maxsize=1)
def cpu_native_formats() -> frozenset[str]:
    """The reduced-precision formats this CPU computes natively: ``bf16`` with AVX512-BF16 or AMX-BF16, ``fp16``
    with AVX512-FP16 or AMX-FP16 (from torch's CPU feature checks, else /proc/cpuinfo flags)."""
    found: set[str] = set()
    cpu = getattr(torch, "cpu", None)
    checks = {"bf16": ("_is_avx512_bf16_supported", "_is_amx_tile_supported"),
              "fp16": ("_is_amx_fp16_supported",)}
    for fmt, names in checks.items():
        for name in names:
            check = getattr(cpu, name, None)
            try:
                if check is not None and check():
                    found.add(fmt)
            except (RuntimeError, AttributeError):
                pass
    flags = _cpuinfo_flags()
    if flags & {"avx512_bf16", "amx_bf16"}:
        found.add("bf16")
    if flags & {"avx512_fp16", "amx_fp16"}:
        found.add("fp16")
    return frozenset(found)


def _cpuinfo_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def native_formats(device: torch.device) -> frozenset[str]:
    """Reduced-precision formats ``device`` runs natively (empty: fp32 only)."""
    if device.type == "cuda":
        out = set()
        if torch.cuda.is_bf16_supported():
            out.add("bf16")
        if torch.cuda.get_device_capability(device)[0] >= 7:
            out.add("fp16")
        return frozenset(out)
    if device.type == "cpu":
        return cpu_native_formats()
    return frozenset()


def resolve_precision(requested: str, device: torch.device) -> str:
    """The precision a run uses: ``auto`` resolved for ``device`` (see the module docstring); a reduced precision
    requested on a CPU that lacks it is kept, with a one-line warning."""
    native = native_formats(device)
    if requested == "auto":
        for fmt in ("bf16", "fp16") if device.type == "cuda" else ("bf16",):
            if fmt in native:
                return fmt
        return "fp32"
    if requested in ("bf16", "fp16") and device.type == "cpu" and requested not in native:
        warnings.warn(f"--precision {requested}: this CPU has no native {requested} (no "
                      f"{'AVX512-BF16/AMX' if requested == 'bf16' else 'AVX512-FP16/AMX-FP16'}), so autocast "
                      "emulates it and is usually slower than fp32 (a ViT-B/32 sweep ran 1.85x slower); "
                      "--precision auto picks fp32 here", stacklevel=2)
    return requested


__all__ = ["PRECISION_CHOICES", "cpu_native_formats", "native_formats", "resolve_precision"]
