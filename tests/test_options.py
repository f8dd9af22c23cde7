"""One option table for ``cxrbench run`` and the pytest plugin (cxrbench.options): same options, same sweep."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import cxrbench
from cxrbench import cli
from cxrbench.config import DEFAULT_MODELS, SweepConfig
from cxrbench.errors import ConfigError
from cxrbench.models import available, trust_remote_code_allowed
from cxrbench.options import PYTEST_DEFAULTS, SWEEP_OPTIONS, sweep_config

#: options of `cxrbench run` that do not change what is computed: where results go and how the run reports
RUN_ONLY = {"-h", "--help", "--out", "--run-name", "--no-progress", "--check-thresholds", "--thresholds",
            "--no-report", "--overwrite", "--allow-empty", "--debug"}


def _run_parser():
    sub = next(a for a in cli.build_parser()._actions if a.dest == "command")
    return sub.choices["run"]


def _parse(argv: list[str]) -> SweepConfig:
    args = cli.build_parser().parse_args(["run", *argv])
    return sweep_config(vars(args).get)


def test_every_run_option_is_in_the_shared_table_or_named_run_only():
    run_flags = {s for a in _run_parser()._actions for s in a.option_strings}
    table = {o.flag for o in SWEEP_OPTIONS}
    assert table <= run_flags
    assert run_flags - table == RUN_ONLY, "a new `cxrbench run` option must go in cxrbench.options.SWEEP_OPTIONS"


def test_the_pytest_plugin_has_every_sweep_option(pytestconfig):
    for opt in SWEEP_OPTIONS:
        pytestconfig.getoption(opt.dest)  # raises ValueError if the plugin did not add it


def test_no_options_give_the_sweep_config_defaults():
    cfg = _parse([])
    want = SweepConfig()
    want.validate()
    assert cfg == want
    assert tuple(cfg.models) == DEFAULT_MODELS


def test_pytest_defaults_are_every_model_and_no_bootstrap():
    values = {o.dest: o.kwargs.get("default") for o in SWEEP_OPTIONS} | PYTEST_DEFAULTS
    cfg = sweep_config(values.get)
    assert list(cfg.models) == available() and cfg.bootstrap == 0


def test_options_map_onto_the_config():
    cfg = _parse(["--models", "Reference,random", "--checkpoint", "reference=/w/ref.safetensors",
                  "--data-option", "views=[PA, AP]", "--data-option", "workers=2", "--root", "/data",
                  "--on-bad-image", "skip", "--corruption", "pixels,block", "--fill", "noise", "--patch-size", "8",
                  "--levels", "0,0.5", "--seed", "7", "--batch-size", "3", "--bootstrap", "10", "--max-studies", "4",
                  "--precision", "bf16", "--no-channels-last", "--no-cache"])
    assert list(cfg.models) == ["reference", "random"]
    assert cfg.model_settings == {"reference": {"checkpoint": "/w/ref.safetensors"}}
    assert cfg.dataset_options == {"views": ["PA", "AP"], "workers": 2, "root": "/data", "on_bad_image": "skip"}
    assert (list(cfg.corruptions), cfg.fill, cfg.patch_size, cfg.levels) == (["pixels", "block"], "noise", 8, (0.0, 0.5))
    assert (cfg.seed, cfg.batch_size, cfg.bootstrap, cfg.max_studies) == (7, 3, 10, 4)
    assert (cfg.precision, cfg.channels_last, cfg.use_cache) == ("bf16", False, False)


@pytest.mark.parametrize("argv, match", [
    (["--models", "nope"], "unknown model"),
    (["--levels", "0,1.0"], "outside"),
    (["--corruption", "blur"], "unknown corruption"),
    (["--batch-size", "0"], "batch size"),
    (["--max-studies", "0"], "max studies"),
    (["--bootstrap", "-1"], "bootstrap"),
    (["--dataset", "nope"], "unknown dataset"),
    (["--checkpoint", "/bare/path.pt"], "MODEL=PATH"),
    (["--checkpoint", "nope=/x.pt"], "unknown model"),
    (["--data-option", "novalue"], "KEY=VALUE"),
])
def test_bad_options_fail_before_any_work(argv, match):
    with pytest.raises(ConfigError, match=match):
        _parse(argv)


def test_model_options_load_modules_list_yaml_models_and_allow_remote_code(tmp_path, isolated_registry,
                                                                          monkeypatch):
    for var in ("CXRBENCH_MODELS", "CXRBENCH_TRUST_REMOTE_CODE"):
        monkeypatch.delenv(var, raising=False)
    module = tmp_path / "my_models.py"
    module.write_text("from dataclasses import replace\n\nfrom cxrbench.models import get_spec, register\n\n"
                      "register(replace(get_spec('random'), name='random_too', origin=''))\n")
    models_yaml = tmp_path / "models.yaml"
    models_yaml.write_text("mine: {family: open_clip, arch: RN50, checkpoint: epoch_30.pt}\n")
    assert not trust_remote_code_allowed()
    values = {o.dest: o.kwargs.get("default") for o in SWEEP_OPTIONS} | PYTEST_DEFAULTS | {
        "model_module": [str(module)], "models_config": str(models_yaml)}
    cfg = sweep_config(values.get)  # the pytest plugin's --models all: the module's and the YAML's models too
    assert list(cfg.models[-2:]) == ["random_too", "mine"] and list(cfg.model_modules) == [str(module)]
    assert not trust_remote_code_allowed()
    cfg = _parse(["--models", "mine,random_too", "--models-config", str(models_yaml), "--model-module", str(module),
                  "--checkpoint", "mine=/ckpt/other.pt", "--trust-remote-code"])
    assert list(cfg.models) == ["mine", "random_too"] and trust_remote_code_allowed()
    with pytest.raises(ConfigError, match="unknown model 'mine'"):
        _parse(["--models", "mine"])  # without --models-config (and $CXRBENCH_MODELS) it is not defined
    with pytest.raises(ConfigError, match=r"nope\.py does not exist"):
        _parse(["--model-module", str(tmp_path / "nope.py")])


def test_bench_takes_checkpoint_as_model_equals_path(capsys):
    assert cli.main(["bench", "--model", "reference", "--checkpoint", "/bare/path.pt"]) == 2
    assert "MODEL=PATH" in capsys.readouterr().err
    assert cli.main(["bench", "--model", "reference", "--checkpoint", "clip=/x.pt"]) == 2
    assert "give --checkpoint reference=PATH" in capsys.readouterr().err


def _comparable(path: Path) -> dict:
    out = {}
    for line in path.read_text().splitlines():
        r = json.loads(line)
        key = (r["model"], r["corruption"], r["level"], r["direction"], r["k"])
        assert key not in out, f"duplicate record {key}"
        out[key] = {k: v for k, v in r.items() if k not in ("run_id", "wall_time_s", "from_cache")}
    return out


def test_cli_and_pytest_suite_give_the_same_records(tmp_path, repo_root):
    weights = Path(cxrbench.__file__).parent / "weights"
    models_yaml = tmp_path / "models.yaml"
    models_yaml.write_text(f"reference_occaug: {{checkpoint: {weights / 'reference_occaug.safetensors'}}}\n")
    options = ["--dataset", "iu-phantom", "--split", "test", "--policy", "longest", "--max-studies", "5",
               "--models", "reference,reference_occaug,random", "--models-config", str(models_yaml),
               "--checkpoint", f"reference={weights / 'reference.safetensors'}", "--corruption", "pixels,patches",
               "--fill", "mean", "--patch-size", "8", "--levels", "0,0.3", "--seed", "3", "--bootstrap", "20",
               "--batch-size", "4", "--on-bad-image", "skip", "--data-option", "workers=1", "--device", "cpu",
               "--precision", "fp32", "--no-channels-last", "--no-cache"]
    assert cli.main(["run", *options, "--out", str(tmp_path / "run"), "--run-name", "cli", "--no-progress"]) == 0
    suite = tmp_path / "suite.jsonl"
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "benchmarks/test_recall_thresholds.py", *options, "--records-out", str(suite),
                           "--allow-empty"],
                          cwd=repo_root, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    via_cli, via_pytest = _comparable(tmp_path / "run" / "records.jsonl"), _comparable(suite)
    assert via_cli == via_pytest
    # and the options took effect (the same defaults on both sides would also compare equal)
    assert len(via_cli) == 3 * 2 * 2 * 2 * 7
    recs = list(via_cli.values())
    assert {r["seed"] for r in recs} == {3} and {r["bootstrap"] for r in recs} == {20}
    assert all(r["ci95"] is not None for r in recs)
    assert {r["split"] for r in recs} == {"test[:5]"} and {r["dataset_counts"]["studies"] for r in recs} == {5}
    patches = {json.dumps(r["corruption_params"], sort_keys=True) for r in recs if r["corruption"] == "patches"}
    assert [json.loads(p) for p in patches] == [{"family": "occlusion", "fill": "mean", "mode": "patches",
                                                 "patch_size": 8}]
    assert {r["checkpoint"] for r in recs if r["model"] == "reference_occaug"} == \
        {str(weights / "reference_occaug.safetensors")}
