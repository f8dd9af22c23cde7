"""Recall@k at every (model, corruption, level) must stay at or above thresholds.yaml.

Select with -k: ``pytest benchmarks/ -k reference``, ``pytest benchmarks/ -k "cxr_clip and 0.49"``.
"""

from __future__ import annotations

import pytest

from cxrbench import thresholds
from cxrbench.results import records


def test_recall_at_or_above_thresholds(case, sweeps, stored_thresholds):
    result = sweeps.result(case.model)
    level = result.get(case.model, case.corruption, case.level)
    assert level is not None, f"sweep produced no result for {case.id}"
    recs = [r for r in records(result) if r["corruption"] == case.corruption and r["level"] == case.level]
    for direction, m in level.metrics.items():
        values = [m["recall"][k] for k in sorted(m["recall"])]
        assert all(0.0 <= v <= 1.0 for v in values) and values == sorted(values), (direction, values)
    failures, checked = thresholds.check(recs, stored_thresholds)
    summary = ", ".join(f"{d} R@10={m['recall'].get(10, float('nan')):.3f}" for d, m in level.metrics.items())
    if checked == 0:
        where = f"{result.dataset['name']}/{result.dataset['split']}"
        other = thresholds.other_evaluation_sets(recs, stored_thresholds)  # stored, but for another evaluation set
        where += f" for this evaluation set ({other[0]})" if other else ""
        pytest.skip(f"{case.id}: no thresholds stored for {where} ({summary}); "
                    "store them with `cxrbench run ... && cxrbench thresholds update --from results/<run>`")
    assert not failures, "below thresholds.yaml:\n" + "\n".join(
        f"  {f['direction']} R@{f['k']}: {f['value']:.4f} < {f['threshold']:.4f}" for f in failures)
