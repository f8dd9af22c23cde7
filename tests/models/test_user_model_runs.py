"""Your own model, end to end (issue 13, "Done when"): a models.yaml with an open_clip and an hf entry, and the
example plugin of docs/your-model.md as a ``--model-module`` file and as an installed distribution, each run through
``cxrbench run`` and ``pytest benchmarks/ -k <name>``; ``cxrbench models`` lists the catalogue with how to get each
model.

Tiny seeded checkpoints (family_fixtures.py, the plugin's ToyClip) on the first 4 iu-phantom studies at levels 0
and 0.5, without bootstrap or cache. The benchmark cases of these models have no stored thresholds and skip by
design, so the pytest runs are checked through the records they write (``--records-out``), not through passes.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from cxrbench import cli
from cxrbench.cache import cache_root
from cxrbench.models.sources import HOW_TO_GET

from family_fixtures import write_clip_folder, write_open_clip_folder

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "tests" / "fixtures" / "plugin" / "cxrbench_toy_plugin.py"
TINY = ["--dataset", "iu-phantom", "--max-studies", "4", "--corruption", "pixels", "--levels", "0,0.5", "--bootstrap",
        "0", "--no-cache", "--device", "cpu"]
USER_MODELS = ("my_open_clip", "my_hf_clip", "my_hf_remote", "toy_clip")
N_K = 7  # Recall@k for k in 1, 5, 10, 20, 30, 50, 100

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def models_yaml(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("user_models")
    write_open_clip_folder(folder / "open_clip_tiny", {"resize_mode": "shortest"})
    write_clip_folder(folder / "hf_clip_tiny", seed=11)
    path = folder / "models.yaml"
    path.write_text("my_open_clip: {family: open_clip, checkpoint: 'local-dir:open_clip_tiny'}\n"
                    "my_hf_clip: {family: hf, path: hf_clip_tiny}\n"
                    "my_hf_remote: {family: hf, path: hf_clip_tiny, trust_remote_code: true}\n")
    return path


def _records(path: Path) -> dict[tuple, float]:
    out = {}
    for line in path.read_text().splitlines():
        r = json.loads(line)
        out[(r["model"], r["corruption"], r["level"], r["direction"], r["k"])] = r["value"]
    return out


def _assert_ran(records: dict[tuple, float], models) -> None:
    """Every model has its full set of records: 2 levels x 2 directions x 7 k, recalls in [0, 1]."""
    for model in models:
        mine = {key: v for key, v in records.items() if key[0] == model}
        assert len(mine) == 2 * 2 * N_K, (model, sorted(mine))
        assert {key[2] for key in mine} == {0.0, 0.5} and all(0.0 <= v <= 1.0 for v in mine.values())


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """A fresh process's environment: no user model settings, embedding caches in tmp_path, phantoms shared."""
    phantoms = cache_root() / "iu-phantom"
    phantoms.mkdir(parents=True, exist_ok=True)
    cache = tmp_path / "cache"
    cache.mkdir(exist_ok=True)
    if not (cache / "iu-phantom").exists():
        (cache / "iu-phantom").symlink_to(phantoms, target_is_directory=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CXRBENCH_")}
    env.update(CXRBENCH_CACHE=str(cache), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", **extra)
    return env


def _pytest_benchmarks(tmp_path: Path, selection: str, options: list[str], env: dict[str, str]) -> Path:
    """``pytest benchmarks/ -k <selection>`` in a fresh process; returns its --records-out file. These models have
    no stored thresholds by design (a 4-study subset), so the gate is run with --allow-empty."""
    out = tmp_path / "suite.jsonl"
    proc = subprocess.run([sys.executable, "-m", "pytest", "benchmarks/", "-k", selection, "-q", "-rs",
                           "-p", "no:cacheprovider", *options, "--allow-empty", "--records-out", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-4000:]
    assert not re.search(r"\b\d+ (failed|errors?)\b", output), output[-4000:]
    assert out.is_file(), output[-4000:]
    return out


def test_models_lists_the_catalogue_yaml_and_plugin_models_with_how_to_get_them(models_yaml, isolated_registry,
                                                                                capsys):
    assert cli.main(["models", "--models-config", str(models_yaml), "--model-module", str(EXAMPLE)]) == 0
    out = capsys.readouterr().out
    names = [line for line in out.splitlines() if line and not line.startswith(" ")]
    assert {"reference", "medsiglip", "gloria", "pubmedclip", *USER_MODELS} <= set(names)
    assert names[-3:] == ["my_open_clip", "my_hf_clip", "my_hf_remote"]  # models.yaml entries come last
    flat = " ".join(out.split())  # the terminal wrapping undone
    for name in ("medsiglip", "gloria", "pubmedclip"):
        assert f"how to get: {' '.join(HOW_TO_GET[name].split())}" in flat, name
    assert f"from: models.yaml {models_yaml}" in flat
    assert f"from: model module {EXAMPLE}" in flat
    assert "from: cxrbench" not in flat  # built-in models need no origin line


def test_remote_code_is_refused_without_the_flag(models_yaml, isolated_registry, tmp_path, capsys):
    argv = ["run", *TINY, "--models-config", str(models_yaml), "--models", "my_hf_remote", "--no-progress",
            "--out", str(tmp_path / "run")]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "pass --trust-remote-code" in err and "Python files shipped with the model" in err, err
    assert not (tmp_path / "run" / "records.jsonl").exists()


def test_remote_code_is_refused_when_options_are_checked_before_any_data_is_read(models_yaml, isolated_registry,
                                                                                  monkeypatch):
    import cxrbench.prepared

    def no_data(*args, **kwargs):
        raise AssertionError("the dataset was loaded before the refusal")

    monkeypatch.setattr(cxrbench.prepared, "prepare", no_data)
    from cxrbench.config import SweepConfig
    from cxrbench.errors import ConfigError

    cfg = SweepConfig(models=["my_hf_remote"], models_config=str(models_yaml))
    with pytest.raises(ConfigError, match="pass --trust-remote-code"):
        cfg.validate()


def test_a_missing_model_module_is_named_as_missing(tmp_path, isolated_registry, capsys):
    missing = tmp_path / "nowhere" / "my_model.py"
    assert cli.main(["models", "--model-module", str(missing)]) == 2
    err = capsys.readouterr().err
    assert f"model module {missing} does not exist" in err, err


def test_yaml_models_and_a_model_module_run_through_cli_and_pytest(models_yaml, toy_checkpoint, isolated_registry,
                                                                   tmp_path):
    options = [*TINY, "--models-config", str(models_yaml), "--model-module", str(EXAMPLE), "--trust-remote-code",
               "--checkpoint", f"toy_clip={toy_checkpoint}"]
    run = tmp_path / "run"
    assert cli.main(["run", *options, "--models", ",".join(USER_MODELS), "--out", str(run), "--no-progress"]) == 0
    via_cli = _records(run / "records.jsonl")
    _assert_ran(via_cli, USER_MODELS)
    assert json.loads((run / "run.json").read_text())["config"]["model_modules"] == [str(EXAMPLE)]
    # the suite, with the default --models all: the models of --models-config and --model-module are parametrised
    via_pytest = _records(_pytest_benchmarks(tmp_path, " or ".join(USER_MODELS), options, _env(tmp_path)))
    _assert_ran(via_pytest, USER_MODELS)
    assert via_pytest == via_cli


def test_bench_runs_yaml_and_module_models(models_yaml, toy_checkpoint, isolated_registry, capsys):
    """``cxrbench bench`` (naive loop against the optimised sweep; exit 0 only if their Recall@k agree)."""
    tiny = ["--max-studies", "3", "--levels", "0,0.5", "--device", "cpu", "--no-progress"]
    assert cli.main(["bench", "--model", "my_open_clip", "--models-config", str(models_yaml), *tiny]) == 0
    assert cli.main(["bench", "--model", "toy_clip", "--model-module", str(EXAMPLE),
                     "--checkpoint", f"toy_clip={toy_checkpoint}", *tiny]) == 0
    out = capsys.readouterr().out
    assert "my_open_clip on iu-phantom" in out and "toy_clip on iu-phantom" in out and out.count("speed-up") == 2


def test_installed_plugin_runs_through_cli_and_pytest(installed_plugin, toy_checkpoint, tmp_path):
    env = _env(tmp_path, PYTHONPATH=os.pathsep.join([str(installed_plugin), str(ROOT / "src")]))
    run = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "cxrbench", "run", *TINY, "--models", "toy_clip", "--checkpoint",
                           f"toy_clip={toy_checkpoint}", "--out", str(run), "--no-progress"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    via_cli = _records(run / "records.jsonl")
    _assert_ran(via_cli, ["toy_clip"])
    # the suite finds the checkpoint where the plugin's how_to_get says: CXRBENCH_TOY_CLIP_CHECKPOINT
    env["CXRBENCH_TOY_CLIP_CHECKPOINT"] = str(toy_checkpoint)
    via_pytest = _records(_pytest_benchmarks(tmp_path, "toy_clip", TINY, env))
    assert via_pytest == via_cli
