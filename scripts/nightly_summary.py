"""The nightly run's GPU-free steps, exactly as .github/workflows/nightly.yml calls them: compare tonight's results
with the previous nightly's (``cxrbench diff``, written to NEW/diff.json), check them against the stored
thresholds, and write the job summary (Markdown: what moved, threshold misses).

    python scripts/nightly_summary.py --base previous --new results/nightly --thresholds thresholds.yaml \\
        --fail-on regression --tolerance 0.005 --summary "$GITHUB_STEP_SUMMARY"

Exit status 1 when a metric regressed significantly (``--fail-on regression``), when the previous results cannot
be compared with tonight's (another evaluation set, seed or protocol: the refusal is in the summary), or when a
record is below its stored threshold; 0 otherwise. A missing or empty BASE folder (the first night, or an expired
artifact) is not a failure: there is nothing to compare, and tonight's results become the next baseline.
``--fail-on never`` reports regressions without failing (how a changed model is accepted as the new baseline:
docs/nightly.md).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from cxrbench import thresholds
from cxrbench.errors import ConfigError
from cxrbench.report.diff import diff_runs, format_markdown, gate, summary_line, write_diff


def _facts(new: Path) -> list[str]:
    run = json.loads((new / "run.json").read_text())
    d = run["dataset"]
    models = ", ".join(f"`{name}` ({(info.get('checkpoint_sha256') or 'no checkpoint')[:12]})"
                       for name, info in sorted(run.get("models", {}).items()))
    skipped = ", ".join(f"`{m}`" for m in sorted(run.get("skipped", {})))
    lines = [f"Dataset {d.get('name')}/{d.get('split')} ({d.get('studies')} studies, {d.get('images')} images; "
             f"fingerprint `{d.get('fingerprint')}`), device {run.get('device')}, cxrbench "
             f"{run.get('environment', {}).get('cxrbench')}.", "", f"Models: {models or 'none'}."]
    if skipped:
        lines.append(f"Skipped (weights not configured): {skipped}.")
    return lines


def diff_section(base: Path, new: Path, alpha: float, tolerance: float, fail_on: str,
                 bootstrap: int | None) -> tuple[list[str], bool]:
    """The diff's part of the summary, and whether it fails the night."""
    head = "### Compared with the previous nightly"
    if not (base / "run.json").is_file():
        return [head, "", f"No previous nightly results in `{base}` (the first night, or the artifact expired): "
                          "nothing to compare. Tonight's results are the next night's baseline."], False
    try:
        report = diff_runs(base, new, alpha=alpha, tolerance=tolerance, bootstrap=bootstrap)
    except ConfigError as exc:
        return [head, "", f"**Not compared**: {exc}", "",
                "Tonight's results cannot be compared with the previous nightly's. If the change is deliberate, "
                "run the workflow once by hand with `fail_on: never` to make tonight's results the baseline "
                "(docs/nightly.md)."], fail_on == "regression"
    write_diff(report, new / "diff.json")
    failed, empty = gate(report, fail_on)
    table = format_markdown(report)
    lines = [head, "", f"`{report['base_run_id']}` → `{report['new_run_id']}`: {summary_line(report, fail_on)}.",
             "", table.rstrip("\n") if table else "Nothing moved."]
    if empty:
        lines += ["", f"**Gate**: {empty}."]
    return lines, bool(failed or empty)


def thresholds_section(new: Path, path: Path) -> tuple[list[str], bool]:
    """The threshold check's part of the summary, and whether it fails the night."""
    head = "### Thresholds"
    stored = thresholds.load(path)
    records = thresholds.read_records(new)
    failures, checked = thresholds.check(records, stored)
    if not checked:
        why = "; ".join(thresholds.other_evaluation_sets(records, stored))
        return [head, "", f"No threshold in `{path}` applies to these results{f' ({why})' if why else ''}: "
                          "not gated here (the benchmark suite step gates the committed thresholds). To gate them, "
                          "store thresholds from a run you trust: `cxrbench thresholds update --from <results>`."
                ], False
    lines = [head, "", f"{checked - len(failures)}/{checked} records at or above their thresholds in `{path}`."]
    if failures:
        lines += ["", "| model | corruption | level | direction | k | value % | threshold % |",
                  "|---|---|---:|---|---:|---:|---:|"]
        lines += [f"| {f['model']} | {f['corruption']} | {f['level']:g} | {f['direction']} | {f['k']} | "
                  f"{f['value'] * 100:.1f} | {f['threshold'] * 100:.1f} |" for f in failures]
    return lines, bool(failures)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--new", type=Path, required=True, help="tonight's results folder")
    p.add_argument("--base", type=Path, default=Path("previous"),
                   help="the previous nightly's results (missing or empty: nothing to compare)")
    p.add_argument("--thresholds", type=Path, default=None, help="check the results against this file")
    p.add_argument("--summary", default=os.environ.get("GITHUB_STEP_SUMMARY") or "-",
                   help="append the Markdown here (default $GITHUB_STEP_SUMMARY, else standard output)")
    p.add_argument("--alpha", type=float, default=0.05)
    p.add_argument("--tolerance", type=float, default=0.0)
    p.add_argument("--bootstrap", type=int, default=None)
    p.add_argument("--fail-on", choices=["regression", "never"], default="regression")
    args = p.parse_args(argv)
    try:
        lines = ["## cxrbench nightly", "", *_facts(args.new), ""]
        part, diff_failed = diff_section(args.base, args.new, args.alpha, args.tolerance, args.fail_on,
                                         args.bootstrap)
        lines += [*part, ""]
        th_failed = False
        if args.thresholds is not None:
            part, th_failed = thresholds_section(args.new, args.thresholds)
            lines += [*part, ""]
    except (ConfigError, OSError, ValueError) as exc:
        print(f"nightly_summary: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    verdict = ("**FAILED**: " + " and ".join(w for w, f in (("the comparison with the previous nightly", diff_failed),
                                                              ("a threshold miss", th_failed)) if f)
               if diff_failed or th_failed else "Passed.")
    text = "\n".join([*lines, verdict, ""])
    if args.summary == "-":
        sys.stdout.write(text)
    else:
        with open(args.summary, "a", encoding="utf-8") as fh:
            fh.write(text)
        sys.stdout.write(text)  # the job log shows it too
    return 1 if diff_failed or th_failed else 0


if __name__ == "__main__":
    sys.exit(main())
