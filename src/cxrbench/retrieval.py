"""Cosine similarity in blocks, exact target ranks with ties kept as ties, and chunked top-k.

Nothing here holds the full query x gallery matrix: queries and gallery are processed in blocks, so a gallery that
does not fit in memory as a dense matrix still works (memory ~ query_chunk x gallery_chunk).

Ties never favour the target. For each query the scan records where its targets fall in the gallery's similarity
order: ``above``, the non-targets scoring strictly higher than the best-scoring target; ``tied``, the non-targets
scoring exactly as high; ``tied_targets``, the targets scoring exactly that best score (at least 1). A hit at k is
then counted as its probability under a uniformly random order of the tied items (:meth:`TargetRanks.hit_probability`),
and a rank as its expected value, so a model whose embeddings are constant (all scores tied) scores chance, never
100%. Without ties nothing changes: the hit is 0 or 1 and the rank is ``above + 1``. Both passes compute each block
with the same shapes, so a score is bit-identical wherever it is compared.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

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


@dataclass(frozen=True, eq=False)
class TargetRanks:
    """Where each query's targets fall in the similarity order (int64 tensors of shape (Q,), on the CPU).

    ``above``: non-targets strictly above the best target; ``tied``: non-targets tied with it; ``tied_targets``:
    targets at exactly the best score (>= 1); ``n_targets``: all targets of the query; ``n_gallery``: gallery size.

    Under a uniformly random order of tied items, the first target among the ``t = tied`` non-targets and
    ``m = tied_targets`` targets of the tie block is preceded by X of those non-targets, with
    ``P(X >= x) = C(t + m - x, m) / C(t + m, m)`` (the m target positions are a uniformly random m-subset of the
    t + m places, and X >= x exactly when none of them is among the first x). The rank of the first target is
    ``above + X + 1``, so with ``d = k - above``::

        P(hit at k) = 0                                  if d <= 0
                    = 1 - C(t + m - d, m) / C(t + m, m)   if 0 < d <= t
                    = 1                                  if d > t

    which for a single tied target (m = 1) is ``clip(d / (t + 1), 0, 1)``; and ``E[rank] = above + 1 + t / (m + 1)``.
    A constant model (every score tied; above = 0, t = gallery - n_targets, m = n_targets) therefore scores
    ``k / gallery`` for single-target queries and ``1 - C(gallery - k, m) / C(gallery, m)`` (chance of finding any
    of m targets in k random draws) for multi-target ones: exactly :meth:`chance`.
    """

    above: torch.Tensor
    tied: torch.Tensor
    tied_targets: torch.Tensor
    n_targets: torch.Tensor
    n_gallery: int

    def __len__(self) -> int:
        return len(self.above)

    def select(self, index: torch.Tensor | Sequence[int]) -> TargetRanks:
        """The queries at ``index`` (repeats allowed: bootstrap resamples)."""
        idx = torch.as_tensor(index, dtype=torch.int64)
        return TargetRanks(self.above[idx], self.tied[idx], self.tied_targets[idx], self.n_targets[idx],
                           self.n_gallery)

    def hit_probability(self, k: int) -> torch.Tensor:
        """(Q,) float64: each query's probability that a target is in the top ``k`` (random tie order)."""
        return _hit_probability(self.above, self.tied, self.tied_targets, int(k))

    def expected_rank(self) -> torch.Tensor:
        """(Q,) float64: expected 1-based rank of each query's first target (random tie order)."""
        return self.above.double() + 1.0 + self.tied.double() / (self.tied_targets.double() + 1.0)

    def chance(self, k: int) -> float:
        """Recall@k of a model that ranks the gallery in uniformly random order (mean over these queries)."""
        p = _hit_probability(torch.zeros_like(self.n_targets), self.n_gallery - self.n_targets, self.n_targets, int(k))
        return math.fsum(p.tolist()) / len(p) if len(p) else float("nan")

    def optimistic_rank(self) -> torch.Tensor:
        """(Q,) int64 rank with every tie resolved in the target's favour (``above + 1``; the old rule)."""
        return self.above + 1

    def to_dict(self) -> dict:
        """Plain tensors (for ``ranks.pt``; loadable with ``torch.load(weights_only=True)``)."""
        return {"above": self.above, "tied": self.tied, "tied_targets": self.tied_targets,
                "n_targets": self.n_targets, "n_gallery": torch.tensor(self.n_gallery)}

    @classmethod
    def from_dict(cls, d: dict) -> TargetRanks:
        return cls(d["above"], d["tied"], d["tied_targets"], d["n_targets"], int(d["n_gallery"]))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TargetRanks):
            return NotImplemented
        return self.n_gallery == other.n_gallery and all(
            torch.equal(getattr(self, f), getattr(other, f)) for f in ("above", "tied", "tied_targets", "n_targets"))

    __hash__ = None  # mutable tensors inside: not hashable


def _hit_probability(above: torch.Tensor, tied: torch.Tensor, tied_targets: torch.Tensor, k: int) -> torch.Tensor:
    d = (k - above).double()
    t, m = tied.double(), tied_targets.double()
    # C(t + m - d, m) / C(t + m, m) = prod_{i < m} (t + m - d - i) / (t + m - i), for 0 < d <= t (each factor in
    # [0, 1)); m is the number of tied targets (images per study at most), so the loop is short.
    ratio = torch.ones_like(d)
    inside = (d > 0) & (d <= t)
    for i in range(int(tied_targets.max()) if len(tied_targets) else 0):
        active = inside & (m > i)
        ratio = torch.where(active, ratio * (t + m - d - i) / (t + m - i), ratio)
    p = torch.where(d <= 0, torch.zeros_like(d), torch.where(d > t, torch.ones_like(d), 1.0 - ratio))
    # m = 1 in closed form, so the common single-target case is exactly d / (t + 1)
    single = inside & (m == 1)
    return torch.where(single, d / (t + 1.0), p)


def target_ranks(
    queries: torch.Tensor,
    gallery: torch.Tensor,
    query_labels: torch.Tensor,
    gallery_labels: torch.Tensor,
    query_chunk: int = DEFAULT_QUERY_CHUNK,
    gallery_chunk: int = DEFAULT_GALLERY_CHUNK,
) -> TargetRanks:
    """Where each query's best-scoring target falls under cosine similarity, ties kept (see :class:`TargetRanks`).

    A gallery item is a target of query q when ``gallery_labels[g] == query_labels[q]``. Every query must have at
    least one target, and every embedding must be finite (NaN would compare false with everything and win every
    tie-free comparison; :func:`check_finite` names the offending rows).
    """
    if queries.shape[1] != gallery.shape[1]:
        raise ValueError(f"embedding sizes differ: queries {tuple(queries.shape)}, gallery {tuple(gallery.shape)}")
    for name, x in (("queries", queries), ("gallery", gallery)):
        bad = non_finite_rows(x)
        if len(bad):
            raise ValueError(f"{len(bad)} {name} embedding(s) are not finite (NaN or inf), first row {int(bad[0])}")
    q = normalise(queries)
    g = normalise(gallery).to(q.device, q.dtype)
    ql = query_labels.to(q.device)
    gl = gallery_labels.to(q.device)
    missing = ~torch.isin(ql, gl)
    if bool(missing.any()):
        raise ValueError(f"{int(missing.sum())} queries have no target in the gallery (first: {int(missing.nonzero()[0])})")
    n = len(q)
    above, tied, tied_targets, n_targets = (torch.empty(n, dtype=torch.int64) for _ in range(4))
    for qs in _blocks(n, query_chunk):
        qb, qlb = q[qs], ql[qs]
        best = torch.full((qb.shape[0],), float("-inf"), device=q.device, dtype=q.dtype)
        for gs in _blocks(len(g), gallery_chunk):  # pass 1: best target score
            s = qb @ g[gs].T
            pos = qlb[:, None] == gl[gs][None, :]
            best = torch.maximum(best, s.masked_fill(~pos, float("-inf")).amax(dim=1))
        counts = torch.zeros(4, qb.shape[0], dtype=torch.int64, device=q.device)
        for gs in _blocks(len(g), gallery_chunk):  # pass 2: where the gallery falls against it
            s = qb @ g[gs].T
            pos = qlb[:, None] == gl[gs][None, :]
            level = s == best[:, None]
            counts[0] += ((s > best[:, None]) & ~pos).sum(dim=1)
            counts[1] += (level & ~pos).sum(dim=1)
            counts[2] += (level & pos).sum(dim=1)
            counts[3] += pos.sum(dim=1)
        counts = counts.cpu()
        above[qs], tied[qs], tied_targets[qs], n_targets[qs] = counts
    return TargetRanks(above, tied, tied_targets, n_targets, len(g))


def non_finite_rows(x: torch.Tensor) -> torch.Tensor:
    """Indices (CPU int64) of the rows of ``x`` holding a NaN or an infinity."""
    if not x.is_floating_point():
        return torch.empty(0, dtype=torch.int64)
    return (~torch.isfinite(x)).any(dim=-1).nonzero().flatten().cpu()


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
