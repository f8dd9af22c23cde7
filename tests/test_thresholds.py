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
