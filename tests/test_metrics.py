"""Recall@k, ranks and retrieval against an independent brute-force reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cxrbench.metrics import DEFAULT_KS, bootstrap_recall, merge_texts, retrieval_metrics
from cxrbench.retrieval import chunked_topk, target_ranks


def brute_force(image_emb: np.ndarray, study_texts: list[str], image_study: list[int], ks) -> dict:
    """Plain-Python reference: full cosine matrix, loops, dicts; written independently of cxrbench.metrics."""
    img = image_emb / np.linalg.norm(image_emb, axis=1, keepdims=True)
    uniq = []
    for t in study_texts:
        if t not in uniq:
            uniq.append(t)
    text_vecs = {t: TEXT_VECS[t] / np.linalg.norm(TEXT_VECS[t]) for t in uniq}
    sims = np.array([[float(np.dot(img[i], text_vecs[t])) for t in uniq] for i in range(len(img))])
    # image -> text: position of the own text when sorting by score, ties resolved in the target's favour
    i2t = []
    for i in range(len(img)):
        own = uniq.index(study_texts[image_study[i]])
        i2t.append(1 + sum(1 for j in range(len(uniq)) if j != own and sims[i, j] > sims[i, own]))
    # text -> image: best-placed image among all images whose study has this text
    t2i = []
    for j, t in enumerate(uniq):
        targets = [i for i in range(len(img)) if study_texts[image_study[i]] == t]
        best = max(sims[i, j] for i in targets)
        t2i.append(1 + sum(1 for i in range(len(img)) if i not in targets and sims[i, j] > best))
    return {
        "image_to_text": {k: sum(r <= k for r in i2t) / len(i2t) for k in ks},
        "text_to_image": {k: sum(r <= k for r in t2i) / len(t2i) for k in ks},
        "ranks": (i2t, t2i),
    }


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
    """Recall@k and ranks equal the brute-force reference, with duplicate texts, multi-image studies and ties,
    for any chunking of queries and gallery."""
    vocab, image_study, img, txt = problem
    uniq = list(dict.fromkeys(vocab))
    TEXT_VECS.clear()
    TEXT_VECS.update({u: txt[i] for i, u in enumerate(uniq)})
    ref = brute_force(img, vocab, image_study, DEFAULT_KS)
    ours = _ours(vocab, image_study, img, TEXT_VECS, {"query_chunk": qc, "gallery_chunk": gc})
    assert ours["image_to_text"]["ranks"].tolist() == ref["ranks"][0]
    assert ours["text_to_image"]["ranks"].tolist() == ref["ranks"][1]
    for d in ("image_to_text", "text_to_image"):
        assert ours[d]["recall"] == ref[d]


@settings(max_examples=60, deadline=None)
@given(problem=retrieval_problem())
def test_recall_is_monotone_in_k_and_one_at_gallery_size(problem):
    vocab, image_study, img, txt = problem
    uniq = list(dict.fromkeys(vocab))
    m = _ours(vocab, image_study, img, {u: txt[i] for i, u in enumerate(uniq)}, {})
    for d in m:
        values = [m[d]["recall"][k] for k in sorted(m[d]["recall"])]
        assert values == sorted(values)
        assert m[d]["ranks"].max() <= m[d]["n_gallery"]
        ranks = m[d]["ranks"]
        assert float((ranks <= m[d]["n_gallery"]).float().mean()) == 1.0
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
    assert m["image_to_text"]["ranks"].tolist() == [2, 1, 2]
    assert m["text_to_image"]["ranks"].tolist() == [1, 2]


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
    ranks = torch.tensor([1, 3, 8, 12, 40, 2, 6, 90, 15, 4] * 20)
    ci = bootstrap_recall(ranks, [10], n_boot=500, seed=3)
    point = float((ranks <= 10).float().mean())
    assert ci[10][0] <= point <= ci[10][1]
    assert ci == bootstrap_recall(ranks, [10], n_boot=500, seed=3)
    assert 0 < ci[10][1] - ci[10][0] < 0.3
