"""Helpers of the fault-injection suite: a tiny manifest dataset, ``cxrbench`` run in this process
(``cli.main(argv)`` with stdout and stderr captured) or, for the kill tests only, as a subprocess, and what to compare
afterwards."""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
TEXTS = ("Heart size normal. Lungs clear.", "Small left pleural effusion.", "Right upper lobe opacity.",
         "Mild cardiomegaly.", "Calcified granuloma in the left apex.", "No pneumothorax.",
         "Atelectasis at the right base.", "Degenerative changes of the spine.")
N_STUDIES = 24
#: the small sweep every test runs: two models, two levels, chunks of 4 studies (6 chunks)
SWEEP = ["--models", "random,reference", "--levels", "0,0.5", "--batch-size", "4", "--bootstrap", "10",
         "--device", "cpu", "--no-progress"]
LEVELS = (0.0, 0.5)
MODELS = ("random", "reference")
CHUNKS = 6
#: the quicker sweep of the in-process tests: one model, the first 12 studies (3 chunks)
QUICK = ["--models", "random", "--levels", "0,0.5", "--batch-size", "4", "--max-studies", "12", "--bootstrap", "10",
         "--device", "cpu", "--no-progress"]
QUICK_CHUNKS = 3


def write_image(path: Path, seed: int, size: tuple[int, int] = (80, 96)) -> None:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, size=(size[1], size[0]), dtype=np.uint8), mode="L").save(path)


def write_manifest(folder: Path, n: int = N_STUDIES, rows: list[str] | None = None) -> Path:
    """``folder/manifest.csv`` with ``n`` studies of one image each (images written too), or the given rows."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        write_image(folder / f"im{i}.png", seed=i)
    lines = rows if rows is not None else [f"s{i},im{i}.png,{TEXTS[i % len(TEXTS)]} Case {i}." for i in range(n)]
    path = folder / "manifest.csv"
    path.write_text("study_id,image_path,findings\n" + "".join(line + "\n" for line in lines))
    return path


@dataclass
class Outcome:
    rc: int
    out: str
    err: str

    @property
    def errors(self) -> list[str]:
        return [line for line in self.err.splitlines() if ": error:" in line]

    @property
    def warnings(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.startswith("cxrbench: warning:")]

    def one_error(self) -> str:
        """The one error line (asserting there is exactly one, and no traceback)."""
        assert "Traceback" not in self.err, self.err
        assert len(self.errors) == 1, self.err
        return self.errors[0]


def run_cli(argv: list[str]) -> Outcome:
    """``cxrbench ARGV`` in this process."""
    from cxrbench import cli

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = cli.main([str(a) for a in argv])
    return Outcome(rc, out.getvalue(), err.getvalue())


def comparable_records(folder: Path) -> dict:
    """records.jsonl by (model, corruption, level, direction, k), without what differs between equal runs."""
    out = {}
    for line in (folder / "records.jsonl").read_text().splitlines():
        r = json.loads(line)
        out[(r["model"], r["corruption"], r["level"], r["direction"], r["k"])] = {
            k: v for k, v in r.items() if k not in ("run_id", "wall_time_s", "from_cache")}
    return out


def leftovers(out: Path) -> list[str]:
    """What a run into ``out`` left beside it: staging folders, locks, replaced folders."""
    parent = out.parent
    return sorted(p.name for p in parent.glob(f".{out.name}.*")) if parent.is_dir() else []


def subprocess_env(cache: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CXRBENCH_")}
    env.update(CXRBENCH_CACHE=str(cache), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               PYTHONPATH=os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    return env


PYTHON = sys.executable
