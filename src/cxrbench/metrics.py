"""Recall@k in both directions, mean and median rank, bootstrap intervals — pure tensor code.

Protocol
--------
Texts are merged first: identical report texts (after whitespace normalisation) become one gallery entry, so a
query is never punished for retrieving a duplicate of its own report (as CXR-CLIP's evaluator does).

``image_to_text``  queries: every image (a study with several images contributes each of them); gallery: the
                   unique texts; target: the text of the image's study.
``text_to_image``  queries: every unique text; gallery: every image; targets: all images of every study whose
                   text it is. A report counts as found at k if any of its images is in the top k.

Recall@k is the fraction of queries whose target rank is <= k (see :func:`cxrbench.retrieval.target_ranks` for the
rank definition and tie rule).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from cxrbench.retrieval import target_ranks

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


def recall_from_ranks(ranks: torch.Tensor, ks: Sequence[int]) -> dict[int, float]:
    n = len(ranks)
    return {int(k): float((ranks <= k).sum().item()) / n for k in ks}


def bootstrap_recall(ranks: torch.Tensor, ks: Sequence[int], n_boot: int = 1000, seed: int = 0,
                     alpha: float = 0.05) -> dict[int, tuple[float, float]]:
    """Percentile bootstrap interval of Recall@k over queries (resampling queries with replacement)."""
    hits = np.stack([(ranks.numpy() <= k) for k in ks], axis=1).astype(np.float64)  # (Q, K)
    rng = np.random.Generator(np.random.PCG64(seed))
    idx = rng.integers(0, len(hits), size=(n_boot, len(hits)))
    means = hits[idx].mean(axis=1)  # (n_boot, K)
    lo, hi = np.quantile(means, [alpha / 2, 1 - alpha / 2], axis=0)
    return {int(k): (float(a), float(b)) for k, a, b in zip(ks, lo, hi)}


def direction_metrics(ranks: torch.Tensor, ks: Sequence[int], n_gallery: int, bootstrap: int = 0,
                      seed: int = 0) -> dict:
    out = {
        "recall": recall_from_ranks(ranks, ks),
        "mean_rank": float(ranks.double().mean().item()),
        "median_rank": float(np.median(ranks.numpy())),
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
    """Fraction of the clean Recall@k kept at an occlusion level (None when the clean value is 0)."""
    return None if recall_clean == 0 else recall_at_level / recall_clean
