"""Study-level bootstrap statistics (cxrbench.stats) against independent expectations: brute-force resampling,
the analytic standard error of a proportion, hand-computed areas and p-values, and exact properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cxrbench import stats
from cxrbench.metrics import bootstrap_recall, recall_from_ranks
from cxrbench.retrieval import TargetRanks

Z975 = 1.959963984540054


def _ranks(above, tied=None, tied_targets=None, n_targets=None, n_gallery=200) -> TargetRanks:
    above = torch.as_tensor(above, dtype=torch.int64)
    zeros = torch.zeros_like(above)
    ones = torch.ones_like(above)
    return TargetRanks(above, zeros if tied is None else torch.as_tensor(tied, dtype=torch.int64),
                       ones if tied_targets is None else torch.as_tensor(tied_targets, dtype=torch.int64),
                       ones if n_targets is None else torch.as_tensor(n_targets, dtype=torch.int64), n_gallery)


@st.composite
def runs(draw):
    """A random dataset shape (studies with 1-3 images, some studies sharing a text) and random tied ranks in
    both directions at two levels."""
    n_studies = draw(st.integers(1, 12))
    images = [draw(st.integers(1, 3)) for _ in range(n_studies)]
    n_texts = draw(st.integers(1, n_studies))
    study_text = [draw(st.integers(0, n_texts - 1)) for _ in range(n_studies)]
    used = sorted(set(study_text))  # relabel so every text has a study
    study_text = [used.index(t) for t in study_text]
    image_study = [s for s in range(n_studies) for _ in range(images[s])]
    image_text = [study_text[s] for s in image_study]
    levels = {}
    for lv in (0.0, 0.5):
        levels[lv] = {}
        for direction, n in (("image_to_text", len(image_study)), ("text_to_image", len(used))):
            vals = draw(st.lists(st.tuples(st.integers(0, 30), st.integers(0, 5), st.integers(1, 3)),
                                 min_size=n, max_size=n))
            a, t, m = zip(*vals)
            levels[lv][direction] = _ranks(a, t, m, m, n_gallery=40)
    return n_studies, image_study, image_text, len(used), levels


@settings(max_examples=60, deadline=None)
@given(runs(), st.integers(0, 2**31))
def test_every_study_drawn_once_gives_the_point_estimate(run, seed):
    n_studies, image_study, image_text, n_texts, levels = run
    qs = stats.direction_query_studies(image_study, image_text, n_studies, n_texts)
    once = stats.StudyResamples.from_counts(np.ones((1, n_studies)))
    ks = (1, 5, 10)
    for direction in ("image_to_text", "text_to_image"):
        curve = stats.recall_curve({lv: levels[lv][direction] for lv in levels}, qs[direction], ks, once)
        for i, lv in enumerate(curve.levels):
            expected = recall_from_ranks(levels[lv][direction], ks)
            assert curve.point[i] == pytest.approx([expected[k] for k in ks], abs=1e-12)
            assert curve.samples[0, i] == pytest.approx(curve.point[i], abs=1e-12)


@settings(max_examples=40, deadline=None)
@given(runs(), st.integers(0, 2**31))
def test_a_resample_equals_the_mean_over_the_queries_of_the_studies_it_draws(run, seed):
    """Brute force: repeat each drawn study's queries as often as the study was drawn and average them (text
    queries weighted 1/m for a text shared by m studies)."""
    n_studies, image_study, image_text, n_texts, levels = run
    qs = stats.direction_query_studies(image_study, image_text, n_studies, n_texts)
    res = stats.StudyResamples(n_studies, 5, seed)
    counts = res.counts()
    assert counts.shape == (5, n_studies) and (counts.sum(axis=1) == n_studies).all()
    text_studies = [sorted({s for s, t in zip(image_study, image_text) if t == q}) for q in range(n_texts)]
    for direction in ("image_to_text", "text_to_image"):
        ranks = levels[0.0][direction]
        curve = stats.recall_curve({0.0: ranks}, qs[direction], (10,), res)
        hit = ranks.hit_probability(10).tolist()
        for b in range(5):
            if direction == "image_to_text":
                drawn = [hit[i] for s in range(n_studies) for _ in range(counts[b, s])
                         for i, si in enumerate(image_study) if si == s]
                expected = sum(drawn) / len(drawn)
            else:
                num = den = 0.0
                for q, members in enumerate(text_studies):
                    w = sum(counts[b, s] for s in members) / len(members)
                    num, den = num + w * hit[q], den + w
                expected = num / den
            assert curve.samples[b, 0, 0] == pytest.approx(expected, abs=1e-12)


def test_text_queries_spread_over_their_studies():
    # studies 0 and 2 share text 0; study 1 (two images) has text 1
    qs = stats.direction_query_studies([0, 1, 1, 2], [0, 1, 1, 0], n_studies=3, n_texts=2)
    i2t, t2i = qs["image_to_text"], qs["text_to_image"]
    assert i2t.study.tolist() == [0, 1, 1, 2] and i2t.weight.tolist() == [1, 1, 1, 1]
    assert list(zip(t2i.query.tolist(), t2i.study.tolist(), t2i.weight.tolist())) == [(0, 0, .5), (0, 2, .5),
                                                                                       (1, 1, 1.0)]
    assert t2i.study_weights().tolist() == [0.5, 1.0, 0.5]
    with pytest.raises(ValueError, match="sum to 1"):
        stats.QueryStudies(np.array([0]), np.array([0]), np.array([0.5]), 1, 1)


def test_resamples_are_seeded_and_each_a_function_of_its_index():
    a = stats.StudyResamples(50, 20, seed=3).counts()
    assert np.array_equal(a, stats.StudyResamples(50, 20, seed=3).counts())
    assert np.array_equal(a[:10], stats.StudyResamples(50, 10, seed=3).counts())  # does not depend on B
    assert not np.array_equal(a, stats.StudyResamples(50, 20, seed=4).counts())
    assert (a.sum(axis=1) == 50).all() and a.min() >= 0


def _curve_pair(seed: int = 0):
    rng = np.random.default_rng(seed)
    study = np.repeat(np.arange(60), 2)
    qs = stats.QueryStudies.one_each(study, 60)
    res = stats.StudyResamples(60, 300, seed=1)
    curves = []
    for _ in range(2):
        by_level = {lv: _ranks(rng.integers(0, 40, size=120), rng.integers(0, 3, size=120))
                    for lv in (0.0, 0.25, 0.5)}
        curves.append(stats.recall_curve(by_level, qs, (5, 10), res))
    return curves


def test_paired_difference_of_a_model_with_itself_is_exactly_zero():
    a, _ = _curve_pair()
    d = stats.paired_difference(a, a)
    estimates = [e for lv in d["levels"].values() for what in lv.values() for e in what.values()]
    estimates += list(d["auc"].values()) + list(d["auc_retention"].values())
    for e in estimates:
        assert e.value == 0.0 and e.interval == (0.0, 0.0) and e.p_value == 1.0


def test_retention_of_an_unchanged_model_is_one_with_a_degenerate_interval():
    a, _ = _curve_pair()
    clean = a.point[0]
    flat = stats.RecallCurve(a.levels, a.ks, np.repeat(a.point[:1], 3, axis=0), np.repeat(a.samples[:, :1], 3, axis=1))
    s = stats.curve_summary(flat)
    for lv in flat.levels:
        for e in s["levels"][lv]["retention"].values():
            assert e.value == 1.0 and e.interval == (1.0, 1.0)
    for j, k in enumerate(flat.ks):
        assert s["auc_retention"][k].value == pytest.approx(1.0, abs=1e-15)
        assert s["auc"][k].value == pytest.approx(clean[j], abs=1e-15)
    # the clean level's retention is 1 for any model
    assert all(e.value == 1.0 and e.interval == (1.0, 1.0) for e in stats.curve_summary(a)["levels"][0.0]
               ["retention"].values())


def test_paired_interval_of_two_models_is_the_interval_of_their_resampled_difference():
    a, b = _curve_pair()
    d = stats.paired_difference(a, b)
    diff = a.samples[:, 1, 0] - b.samples[:, 1, 0]
    lo, hi = np.quantile(diff, [0.025, 0.975])
    e = d["levels"][0.25]["recall"][5]
    assert e.value == pytest.approx(a.point[1, 0] - b.point[1, 0])
    assert e.interval == pytest.approx((lo, hi))


def test_area_and_its_normalisation_by_hand():
    # fractions 0, 0.25, 1.0: trapezoid (0.4 + 0.2)/2 * 0.25 + (0.2 + 0)/2 * 0.75 = 0.15 over a range of 1
    c = stats.RecallCurve((0.0, 0.25, 1.0), (10,), np.array([[0.4], [0.2], [0.0]]), np.zeros((0, 3, 1)))
    auc, _ = c.auc()
    aucr, _ = c.auc_retention()
    assert auc[0] == pytest.approx(0.15) and aucr[0] == pytest.approx(0.375)
    # severities 0..5, linear from 0.5 to 0: area 1.25 over a range of 5
    sev = stats.RecallCurve((0, 1, 2, 3, 4, 5), (10,), np.linspace(0.5, 0, 6)[:, None], np.zeros((0, 6, 1)))
    assert sev.auc()[0][0] == pytest.approx(0.25) and sev.auc_retention()[0][0] == pytest.approx(0.5)
    # no clean level: no retention; one level: no area
    assert math.isnan(stats.RecallCurve((0.25, 0.5), (10,), np.ones((2, 1)), np.zeros((0, 2, 1))).retention()[0][0, 0])
    assert math.isnan(stats.RecallCurve((0.0,), (10,), np.ones((1, 1)), np.zeros((0, 1, 1))).auc()[0][0])


def test_p_value_rule_by_hand():
    # #{d <= 0} = 1, #{d >= 0} = 3 of B = 4: p = 2 * min(2/5, 4/5)
    assert stats.paired_p_value(np.array([-1.0, 1.0, 2.0, 3.0])) == pytest.approx(0.8)
    assert stats.paired_p_value(np.full(999, 0.5)) == pytest.approx(2 / 1000)
    assert stats.paired_p_value(np.zeros(10)) == 1.0
    assert stats.paired_p_value(np.array([])) is None


def _perfectly_correlated(n_studies: int, per_study: int, p: float, seed: int):
    """Every image of a study is a hit (rank 1) or a miss (rank 101) together."""
    rng = np.random.default_rng(seed)
    study_hit = rng.random(n_studies) < p
    image_study = np.repeat(np.arange(n_studies), per_study)
    return _ranks(np.where(study_hit[image_study], 0, 100)), image_study, study_hit.mean()


def test_study_interval_matches_the_analytic_one_when_images_of_a_study_are_perfectly_correlated():
    """Why study-level intervals are wider: 400 studies of 4 images each, all images of a study a hit or a miss
    together. There are only 400 independent outcomes, so the standard error is sqrt(p(1-p)/400): the study
    bootstrap reproduces it, the query bootstrap behaves as if there were 1600 and is half as wide."""
    n, m = 400, 4
    ranks, image_study, p = _perfectly_correlated(n, m, 0.3, seed=0)
    analytic = 2 * Z975 * math.sqrt(p * (1 - p) / n)
    curve = stats.recall_curve({0.0: ranks}, stats.QueryStudies.one_each(image_study, n), (10,),
                               stats.StudyResamples(n, 4000, seed=0))
    lo, hi = stats.percentile_interval(curve.samples[:, 0, 0])
    qlo, qhi = bootstrap_recall(ranks, (10,), n_boot=4000, seed=0)[10]
    assert hi - lo == pytest.approx(analytic, rel=0.08)
    assert (qhi - qlo) == pytest.approx(analytic / math.sqrt(m), rel=0.08)
    assert lo < p < hi


def test_study_and_query_intervals_agree_when_images_are_independent():
    """The control: the same shape with every image drawn independently; no within-study correlation, no
    widening."""
    rng = np.random.default_rng(1)
    n, m = 400, 4
    image_study = np.repeat(np.arange(n), m)
    ranks = _ranks(np.where(rng.random(n * m) < 0.3, 0, 100))
    curve = stats.recall_curve({0.0: ranks}, stats.QueryStudies.one_each(image_study, n), (10,),
                               stats.StudyResamples(n, 4000, seed=0))
    lo, hi = stats.percentile_interval(curve.samples[:, 0, 0])
    qlo, qhi = bootstrap_recall(ranks, (10,), n_boot=4000, seed=0)[10]
    assert (hi - lo) / (qhi - qlo) == pytest.approx(1.0, abs=0.1)


def test_query_studies_round_trip_through_a_weights_only_file(tmp_path):
    qs = stats.direction_query_studies([0, 1, 1, 2], [0, 1, 1, 0], n_studies=3, n_texts=2)["text_to_image"]
    torch.save({"q": qs.to_dict()}, tmp_path / "x.pt")
    back = stats.QueryStudies.from_dict(torch.load(tmp_path / "x.pt", weights_only=True)["q"])
    assert back.query.tolist() == qs.query.tolist() and back.study.tolist() == qs.study.tolist()
    assert back.weight.tolist() == qs.weight.tolist() and (back.n_queries, back.n_studies) == (2, 3)


def test_level_fields_without_resamples_give_points_and_no_intervals():
    a_ranks = {0.0: {"image_to_text": _ranks([0, 50, 0, 3])}, 0.5: {"image_to_text": _ranks([50, 50, 0, 3])}}
    qs = {"image_to_text": stats.QueryStudies.one_each([0, 0, 1, 2], 3)}
    f = stats.level_fields(a_ranks, qs, (5,), stats.StudyResamples(3, 0))
    assert f[0.5]["image_to_text"]["retention"][5] == pytest.approx(2 / 3)
    assert f[0.5]["image_to_text"]["retention_ci95"][5] is None
    assert f[0.0]["image_to_text"]["auc"][5] == pytest.approx((0.75 + 0.5) / 2)
    assert f[0.0]["image_to_text"]["recall_ci95_study"][5] is None
