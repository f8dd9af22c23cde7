"""Helpers of scripts/gpu_check.py: logging, atomic writes, and section 2 of the check, the full-size randomly
initialised checkpoints in each upstream file format (see gpu_check.py's docstring).

The files are written by :mod:`cxrbench.random_checkpoints` (also used by ``cxrbench bench --paper-size``); here
their key names are first checked against the golden fixtures' upstream-written checkpoints (block indices
collapsed).
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GOLDEN = REPO / "tests" / "fixtures" / "golden"
MODELS = ("clip", "cxr_repair", "medclip", "cxr_clip")


def log(msg: str) -> None:
    print(f"[gpu_check {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def atomic_write(path: Path, write) -> None:
    """``write(tmp_path)`` then rename into place (a crash never leaves a half-written file at ``path``)."""
    from cxrbench.io import atomic_path

    with atomic_path(path) as tmp:
        write(tmp)


def collapse(key: str) -> str:
    """A state-dict key with block / layer indices replaced by N (compares layouts of different depths)."""
    return re.sub(r"\.\d+(?=\.|$)", ".N", key)


def check_layout(ours: list[str], upstream: list[str], what: str) -> None:
    """Our full-size key names, indices collapsed, must be exactly those of the upstream-written fixture."""
    a, b = {collapse(k) for k in ours}, {collapse(k) for k in upstream}
    if a != b:
        raise SystemExit(f"{what}: key layout differs from the upstream-written golden fixture:\n"
                         f"  only ours: {sorted(a - b)[:20]}\n  only upstream: {sorted(b - a)[:20]}")


# --------------------------------------------------------------------------------------------------------------
# 2. full-size random checkpoints in the upstream formats (written by cxrbench.random_checkpoints)
# --------------------------------------------------------------------------------------------------------------


def check_layouts(models: list[str]) -> None:
    """The package's checkpoint layouts against the upstream-written golden fixtures (when the repo has them)."""
    if not GOLDEN.is_dir():
        return
    import torch

    from cxrbench.models.cxr_clip import read_checkpoint
    from cxrbench.random_checkpoints import cxr_clip_state, medclip_state, openai_layout_state

    if "clip" in models or "cxr_repair" in models:
        manifest = json.loads((GOLDEN / "openai_clip" / "checkpoint_manifest.json").read_text())["openai"]
        roots = ["input_resolution", "context_length", "vocab_size"]
        check_layout(list(openai_layout_state("tiny")) + roots, [e["key"] for e in manifest["tensors"]],
                     "clip / cxr_repair (OpenAI ViT-B/32 layout)")
    if "cxr_clip" in models:
        golden, _ = read_checkpoint(GOLDEN / "cxr_clip" / "cxr_clip_swin_tiny.tar", adapter="cxr_clip")
        check_layout([k for k, _ in cxr_clip_state("tiny")], list(golden), "cxr_clip (CXR-CLIP Swin-Tiny layout)")
    if "medclip" in models:
        golden = torch.load(GOLDEN / "medclip" / "vit" / "pytorch_model.bin", weights_only=True)
        check_layout([k for k, _ in medclip_state("tiny")], list(golden), "medclip (MedCLIP-ViT layout)")


def write_checkpoints(models: list[str], folder: Path) -> tuple[dict[str, dict], dict]:
    """Write (or reuse) every needed full-size checkpoint; return load_model settings per model and what was
    written (cxrbench.random_checkpoints, after checking the layouts against the golden fixtures)."""
    from cxrbench import random_checkpoints

    unknown = [m for m in models if m not in MODELS]
    if unknown:
        raise SystemExit(f"--models: {', '.join(unknown)} not among {', '.join(MODELS)}")
    check_layouts(models)
    return random_checkpoints.write_checkpoints(folder, models, "full", progress=log)
