"""The on-disk text-embedding cache: a second identical run embeds no text and gives identical records; the key
tells apart everything that changes the text embeddings; a damaged entry is reported, deleted and recomputed."""

from __future__ import annotations

import warnings
from dataclasses import replace

import pytest
import torch

from cxrbench.cache import CacheWarning
from cxrbench.config import SweepConfig
from cxrbench.data import load_dataset
from cxrbench.embed_cache import EmbeddingCache, text_embedding_key
from cxrbench.prepared import Prepared
from cxrbench.results import records
from cxrbench.runner import run_sweep


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    import cxrbench.embed_cache as embed_cache
    import cxrbench.prepared as prepared

    monkeypatch.setattr(embed_cache, "cache_root", lambda: tmp_path)
    monkeypatch.setattr(prepared, "cache_root", lambda: tmp_path)
    return tmp_path


@pytest.fixture(scope="module")
def dataset(paper_data):
    return load_dataset("manifest", root=paper_data["manifest"], progress=False)


class Counting:
    """Counts the texts each encoder embeds (its embed_text_batch), restoring it afterwards."""

    def __init__(self, encoders):
        self.encoders, self.texts = encoders, {name: 0 for name in encoders}

    def __enter__(self):
        for name, enc in self.encoders.items():
            original = enc.embed_text_batch

            def counting(texts, name=name, original=original):
                self.texts[name] += len(texts)
                return original(texts)

            enc.embed_text_batch = counting
        return self

    def __exit__(self, *exc):
        for enc in self.encoders.values():
            del enc.embed_text_batch


def _strip(recs):
    return [{k: v for k, v in r.items() if k not in ("wall_time_s", "from_cache")} for r in recs]


def test_a_second_identical_run_embeds_no_text_and_gives_identical_records(dataset, paper_encoders, cache_dir):
    cfg = SweepConfig(models=list(paper_encoders), levels=(0.0, 0.5), bootstrap=20, device="cpu")
    with Counting(paper_encoders) as first_count:
        first = run_sweep(cfg, progress=False, dataset=dataset, encoders=dict(paper_encoders))
    n_texts = len(Prepared(dataset).unique_texts)
    assert first_count.texts == {name: n_texts for name in paper_encoders}
    assert not any(first.timings.model(m).texts_cached for m in paper_encoders)
    # the image embeddings go too, so only the text cache can spare the second run its texts
    for f in (cache_dir / "embeddings").iterdir():
        f.unlink()
    with Counting(paper_encoders) as second_count:
        second = run_sweep(cfg, progress=False, dataset=dataset, encoders=dict(paper_encoders))
    assert second_count.texts == {name: 0 for name in paper_encoders}
    assert all(second.timings.model(m).texts_cached for m in paper_encoders)
    assert _strip(records(first)) == _strip(records(second))


def test_the_key_changes_with_whatever_changes_the_text_embeddings(dataset, paper_encoders, paper_data):
    enc = paper_encoders["cxr_clip"]
    prep = Prepared(dataset)
    base = text_embedding_key(enc, prep, "fp32")
    assert base["sha"] == enc.info.checkpoint_sha256 and base["n_texts"] == len(prep.unique_texts)
    assert text_embedding_key(enc, prep, "bf16") != base
    assert text_embedding_key(paper_encoders["medclip"], prep, "fp32")["model"] == "medclip"
    findings = Prepared(load_dataset("manifest", root=paper_data["manifest"], policy="findings", progress=False))
    assert findings.unique_texts == prep.unique_texts and dataset.policy != "findings"
    assert text_embedding_key(enc, findings, "fp32") != base  # the text policy is part of the key
    arch = enc.arch
    try:
        enc.arch = replace(arch, text_max_length=128)
        assert text_embedding_key(enc, prep, "fp32") != base  # a tokenizer setting
    finally:
        enc.arch = arch
    short = Prepared(dataset.subset(2))
    assert text_embedding_key(enc, short, "fp32")["texts"] != base["texts"]
    tokenizer = base["text"]["tokenizer"]
    assert tokenizer["vocab_size"] == len(enc.tokenizer.get_vocab()) and len(tokenizer["vocab"]) == 16


def test_a_model_without_a_checkpoint_hash_is_not_cached(dataset, paper_encoders):
    enc = paper_encoders["clip"]
    sha = enc.info.checkpoint_sha256
    try:
        enc.info.checkpoint_sha256 = None
        assert text_embedding_key(enc, Prepared(dataset), "fp32") is None
    finally:
        enc.info.checkpoint_sha256 = sha


def test_a_damaged_text_entry_is_reported_deleted_and_recomputed(dataset, paper_encoders, cache_dir):
    enc = {"clip": paper_encoders["clip"]}
    cfg = SweepConfig(models=["clip"], levels=(0.0,), bootstrap=0, device="cpu")
    first = run_sweep(cfg, progress=False, dataset=dataset, encoders=dict(enc))
    entries = list((cache_dir / "texts").iterdir())
    assert len(entries) == 1
    data = bytearray(entries[0].read_bytes())
    data[-3] ^= 0xFF  # one flipped byte in the embeddings
    entries[0].write_bytes(bytes(data))
    for f in (cache_dir / "embeddings").iterdir():
        f.unlink()
    with warnings.catch_warnings(record=True) as caught, Counting(enc) as count:
        warnings.simplefilter("always")
        second = run_sweep(cfg, progress=False, dataset=dataset, encoders=dict(enc))
    assert any(issubclass(w.category, CacheWarning) and "damaged" in str(w.message) for w in caught)
    assert count.texts["clip"] == len(Prepared(dataset).unique_texts)  # recomputed
    assert _strip(records(first)) == _strip(records(second))
    key = text_embedding_key(paper_encoders["clip"], Prepared(dataset), "fp32")
    assert torch.equal(EmbeddingCache(kind="texts", root=cache_dir).read(key),
                       paper_encoders["clip"].encode_texts(Prepared(dataset).unique_texts))


def test_no_cache_never_writes_text_entries(dataset, paper_encoders, cache_dir):
    cfg = SweepConfig(models=["clip"], levels=(0.0,), bootstrap=0, device="cpu", use_cache=False)
    run_sweep(cfg, progress=False, dataset=dataset, encoders={"clip": paper_encoders["clip"]})
    assert not (cache_dir / "texts").exists()
