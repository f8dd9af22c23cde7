"""Recall@k, ranks and retrieval against an independent brute-force reference."""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cxrbench.metrics import (
    DEFAULT_KS,
    NonFiniteEmbeddings,
    bootstrap_recall,
    check_finite,
    merge_texts,
    retrieval_metrics,
)
from cxrbench.retrieval import TargetRanks, chunked_topk, target_ranks


def _random_tie_rank(scores: list[float], targets: set[int]) -> list[Fraction]:
    """Exhaustive reference for one query: the distribution of the first target's rank when tied scores are put in
    a uniformly random order, by enumerating every placement of the tied targets among the tied items.
    Returns [P(rank == r) for r = 1..len(scores)] as exact fractions."""
    best = max(scores[i] for i in targets)
    above = sum(1 for i, s in enumerate(scores) if i not in targets and s > best)
    block = [i for i, s in enumerate(scores) if s == best]
    tied_targets = sum(1 for i in block if i in targets)
    placements = list(itertools.combinations(range(len(block)), tied_targets))
    dist = [Fraction(0)] * len(scores)
    for places in placements:
        dist[above + min(places)] += Fraction(1, len(placements))
    return dist


def brute_force(image_emb: np.ndarray, study_texts: list[str], image_study: list[int], ks) -> dict:
    """Plain-Python reference: full cosine matrix, loops, dicts; ties by exhaustive enumeration of random tie
    orders; written independently of cxrbench.metrics and cxrbench.retrieval."""
    img = image_emb / np.linalg.norm(image_emb, axis=1, keepdims=True)
    uniq = []
    for t in study_texts:
        if t not in uniq:
            uniq.append(t)
    text_vecs = {t: TEXT_VECS[t] / np.linalg.norm(TEXT_VECS[t]) for t in uniq}
    sims = np.array([[float(np.dot(img[i], text_vecs[t])) for t in uniq] for i in range(len(img))])
    # image -> text: the own text among the unique texts
    i2t = [_random_tie_rank(list(sims[i]), {uniq.index(study_texts[image_study[i]])}) for i in range(len(img))]
    # text -> image: the best-placed image among all images whose study has this text
    t2i = []
    for j, t in enumerate(uniq):
        targets = {i for i in range(len(img)) if study_texts[image_study[i]] == t}
        t2i.append(_random_tie_rank(list(sims[:, j]), targets))

    def summarise(dists):
        return {
            "recall": {k: float(sum(sum(d[:k]) for d in dists) / len(dists)) for k in ks},
            "expected": [float(sum((r + 1) * p for r, p in enumerate(d))) for d in dists],
        }

    return {"image_to_text": summarise(i2t), "text_to_image": summarise(t2i)}


TEXT_VECS: dict[str, np.ndarray] = {}

# Exact arithmetic: entries in {-1, 0, 1} / 2 with 4 non-zeros have norm 1, so normalisation and every dot product
# are exact in float64 whatever the summation order; ties are frequent and must be resolved identically.
DIM = 8


@st.composite
def exact_vectors(draw, n):
    out = []
    for _ in range(n):
        support = draw(st.lists(st.integers(0, DIM - 1), min_size=4, max_size=4, unique=True))
        signs = draw(st.lists(st.sampled_from([-0.5, 0.5]), min_size=4, max_size=4))
        v = np.zeros(DIM)
        v[support] = signs
        out.append(v)
    return np.stack(out)


@st.composite
def retrieval_problem(draw):
    n_studies = draw(st.integers(1, 12))
    vocab = draw(st.lists(st.sampled_from(list("abcdefgh")), min_size=n_studies, max_size=n_studies))
    images_per = draw(st.lists(st.integers(1, 3), min_size=n_studies, max_size=n_studies))
    image_study = [j for j, n in enumerate(images_per) for _ in range(n)]
    exact = draw(st.booleans())
    if exact:
        img = draw(exact_vectors(len(image_study)))
        txt = draw(exact_vectors(len(set(vocab))))
    else:
        seed = draw(st.integers(0, 2**32 - 1))
        rng = np.random.default_rng(seed)
        img = rng.normal(size=(len(image_study), DIM))
        txt = rng.normal(size=(len(set(vocab)), DIM))
    return vocab, image_study, img, txt


def _ours(vocab, image_study, img, txt_by_text, chunks):
    uniq, label = merge_texts(vocab)
    t = torch.tensor(np.stack([txt_by_text[u] for u in uniq]), dtype=torch.float64)
    labels = [label[j] for j in image_study]
    return retrieval_metrics(torch.tensor(img, dtype=torch.float64), t, labels, ks=DEFAULT_KS, **chunks)


@settings(max_examples=120, deadline=None)
@given(problem=retrieval_problem(), qc=st.integers(1, 7), gc=st.integers(1, 7))
def test_equals_brute_force_reference_exactly(problem, qc, gc):
    """Recall@k and expected ranks equal the exhaustive brute-force reference (every random tie order
    enumerated), with duplicate texts, multi-image studies and ties, for any chunking of queries and gallery."""
    vocab, image_study, img, txt = problem
    uniq = list(dict.fromkeys(vocab))
    TEXT_VECS.clear()
    TEXT_VECS.update({u: txt[i] for i, u in enumerate(uniq)})
    ref = brute_force(img, vocab, image_study, DEFAULT_KS)
    ours = _ours(vocab, image_study, img, TEXT_VECS, {"query_chunk": qc, "gallery_chunk": gc})
    for d in ("image_to_text", "text_to_image"):
        assert ours[d]["ranks"].expected_rank().tolist() == pytest.approx(ref[d]["expected"], abs=1e-12)
        assert ours[d]["recall"] == pytest.approx(ref[d]["recall"], abs=1e-12)


@settings(max_examples=60, deadline=None)
@given(n_studies=st.integers(1, 40), images=st.lists(st.integers(1, 4), min_size=40, max_size=40),
       dim=st.integers(1, 64), seed=st.integers(0, 2**31), zero=st.booleans(), dtype=st.sampled_from(["f32", "f64"]))
def test_constant_embeddings_score_exactly_chance_for_any_gallery(n_studies, images, dim, seed, zero, dtype):
    """A broken model (every embedding the same vector, or all zero) scores chance, never 100%: k / gallery for
    single-target queries and 1 - C(G - k, m) / C(G, m) for a report with m images, in both directions."""
    image_study = [j for j in range(n_studies) for _ in range(images[j])]
    vocab = [f"text {j}" for j in range(n_studies)]
    rng = np.random.default_rng(seed)
    v = np.zeros(dim) if zero else rng.normal(size=dim)
    img = np.tile(v, (len(image_study), 1))
    txt = {u: v.copy() for u in vocab}
    torch_dtype = torch.float32 if dtype == "f32" else torch.float64
    uniq, label = merge_texts(vocab)
    m = retrieval_metrics(torch.tensor(img, dtype=torch_dtype), torch.tensor(np.stack([txt[u] for u in uniq]),
                          dtype=torch_dtype), [label[j] for j in image_study], ks=DEFAULT_KS)
    n_img, n_txt = len(image_study), len(uniq)
    for k in DEFAULT_KS:
        assert m["image_to_text"]["recall"][k] == pytest.approx(min(1.0, k / n_txt), abs=1e-12)
        want = np.mean([1 - math.comb(n_img - k, images[j]) / math.comb(n_img, images[j]) if k < n_img else 1.0
                        for j in range(n_studies)])
        assert m["text_to_image"]["recall"][k] == pytest.approx(want, abs=1e-12)
        for d in m:
            assert m[d]["chance"][k] == pytest.approx(m[d]["recall"][k], abs=1e-12)
    assert m["image_to_text"]["mean_rank"] == pytest.approx((n_txt + 1) / 2)


@settings(max_examples=40, deadline=None)
@given(problem=retrieval_problem())
def test_without_ties_hits_are_zero_or_one_and_ranks_are_whole(problem):
    """Generic (tie-free) embeddings: nothing changes against the plain rule rank = 1 + #non-targets above."""
    vocab, image_study, img, txt = problem
    uniq = list(dict.fromkeys(vocab))
    rng = np.random.default_rng(len(vocab))
    img = img + rng.normal(scale=1e-3, size=img.shape)  # break every exact tie
    m = _ours(vocab, image_study, img, {u: txt[i] + rng.normal(scale=1e-3, size=txt.shape[1])
                                        for i, u in enumerate(uniq)}, {})
    for d in m:
        r: TargetRanks = m[d]["ranks"]
        assert int(r.tied.sum()) == 0 and bool((r.tied_targets == 1).all())
        assert torch.equal(r.expected_rank(), r.optimistic_rank().double())
        for k in DEFAULT_KS:
            assert m[d]["recall"][k] == float((r.optimistic_rank() <= k).double().mean())


def test_single_tied_target_hit_probability_is_clipped_linear():
    """P(hit at k) = clip((k - a) / (t + 1), 0, 1) for one target tied with t non-targets below a above it."""
    r = TargetRanks(torch.tensor([2]), torch.tensor([5]), torch.tensor([1]), torch.tensor([1]), 20)
    got = [float(r.hit_probability(k)) for k in range(1, 11)]
    assert got == [0, 0, 1 / 6, 2 / 6, 3 / 6, 4 / 6, 5 / 6, 1, 1, 1]
    assert float(r.expected_rank()) == 2 + 1 + 5 / 2


def test_non_finite_embeddings_are_an_error_naming_the_row():
    emb = torch.randn(5, 4)
    emb[3, 1] = float("nan")
    with pytest.raises(NonFiniteEmbeddings, match=r"1 of 5 image embeddings .*img-d"):
        check_finite(emb, "image", ids=["img-a", "img-b", "img-c", "img-d", "img-e"], context="model x, pixels 0.5")
    with pytest.raises(ValueError, match="not finite"):
        target_ranks(emb, torch.randn(3, 4), torch.tensor([0, 1, 2, 0, 1]), torch.tensor([0, 1, 2]))
    check_finite(torch.randn(5, 4), "image")  # finite: no error


@settings(max_examples=60, deadline=None)
@given(problem=retrieval_problem())
def test_recall_is_monotone_in_k_and_one_at_gallery_size(problem):
    vocab, image_study, img, txt = problem
    uniq = list(dict.fromkeys(vocab))
    m = _ours(vocab, image_study, img, {u: txt[i] for i, u in enumerate(uniq)}, {})
    for d in m:
        values = [m[d]["recall"][k] for k in sorted(m[d]["recall"])]
        assert values == sorted(values)
        ranks = m[d]["ranks"]
        assert float(ranks.expected_rank().max()) <= m[d]["n_gallery"]
        assert float(ranks.hit_probability(m[d]["n_gallery"]).mean()) == 1.0
        for k in DEFAULT_KS:
            if k >= m[d]["n_gallery"]:
                assert m[d]["recall"][k] == 1.0


@settings(max_examples=60, deadline=None)
@given(problem=retrieval_problem(), perm_seed=st.integers(0, 10_000),
       scales=st.lists(st.integers(-3, 3), min_size=64, max_size=64))
def test_invariant_to_gallery_order_and_positive_rescaling(problem, perm_seed, scales):
    """Shuffling images (with their study links) and texts, and rescaling every embedding by a positive power of
    two, leaves Recall@k unchanged."""
    vocab, image_study, img, txt = problem
    uniq = list(dict.fromkeys(vocab))
    base = _ours(vocab, image_study, img, {u: txt[i] for i, u in enumerate(uniq)}, {})
    rng = np.random.default_rng(perm_seed)
    perm_img = rng.permutation(len(image_study))
    perm_txt = rng.permutation(len(uniq))
    scale = np.array([2.0 ** scales[i % 64] for i in range(len(image_study))])[:, None]
    img2 = img[perm_img] * scale
    txt2 = {uniq[i]: txt[i] * 2.0 ** scales[(i + 7) % 64] for i in perm_txt}
    vocab2 = vocab  # study order kept; image order and text-vector order changed
    study2 = [image_study[i] for i in perm_img]
    other = _ours(vocab2, study2, img2, txt2, {})
    for d in base:
        assert other[d]["recall"] == base[d]["recall"]


def test_duplicate_texts_are_merged_so_a_duplicate_is_not_a_miss():
    """Two studies with identical text: retrieving either text counts as a hit for both studies' images."""
    vocab = ["same", "same", "other"]
    image_study = [0, 1, 2]
    img = np.array([[1.0, 0, 0], [1.0, 0.1, 0], [0, 0, 1.0]])
    txt = {"same": np.array([1.0, 0, 0]), "other": np.array([0, 0, 1.0])}
    m = _ours(vocab, image_study, img, txt, {})
    assert m["image_to_text"]["n_gallery"] == 2
    assert m["image_to_text"]["recall"][1] == 1.0
    assert m["text_to_image"]["n_queries"] == 2


def test_multi_image_study_counts_each_image_and_any_image_finds_the_report():
    vocab = ["a", "b"]
    image_study = [0, 0, 1]
    img = np.array([[0, 1.0], [1.0, 0], [1.0, 0.05]])  # image 0 of study a is poor, image 1 is good
    txt = {"a": np.array([1.0, 0]), "b": np.array([0.0, 1.0])}
    m = _ours(vocab, image_study, img, txt, {})
    assert m["image_to_text"]["n_queries"] == 3
    assert m["image_to_text"]["ranks"].expected_rank().tolist() == [2, 1, 2]
    assert m["text_to_image"]["ranks"].expected_rank().tolist() == [1, 2]


def test_chunked_topk_matches_full_sort():
    g = torch.Generator().manual_seed(0)
    q, gal = torch.randn(37, 16, generator=g), torch.randn(101, 16, generator=g)
    s, i = chunked_topk(q, gal, k=10, query_chunk=8, gallery_chunk=13)
    full = torch.nn.functional.normalize(q, dim=1) @ torch.nn.functional.normalize(gal, dim=1).T
    ref_s, ref_i = torch.sort(full, dim=1, descending=True, stable=True)
    assert torch.equal(i, ref_i[:, :10])
    assert torch.allclose(s, ref_s[:, :10], atol=1e-6)


def test_every_query_needs_a_target():
    with pytest.raises(ValueError, match="no target"):
        target_ranks(torch.randn(2, 4), torch.randn(3, 4), torch.tensor([0, 5]), torch.tensor([0, 1, 2]))


def test_bootstrap_interval_brackets_the_estimate_and_is_seeded():
    plain = torch.tensor([1, 3, 8, 12, 40, 2, 6, 90, 15, 4] * 20)
    zeros = torch.zeros_like(plain)
    ranks = TargetRanks(plain - 1, zeros, zeros + 1, zeros + 1, 100)
    ci = bootstrap_recall(ranks, [10], n_boot=500, seed=3)
    point = float((plain <= 10).float().mean())
    assert ci[10][0] <= point <= ci[10][1]
    assert ci == bootstrap_recall(ranks, [10], n_boot=500, seed=3)
    assert 0 < ci[10][1] - ci[10][0] < 0.3
