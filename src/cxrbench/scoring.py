"""Scoring one (model, corruption) of a sweep: Recall@k, ranks and query-level intervals at every level
(:mod:`cxrbench.metrics`), then the study-level intervals, retention and area under the curve (:mod:`cxrbench.stats`),
with the same study resamples for every model and level of the run. Pure functions of the embeddings."""

from __future__ import annotations

import time

import torch

from cxrbench import metrics, stats
from cxrbench.config import SweepConfig


def score_levels(embeddings: dict[float, torch.Tensor], levels, text_emb: torch.Tensor, labels: torch.Tensor,
           cfg: SweepConfig, device: torch.device, image_ids: list[str],
           context: str) -> tuple[dict[float, dict], dict[float, float]]:
    """Recall@k, ranks and bootstrap intervals at every level, and the seconds each level took; non-finite image
    embeddings are an error naming the images and the level."""
    scores, seconds = {}, {}
    for lv in levels:
        t0 = time.perf_counter()
        metrics.check_finite(embeddings[lv], "image", ids=image_ids, context=f"{context} level {lv:g}")
        scores[lv] = metrics.retrieval_metrics(embeddings[lv].to(device), text_emb.to(device), labels.to(device),
                                               ks=cfg.ks, bootstrap=cfg.bootstrap, seed=cfg.seed)
        seconds[lv] = time.perf_counter() - t0
    return scores, seconds


def add_study_statistics(scores: dict[float, dict], query_studies: dict[str, stats.QueryStudies],
                          cfg: SweepConfig, resamples: stats.StudyResamples) -> None:
    """Study-level intervals, retention and area under the curve of one (model, corruption), merged into each
    level's direction metrics (the same study resamples for every model and level of the run)."""
    ranks = {lv: {d: m["ranks"] for d, m in scores[lv].items()} for lv in scores}
    fields = stats.level_fields(ranks, query_studies, cfg.ks, resamples)
    for lv in scores:
        for direction, extra in fields[float(lv)].items():
            scores[lv][direction].update(extra)


__all__ = ["add_study_statistics", "score_levels"]
