"""The named protocol presets (cxrbench.protocols): the paper preset's settings, how user options merge with it,
and a sweep with the merged options on a fake MIMIC-CXR tree."""

from __future__ import annotations

import sys
import warnings
from dataclasses import fields
from pathlib import Path

import pytest

from cxrbench.corruptions import PAPER_LEVELS
from cxrbench.errors import ConfigError
from cxrbench.protocols import PAPER_KS, PROTOCOLS, apply_protocol, describe_protocol

sys.path.insert(0, str(Path(__file__).parent / "data"))
from test_mimic_cxr import make_tree  # noqa: E402  (the fake MIMIC-CXR-JPG tree builder)

PAPER_SETTINGS = {
    "dataset": "mimic-cxr", "split": "validate", "levels": (0.0, 0.09, 0.16, 0.25, 0.36, 0.49, 0.64, 0.81),
    "ks": (5, 10, 20, 30, 50, 100), "policy": "longest", "corruptions": ("pixels",), "fill": "zero",
}
PAPER_DATASET_OPTIONS = {"views": None, "sections": "mitlcp", "require": "both", "fallback": False}


def test_the_paper_preset_is_the_papers_protocol():
    merged = apply_protocol("paper", {})
    assert {k: merged[k] for k in PAPER_SETTINGS} == PAPER_SETTINGS
    assert merged["dataset_options"] == PAPER_DATASET_OPTIONS
    assert merged["protocol"] == {"name": "paper", "overridden": {},
                                  "reconstructed": ["sections", "require", "levels", "policy", "corruptions", "fill"]}
    assert PAPER_SETTINGS["levels"] == PAPER_LEVELS and PAPER_SETTINGS["ks"] == PAPER_KS
    assert list(PROTOCOLS) == ["paper"]


def test_other_options_pass_through_and_loader_options_join_the_protocols():
    merged = apply_protocol("paper", {"models": ["clip"], "device": "cuda", "max_studies": None, "bootstrap": 0,
                                      "dataset_options": {"root": "/data/mimic", "reports": "/data/r.zip",
                                                          "on_bad_image": "skip"}})
    assert merged["models"] == ["clip"] and merged["device"] == "cuda" and merged["bootstrap"] == 0
    assert "max_studies" not in merged  # None means not given
    assert merged["dataset_options"] == {"root": "/data/mimic", "reports": "/data/r.zip", "on_bad_image": "skip",
                                         **PAPER_DATASET_OPTIONS}


@pytest.mark.parametrize("option,value", [("split", "val"), ("split", "validate"), ("levels", "paper"),
                                          ("levels", "0,0.09,0.16,0.25,0.36,0.49,0.64,0.81"),
                                          ("ks", "5,10,20,30,50,100"), ("ks", [5, 10, 20, 30, 50, 100]),
                                          ("dataset", "mimic-cxr")])
def test_a_fixed_option_given_with_the_same_value_is_accepted(option, value):
    assert apply_protocol("paper", {option: value})[option] == PAPER_SETTINGS[option]


@pytest.mark.parametrize("option,value", [("views", "all"), ("views", None), ("sections", "mitlcp"),
                                          ("require", "both"), ("fallback", False)])
def test_a_fixed_loader_option_given_with_the_same_value_is_accepted(option, value):
    for given in ({"dataset_options": {option: value}}, {option: value}):
        merged = apply_protocol("paper", given)
        assert merged["dataset_options"] == PAPER_DATASET_OPTIONS
        assert option not in merged  # a loader option given at the top level goes to dataset_options only


@pytest.mark.parametrize("option,value,shown", [
    ("dataset", "iu-xray", "'mimic-cxr'"), ("split", "test", "'validate'"), ("levels", "0,0.5", r"\(0\.0, 0\.09"),
    ("ks", "1,5", r"\(5, 10"),
])
def test_a_fixed_option_with_another_value_is_an_error(option, value, shown):
    with pytest.raises(ConfigError, match=rf"protocol 'paper' fixes {option} to {shown}.*but {option}=.* was given; "
                                          "drop that option, or run without the protocol"):
        apply_protocol("paper", {option: value})


@pytest.mark.parametrize("option,value,shown", [("require", "any", "'both'"), ("sections", "lenient", "'mitlcp'"),
                                                ("views", "PA,AP", "every view"), ("fallback", True, "False")])
def test_a_fixed_loader_option_with_another_value_is_an_error(option, value, shown):
    for given in ({"dataset_options": {option: value}}, {option: value}):
        with pytest.raises(ConfigError, match=rf"protocol 'paper' fixes {option} to {shown}, but {option}="):
            apply_protocol("paper", given)


def test_defaults_can_be_overridden_and_the_override_is_recorded():
    merged = apply_protocol("paper", {"policy": "findings", "corruptions": "block", "fill": "zero"})
    assert merged["policy"] == "findings" and merged["corruptions"] == "block" and merged["fill"] == "zero"
    assert merged["protocol"]["overridden"] == {"policy": "findings", "corruptions": "block"}
    assert apply_protocol("paper", {"corruptions": ["pixels"]})["protocol"]["overridden"] == {}


def test_unknown_protocol_and_misuse():
    with pytest.raises(ConfigError, match="unknown protocol 'paper2'; available: paper"):
        apply_protocol("paper2", {})
    with pytest.raises(ConfigError, match="must not name a protocol"):
        apply_protocol("paper", {"protocol": "paper"})


def test_describe_protocol_says_what_is_fixed_and_what_is_reconstruction():
    d = describe_protocol("paper")
    assert d["settings"]["require"] == "both" and d["settings"]["ks"] == [5, 10, 20, 30, 50, 100]
    assert d["overridable"] == ["policy", "corruptions", "fill"]
    assert "require" in d["reconstructed"] and "split" not in d["reconstructed"]
    assert d["paper_counts"] == {"studies": 994, "images": 1770}
    assert any("generate-stats-from-paper" in s for s in d["sources"])


def test_merged_options_run_a_sweep_on_a_fake_mimic_tree(tmp_path):
    """What --protocol paper will do once the CLI and the pytest plugin call apply_protocol: the merged options
    build the runner's config, and the sweep runs the both-sections subset at the paper's levels and k."""
    from cxrbench.runner import SweepConfig, run_sweep

    root = make_tree(tmp_path)
    merged = apply_protocol("paper", {"models": ["random"], "bootstrap": 0, "use_cache": False,
                                      "dataset_options": {"root": str(root)}})
    names = {f.name for f in fields(SweepConfig)}
    cfg = SweepConfig(**{k: v for k, v in merged.items() if k in names})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = run_sweep(cfg, progress=False)
    assert result.dataset["studies"] == 1 and result.dataset["images"] == 2  # FULL_1: the one study with both
    assert result.dataset["require"] == "both" and result.dataset["sections"] == "mitlcp"
    assert result.dataset["paper_comparison"]["differs_from_paper_protocol"] == []
    assert sorted({lr.level for lr in result.levels}) == list(PAPER_LEVELS)
    for lr in result.levels:
        assert sorted(int(k) for k in lr.metrics["image_to_text"]["recall"]) == list(PAPER_KS)


def test_cli_describe_with_the_paper_protocol_prints_every_requirement_and_the_presets_choice(tmp_path, capsys):
    import json

    from cxrbench.cli import main

    root = make_tree(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["datasets", "describe", "mimic-cxr", "--root", str(root), "--protocol", "paper"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["protocol"]["name"] == "paper"
    assert out["require"] == "both" and out["sections"] == "mitlcp" and out["split"] == "validate"
    counts = out["section_requirements"]["counts"]
    assert set(counts) == {"any", "both", "findings", "impression"}
    assert out["section_requirements"]["paper_protocol"] == "both"
    assert out["studies"] == counts["both"]["studies"] and out["images"] == counts["both"]["images"]


def test_cli_run_with_the_paper_protocol_runs_end_to_end_and_records_it(tmp_path, capsys):
    import json

    from cxrbench.cli import main

    root = make_tree(tmp_path)
    out_dir = tmp_path / "out"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rc = main(["run", "--protocol", "paper", "--root", str(root), "--models", "random", "--bootstrap", "0",
                   "--no-cache", "--no-progress", "--out", str(out_dir)])
    assert rc == 0
    records = [json.loads(line) for line in (out_dir / "records.jsonl").read_text().splitlines()]
    assert {r["protocol"] for r in records} == {"paper"}
    assert {r["k"] for r in records} == set(PAPER_KS) and {r["level"] for r in records} == set(PAPER_LEVELS)
    assert {r["dataset_counts"]["studies"] for r in records} == {1}
    run = json.loads((out_dir / "run.json").read_text())
    assert run["config"]["protocol"]["name"] == "paper"


def test_cli_run_refuses_an_option_the_protocol_fixes(tmp_path, capsys):
    from cxrbench.cli import main

    rc = main(["run", "--protocol", "paper", "--root", str(tmp_path), "--levels", "0,0.5", "--no-progress",
               "--out", str(tmp_path / "out")])
    assert rc == 2
    err = capsys.readouterr().err
    assert "protocol 'paper' fixes levels" in err
    assert not (tmp_path / "out").exists()
