"""Scale-out with torch.distributed: ``torchrun --nproc_per_node=N -m cxrbench run ...``.

Work is split into *chunks*: runs of consecutive studies holding at most ``batch_size`` images (a study is never
split; a study with more images than a batch forms its own chunk). A single process embeds every chunk in order;
under torchrun, rank r embeds chunks r, r + N, r + 2N, ... (deterministic, by study), and rank 0 gathers the image
embeddings, embeds the texts, scores and writes the results. Every chunk is embedded as the same batch in both
cases, so with the same device type and thread count the embeddings, and therefore the results, are identical to a
single-process run. Backend: NCCL when the device is CUDA (each rank uses cuda:LOCAL_RANK), else gloo. Multi-node:
the usual torchrun rendezvous options (``--nnodes``, ``--rdzv-endpoint``); every node needs the dataset and the
weights at the same paths. The embedding cache is not used under torchrun (ranks could disagree on what is cached).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch


def study_chunks(image_study: Sequence[int], batch_size: int) -> list[tuple[int, int]]:
    """(start, end) image-index ranges of consecutive whole studies, each with <= batch_size images when possible."""
    chunks: list[tuple[int, int]] = []
    start = 0
    n = len(image_study)
    i = 0
    while i < n:
        j = i
        while j < n and image_study[j] == image_study[i]:
            j += 1  # [i, j) is one study
        if j - start > batch_size and i > start:
            chunks.append((start, i))
            start = i
        i = j
    if start < n:
        chunks.append((start, n))
    return chunks


def world() -> tuple[int, int]:
    """(rank, world size); (0, 1) when not under torchrun or not initialised."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init(device: torch.device) -> torch.device:
    """Initialise the process group from torchrun's environment; return this rank's device."""
    if not launched_by_torchrun() or torch.distributed.is_initialized():
        return device
    if device.type == "cuda":
        local = int(os.environ.get("LOCAL_RANK", "0"))
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
        torch.distributed.init_process_group("nccl")
    else:
        torch.distributed.init_process_group("gloo")
    return device


def gather_chunks(local: dict[int, dict[float, torch.Tensor]], n_chunks: int) -> dict[int, dict[float, torch.Tensor]] | None:
    """Gather {chunk index: {level: embeddings}} from every rank onto rank 0 (None elsewhere)."""
    rank, size = world()
    if size == 1:
        return local
    payload = {i: {lv: t.cpu().clone() for lv, t in d.items()} for i, d in local.items()}  # views: send rows only
    gathered: list | None = [None] * size if rank == 0 else None
    torch.distributed.gather_object(payload, gathered, dst=0)
    if rank != 0:
        return None
    merged: dict[int, dict[float, torch.Tensor]] = {}
    for part in gathered:
        merged.update(part)
    missing = set(range(n_chunks)) - set(merged)
    if missing:
        raise RuntimeError(f"distributed gather lost chunks {sorted(missing)[:10]}")
    return merged
