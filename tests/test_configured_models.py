"""``pytest benchmarks/ -k cxr_clip`` skips cleanly when no weights are configured and runs when they are.

Both runs are real pytest sessions in a subprocess, configured only through the environment variables a user
sets (``CXRBENCH_CXR_CLIP_CHECKPOINT`` / ``CXRBENCH_CXR_CLIP_TEXT_ENCODER``). The "configured" weights are the
tiny random CXR-CLIP golden fixture (tests/fixtures/golden/cxr_clip), run on the first studies of iu-phantom
(``--max-studies``). Embedding caches go to a temporary folder; the rendered phantoms are shared.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from cxrbench.cache import cache_root

ROOT = Path(__file__).resolve().parents[1]
CXR_CLIP = ROOT / "tests" / "fixtures" / "golden" / "cxr_clip"
CASES = ("cxr_clip-pixels-0:", "cxr_clip-pixels-0.5:")

pytestmark = pytest.mark.slow


def run_benchmark(tmp_path: Path, **env_settings: str) -> subprocess.CompletedProcess:
    """The benchmark suite for cxr_clip at levels 0 and 0.5 on 12 iu-phantom studies, in a fresh process."""
    phantoms = cache_root() / "iu-phantom"  # rendered once, shared with every other run on this machine
    phantoms.mkdir(parents=True, exist_ok=True)
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "iu-phantom").symlink_to(phantoms, target_is_directory=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CXRBENCH_")}
    env.update(CXRBENCH_CACHE=str(cache), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", **env_settings)
    cmd = [sys.executable, "-m", "pytest", "benchmarks/test_recall_thresholds.py", "-k", "cxr_clip",
           "--corruption", "pixels", "--levels", "0,0.5", "--models", "cxr_clip", "--dataset", "iu-phantom", "--max-studies", "12",
           "--device", "cpu", "-q", "-rs", "-p", "no:cacheprovider", "--allow-empty"]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)


def skip_reasons(output: str) -> list[str]:
    return re.findall(r"^SKIPPED \[\d+\] [^:]+:\d+: (.*)$", output, flags=re.MULTILINE)


def test_unconfigured_cxr_clip_skips_with_what_to_set(tmp_path):
    proc = run_benchmark(tmp_path)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert re.search(r"\b2 skipped\b", out) and not re.search(r"\b\d+ (passed|failed|errors?)\b", out), out
    reasons = skip_reasons(out)
    assert reasons and all("CXRBENCH_CXR_CLIP_CHECKPOINT" in r for r in reasons), out
    assert all("github.com/kakaobrain/cxr-clip" in r and "swint_mcc.tar" in r for r in reasons), out


def test_configured_cxr_clip_runs_every_case(tmp_path):
    proc = run_benchmark(tmp_path, CXRBENCH_CXR_CLIP_CHECKPOINT=str(CXR_CLIP / "cxr_clip_swin_tiny.tar"),
                         CXRBENCH_CXR_CLIP_TEXT_ENCODER=str(CXR_CLIP / "bio_clinicalbert_tiny"))
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert not re.search(r"\b\d+ (failed|errors?)\b", out), out
    assert not any("no checkpoint configured" in r or "CXRBENCH_" in r for r in skip_reasons(out)), out
    # every case ran its sweep: it either passed or skipped only for want of stored thresholds, with values
    ran = [r for r in skip_reasons(out) if "no thresholds stored" in r and "R@10=" in r]
    passed = int(m.group(1)) if (m := re.search(r"\b(\d+) passed\b", out)) else 0
    assert passed + len(ran) == len(CASES), out
    for case in CASES:
        assert passed or any(r.startswith(case) for r in ran), (case, out)
