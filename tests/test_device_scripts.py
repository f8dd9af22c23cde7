"""The device-check scripts (scripts/device_check.sh, gpu_check.sh, gpu_check.py, tower_formats.py) are run only on
a lent GPU machine, so they are kept from rotting here: the shell scripts parse, every entry point answers --help,
and device_check.sh runs end to end on the CPU at tiny size with two models (its summary, and the paper-size JSON
counting each image decoded once for both)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "scripts"


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ, PYTHON=sys.executable, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.update(extra)
    return env


@pytest.mark.parametrize("script", sorted(p.name for p in SCRIPTS.glob("*.sh")))
def test_shell_scripts_parse(script):
    proc = subprocess.run(["bash", "-n", str(SCRIPTS / script)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_device_check_help_and_unknown_option():
    helped = subprocess.run(["bash", str(SCRIPTS / "device_check.sh"), "--help"], capture_output=True, text=True,
                            env=_env(), timeout=30)
    assert helped.returncode == 0
    assert helped.stdout.startswith("Device check") and "set -uo" not in helped.stdout
    bad = subprocess.run(["bash", str(SCRIPTS / "device_check.sh"), "--bogus"], capture_output=True, text=True,
                         env=_env(), timeout=30)
    assert bad.returncode == 2 and "unknown option --bogus" in bad.stderr


@pytest.mark.parametrize("command", [["bash", "gpu_check.sh", "--help"], [sys.executable, "gpu_check.py", "--help"],
                                     [sys.executable, "tower_formats.py", "--help"]])
def test_entry_points_answer_help(command):
    proc = subprocess.run(command, cwd=SCRIPTS, capture_output=True, text=True, env=_env(), timeout=120)
    assert proc.returncode == 0, proc.stderr
    if command[1] == "gpu_check.sh":  # execs `cxrbench bench --paper-size ...`: its options are bench's
        assert "--paper-size" in proc.stdout and "--naive-images" in proc.stdout


@pytest.mark.slow
def test_device_check_cpu_smoke(tmp_path, paper_settings):
    checkpoints = Path(paper_settings["clip"]["checkpoint"]).parents[2]  # <dir>/tiny/clip/file
    out = tmp_path / "out"
    proc = subprocess.run(
        ["bash", str(SCRIPTS / "device_check.sh"), "--device", "cpu", "--images", "3", "--image-size", "480",
         "--checkpoint-size", "tiny", "--checkpoint-dir", str(checkpoints), "--data-dir", str(tmp_path / "data"),
         "--naive-images", "2", "--levels", "0,0.5", "--precision", "fp32", "--models", "clip,cxr_clip",
         "--workers", "2", "--timeout", "300"],
        capture_output=True, text=True, env=_env(OUT=str(out), WHEELS=str(tmp_path / "no-wheels")), timeout=400)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = (out / "summary.txt").read_text().splitlines()
    assert summary[0].startswith("corruptions: skipped (--device cpu")
    assert summary[-1].startswith("paper_size: exit 0")
    report = json.loads((out / "paper_size.json").read_text())
    rows = {r["pipeline"]: r for r in report["pipelines"]}
    n = report["dataset"]["images"]
    assert rows["decode per geometry (before)"]["images_decoded"] == 2 * n  # two models, two geometries
    assert rows["optimised"]["images_decoded"] == n
    assert set(report["naive_vs_optimised"].values()) == {0.0}
    assert {r["model"] for r in report["tower_check"]} == {"clip", "cxr_clip"}
    assert "torch" in (out / "env.txt").read_text()
