"""Every cache kind verifies what it returns: a truncated, bit-flipped, NaN-filled, zeroed or swapped entry is
reported in one warning line, deleted and recomputed, and the results equal a clean run's; a cache on a full or
unwritable disk becomes no cache after one warning; ``--no-cache`` never touches it; a rerun recomputes only the
chunks that are missing; ``cxrbench cache info`` / ``clear``."""

from __future__ import annotations

import errno
import os
import shutil
import struct
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from cxrbench import cache as cache_module
from cxrbench.cache import ENTRY_MAGIC, CorruptEntry, read_entry, write_entry

from reliability_harness import LEVELS, QUICK, QUICK_CHUNKS, comparable_records, run_cli

ENTRIES = len(LEVELS) * QUICK_CHUNKS  # one model


def sweep(manifest: Path, out: Path, *extra: str) -> list[str]:
    return ["run", "--dataset", "manifest", "--root", manifest, *QUICK, "--out", out, *extra]


def data_offset(path: Path) -> int:
    raw = path.read_bytes()
    return raw.index(b"\n", len(ENTRY_MAGIC)) + 1


def truncate(path: Path) -> None:
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) - 37])


def truncate_to_header(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:10])


def empty(path: Path) -> None:
    path.write_bytes(b"")


def flip_data_bit(path: Path) -> None:
    raw = bytearray(path.read_bytes())
    raw[-5] ^= 0x10
    path.write_bytes(bytes(raw))


def flip_header_bit(path: Path) -> None:
    raw = bytearray(path.read_bytes())
    raw[len(ENTRY_MAGIC) + 20] ^= 0x01
    path.write_bytes(bytes(raw))


def nan_data(path: Path) -> None:
    """The data bytes replaced by float32 NaNs (same length): the issue's '100% from NaN' entry."""
    raw = path.read_bytes()
    start = data_offset(path)
    n = (len(raw) - start) // 4
    path.write_bytes(raw[:start] + struct.pack("<f", float("nan")) * n + raw[start + 4 * n:])


def zero_part(path: Path) -> None:
    raw = bytearray(path.read_bytes())
    start = data_offset(path)
    third = (len(raw) - start) // 3
    raw[start + third : start + 2 * third] = bytes(third)
    path.write_bytes(bytes(raw))


def appended(path: Path) -> None:
    path.write_bytes(path.read_bytes() + b"\0" * 8)


DAMAGE: dict[str, Callable[[Path], None]] = {
    "truncated": truncate, "truncated-to-header": truncate_to_header, "empty": empty,
    "data-bit-flip": flip_data_bit, "header-bit-flip": flip_header_bit, "nan-data": nan_data,
    "zeroed-part": zero_part, "appended": appended,
}


# -- the entry format ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("how", sorted(DAMAGE))
def test_entry_format_detects_damage(how, tmp_path):
    path = tmp_path / "e.entry"
    key = {"model": "m", "level": 0.5}
    tensor = torch.randn(6, 4)
    write_entry(path, tensor, key)
    assert torch.equal(read_entry(path, key), tensor)
    DAMAGE[how](path)
    with pytest.raises(CorruptEntry):
        read_entry(path, key)


def test_entry_written_for_another_key_is_refused(tmp_path):
    path = tmp_path / "e.entry"
    write_entry(path, torch.zeros(2, 3), {"level": 0.25})
    with pytest.raises(CorruptEntry, match="another key"):
        read_entry(path, {"level": 0.5})


def test_entries_round_trip_every_dtype_and_shape(tmp_path):
    for t in (torch.randn(3, 5), torch.randint(0, 256, (2, 1, 4, 4), dtype=torch.uint8),
              torch.randn(4).to(torch.bfloat16), torch.zeros(0, 7), torch.tensor(3.5)):
        write_entry(tmp_path / "x.entry", t, {"k": 1})
        back = read_entry(tmp_path / "x.entry", {"k": 1})
        assert back.dtype == t.dtype and back.shape == t.shape and torch.equal(back, t)


# -- the sweep's caches --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def filled_cache(manifest, tmp_path_factory) -> tuple[Path, dict]:
    """One run that fills a cache (copied by each test that damages it), and its records."""
    tmp = tmp_path_factory.mktemp("filled")
    with pytest.MonkeyPatch.context() as mp:
        import cxrbench.embed_cache as embed_cache
        import cxrbench.prepared as prepared

        mp.setenv("CXRBENCH_CACHE", str(tmp / "cache"))
        mp.setattr(embed_cache, "cache_root", cache_module.cache_root)
        mp.setattr(prepared, "cache_root", cache_module.cache_root)
        first = run_cli(sweep(manifest, tmp / "first"))
    assert first.rc == 0 and not first.warnings, first.err
    return tmp / "cache", comparable_records(tmp / "first")


@pytest.fixture
def clean_run(filled_cache, cache_dir) -> dict:
    """This test's cache, filled by a clean run; that run's records."""
    shutil.copytree(filled_cache[0], cache_dir)
    return filled_cache[1]


@pytest.mark.parametrize("how", ["truncated", "data-bit-flip", "header-bit-flip", "nan-data", "zeroed-part",
                                 "empty", "swapped"])
def test_damaged_embedding_entry_is_reported_deleted_and_recomputed(how, manifest, cache_dir, clean_run, tmp_path):
    entries = sorted((cache_dir / "embeddings").glob("*.entry"))
    assert len(entries) == ENTRIES
    victim = entries[3]
    if how == "swapped":  # a valid entry of another (model, level, chunk) under this name
        victim.write_bytes(entries[4].read_bytes())
    else:
        DAMAGE[how](victim)
    second = run_cli(sweep(manifest, tmp_path / "second"))
    assert second.rc == 0, second.err
    assert len(second.warnings) == 1 and victim.name in second.warnings[0] and "recomputed" in second.warnings[0]
    assert comparable_records(tmp_path / "second") == clean_run
    read_entry(victim)  # written again, and valid
    third = run_cli(sweep(manifest, tmp_path / "third"))
    assert third.rc == 0 and not third.warnings and comparable_records(tmp_path / "third") == clean_run


@pytest.mark.parametrize("how", ["truncated", "data-bit-flip", "zeroed-part"])
def test_damaged_geometry_entry_is_recomputed_and_never_poisons_the_embeddings(how, manifest, cache_dir, clean_run,
                                                                              tmp_path):
    """The issue's case: zeroing part of a geometry file changed every result and the wrong embeddings were then
    cached on top. Here the embeddings are cleared, so the damaged geometry would be used."""
    geometry = sorted((cache_dir / "geometry").glob("*.entry"))
    assert len(geometry) == 1
    cache_module.clear(cache_dir, kinds=["embeddings"])
    DAMAGE[how](geometry[0])
    second = run_cli(sweep(manifest, tmp_path / "second"))
    assert second.rc == 0, second.err
    assert len(second.warnings) == 1 and "geometry" in second.warnings[0]
    assert comparable_records(tmp_path / "second") == clean_run
    third = run_cli(sweep(manifest, tmp_path / "third"))
    assert third.rc == 0 and not third.warnings and comparable_records(tmp_path / "third") == clean_run


def test_rerun_recomputes_only_the_missing_chunks(manifest, cache_dir, clean_run, tmp_path, monkeypatch):
    import cxrbench.engine as engine

    entries = sorted((cache_dir / "embeddings").glob("*.entry"))
    removed = [entries[0], entries[4]]
    for e in removed:
        e.unlink()
    kept = {p.name: p.stat().st_ino for p in entries if p not in removed}
    embedded = []
    original = engine.embed_levels

    def counting(*args, on_batch=None, **kwargs):
        return original(*args, on_batch=lambda n: (embedded.append(n), on_batch and on_batch(n)), **kwargs)

    monkeypatch.setattr(engine, "embed_levels", counting)
    second = run_cli(sweep(manifest, tmp_path / "second"))
    assert second.rc == 0 and not second.warnings, second.err
    assert len(embedded) == len(removed)  # one (chunk, level) each, nothing else
    assert all((cache_dir / "embeddings" / name).stat().st_ino == ino for name, ino in kept.items())
    assert comparable_records(tmp_path / "second") == clean_run


def test_no_cache_never_touches_the_cache(manifest, cache_dir, tmp_path, clean_run):
    before = {p: p.stat().st_mtime_ns for p in cache_dir.rglob("*")}
    run = run_cli(sweep(manifest, tmp_path / "nc", "--no-cache"))
    assert run.rc == 0 and not run.warnings, run.err
    assert {p: p.stat().st_mtime_ns for p in cache_dir.rglob("*")} == before
    assert comparable_records(tmp_path / "nc") == clean_run


def test_no_cache_does_not_create_the_cache(manifest, cache_dir, tmp_path):
    run = run_cli(sweep(manifest, tmp_path / "nc", "--no-cache"))
    assert run.rc == 0 and not run.warnings, run.err
    assert not cache_dir.exists()


def test_unwritable_cache_location_degrades_to_no_cache_with_one_warning(manifest, cache_dir, tmp_path,
                                                                         monkeypatch):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be\n")
    monkeypatch.setenv("CXRBENCH_CACHE", str(blocker / "cache"))
    run = run_cli(sweep(manifest, tmp_path / "ro"))
    assert run.rc == 0, run.err
    assert len(run.warnings) == 1 and "continuing without the cache" in run.warnings[0], run.err
    assert run_cli(sweep(manifest, tmp_path / "nc", "--no-cache")).rc == 0
    assert comparable_records(tmp_path / "ro") == comparable_records(tmp_path / "nc")


def test_cache_on_a_full_disk_degrades_to_no_cache_with_one_warning(manifest, cache_dir, tmp_path, monkeypatch):
    written = []
    original = cache_module.write_entry

    def full_after_three(path, tensor, key=None):
        if len(written) >= 3:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        written.append(path)
        original(path, tensor, key)

    monkeypatch.setattr(cache_module, "write_entry", full_after_three)
    run = run_cli(sweep(manifest, tmp_path / "full"))
    assert run.rc == 0, run.err
    assert len(run.warnings) == 1 and "No space left on device" in run.warnings[0], run.err
    assert len(written) == 3
    reference = run_cli(sweep(manifest, tmp_path / "nc", "--no-cache"))
    assert reference.rc == 0
    assert comparable_records(tmp_path / "full") == comparable_records(tmp_path / "nc")


# -- cxrbench cache info / clear -----------------------------------------------------------------------------------
def test_cache_info_and_clear(manifest, cache_dir, clean_run):
    info = run_cli(["cache", "info"])
    assert info.rc == 0 and str(cache_dir) in info.out
    assert f"embeddings  {ENTRIES:7d} files" in info.out
    assert "geometry          1 files" in info.out
    entries = sorted((cache_dir / "embeddings").glob("*.entry"))
    old = time.time() - 3 * 86400
    for e in entries[:2]:
        os.utime(e, (old, old))
    kept = run_cli(["cache", "clear", "--older-than", "2d"])
    assert kept.rc == 0 and "removed 2 file(s)" in kept.out
    assert len(list((cache_dir / "embeddings").glob("*.entry"))) == len(entries) - 2
    only = run_cli(["cache", "clear", "--kind", "geometry"])
    assert only.rc == 0 and not (cache_dir / "geometry").exists() and (cache_dir / "embeddings").exists()
    everything = run_cli(["cache", "clear"])
    assert everything.rc == 0 and not (cache_dir / "embeddings").exists()


@pytest.mark.parametrize("argv, match", [
    (["cache", "clear", "--older-than", "soon"], "--older-than 'soon'"),
    (["cache", "clear", "--older-than=-3d"], "--older-than '-3d'"),
    (["cache", "clear", "--kind", "thumbnails"], "unknown cache kind"),
    (["cache", "shrink"], "invalid choice"),
])
def test_cache_command_errors(argv, match, cache_dir):
    run = run_cli(argv)
    assert run.rc == 2 and match in run.one_error()
