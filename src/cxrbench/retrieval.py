"""Cosine similarity in blocks, exact target ranks and chunked top-k.

Nothing here holds the full query x gallery matrix: queries and gallery are processed in blocks, so a gallery that
does not fit in memory as a dense matrix still works (memory ~ query_chunk x gallery_chunk).

Ranks are exact and tie-aware: the rank of a query's target is 1 + the number of non-target gallery items whose
similarity is *strictly greater* than the best target's similarity (ties resolve in the target's favour, as with
any stable "top-k contains the target" rule that puts targets first). Both passes compute each block with the same
shapes, so a score is bit-identical wherever it is compared.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F

DEFAULT_QUERY_CHUNK = 4096
DEFAULT_GALLERY_CHUNK = 16384


def normalise(x: torch.Tensor) -> torch.Tensor:
    """L2-normalise rows in their own floating dtype (float64 stays float64)."""
    if not x.is_floating_point():
        x = x.float()
    return F.normalize(x, dim=-1)


def _blocks(n: int, chunk: int) -> Iterator[slice]:
    for start in range(0, n, chunk):
        yield slice(start, min(start + chunk, n))


def target_ranks(
    queries: torch.Tensor,
    gallery: torch.Tensor,
    query_labels: torch.Tensor,
    gallery_labels: torch.Tensor,
    query_chunk: int = DEFAULT_QUERY_CHUNK,
    gallery_chunk: int = DEFAULT_GALLERY_CHUNK,
) -> torch.Tensor:
    """Rank (1-based) of each query's best-scoring target under cosine similarity.

    A gallery item is a target of query q when ``gallery_labels[g] == query_labels[q]``. Every query must have at
    least one target. Returns int64 ranks on the CPU.
    """
    if queries.shape[1] != gallery.shape[1]:
        raise ValueError(f"embedding sizes differ: queries {tuple(queries.shape)}, gallery {tuple(gallery.shape)}")
    q = normalise(queries)
    g = normalise(gallery).to(q.device, q.dtype)
    ql = query_labels.to(q.device)
    gl = gallery_labels.to(q.device)
    missing = ~torch.isin(ql, gl)
    if bool(missing.any()):
        raise ValueError(f"{int(missing.sum())} queries have no target in the gallery (first: {int(missing.nonzero()[0])})")
    ranks = torch.empty(len(q), dtype=torch.int64)
    for qs in _blocks(len(q), query_chunk):
        qb, qlb = q[qs], ql[qs]
        best = torch.full((qb.shape[0],), float("-inf"), device=q.device, dtype=q.dtype)
        for gs in _blocks(len(g), gallery_chunk):  # pass 1: best target score
            s = qb @ g[gs].T
            pos = qlb[:, None] == gl[gs][None, :]
            best = torch.maximum(best, s.masked_fill(~pos, float("-inf")).amax(dim=1))
        above = torch.zeros(qb.shape[0], dtype=torch.int64, device=q.device)
        for gs in _blocks(len(g), gallery_chunk):  # pass 2: non-targets strictly above it
            s = qb @ g[gs].T
            pos = qlb[:, None] == gl[gs][None, :]
            above += ((s > best[:, None]) & ~pos).sum(dim=1)
        ranks[qs] = (above + 1).cpu()
    return ranks


def chunked_topk(
    queries: torch.Tensor,
    gallery: torch.Tensor,
    k: int,
    query_chunk: int = DEFAULT_QUERY_CHUNK,
    gallery_chunk: int = DEFAULT_GALLERY_CHUNK,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k cosine scores and gallery indices per query, merging per-block top-k (ties: lower index first)."""
    q = normalise(queries)
    g = normalise(gallery).to(q.device, q.dtype)
    k = min(k, len(g))
    all_scores, all_idx = [], []
    for qs in _blocks(len(q), query_chunk):
        best_s = torch.empty(q[qs].shape[0], 0, device=q.device, dtype=q.dtype)
        best_i = torch.empty(q[qs].shape[0], 0, device=q.device, dtype=torch.int64)
        for gs in _blocks(len(g), gallery_chunk):
            s = q[qs] @ g[gs].T
            kk = min(k, s.shape[1])
            # stable descending sort keeps the lower index first among equal scores
            top_s, top_i = torch.sort(s, dim=1, descending=True, stable=True)
            cand_s = torch.cat([best_s, top_s[:, :kk]], dim=1)
            cand_i = torch.cat([best_i, top_i[:, :kk] + gs.start], dim=1)
            order = torch.sort(cand_s, dim=1, descending=True, stable=True).indices[:, :k]
            best_s, best_i = cand_s.gather(1, order), cand_i.gather(1, order)
        all_scores.append(best_s.cpu())
        all_idx.append(best_i.cpu())
    return torch.cat(all_scores), torch.cat(all_idx)
