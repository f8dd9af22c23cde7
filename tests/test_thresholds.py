"""thresholds.yaml: update from records, check, round trip."""

from __future__ import annotations

import pytest

from cxrbench import thresholds
from cxrbench.errors import ConfigError


def rec(model="reference", level=0.0, direction="image_to_text", k=10, value=0.3):
    return {"dataset": "iu-phantom", "split": "test", "model": model, "corruption": "pixels", "level": level,
            "direction": direction, "k": k, "value": value}


def test_update_check_round_trip(tmp_path):
    records = [rec(value=0.30), rec(k=5, value=0.2), rec(level=0.49, value=0.1), rec(k=1, value=0.01)]
    th = thresholds.update({}, records, margin=0.02)
    assert thresholds.lookup(th, "iu-phantom/test", "reference", "pixels", 0.0, "image_to_text") == {10: 0.28, 5: 0.18}
    assert thresholds.lookup(th, "iu-phantom/test", "reference", "pixels", 0.49, "image_to_text") == {10: 0.08}
    path = tmp_path / "t.yaml"
    thresholds.save(th, path, source="results/x", margin=0.02)
    assert thresholds.load(path) == th
    failures, checked = thresholds.check(records, th)
    assert failures == [] and checked == 3  # R@1 got no threshold: 0.01 - 0.02 <= 0 could never fail
    worse = [rec(value=0.27)]
    failures, checked = thresholds.check(worse, th)
    assert checked == 1 and failures[0]["threshold"] == 0.28


def test_update_keeps_other_entries_and_filters_models():
    th = thresholds.update({}, [rec(model="a", value=0.5)], margin=0.1)
    th = thresholds.update(th, [rec(model="b", value=0.5), rec(model="c", value=0.5)], margin=0.1, models=["b"])
    assert set(th["iu-phantom/test"]) == {"a", "b"}


def test_bad_margin_and_bad_file(tmp_path):
    with pytest.raises(ConfigError, match="margin"):
        thresholds.update({}, [rec()], margin=1.5)
    bad = tmp_path / "bad.yaml"
    bad.write_text("thresholds: [1, 2")
    with pytest.raises(ConfigError, match="bad.yaml"):
        thresholds.load(bad)
    with pytest.raises(ConfigError, match="records.jsonl"):
        thresholds.read_records(tmp_path)


# --- thresholds from the study interval, the chance rule, lowering, the ratchet, evaluation sets ------------------

FP, OTHER_FP = "e05f8b29edd78ff4", "0123456789abcdef"


def srec(value, low, chance=0.01, k=10, level=0.0, model="reference", fp=FP, corruption="pixels"):
    """A record as `cxrbench run` writes it: value, its study interval, chance and the evaluation set."""
    return {**rec(model=model, level=level, k=k, value=value), "corruption": corruption,
            "ci95_study": [low, value + (value - low)], "chance": chance, "dataset_fingerprint": fp,
            "dataset_counts": {"studies": 1000, "images": 1950, "unique_texts": 857}, "policy": "longest",
            "protocol": None}


def test_threshold_is_the_study_lower_bound_minus_the_tolerance_and_never_at_chance():
    assert thresholds.derive(srec(0.30, 0.27), tolerance=0.01) == (0.26, None)
    assert thresholds.derive(srec(0.30, 0.27), tolerance=0.0) == (0.27, None)
    # a lower end above the value (possible for a skewed resample distribution) never sets a threshold above it
    assert thresholds.derive({**srec(0.30, 0.27), "ci95_study": [0.305, 0.33]}, tolerance=0.0) == (0.3, None)
    # at or below chance: the threshold could only fail on a collapse below chance, so none is stored
    assert thresholds.derive(srec(0.05, 0.035, chance=0.025), tolerance=0.01) == (None, thresholds.AT_CHANCE)
    assert thresholds.derive(srec(0.06, 0.036, chance=0.025), tolerance=0.01) == (0.026, None)
    assert thresholds.derive({**srec(0.3, 0.27), "ci95_study": None}) == (None, thresholds.NO_INTERVAL)
    # the older rule keeps working, with the same chance rule
    assert thresholds.derive(srec(0.30, 0.27), margin=0.02) == (0.28, None)
    assert thresholds.derive(srec(0.03, 0.02, chance=0.025), margin=0.005) == (None, thresholds.AT_CHANCE)


def test_update_lowering_needs_allow_lower_and_is_listed(tmp_path, capsys):
    from cxrbench import cli
    from cxrbench.report import write_records

    first, second = tmp_path / "first", tmp_path / "second"
    for folder, values in ((first, (0.30, 0.27)), (second, (0.28, 0.25))):
        folder.mkdir()
        write_records([srec(*values), srec(0.02, 0.01, k=1, chance=0.012)], folder / "records.jsonl")
    th_file = tmp_path / "th.yaml"
    assert cli.main(["thresholds", "update", "--from", str(first), "--file", str(th_file)]) == 0
    out = capsys.readouterr().out
    assert "from 2 records" in out and "1 gave a threshold, 1 left out: 1 at or below chance" in out
    header = th_file.read_text().split("evaluation_sets")[0]
    assert "lower end of the 95% study-bootstrap interval - tolerance 0.01" in header
    assert "1 left out: 1 at or below chance" in header and "--tolerance 0.01" in header
    stored = thresholds.load(th_file)
    assert thresholds.lookup(stored, "iu-phantom/test", "reference", "pixels", 0.0, "image_to_text") == {10: 0.26}
    assert stored.evaluation_sets["iu-phantom/test"]["fingerprint"] == FP

    before = th_file.read_text()
    assert cli.main(["thresholds", "update", "--from", str(second), "--file", str(th_file)]) == 2
    err = capsys.readouterr().err
    assert "would lower 1 stored threshold" in err and "0.260 -> 0.240" in err and "nothing written" in err
    assert th_file.read_text() == before
    assert cli.main(["thresholds", "update", "--from", str(second), "--file", str(th_file), "--allow-lower"]) == 0
    out = capsys.readouterr().out
    assert "lowered (--allow-lower): iu-phantom/test reference pixels 0 image_to_text R@10: 0.260 -> 0.240" in out
    assert thresholds.lookup(thresholds.load(th_file), "iu-phantom/test", "reference", "pixels", 0.0,
                             "image_to_text") == {10: 0.24}


def test_ratchet_raises_only_on_a_significantly_better_run():
    base = thresholds.update({}, [srec(0.30, 0.27)], tolerance=0.01)  # 0.26
    same = thresholds.plan_update(base, [srec(0.30, 0.27)], ratchet=True)
    assert same.raised == [] and same.unchanged == 1 and same.thresholds == base
    # a higher value whose lower bound 0.265 does not clear 0.26 + 0.01: not significantly better, kept
    slightly = thresholds.plan_update(base, [srec(0.305, 0.265)], ratchet=True)
    assert slightly.raised == [] and slightly.thresholds == base and len(slightly.refused) == 1
    better = thresholds.plan_update(base, [srec(0.33, 0.29)], ratchet=True)  # 0.29 > 0.26 + 0.01
    assert [(c.old, c.new) for c in better.raised] == [(0.26, 0.28)]
    # worse: the ratchet keeps the stored value, and lists it; only --allow-lower lowers it
    worse = thresholds.plan_update(base, [srec(0.25, 0.22)], ratchet=True)
    assert worse.thresholds == base and [(c.old, c.new) for c in worse.refused] == [(0.26, 0.21)]
    lowered = thresholds.plan_update(base, [srec(0.25, 0.22)], ratchet=True, allow_lower=True)
    assert [(c.old, c.new) for c in lowered.lowered] == [(0.26, 0.21)]
    # a stored threshold whose record is now at chance disappears only with --allow-lower
    gone = thresholds.plan_update(base, [srec(0.02, 0.01, chance=0.015)], ratchet=True)
    assert gone.thresholds == base and gone.refused[0].new is None
    with pytest.raises(ConfigError, match="--ratchet"):
        thresholds.plan_update(base, [srec(0.3, 0.27)], ratchet=True, margin=0.02)


def test_thresholds_gate_only_their_own_evaluation_set(tmp_path):
    th = thresholds.update({}, [srec(0.30, 0.27)])
    path = tmp_path / "t.yaml"
    thresholds.save(th, path, source="results/x")
    loaded = thresholds.load(path)
    assert loaded == th and loaded.evaluation_sets == th.evaluation_sets
    assert loaded.evaluation_sets["iu-phantom/test"] == {"fingerprint": FP, "studies": 1000, "images": 1950,
                                                         "unique_texts": 857, "policy": "longest", "protocol": None}
    same, other = srec(0.20, 0.18), srec(0.20, 0.18, fp=OTHER_FP)
    assert thresholds.check([same], loaded) == ([{**same, "threshold": 0.26}], 1)
    assert thresholds.check([other], loaded) == ([], 0)  # e.g. require=both against require=any: not gated
    why = thresholds.gate_summary(0, [other], th=loaded)
    assert f"are for evaluation set {FP}" in why and f"these records are of {OTHER_FP}" in why
    with pytest.raises(ConfigError, match="must not gate another evaluation set"):
        thresholds.update(loaded, [other])
    # records without a fingerprint (an older run) are not gated by thresholds that have one, nor update them
    older = {k: v for k, v in same.items() if k != "dataset_fingerprint"}
    assert thresholds.check([older], loaded) == ([], 0)
    with pytest.raises(ConfigError, match="carry no dataset fingerprint"):
        thresholds.update(loaded, [older])


@pytest.mark.parametrize("body, message", [
    ("evaluation_sets:\n  iu-phantom/test: {fingerprint: XYZ}\nthresholds: {}\n", "not a hexadecimal"),
    ("evaluation_sets:\n  iu-phantom/test: {studies: 3}\nthresholds: {}\n", "fingerprint None"),
    ("evaluation_sets:\n  iu-phantom: {fingerprint: ab}\nthresholds: {}\n", "not a dataset/split key"),
    ("evaluation_sets:\n  iu-phantom/test: {fingerprint: ab, colour: red}\nthresholds: {}\n", "unknown field"),
])
def test_bad_evaluation_sets_name_file_and_line(tmp_path, body, message):
    bad = tmp_path / "th.yaml"
    bad.write_text(body)
    with pytest.raises(ConfigError, match=rf"th\.yaml, line \d+: .*{message}"):
        thresholds.load(bad)


def test_update_handles_any_corruption_family_and_level():
    recs = [srec(0.3, 0.27, corruption="gaussian_noise", level=3.0),
            srec(0.3, 0.27, corruption="jpeg", level=0.5, k=5),
            srec(0.3, 0.27, corruption="gaussian_noise", level=0.0)]
    th = thresholds.update({}, recs)
    assert set(th["iu-phantom/test"]["reference"]) == {"gaussian_noise", "jpeg"}
    assert set(th["iu-phantom/test"]["reference"]["gaussian_noise"]) == {"3", "0"}
    assert thresholds.check(recs, th) == ([], 3)


def test_committed_thresholds_are_for_the_default_evaluation_set(repo_root):
    """thresholds.yaml gates the embedded default: its stored fingerprint is that of iu-phantom/test as it loads
    now (if the data or its provenance change, regenerate the file; docs/nightly.md)."""
    from cxrbench.data import load_dataset
    from cxrbench.fingerprint import dataset_fingerprint

    stored = thresholds.load(repo_root / "thresholds.yaml")
    now = dataset_fingerprint(load_dataset("iu-phantom", progress=False))
    assert stored.evaluation_sets["iu-phantom/test"]["fingerprint"] == now
