"""Study-level bootstrap statistics: intervals, retention, area under the recall curve, paired comparisons.

Pure NumPy code on per-query hit probabilities (:func:`cxrbench.metrics.hit_matrix`); nothing here knows about
models, runs or files, so a sweep, ``cxrbench compare`` and a comparison of two runs all use the same functions.

The resampling unit is the study
--------------------------------
Studies are the independent draws of a test set; the images of one study are not (one patient, one report, often
a frontal and a lateral view of the same chest). A bootstrap over queries treats two views of one study as two
independent observations and gives intervals that are too narrow. Here every bootstrap resample draws
``n_studies`` studies with replacement, and a drawn study brings all of its queries with it:

``image_to_text``  a query is an image; it belongs to its study with weight 1.
``text_to_image``  a query is a unique text; identical texts are merged into one gallery entry, so one query can
                   stand for several studies. It belongs to each of its m studies with weight 1/m. A study drawn
                   c times contributes c/m of its text's query; a text whose studies are all drawn once counts
                   exactly once. (Studies that share a boilerplate report are still independent draws that happen
                   to carry the same text; the alternative, resampling whole groups of studies that share a text,
                   would treat a common normal report shared by many studies as one observation.)

A resample's Recall@k is the weighted mean ``sum_s c_s T_s / sum_s c_s W_s``, where c_s counts how often study s
was drawn, ``T_s`` is the weighted sum of its queries' hit probabilities and ``W_s`` the sum of their weights.
With every study drawn once this is exactly the point estimate (the plain mean over queries). The gallery is held
fixed: ranks are conditional on the whole test set, as the point estimate is.

Resamples are a pure function of (seed, number of studies, resample index) (:class:`StudyResamples`), so every
model, corruption, level, direction and k of a run sees the very same resamples: differences between two models,
or between two levels of one model, are paired. Intervals are percentile intervals of the resampled statistic.

Retention and area under the curve
----------------------------------
``retention(level) = Recall@k(level) / Recall@k(clean)``, the clean level being level 0 (none without it).
``auc`` is the trapezoidal area under Recall@k against level, divided by the width of the level range:
the mean Recall@k over the swept range, in recall units, comparable across families whose levels are fractions
(0..0.81) or severities (0..5). ``auc_retention = auc / Recall@k(clean)`` is the same area under the retention
curve: 1 for a model that loses nothing over the range, 0 for one that drops to 0 at once. Both are computed per
resample, so their intervals come from the same paired resamples. Near chance, retention says little (a model at
chance keeps ~100% of nothing): read it together with the clean value and ``chance``.

Paired p-values
---------------
For a paired difference d (model a minus model b, same resamples), the two-sided bootstrap p-value is
``min(1, 2 * min((1 + #{d_b <= 0}) / (B + 1), (1 + #{d_b >= 0}) / (B + 1)))``: how often the resampled
difference falls on the other side of 0, with the +1 correction that keeps p > 0 (its smallest value is
2 / (B + 1)). A model compared with itself has d_b = 0 everywhere: difference 0, interval [0, 0], p = 1.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from cxrbench.metrics import DIRECTIONS, hit_matrix
from cxrbench.retrieval import TargetRanks

#: added to the seed so the study resamples never share a stream with the query-level bootstrap
_STREAM = 0x5354554459  # "STUDY"
#: resamples processed at once (bounds the memory of the (resamples, studies) count matrix)
_BLOCK = 256


@dataclass(frozen=True, eq=False)
class QueryStudies:
    """Which studies each query of one direction belongs to: aligned (pair) arrays ``query``, ``study`` and
    ``weight``; the weights of one query sum to 1."""

    query: np.ndarray  # (P,) int64
    study: np.ndarray  # (P,) int64
    weight: np.ndarray  # (P,) float64
    n_queries: int
    n_studies: int

    def __post_init__(self) -> None:
        if not (len(self.query) == len(self.study) == len(self.weight)):
            raise ValueError("query, study and weight must have the same length")
        if len(self.query) and (self.query.min() < 0 or self.query.max() >= self.n_queries):
            raise ValueError(f"query index outside 0..{self.n_queries - 1}")
        if len(self.study) and (self.study.min() < 0 or self.study.max() >= self.n_studies):
            raise ValueError(f"study index outside 0..{self.n_studies - 1}")
        total = np.bincount(self.query, weights=self.weight, minlength=self.n_queries)
        if not np.allclose(total, 1.0):
            raise ValueError("every query needs study weights that sum to 1")

    @classmethod
    def one_each(cls, query_study: Sequence[int], n_studies: int) -> QueryStudies:
        """Query i belongs to study ``query_study[i]`` alone (``image_to_text``: the image's study)."""
        study = np.asarray(query_study, dtype=np.int64)
        return cls(np.arange(len(study), dtype=np.int64), study, np.ones(len(study)), len(study), int(n_studies))

    @classmethod
    def shared(cls, query_studies: Sequence[Sequence[int]], n_studies: int) -> QueryStudies:
        """Query q stands for the studies ``query_studies[q]``, each with weight 1/m (``text_to_image``)."""
        query, study, weight = [], [], []
        for q, studies in enumerate(query_studies):
            members = sorted(set(int(s) for s in studies))
            if not members:
                raise ValueError(f"query {q} belongs to no study")
            query += [q] * len(members)
            study += members
            weight += [1.0 / len(members)] * len(members)
        return cls(np.asarray(query, dtype=np.int64), np.asarray(study, dtype=np.int64), np.asarray(weight),
                   len(query_studies), int(n_studies))

    def study_weights(self) -> np.ndarray:
        """(S,) ``W_s``: the summed weight of study s's queries."""
        return np.bincount(self.study, weights=self.weight, minlength=self.n_studies)

    def study_totals(self, values: np.ndarray) -> np.ndarray:
        """(S, K) ``T_s``: the weighted sum of study s's per-query ``values`` (Q, K)."""
        values = np.asarray(values, dtype=np.float64).reshape(self.n_queries, -1)
        contrib = values[self.query] * self.weight[:, None]
        return np.stack([np.bincount(self.study, weights=contrib[:, j], minlength=self.n_studies)
                         for j in range(values.shape[1])], axis=1)

    def to_dict(self) -> dict:
        """Plain tensors (stored in ``ranks.pt``; loadable with ``torch.load(weights_only=True)``)."""
        return {"query": torch.from_numpy(self.query.copy()), "study": torch.from_numpy(self.study.copy()),
                "weight": torch.from_numpy(self.weight.copy()), "n_queries": torch.tensor(self.n_queries),
                "n_studies": torch.tensor(self.n_studies)}

    @classmethod
    def from_dict(cls, d: Mapping) -> QueryStudies:
        return cls(np.asarray(d["query"], dtype=np.int64), np.asarray(d["study"], dtype=np.int64),
                   np.asarray(d["weight"], dtype=np.float64), int(d["n_queries"]), int(d["n_studies"]))


def direction_query_studies(image_study: Sequence[int], image_text: Sequence[int], n_studies: int,
                            n_texts: int) -> dict[str, QueryStudies]:
    """The query -> study map of both directions from a prepared dataset's ``image_study`` (image -> study) and
    ``image_text`` (image -> unique text)."""
    if len(image_study) != len(image_text):
        raise ValueError("image_study and image_text must have one entry per image")
    text_studies: list[set[int]] = [set() for _ in range(n_texts)]
    for s, t in zip(image_study, image_text):
        text_studies[int(t)].add(int(s))
    return {"image_to_text": QueryStudies.one_each(image_study, n_studies),
            "text_to_image": QueryStudies.shared([sorted(x) for x in text_studies], n_studies)}


class StudyResamples:
    """``n_boot`` bootstrap resamples of ``n_studies`` studies: resample b draws its studies with a generator
    seeded from (seed, b), so a resample does not depend on how many others are drawn or in which order."""

    def __init__(self, n_studies: int, n_boot: int, seed: int = 0):
        if n_studies < 1:
            raise ValueError("need at least one study to resample")
        if n_boot < 0:
            raise ValueError(f"number of resamples must be >= 0, got {n_boot}")
        self.n_studies, self.n_boot, self.seed = int(n_studies), int(n_boot), int(seed)
        self._counts: np.ndarray | None = None

    @classmethod
    def from_counts(cls, counts: np.ndarray) -> StudyResamples:
        """Resamples given as a (B, S) matrix of study counts (tests, or resamples chosen elsewhere)."""
        counts = np.asarray(counts)
        out = cls(counts.shape[1], counts.shape[0], seed=-1)
        out._counts = counts.astype(np.int32)
        return out

    def counts(self) -> np.ndarray:
        """(B, S) int32: how often each study is drawn in each resample (each row sums to S)."""
        if self._counts is None:
            s = self.n_studies
            rows = [np.bincount(np.random.default_rng([self.seed + _STREAM, b]).integers(0, s, size=s),
                                minlength=s).astype(np.int32) for b in range(self.n_boot)]
            self._counts = np.stack(rows) if rows else np.zeros((0, s), dtype=np.int32)
        return self._counts

    def means(self, totals: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """(B, K) resampled weighted means ``sum_s c_s T_s / sum_s c_s W_s`` from (S, K) totals, (S,) weights."""
        counts = self.counts()
        out = np.empty((self.n_boot, totals.shape[1]))
        for start in range(0, self.n_boot, _BLOCK):
            c = counts[start : start + _BLOCK].astype(np.float64)
            out[start : start + _BLOCK] = (c @ totals) / (c @ weights)[:, None]
        return out


@dataclass(frozen=True)
class Estimate:
    """A point value with its percentile interval (None without resamples) and, for a paired difference, its
    two-sided bootstrap p-value."""

    value: float | None
    low: float | None = None
    high: float | None = None
    p_value: float | None = None

    @property
    def interval(self) -> tuple[float, float] | None:
        return None if self.low is None or self.high is None else (self.low, self.high)

    def excludes_zero(self) -> bool:
        return self.interval is not None and (self.low > 0 or self.high < 0)

    def as_dict(self) -> dict:
        out = {"value": self.value, "ci": list(self.interval) if self.interval else None}
        if self.p_value is not None:
            out["p_value"] = self.p_value
        return out


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def percentile_interval(samples: np.ndarray, alpha: float = 0.05) -> tuple[float, float] | None:
    """The (alpha/2, 1 - alpha/2) quantiles of ``samples``; None when there are none or any is undefined (NaN)."""
    samples = np.asarray(samples, dtype=np.float64)
    if samples.size == 0 or not np.all(np.isfinite(samples)):
        return None
    lo, hi = np.quantile(samples, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def paired_p_value(diff_samples: np.ndarray) -> float | None:
    """Two-sided bootstrap p-value of a paired difference (see the module docstring); None without resamples."""
    d = np.asarray(diff_samples, dtype=np.float64)
    if d.size == 0 or not np.all(np.isfinite(d)):
        return None
    b = d.size
    below, above = (1 + np.count_nonzero(d <= 0)) / (b + 1), (1 + np.count_nonzero(d >= 0)) / (b + 1)
    return float(min(1.0, 2 * min(below, above)))


def estimate(value: float, samples: np.ndarray | None, alpha: float = 0.05, paired: bool = False) -> Estimate:
    if not math.isfinite(value):
        return Estimate(None)
    if samples is None or len(samples) == 0:
        return Estimate(float(value))
    ci = percentile_interval(samples, alpha)
    return Estimate(float(value), *(ci or (None, None)), p_value=paired_p_value(samples) if paired else None)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den != 0, num / np.where(den != 0, den, 1.0), np.nan)


def _area(values: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """Trapezoidal area along axis -2 (levels) divided by the level range: (..., L, K) -> (..., K)."""
    widths = np.diff(levels)
    mids = (values[..., 1:, :] + values[..., :-1, :]) / 2
    return np.einsum("l,...lk->...k", widths, mids) / (levels[-1] - levels[0])


@dataclass(frozen=True, eq=False)
class RecallCurve:
    """Recall@k of one (model, corruption, direction) at each level, with its study-bootstrap resamples.

    ``point``: (L, K) at ``levels`` (sorted ascending) and ``ks``; ``samples``: (B, L, K), empty when B = 0.
    """

    levels: tuple[float, ...]
    ks: tuple[int, ...]
    point: np.ndarray
    samples: np.ndarray

    @property
    def clean_index(self) -> int | None:
        return self.levels.index(0) if 0 in self.levels else None

    def retention(self) -> tuple[np.ndarray, np.ndarray]:
        """(L, K) and (B, L, K): Recall@k at each level over clean Recall@k (NaN without a clean level or where
        the clean value is 0)."""
        c = self.clean_index
        if c is None:
            return np.full_like(self.point, np.nan), np.full_like(self.samples, np.nan)
        return (_ratio(self.point, self.point[c : c + 1]), _ratio(self.samples, self.samples[:, c : c + 1]))

    def auc(self) -> tuple[np.ndarray, np.ndarray]:
        """(K,) and (B, K): mean Recall@k over the level range (trapezoid / range); NaN with fewer than 2 levels."""
        if len(self.levels) < 2:
            return np.full(len(self.ks), np.nan), np.full((len(self.samples), len(self.ks)), np.nan)
        x = np.asarray(self.levels, dtype=np.float64)
        return _area(self.point, x), _area(self.samples, x)

    def auc_retention(self) -> tuple[np.ndarray, np.ndarray]:
        """(K,) and (B, K): ``auc`` over clean Recall@k, the normalised area under the retention curve."""
        c = self.clean_index
        a, a_s = self.auc()
        if c is None:
            return np.full_like(a, np.nan), np.full_like(a_s, np.nan)
        return _ratio(a, self.point[c]), _ratio(a_s, self.samples[:, c])


def recall_curve(ranks_by_level: Mapping[float, TargetRanks], query_studies: QueryStudies, ks: Sequence[int],
                 resamples: StudyResamples) -> RecallCurve:
    """Recall@k at every level and its study resamples (the same ``resamples`` for every curve of a run)."""
    if resamples.n_studies != query_studies.n_studies:
        raise ValueError(f"resamples are over {resamples.n_studies} studies, the queries belong to "
                         f"{query_studies.n_studies}")
    levels = tuple(sorted(float(lv) for lv in ranks_by_level))
    weights = query_studies.study_weights()
    points, samples = [], []
    for lv in levels:
        ranks = ranks_by_level[lv]
        if len(ranks) != query_studies.n_queries:
            raise ValueError(f"level {lv:g}: {len(ranks)} queries, the study map has {query_studies.n_queries}")
        hits = hit_matrix(ranks, ks)
        totals = query_studies.study_totals(hits)
        points.append(totals.sum(axis=0) / weights.sum())
        samples.append(resamples.means(totals, weights))
    return RecallCurve(levels, tuple(int(k) for k in ks), np.stack(points), np.stack(samples, axis=1))


def _by_k(ks: Sequence[int], point: np.ndarray, samples: np.ndarray, alpha: float,
          paired: bool = False) -> dict[int, Estimate]:
    return {k: estimate(point[j], samples[:, j] if samples.size else None, alpha, paired) for j, k in enumerate(ks)}


def curve_summary(curve: RecallCurve, alpha: float = 0.05) -> dict:
    """Per level: recall, retention (each an :class:`Estimate` per k); per curve: auc and auc_retention."""
    ret, ret_s = curve.retention()
    auc, auc_s = curve.auc()
    aucr, aucr_s = curve.auc_retention()
    return {
        "levels": {lv: {"recall": _by_k(curve.ks, curve.point[i], curve.samples[:, i], alpha),
                        "retention": _by_k(curve.ks, ret[i], ret_s[:, i], alpha)}
                   for i, lv in enumerate(curve.levels)},
        "auc": _by_k(curve.ks, auc, auc_s, alpha),
        "auc_retention": _by_k(curve.ks, aucr, aucr_s, alpha),
    }


def paired_difference(a: RecallCurve, b: RecallCurve, alpha: float = 0.05) -> dict:
    """``a - b`` for recall and retention at every level, auc and auc_retention, each an :class:`Estimate` per k
    with its paired interval and p-value. The curves must come from the same resamples (same run)."""
    if a.levels != b.levels or a.ks != b.ks:
        raise ValueError(f"curves differ in levels or k: {a.levels} / {a.ks} against {b.levels} / {b.ks}")
    if a.samples.shape != b.samples.shape:
        raise ValueError("curves have different numbers of resamples: they do not come from the same run")
    ra, ra_s = a.retention()
    rb, rb_s = b.retention()
    auc_a, auc_as = a.auc()
    auc_b, auc_bs = b.auc()
    ar_a, ar_as = a.auc_retention()
    ar_b, ar_bs = b.auc_retention()
    return {
        "levels": {lv: {"recall": _by_k(a.ks, a.point[i] - b.point[i], a.samples[:, i] - b.samples[:, i], alpha,
                                        paired=True),
                        "retention": _by_k(a.ks, ra[i] - rb[i], ra_s[:, i] - rb_s[:, i], alpha, paired=True)}
                   for i, lv in enumerate(a.levels)},
        "auc": _by_k(a.ks, auc_a - auc_b, auc_as - auc_bs, alpha, paired=True),
        "auc_retention": _by_k(a.ks, ar_a - ar_b, ar_as - ar_bs, alpha, paired=True),
    }


def level_fields(ranks: Mapping[float, Mapping[str, TargetRanks]], query_studies: Mapping[str, QueryStudies],
                 ks: Sequence[int], resamples: StudyResamples, alpha: float = 0.05) -> dict[float, dict[str, dict]]:
    """The study-level statistics of one (model, corruption) as metric fields, ``{level: {direction: fields}}``:
    ``recall_ci95_study``, ``retention``, ``retention_ci95``, ``auc``, ``auc_ci95``, ``auc_retention``,
    ``auc_retention_ci95`` (each ``{k: value}``, intervals None without resamples), ``auc_range`` and
    ``n_studies``. ``ranks`` maps level -> direction -> TargetRanks."""
    out: dict[float, dict[str, dict]] = {float(lv): {} for lv in ranks}
    for direction in DIRECTIONS:
        if not all(direction in ranks[lv] for lv in ranks):
            continue
        curve = recall_curve({float(lv): ranks[lv][direction] for lv in ranks}, query_studies[direction], ks,
                             resamples)
        summary = curve_summary(curve, alpha)
        shared = {
            "auc": {k: e.value for k, e in summary["auc"].items()},
            "auc_ci95": {k: e.interval for k, e in summary["auc"].items()},
            "auc_retention": {k: e.value for k, e in summary["auc_retention"].items()},
            "auc_retention_ci95": {k: e.interval for k, e in summary["auc_retention"].items()},
            "auc_range": [curve.levels[0], curve.levels[-1]] if len(curve.levels) > 1 else None,
            "n_studies": resamples.n_studies,
        }
        for lv, s in summary["levels"].items():
            out[lv][direction] = {
                "recall_ci95_study": {k: e.interval for k, e in s["recall"].items()},
                "retention": {k: e.value for k, e in s["retention"].items()},
                "retention_ci95": {k: e.interval for k, e in s["retention"].items()},
                **shared,
            }
    return out
