"""Results are written whole or not at all: an existing results folder is refused unless --overwrite (then replaced
whole, no stale file left); a run that fails, is interrupted or meets a full disk while writing leaves nothing that
looks like results; two runs into one folder at once: one refuses."""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reliability_harness import PYTHON, QUICK, SWEEP, comparable_records, leftovers, run_cli, subprocess_env

RESULT_FILES = {"records.jsonl", "results.csv", "table.md", "recall_pixels.png", "run.json", "ranks.pt", "examples.npz",
                "report.html"}


def sweep(manifest: Path, out: Path, *extra: str) -> list[str]:
    return ["run", "--dataset", "manifest", "--root", manifest, *QUICK, "--out", out, *extra]


@pytest.fixture(scope="module")
def complete(manifest, tmp_path_factory) -> Path:
    """A complete results folder of the quick sweep (to compare with)."""
    out = tmp_path_factory.mktemp("complete") / "run"
    run = run_cli(sweep(manifest, out, "--no-cache"))
    assert run.rc == 0, run.err
    assert {p.name for p in out.iterdir()} == RESULT_FILES
    return out


def test_existing_results_are_refused_and_left_untouched(manifest, cache_dir, tmp_path, complete):
    out = tmp_path / "run"
    out.mkdir()
    (out / "recall_pixels.png").write_bytes(b"an earlier run's plot")
    run = run_cli(sweep(manifest, out))
    assert run.rc == 2 and "already holds 1 file(s)" in run.one_error() and "--overwrite" in run.one_error()
    assert [p.name for p in out.iterdir()] == ["recall_pixels.png"]
    assert (out / "recall_pixels.png").read_bytes() == b"an earlier run's plot"
    assert leftovers(out) == []


def test_overwrite_replaces_the_folder_whole(manifest, cache_dir, tmp_path, complete):
    out = tmp_path / "run"
    out.mkdir()
    (out / "stale.txt").write_text("left by an earlier run\n")
    (out / "recall_block.png").write_bytes(b"an earlier run's plot of another corruption")
    run = run_cli(sweep(manifest, out, "--overwrite"))
    assert run.rc == 0, run.err
    assert {p.name for p in out.iterdir()} == RESULT_FILES
    assert comparable_records(out) == comparable_records(complete)
    assert leftovers(out) == []


def test_an_existing_empty_folder_is_filled(manifest, cache_dir, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    run = run_cli(sweep(manifest, out))
    assert run.rc == 0 and {p.name for p in out.iterdir()} == RESULT_FILES and leftovers(out) == []


def test_stale_staging_of_a_killed_run_is_removed(manifest, cache_dir, tmp_path):
    out = tmp_path / "run"
    stale = tmp_path / ".run.partial-99999-abcd"
    stale.mkdir()
    (stale / "records.jsonl").write_text("{}\n")
    run = run_cli(sweep(manifest, out))
    assert run.rc == 0, run.err
    assert not stale.exists() and leftovers(out) == []


@pytest.mark.parametrize("failure", [KeyboardInterrupt, RuntimeError])
def test_a_run_stopped_while_writing_leaves_nothing(failure, manifest, cache_dir, tmp_path, monkeypatch):
    import cxrbench.report.write as write

    def broken_plot(*args, **kwargs):
        raise failure("stopped while writing the plot")

    monkeypatch.setattr(write, "plot_recall", broken_plot)
    out = tmp_path / "run"
    run = run_cli(sweep(manifest, out))
    assert run.rc == (130 if failure is KeyboardInterrupt else 1)
    assert "Traceback" not in run.err
    assert not out.exists() and leftovers(out) == []


@contextlib.contextmanager
def disk_quota(monkeypatch, under: Path, quota: int):
    """Every atomic write under ``under`` counts against ``quota`` bytes; the write that passes it fails with
    ENOSPC, as on a full disk (every cxrbench file write goes through cxrbench.io.atomic_path)."""
    import cxrbench.io as cio

    original = cio.atomic_path
    used = [0]

    @contextlib.contextmanager
    def limited(path):
        with original(path) as tmp:
            yield tmp
            if str(Path(path).resolve()).startswith(str(under.resolve())):
                used[0] += tmp.stat().st_size
                if used[0] > quota:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    for name, module in list(sys.modules.items()):
        if name.startswith("cxrbench") and getattr(module, "atomic_path", None) is original:
            monkeypatch.setattr(module, "atomic_path", limited)
    yield used


@pytest.mark.parametrize("fraction", [0.0, 0.3, 0.6, 0.95])
def test_full_output_disk_fails_in_one_line_and_leaves_nothing(fraction, manifest, cache_dir, tmp_path, monkeypatch,
                                                               complete):
    size = sum(p.stat().st_size for p in complete.iterdir())
    results = tmp_path / "results"
    out = results / "run"
    with disk_quota(monkeypatch, results, int(size * fraction)):
        run = run_cli(sweep(manifest, out))
    assert run.rc == 1
    line = run.one_error()
    assert "No space left on device" in line and str(out) in line and "nothing was written" in line
    assert not out.exists() and leftovers(out) == []


def test_two_runs_into_one_folder_one_refuses(manifest, cache_dir, tmp_path):
    out = tmp_path / "results" / "shared"
    lock = out.parent / f".{out.name}.lock"
    first = subprocess.Popen([PYTHON, "-m", "cxrbench", "run", "--dataset", "manifest", "--root", str(manifest),
                              *SWEEP, "--out", str(out)], env=subprocess_env(tmp_path / "cache-first"),
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not lock.exists():
        assert first.poll() is None, first.stderr.read()
        assert time.monotonic() < deadline
        time.sleep(0.01)
    second = run_cli(sweep(manifest, out))
    assert second.rc == 2 and "another cxrbench run" in second.one_error() and "is writing to it" in second.errors[0]
    _, err = first.communicate(timeout=300)
    assert first.returncode == 0, err[-3000:]
    assert {p.name for p in out.iterdir()} == RESULT_FILES and leftovers(out) == []
    again = run_cli(sweep(manifest, out))  # finished: now refused because the folder holds results
    assert again.rc == 2 and "already holds" in again.one_error()


def test_default_folder_is_results_run_name(manifest, cache_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = run_cli(["run", "--dataset", "manifest", "--root", manifest, *QUICK, "--run-name", "nightly"])
    assert run.rc == 0, run.err
    assert {p.name for p in (tmp_path / "results" / "nightly").iterdir()} == RESULT_FILES
