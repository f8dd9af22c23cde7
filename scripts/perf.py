"""Kernel timings with a baseline on this machine (``tox -e perf``, and the nightly workflow's timing step).

Runs the pytest-benchmark kernels of ``benchmarks/bench_kernels.py`` (image embedding, text embedding, occlusion,
similarity and ranks) with timing enabled and saves every run (``--benchmark-autosave``) into a storage folder
kept per machine. When that folder already holds a run, this one is compared with the last one saved
(``--benchmark-compare``) and fails when a kernel's median is more than 15% slower
(``--benchmark-compare-fail=median:15%``); the first run only saves.

Timings compare only within one machine (same CPU or GPU, drivers, load): the storage folder is therefore per
host, ``$CXRBENCH_PERF_STORAGE`` if set (a runner keeps it between jobs), else ``.benchmarks/perf/<hostname>`` in
the repository. pytest-benchmark adds a folder per platform and Python version inside it.

    python scripts/perf.py                       # CPU
    python scripts/perf.py --device cuda --json reports/kernel-timings.json
    python scripts/perf.py -- -k occlusion       # anything after -- goes to pytest

Exit status: pytest's (0 passed; 1 a kernel failed or got slower than allowed).
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KERNELS = "benchmarks/bench_kernels.py"
DEFAULT_FAIL = "median:15%"


def default_storage() -> Path:
    env = os.environ.get("CXRBENCH_PERF_STORAGE")
    if env:
        return Path(env).expanduser()
    return ROOT / ".benchmarks" / "perf" / (socket.gethostname() or "localhost")


def saved_runs(storage: Path) -> list[Path]:
    """The runs saved in ``storage`` (pytest-benchmark's ``<platform>/<NNNN>_*.json``), oldest first."""
    return sorted(storage.glob("*/[0-9][0-9][0-9][0-9]_*.json"), key=lambda p: (p.parent.name, p.name))


def pytest_command(storage: Path, device: str, fail: str, compare: bool, json_out: Path | None,
                   extra: list[str]) -> list[str]:
    cmd = [sys.executable, "-m", "pytest", KERNELS, "-p", "no:cacheprovider", "-q", "--device", device,
           "--benchmark-enable", "--benchmark-autosave", f"--benchmark-storage=file://{storage}",
           "--benchmark-columns=min,median,max,rounds", "--benchmark-sort=name"]
    if compare:
        cmd += ["--benchmark-compare", f"--benchmark-compare-fail={fail}"]
    if json_out is not None:
        cmd.append(f"--benchmark-json={json_out}")
    return cmd + extra


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--storage", type=Path, default=None,
                   help="folder of saved runs for this machine (default $CXRBENCH_PERF_STORAGE, else "
                        ".benchmarks/perf/<hostname>)")
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    p.add_argument("--fail", default=DEFAULT_FAIL, help=f"pytest-benchmark --benchmark-compare-fail (default "
                                                        f"{DEFAULT_FAIL})")
    p.add_argument("--json", type=Path, default=None, help="also write this run's timings here (an artifact)")
    args = p.parse_args(argv)
    storage = (args.storage or default_storage()).resolve()
    storage.mkdir(parents=True, exist_ok=True)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
    earlier = saved_runs(storage)
    if earlier:
        print(f"perf: comparing with the last saved run on this machine, {earlier[-1]} (fail: {args.fail})",
              flush=True)
    else:
        print(f"perf: no saved run in {storage}: this run is saved as this machine's first baseline", flush=True)
    cmd = pytest_command(storage, args.device, args.fail, bool(earlier), args.json, extra)
    rc = subprocess.call(cmd, cwd=ROOT)
    saved = [p for p in saved_runs(storage) if p not in earlier]
    print(f"perf: {'saved ' + str(saved[-1]) if saved else 'nothing saved'}; pytest exit status {rc}", flush=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
