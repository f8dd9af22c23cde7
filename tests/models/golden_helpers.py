"""Small helpers the adapter golden tests share (not a test module: no test_ prefix)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch


def load_npz(path: str | Path) -> dict[str, np.ndarray]:
    """Every array of an .npz, read into memory (the file is closed again)."""
    with np.load(path) as data:
        return {k: data[k] for k in data.files}


def row_cosines(a: torch.Tensor | np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of each row of ``a`` with the same row of ``b``, in float64."""
    a = torch.as_tensor(np.asarray(a, dtype=np.float64))
    b = torch.as_tensor(np.asarray(b, dtype=np.float64))
    return torch.nn.functional.cosine_similarity(a, b, dim=-1).numpy()


def hf_cache_entry(cache: str | Path, repo_id: str, files: Iterable[Path], commit: str,
                   revision: str = "main") -> Path:
    """A Hugging Face hub-layout cache entry (``models--org--name/refs/<revision>``, ``snapshots/<commit>/``)
    whose snapshot links to ``files``; returns the snapshot folder."""
    repo = Path(cache) / ("models--" + repo_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / revision).write_text(commit)
    snap = repo / "snapshots" / commit
    snap.mkdir(parents=True, exist_ok=True)
    for f in files:
        os.symlink(Path(f).resolve(), snap / Path(f).name)
    return snap
