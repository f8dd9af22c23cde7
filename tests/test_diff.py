"""`cxrbench diff BASE NEW` on real runs (tests/nightly_runs.py): two identical runs report nothing and pass the
gate; a run whose reference weights were perturbed to lose a few points is flagged exactly where the paired study
bootstrap says it moved, and fails the gate; refusals, --force, and folders without ranks.pt."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from cxrbench import cli
from cxrbench.metrics import hit_matrix
from cxrbench.report.diff import flag
from cxrbench.report.run_files import load_ranks
from cxrbench.stats import Estimate

pytestmark = pytest.mark.slow

STREAM = 0x5354554459  # docs/statistics.md: resample b draws with default_rng([seed + 0x5354554459, b])


def _diff(capsys, base: Path, new: Path, *args: str, out: Path | None = None) -> tuple[int, str, str, dict]:
    out = out or new.parent / f"diff-{base.name}-{new.name}.json"
    rc = cli.main(["diff", str(base), str(new), "--out", str(out), *args])
    captured = capsys.readouterr()
    report = json.loads(out.read_text()) if out.is_file() else {}
    if out.is_file():
        out.unlink()
    return rc, captured.out, captured.err, report


def _table_rows(stdout: str) -> list[list[str]]:
    return [[c.strip() for c in line.strip("|").split("|")] for line in stdout.splitlines()
            if line.startswith("| ") and not line.startswith("| model ")]


def test_runs_record_the_dataset_fingerprint(nightly_runs):
    run = json.loads((nightly_runs["base"] / "run.json").read_text())
    fp = run["dataset"]["fingerprint"]
    records = [json.loads(x) for x in (nightly_runs["base"] / "records.jsonl").read_text().splitlines()]
    assert len(fp) == 16 and {r["dataset_fingerprint"] for r in records} == {fp}
    assert json.loads((nightly_runs["perturbed"] / "run.json").read_text())["dataset"]["fingerprint"] == fp


def test_two_identical_runs_report_nothing(nightly_runs, capsys):
    rc, out, err, report = _diff(capsys, nightly_runs["base"], nightly_runs["same"], "--fail-on", "regression")
    assert rc == 0 and out == "", out
    assert "0 regressed, 0 improved" in err and "gate --fail-on regression: passed" in err
    assert report["paired"] and report["bootstrap"] == 1000 and report["n_studies"] == 300
    # 2 models x 2 directions x 7 k x 2 levels recall values, and one auc per model, direction and k
    assert len(report["rows"]) == 56 + 28
    assert all(r["change"] == 0 and r["ci"] == [0, 0] and r["flag"] == "unchanged" for r in report["rows"])
    assert report["checkpoint_changes"] == [] and report["forced"] == []


@pytest.fixture(scope="module")
def perturbed(nightly_runs, tmp_path_factory):
    out = tmp_path_factory.mktemp("diff") / "diff.json"
    rc = cli.main(["diff", str(nightly_runs["base"]), str(nightly_runs["perturbed"]), "--out", str(out)])
    assert rc == 0  # without --fail-on the diff only reports
    return json.loads(out.read_text())


def test_perturbed_weights_fail_the_gate_and_head_the_output(nightly_runs, capsys):
    rc, out, err, report = _diff(capsys, nightly_runs["base"], nightly_runs["perturbed"], "--fail-on", "regression")
    assert rc == 1 and "gate --fail-on regression: FAILED" in err
    first = out.splitlines()[0]
    assert first.startswith("- **checkpoint changed**: `reference`") and "still compared and gated" in first
    assert [c["model"] for c in report["checkpoint_changes"]] == ["reference"]
    # the table lists exactly the metrics that moved, regressions first
    moved = [r for r in report["rows"] if r["flag"] in ("regressed", "improved")]
    table = _table_rows(out)
    assert len(table) == len(moved) > 0 and all(row[-1] in ("**regressed**", "**improved**") for row in table)
    assert [row[-1] for row in table] == sorted((row[-1] for row in table), key=lambda f: f != "**regressed**")


def test_the_perturbation_loses_a_few_points_on_clean_images(perturbed):
    rows = {(r["model"], r["statistic"], r["direction"], r["level"], r["k"]): r for r in perturbed["rows"]}
    clean = rows[("reference", "recall", "image_to_text", 0.0, 10)]
    assert -0.08 < clean["change"] < -0.02 and clean["flag"] == "regressed", clean
    assert clean["ci"][1] < 0 and clean["p_value"] < 0.05
    assert rows[("reference", "auc", "image_to_text", None, 10)]["flag"] == "regressed"
    # near chance at 49% occlusion, nothing the perturbation does there is significant
    assert all(r["flag"] == "unchanged" for r in perturbed["rows"]
               if r["model"] == "reference" and r["level"] == 0.49 and r["direction"] == "image_to_text")


def test_unchanged_model_is_never_flagged(perturbed):
    random_rows = [r for r in perturbed["rows"] if r["model"] == "random"]
    assert len(random_rows) == 42
    assert all(r["change"] == 0 and r["ci"] == [0, 0] and r["flag"] == "unchanged" for r in random_rows)


def test_flags_are_exactly_the_paired_bootstrap_of_both_runs(nightly_runs, perturbed):
    """An independent brute force: draw the studies of resample b with the documented generator, average the hits of
    the drawn studies' images for BASE and for NEW (the same draw for both), take the percentile interval of the
    differences. It must equal the diff's interval, and the flags must be what that interval says."""
    base, new = load_ranks(nightly_runs["base"] / "ranks.pt"), load_ranks(nightly_runs["perturbed"] / "ranks.pt")
    qs = base.query_studies["image_to_text"]
    study_of_query = np.empty(qs.n_queries, dtype=np.int64)
    study_of_query[qs.query] = qs.study
    counts = np.stack([np.bincount(np.random.default_rng([STREAM, b]).integers(0, qs.n_studies, qs.n_studies),
                                   minlength=qs.n_studies) for b in range(1000)])
    per_query = counts[:, study_of_query].astype(np.float64)  # (B, Q): how often each image is drawn
    ks = (1, 5, 10, 20, 30, 50, 100)
    rows = {(r["level"], r["k"]): r for r in perturbed["rows"]
            if r["model"] == "reference" and r["statistic"] == "recall" and r["direction"] == "image_to_text"}
    flags = set()
    for level in (0.0, 0.49):
        hb = hit_matrix(base.ranks[("reference", "pixels", level, "image_to_text")], ks)
        hn = hit_matrix(new.ranks[("reference", "pixels", level, "image_to_text")], ks)
        d = (per_query @ (hn - hb)) / per_query.sum(axis=1, keepdims=True)
        for j, k in enumerate(ks):
            low, high = np.quantile(d[:, j], [0.025, 0.975])
            row = rows[(level, k)]
            assert row["change"] == pytest.approx(hn[:, j].mean() - hb[:, j].mean(), abs=1e-12)
            assert row["ci"] == pytest.approx([low, high], abs=1e-12), (level, k)
            expected = "regressed" if high < 0 else "improved" if low > 0 else "unchanged"
            assert row["flag"] == expected
            flags.add(expected)
    assert flags >= {"regressed", "unchanged"}
    # and for every row of the report, the flag is what its interval says
    for r in perturbed["rows"]:
        assert r["flag"] == flag(Estimate(r["change"], *r["ci"]), 0.0)


def test_swapping_base_and_new_swaps_regressed_and_improved(nightly_runs, perturbed, capsys):
    rc, _, _, back = _diff(capsys, nightly_runs["perturbed"], nightly_runs["base"])
    assert rc == 0
    swap = {"regressed": "improved", "improved": "regressed", "unchanged": "unchanged"}
    for a, b in zip(perturbed["rows"], back["rows"], strict=True):
        assert (a["model"], a["statistic"], a["level"], a["k"]) == (b["model"], b["statistic"], b["level"], b["k"])
        assert b["change"] == pytest.approx(-a["change"], abs=1e-12) and b["flag"] == swap[a["flag"]]
        assert b["ci"] == pytest.approx([-a["ci"][1], -a["ci"][0]], abs=1e-12)


def test_tolerance_larger_than_the_loss_passes(nightly_runs, perturbed, capsys):
    worst = -min(r["ci"][1] for r in perturbed["rows"])
    rc, out, err, report = _diff(capsys, nightly_runs["base"], nightly_runs["perturbed"], "--fail-on", "regression",
                                 "--tolerance", f"{worst + 0.001:.4f}")
    assert rc == 0 and report["summary"]["regressed"] == 0
    assert _table_rows(out) == [] and out.startswith("- **checkpoint changed**")  # still reported at the top
    rc, *_ = _diff(capsys, nightly_runs["base"], nightly_runs["perturbed"], "--fail-on", "regression",
                   "--tolerance", f"{worst - 0.001:.4f}")
    assert rc == 1


def _copy(src: Path, dst: Path, edit=None, drop: str | None = None) -> Path:
    shutil.copytree(src, dst)
    if edit is not None:
        run = json.loads((dst / "run.json").read_text())
        edit(run)
        (dst / "run.json").write_text(json.dumps(run))
    if drop:
        (dst / drop).unlink()
    return dst


def test_refusals_name_every_difference_and_force_overrides(nightly_runs, tmp_path, capsys):
    def other(run):
        run["config"]["seed"] = 7
        run["dataset"]["fingerprint"] = "0" * 16
        run["config"]["protocol"] = {"name": "paper", "overridden": [], "reconstructed": []}

    changed = _copy(nightly_runs["base"], tmp_path / "changed", edit=other)
    rc, out, err, report = _diff(capsys, nightly_runs["base"], changed)
    assert rc == 2 and out == "" and report == {}
    assert "will not compare" in err and "dataset fingerprint differs" in err and "seed differs: BASE 0, NEW 7" in err
    assert "protocol differs" in err and "--force" in err and len(err.strip().splitlines()) == 1
    rc, out, err, report = _diff(capsys, nightly_runs["base"], changed, "--force", "--fail-on", "regression")
    assert rc == 0 and len(report["forced"]) == 3 and report["paired"]  # same queries: still a paired test
    assert out.count("**forced**") == 3

    def older(run):
        del run["dataset"]["fingerprint"]

    old = _copy(nightly_runs["base"], tmp_path / "old", edit=older)
    rc, _, err, _ = _diff(capsys, old, nightly_runs["base"])
    assert rc == 2 and "BASE has no dataset fingerprint" in err


def test_without_ranks_changes_are_shown_untested_and_the_gate_fails(nightly_runs, tmp_path, capsys):
    no_ranks = _copy(nightly_runs["base"], tmp_path / "no-ranks", drop="ranks.pt")
    rc, out, err, report = _diff(capsys, no_ranks, nightly_runs["perturbed"])
    assert rc == 0 and not report["paired"] and "no ranks.pt in" in report["untested_reason"]
    assert {r["flag"] for r in report["rows"]} == {"untested"} and "**no paired test**" in out
    clean = next(r for r in report["rows"] if (r["model"], r["statistic"], r["direction"], r["level"], r["k"])
                 == ("reference", "recall", "image_to_text", 0.0, 10))
    assert clean["ci"] is None and clean["change"] == pytest.approx(clean["new"] - clean["base"])
    rc, _, err, _ = _diff(capsys, no_ranks, nightly_runs["perturbed"], "--fail-on", "regression")
    assert rc == 1 and "the regression gate tested nothing" in err


def test_bad_arguments_are_usage_errors(nightly_runs, tmp_path, capsys):
    for args, message in ((["--alpha", "1.5"], "--alpha"), (["--tolerance", "-0.1"], "--tolerance"),
                          (["--bootstrap", "0"], "--bootstrap")):
        rc, _, err, _ = _diff(capsys, nightly_runs["base"], nightly_runs["same"], *args)
        assert rc == 2 and message in err, err
    rc, _, err, _ = _diff(capsys, tmp_path / "missing", nightly_runs["same"])
    assert rc == 2 and "run.json not found" in err
    damaged = _copy(nightly_runs["base"], tmp_path / "damaged")
    (damaged / "ranks.pt").write_bytes(b"not a torch file")
    rc, _, err, _ = _diff(capsys, damaged, nightly_runs["same"])
    assert rc == 1 and "ranks.pt: cannot read the ranks" in err and len(err.strip().splitlines()) == 1


def test_forced_over_other_queries_is_not_paired(nightly_runs, tmp_path, capsys):
    import torch

    def other_set(run):
        run["dataset"]["fingerprint"] = "f" * 16

    other = _copy(nightly_runs["base"], tmp_path / "other", edit=other_set)
    raw = torch.load(other / "ranks.pt", weights_only=True)
    qs = raw["query_studies|image_to_text"]
    qs["study"] = torch.flip(qs["study"], dims=[0])  # the same images, assigned to other studies
    torch.save(raw, other / "ranks.pt")
    rc, out, err, report = _diff(capsys, nightly_runs["base"], other, "--force", "--fail-on", "regression")
    assert rc == 1 and not report["paired"] and "image_to_text queries differ" in report["untested_reason"]
    assert "the regression gate tested nothing" in err and "**no paired test**" in out
