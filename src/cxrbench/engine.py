"""Running the towers: inference context (no_grad / inference_mode, autocast), channels-last image towers, text
embeddings once per model, and image embeddings at every level of a corruption, sharded over torch.distributed
ranks.

Every corruption goes through one interface (:mod:`cxrbench.corruptions.base`): per batch, its randomness is drawn
once (``corruption.prepare(pixels, keys, masks)``: occlusion masks, noise fields, blur angles, fills) and reused for
every level (``corruption.apply(pixels, keys, level, state)``); uint8 geometry tensors go to the device (pinned,
non-blocking on CUDA), where the corruption, intensity normalisation and the image tower run level by level.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Mapping, Sequence

import torch

from cxrbench import distributed, metrics
from cxrbench.config import PRECISIONS, SweepConfig
from cxrbench.corruptions import Corruption
from cxrbench.models import Encoder
from cxrbench.prepared import Prepared, release_freed_memory


@contextlib.contextmanager
def inference_context(device: torch.device, precision: str) -> Iterator[None]:
    """no_grad (+ autocast for bf16/fp16). CPU autocast under inference_mode re-casts weights on every call
    (measured ~2.5x slower here), so no_grad is used on the CPU."""
    dtype = PRECISIONS[precision]
    grad_ctx = torch.inference_mode() if device.type == "cuda" else torch.no_grad()
    with grad_ctx:
        if dtype is None:
            yield
        else:
            with torch.autocast(device_type=device.type, dtype=dtype):
                yield


def to_channels_last(encoder: Encoder) -> None:
    """Put every module the encoder holds in channels-last memory format (helps convolutions on some devices)."""
    set_memory_format(encoder, True)


def set_memory_format(encoder: Encoder, channels_last: bool) -> None:
    """Put every module the encoder holds in channels-last (``True``) or contiguous (NCHW) memory format."""
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    for value in vars(encoder).values():
        if isinstance(value, torch.nn.Module):
            value.to(memory_format=fmt)


def uses_channels_last(encoder: Encoder, requested: bool) -> bool:
    """Whether ``encoder``'s image tower runs channels-last in a run that asks for it (``requested``,
    ``SweepConfig.channels_last``): only where its family is faster so (:attr:`Encoder.channels_last_tower`)."""
    return requested and encoder.channels_last_tower


def embed_texts(encoder: Encoder, texts: Sequence[str], device: torch.device, precision: str) -> torch.Tensor:
    """(n_texts, D) float32 text embeddings, under the run's precision."""
    with inference_context(device, precision):
        return encoder.encode_texts(texts).float()


def embed_texts_checked(encoder: Encoder, prep: Prepared, device: torch.device, cfg: SweepConfig,
                        model: str) -> torch.Tensor:
    """The model's embeddings of the unique texts, checked finite (so a broken tower is never cached)."""
    text_emb = embed_texts(encoder, prep.unique_texts, device, cfg.precision)
    metrics.check_finite(text_emb, "text", ids=[repr(t[:60]) for t in prep.unique_texts], context=f"model {model}")
    return text_emb


def embed_levels(encoder: Encoder, pixels: torch.Tensor, keys: torch.Tensor, corruption: Corruption,
                 levels: Sequence[float], device: torch.device, precision: str, chunks: Sequence[int] | int,
                 on_batch: Callable[[int], None] | None = None,
                 channels_last: bool = False,
                 chunk_levels: Sequence[Sequence[float]] | None = None,
                 on_chunk: Callable[[int, dict[float, torch.Tensor]], None] | None = None,
                 masks: torch.Tensor | None = None,
                 ) -> list[dict[float, torch.Tensor]]:
    """Image embeddings at every level, one dict per chunk (``chunks``: chunk sizes, or one batch size).

    Per chunk, the corruption's state is drawn once (``prepare``) and reused for every level (``apply``); uint8
    pixels go to the device (pinned, non-blocking on CUDA), where the corruption and the intensity normalisation
    run. ``masks`` ((n, H, W) bool lung masks in the frame, one per image) go to ``prepare`` of a corruption that
    uses them. ``chunk_levels`` (one list per chunk) embeds only those levels of each chunk (default: ``levels`` for
    every chunk); ``on_chunk(i, {level: (n, D)})`` is called as soon as chunk ``i`` is done (the sweep writes its
    cache entries there).
    """
    n = len(pixels)
    if isinstance(chunks, int):
        chunks = [min(chunks, n - s) for s in range(0, n, chunks)]
    if sum(chunks) != n:
        raise ValueError(f"chunk sizes add up to {sum(chunks)}, not {n} images")
    if chunk_levels is not None and len(chunk_levels) != len(chunks):
        raise ValueError(f"{len(chunk_levels)} level lists for {len(chunks)} chunks")
    pin = device.type == "cuda"
    out: list[dict[float, torch.Tensor]] = []
    # one (n, D) buffer per level, filled chunk by chunk: many small long-lived tensors interleaved with the
    # tower's large transient ones fragment the heap (resident memory then grew with the gallery)
    buffers: dict[float, torch.Tensor] = {}
    all_levels = levels
    start = 0
    with inference_context(device, precision):
        for index, size in enumerate(chunks):
            levels = all_levels if chunk_levels is None else chunk_levels[index]
            batch = pixels[start : start + size]
            batch = (batch.pin_memory() if pin else batch).to(device, non_blocking=True)
            k = keys[start : start + size].to(device)
            rows = slice(start, start + size)
            start += size
            m = masks[rows].to(device) if masks is not None and corruption.uses_masks else None
            state = corruption.prepare(batch, k, masks=m) if any(lv > 0 for lv in levels) else None
            embs = {}
            for lv in levels:
                x = encoder.intensity(corruption.apply(batch, k, lv, state=state))
                if channels_last and x.dim() == 4:
                    x = x.contiguous(memory_format=torch.channels_last)
                emb = encoder.embed_pixels(x)
                if lv not in buffers:
                    buffers[lv] = torch.empty(n, emb.shape[1], dtype=torch.float32)
                buffers[lv][rows].copy_(emb)
                embs[lv] = buffers[lv][rows]
                if on_batch:
                    on_batch(size)
            if on_chunk:
                on_chunk(index, embs)
            out.append(embs)
    return out


def image_chunks(encoder: Encoder, prep: Prepared, cfg: SweepConfig) -> list[tuple[int, int]]:
    """(start, end) image ranges of the batches the sweep embeds: runs of whole studies of at most
    ``cfg.batch_size or encoder.image_batch_size`` images. The unit of sharding and of the embedding cache."""
    return distributed.study_chunks(prep.image_study, cfg.batch_size or encoder.image_batch_size)


def embed_images(encoder: Encoder, prep: Prepared, corruption: Corruption, levels: Sequence[float],
                 image_keys: torch.Tensor, device: torch.device, cfg: SweepConfig,
                 progress: bool = False, cached: Mapping[tuple[int, float], torch.Tensor] | None = None,
                 on_chunk: Callable[[int, dict[float, torch.Tensor]], None] | None = None,
                 lung_masks: Callable[[Sequence[int] | None], torch.Tensor] | None = None,
                 ) -> tuple[dict[float, torch.Tensor] | None, float]:
    """Every image's embedding at each of ``levels``, and the seconds spent on geometry (and decoding).

    Images are split into :func:`image_chunks`; ``cached`` holds the (chunk, level) embeddings that need no work
    (from the embedding cache), and ``on_chunk(chunk, {level: embeddings})`` is called as soon as a chunk's
    missing levels are embedded. ``lung_masks(indices)`` gives the (n, H, W) lung masks in the model's frame of the
    images at ``indices`` (None: all), for a corruption that uses them. Under torch.distributed each rank embeds
    every ``world_size``-th chunk and rank 0 gathers them: rank 0 gets ``{level: (n_images, D)}``, other ranks None.
    """
    from tqdm.auto import tqdm

    rank, size = distributed.world()
    cached = cached or {}
    chunks = image_chunks(encoder, prep, cfg)
    todo = {c: [lv for lv in levels if (c, lv) not in cached] for c in range(len(chunks))}
    mine = [c for c in range(rank, len(chunks), size) if todo[c]]
    indices = [i for c in mine for i in range(*chunks[c])]
    local: list[dict[float, torch.Tensor]] = []
    geometry_s = 0.0
    if mine:  # a rank can have no chunk when there are fewer chunks than ranks, or all are cached
        t0 = time.perf_counter()
        subset = None if len(indices) == len(prep.image_ids) else indices
        pixels = prep.geometry(encoder, progress, indices=subset)
        masks = lung_masks(subset) if corruption.uses_masks and lung_masks is not None else None
        geometry_s = time.perf_counter() - t0
        work = sum(len(todo[c]) * (chunks[c][1] - chunks[c][0]) for c in mine)
        bar = tqdm(total=work, desc=f"{encoder.info.name} {corruption.name}", unit="img",
                   disable=not progress or rank != 0)
        local = embed_levels(encoder, pixels, image_keys[indices], corruption, levels, device, cfg.precision,
                             [chunks[c][1] - chunks[c][0] for c in mine], on_batch=bar.update,
                             channels_last=uses_channels_last(encoder, cfg.channels_last),
                             chunk_levels=[todo[c] for c in mine],
                             on_chunk=None if on_chunk is None else lambda i, embs: on_chunk(mine[i], embs),
                             masks=masks)
        bar.close()
    gathered = distributed.gather_chunks(dict(zip(mine, local)), len(chunks))  # torchrun: no cache, all to do
    if gathered is None:  # not rank 0: rank 0 scores and writes
        return None, geometry_s
    embeddings = {lv: torch.cat([cached[(c, lv)] if (c, lv) in cached else gathered[c][lv]
                                 for c in range(len(chunks))]) for lv in levels}
    del local, gathered
    release_freed_memory()
    return embeddings, geometry_s
