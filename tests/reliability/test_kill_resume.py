"""``kill -9`` at seeded random points of a small run, then a rerun: the records equal an uninterrupted run's, no
finished chunk is computed again, and at most one chunk's work is lost per kill; a killed run leaves no results
folder that looks complete. Subprocesses (the only ones of the suite besides the concurrency and pool-worker
tests): ``logged_run.py`` runs ``cxrbench run`` and logs each embedded (chunk, level) and each cache entry written.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest

from reliability_harness import (
    CHUNKS,
    LEVELS,
    MODELS,
    PYTHON,
    SWEEP,
    comparable_records,
    leftovers,
    subprocess_env,
)

DRIVER = Path(__file__).with_name("logged_run.py")
#: (model, level, chunk) units of the sweep: each one entry of the embedding cache
UNITS = len(MODELS) * len(LEVELS) * CHUNKS
#: seeds whose kill points fall at start-up (31), after the first chunk level (2), at the model boundary (0) and
#: after the last (20: during the last writes or the results folder)
SEEDS = (31, 2, 0, 20)


def command(log: Path, manifest: Path, out: Path, *extra: str) -> list[str]:
    return [PYTHON, str(DRIVER), str(log), "run", "--dataset", "manifest", "--root", str(manifest), *SWEEP,
            "--out", str(out), "--run-name", "kill", *extra]


def events(log: Path, kind: str) -> int:
    return sum(1 for line in log.read_text().splitlines() if line.startswith(kind)) if log.exists() else 0


def entries(cache: Path) -> dict[str, int]:
    """Embedding-cache entries by name -> inode (an entry written again gets a new inode)."""
    return {p.name: p.stat().st_ino for p in (cache / "embeddings").glob("*.entry")}


@pytest.fixture(scope="module")
def uninterrupted(manifest, tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("uninterrupted")
    proc = subprocess.run(command(tmp / "log", manifest, tmp / "run", "--no-cache"), env=subprocess_env(tmp / "c"),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert events(tmp / "log", "embedded") == UNITS and events(tmp / "log", "wrote") == 0
    return comparable_records(tmp / "run")


def kill_at(cmd: list[str], log: Path, env: dict, units: int, delay: float, stderr: Path) -> None:
    """Start ``cmd``; once ``units`` (chunk, level)s are embedded (0: at start-up) wait ``delay`` s, then kill -9."""
    with open(stderr, "w") as err:
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=err)
    deadline = time.monotonic() + 240
    try:
        while events(log, "embedded" if units else "start") < max(units, 1):
            assert proc.poll() is None, f"the run ended before the kill point: {stderr.read_text()[-2000:]}"
            assert time.monotonic() < deadline, "the run did not reach the kill point"
            time.sleep(0.002)
        time.sleep(delay)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()


@pytest.mark.parametrize("seed", SEEDS)
def test_kill_then_rerun_gives_identical_records_and_recomputes_at_most_one_chunk(seed, manifest, uninterrupted,
                                                                               tmp_path):
    rng = random.Random(seed)
    units = rng.randrange(UNITS)  # kill after this many embedded (chunk, level)s; 0: during start-up and geometry
    delay = rng.uniform(0.5, 4.0) if units == 0 else rng.uniform(0.0, 0.05)
    cache, out = tmp_path / "cache", tmp_path / "results" / "run"
    env = subprocess_env(cache)
    killed_log, rerun_log = tmp_path / "killed.log", tmp_path / "rerun.log"
    kill_at(command(killed_log, manifest, out), killed_log, env, units, delay, tmp_path / "killed.err")

    assert not out.exists(), "a killed run left a results folder that looks complete"
    finished = entries(cache)
    embedded = events(killed_log, "embedded")
    assert len(finished) <= embedded <= len(finished) + len(LEVELS), \
        f"more than the chunk in progress was lost: {embedded} embedded, {len(finished)} kept"

    proc = subprocess.run(command(rerun_log, manifest, out), env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert events(rerun_log, "embedded") == UNITS - len(finished), "a finished chunk was computed again"
    after = entries(cache)
    assert len(after) == UNITS
    assert all(after[name] == inode for name, inode in finished.items()), "a finished entry was written again"
    recomputed = embedded + events(rerun_log, "embedded") - UNITS
    assert 0 <= recomputed <= len(LEVELS)  # (chunk, level)s of at most one chunk
    assert comparable_records(out) == uninterrupted
    assert leftovers(out) == [], "the rerun left staging folders or locks behind"
