"""Recall@k in both directions, mean and median rank, bootstrap intervals — pure tensor code.

Protocol
--------
Texts are merged first: identical report texts (after whitespace normalisation) become one gallery entry, so a
query is never punished for retrieving a duplicate of its own report (as CXR-CLIP's evaluator does).

``image_to_text``  queries: every image (a study with several images contributes each of them); gallery: the
                   unique texts; target: the text of the image's study.
``text_to_image``  queries: every unique text; gallery: every image; targets: all images of every study whose
                   text it is. A report counts as found at k if any of its images is in the top k.

Recall@k is the mean over queries of the probability that a target is among the top k when tied scores are put in
a uniformly random order (:class:`cxrbench.retrieval.TargetRanks`): a query whose target is tied with t non-targets
is not a hit for free. Without ties this is the plain fraction of queries whose target rank is <= k. Mean and
median rank use each query's expected rank under the same random tie order. A model whose embeddings are constant
(or all zero) therefore scores exactly chance; non-finite embeddings are an error (:func:`check_finite`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from cxrbench.errors import CxrBenchError
from cxrbench.retrieval import TargetRanks, non_finite_rows, target_ranks

DIRECTIONS = ("image_to_text", "text_to_image")
DEFAULT_KS = (1, 5, 10, 20, 30, 50, 100)


def merge_texts(texts: Sequence[str]) -> tuple[list[str], list[int]]:
    """Unique texts in first-seen order, and for each input text the index of its unique text."""
    index: dict[str, int] = {}
    labels = []
    for t in texts:
        if t not in index:
            index[t] = len(index)
        labels.append(index[t])
    return list(index), labels


class NonFiniteEmbeddings(CxrBenchError):
    """A model produced NaN or infinite embeddings: its results would be meaningless."""


def check_finite(embeddings: torch.Tensor, what: str, ids: Sequence[str] | None = None, context: str = "") -> None:
    """Raise :class:`NonFiniteEmbeddings` naming the first rows (by id) that hold NaN or inf.

    ``what`` says which embeddings ("image", "text"); ``context`` names the model and level.
    """
    bad = non_finite_rows(embeddings)
    if len(bad) == 0:
        return
    names = [ids[int(i)] if ids is not None else f"row {int(i)}" for i in bad[:3]]
    raise NonFiniteEmbeddings(
        f"{context + ': ' if context else ''}{len(bad)} of {len(embeddings)} {what} embeddings are NaN or infinite "
        f"(first: {', '.join(map(str, names))}); the model's weights or inputs are broken (check the checkpoint, "
        "its dtype and --precision)")


def hit_matrix(ranks: TargetRanks, ks: Sequence[int]) -> np.ndarray:
    """(Q, K) float64: each query's probability of a hit at each k (random tie order)."""
    return np.stack([ranks.hit_probability(k).numpy() for k in ks], axis=1) if len(ks) else np.zeros((len(ranks), 0))


def exact_mean(values: torch.Tensor) -> float:
    """Mean with an exactly rounded sum (``math.fsum``), so a result never depends on the order of the queries."""
    return math.fsum(values.double().tolist()) / len(values) if len(values) else float("nan")


def recall_from_ranks(ranks: TargetRanks, ks: Sequence[int]) -> dict[int, float]:
    """Recall@k: the mean over queries of P(hit at k) under a uniformly random order of tied scores."""
    return {int(k): exact_mean(ranks.hit_probability(k)) for k in ks}


def bootstrap_recall(ranks: TargetRanks, ks: Sequence[int], n_boot: int = 1000, seed: int = 0,
                     alpha: float = 0.05) -> dict[int, tuple[float, float]]:
    """Percentile bootstrap interval of Recall@k over queries (resampling queries with replacement)."""
    hits = hit_matrix(ranks, ks)  # (Q, K)
    rng = np.random.Generator(np.random.PCG64(seed))
    idx = rng.integers(0, len(hits), size=(n_boot, len(hits)))
    means = hits[idx].mean(axis=1)  # (n_boot, K)
    lo, hi = np.quantile(means, [alpha / 2, 1 - alpha / 2], axis=0)
    return {int(k): (float(a), float(b)) for k, a, b in zip(ks, lo, hi)}


def direction_metrics(ranks: TargetRanks, ks: Sequence[int], n_gallery: int, bootstrap: int = 0,
                      seed: int = 0) -> dict:
    expected = ranks.expected_rank()
    out = {
        "recall": recall_from_ranks(ranks, ks),
        "chance": {int(k): ranks.chance(k) for k in ks},
        "mean_rank": exact_mean(expected),
        "median_rank": float(np.median(expected.numpy())),
        "n_queries": len(ranks),
        "n_gallery": int(n_gallery),
        "ranks": ranks,
    }
    if bootstrap:
        out["recall_ci95"] = bootstrap_recall(ranks, ks, n_boot=bootstrap, seed=seed)
    return out


def retrieval_metrics(
    image_emb: torch.Tensor,
    text_emb: torch.Tensor,
    image_text: Sequence[int] | torch.Tensor,
    ks: Sequence[int] = DEFAULT_KS,
    bootstrap: int = 0,
    seed: int = 0,
    **chunks,
) -> dict[str, dict]:
    """Metrics for both directions.

    ``text_emb`` holds one row per *unique* text (see :func:`merge_texts`); ``image_text[i]`` is the unique-text
    index of image i's study. Every unique text must have at least one image.
    """
    labels = torch.as_tensor(image_text, dtype=torch.int64)
    n_text = text_emb.shape[0]
    text_ids = torch.arange(n_text, dtype=torch.int64)
    i2t = target_ranks(image_emb, text_emb, labels, text_ids, **chunks)
    t2i = target_ranks(text_emb, image_emb, text_ids, labels, **chunks)
    return {
        "image_to_text": direction_metrics(i2t, ks, n_gallery=n_text, bootstrap=bootstrap, seed=seed),
        "text_to_image": direction_metrics(t2i, ks, n_gallery=len(labels), bootstrap=bootstrap, seed=seed),
    }


def retention(recall_at_level: float, recall_clean: float) -> float | None:
    """Fraction of the clean Recall@k kept at a level (None when the clean value is 0).

    The records' ``retention`` and its study-bootstrap interval come from
    :meth:`cxrbench.stats.RecallCurve.retention`: the same ratio, formed in every resample."""
    return None if recall_clean == 0 else recall_at_level / recall_clean
