"""Print the README's "Headline: corruptions" tables from a run folder's compare.json.

Usage (after the headline run and `cxrbench compare RUN --models reference_occaug,reference`):

    python scripts/readme_headline.py docs/results/corruptions

Every number comes from RUN/compare.json (Recall@k, retention and the normalised area under the retention curve
of both models, the paired difference a - b with its study-bootstrap interval and p-value). The middle level is
49% for occlusion and severity 3 for the other families; the highest is the run's largest level.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from cxrbench.report.labels import level_kind, level_label

MIDDLE = {"fraction": 0.49, "severity": 3.0}
DIRECTIONS = ("image_to_text", "text_to_image")
SHORT = {"image_to_text": "i→t", "text_to_image": "t→i"}


def pct(x: float) -> str:
    return f"{100 * x:.1f}"


def diff_pp(row: dict) -> str:
    lo, hi = row["diff_ci"]
    return f"{100 * row['diff']:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}]"




def significant(row: dict) -> bool:
    lo, hi = row["diff_ci"]
    return lo > 0 or hi < 0


def main(run_dir: str) -> None:
    report = json.loads((Path(run_dir) / "compare.json").read_text())
    (a, b), k = report["pairs"][0], report["ks"][0]
    rows = [r for r in report["rows"] if r["a"] == a and r["b"] == b and r["k"] == k]
    corruptions = list(dict.fromkeys(r["corruption"] for r in rows))

    def row(corruption: str, direction: str, statistic: str, level: float | None = None) -> dict:
        found = [r for r in rows if r["corruption"] == corruption and r["direction"] == direction
                 and r["statistic"] == statistic and (level is None or abs(r["level"] - level) < 1e-9)]
        assert len(found) == 1, (corruption, direction, statistic, level, len(found))
        return found[0]

    print(f"R@{k} in %; Δ = {a} − {b} in percentage points with its paired 95% study-bootstrap interval "
          f"({report['bootstrap']} resamples of {report['n_studies']} studies).\n")
    head = " | ".join(f"{SHORT[d]} {b} | {SHORT[d]} {a} | {SHORT[d]} Δ" for d in DIRECTIONS)
    print(f"| Corruption | Level | {head} |")
    print("|---|---|" + "---:|" * 6)
    for c in corruptions:
        params = report["corruption_params"].get(c, {})
        levels = sorted({r["level"] for r in rows if r["corruption"] == c and r["level"] is not None})
        for lv in (MIDDLE[level_kind(params)], levels[-1]):
            cells = []
            for d in DIRECTIONS:
                r = row(c, d, "recall", lv)
                cells += [pct(r["b_value"]), pct(r["a_value"]), diff_pp(r)]
            print(f"| {c} | {level_label(lv, params)} | " + " | ".join(cells) + " |")

    print(f"\nRobustness, in %: retention at the highest level (R@{k} there / clean R@{k}) and the normalised area "
          f"under the retention curve (AUC retention; 100 = nothing lost), Δ AUC retention = {a} − {b} in points "
          "with its paired 95% interval and p-value.\n")
    print(f"| Corruption | Direction | retention {b} | retention {a} | AUC ret. {b} | AUC ret. {a} "
          "| Δ AUC ret. [95% CI] | p | more robust |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---|")
    for c in corruptions:
        levels = sorted({r["level"] for r in rows if r["corruption"] == c and r["level"] is not None})
        for d in DIRECTIONS:
            ret, auc = row(c, d, "retention", levels[-1]), row(c, d, "auc_retention")
            verdict = (a if auc["diff"] > 0 else b) + (" (significant)" if significant(auc) else " (not significant)")
            print(f"| {c} | {SHORT[d]} | {pct(ret['b_value'])} | {pct(ret['a_value'])} | {pct(auc['b_value'])} "
                  f"| {pct(auc['a_value'])} | {diff_pp(auc)} | {auc['p_value']:.3g} | {verdict} |")


if __name__ == "__main__":
    main(sys.argv[1])
