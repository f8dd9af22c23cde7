"""Fixtures of the fault-injection suite (helpers in ``reliability_harness``): the tiny manifest dataset and a
cache of each test's own."""

from __future__ import annotations

from pathlib import Path

import pytest

from reliability_harness import write_manifest


@pytest.fixture(scope="session")
def manifest(tmp_path_factory) -> Path:
    """A 24-study manifest dataset of 80x96 grayscale PNGs (shared, read-only)."""
    return write_manifest(tmp_path_factory.mktemp("dataset"))


@pytest.fixture
def cache_dir(tmp_path, monkeypatch) -> Path:
    """A cache root of this test's own (``CXRBENCH_CACHE``), seen by every cache user, nothing marked unusable."""
    import cxrbench.embed_cache as embed_cache
    import cxrbench.mask_geometry as mask_geometry
    import cxrbench.prepared as prepared
    from cxrbench import cache

    root = tmp_path / "cache"
    monkeypatch.setenv("CXRBENCH_CACHE", str(root))
    monkeypatch.setattr(embed_cache, "cache_root", cache.cache_root)
    monkeypatch.setattr(prepared, "cache_root", cache.cache_root)
    monkeypatch.setattr(mask_geometry, "cache_root", cache.cache_root)
    cache.reset_unusable()
    yield root
    cache.reset_unusable()
