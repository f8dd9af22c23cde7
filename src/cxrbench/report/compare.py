"""Paired comparisons of models in one run (``cxrbench compare``): Recall@k, retention and area under the curve
of model a minus model b, with study-bootstrap intervals and p-values (:mod:`cxrbench.stats`).

Both models answered the same queries, so each bootstrap resample (the same draw of studies for both models,
the very resamples behind the records' ``ci95_study``: same seed, same number of studies) gives one paired
difference. Reads ``run.json`` and ``ranks.pt`` of a run folder; writes ``compare.json`` there.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from pathlib import Path

from cxrbench.errors import ConfigError, DataError
from cxrbench.io import write_text_atomic
from cxrbench.report.labels import level_label
from cxrbench.report.run_files import RunRanks, load_ranks
from cxrbench.stats import (
    Estimate,
    RecallCurve,
    StudyResamples,
    curve_summary,
    paired_difference,
    recall_curve,
)

DEFAULT_KS = (10,)
#: resamples when the run itself made none (``--bootstrap 0``)
FALLBACK_BOOTSTRAP = 1000
P_VALUE_RULE = ("two-sided paired bootstrap p = min(1, 2 min((1 + #{d_b <= 0}) / (B + 1), "
                "(1 + #{d_b >= 0}) / (B + 1))) over B study resamples")


def read_run(run_dir: str | Path) -> dict:
    path = Path(run_dir) / "run.json"
    if not path.is_file():
        # a wrong folder on the command line is a usage error (exit 2), as for `thresholds --from`
        raise ConfigError(f"{path} not found: give a results folder written by `cxrbench run`")
    return json.loads(path.read_text())


def model_pairs(run_models: Sequence[str], models: Sequence[str] | None) -> list[tuple[str, str]]:
    """``(a, b)`` pairs, a minus b: the two models given, or every pair of ``models`` (default: the run's) in
    order. Unknown names are a ConfigError listing the run's models."""
    chosen = list(models) if models else list(run_models)
    unknown = [m for m in chosen if m not in run_models]
    if unknown:
        raise ConfigError(f"model(s) {', '.join(unknown)} not in this run; it has {', '.join(run_models)}")
    if len(set(chosen)) != len(chosen):
        raise ConfigError(f"--models names a model twice: {','.join(chosen)}")
    if len(chosen) < 2:
        raise ConfigError(f"need two models to compare, got {', '.join(chosen) or 'none'}; the run has "
                          f"{', '.join(run_models)}")
    return list(itertools.combinations(chosen, 2))


def _row(a: str, b: str, corruption: str, params: dict, direction: str, k: int, statistic: str,
         level: float | None, ea: Estimate, eb: Estimate, d: Estimate) -> dict:
    return {"a": a, "b": b, "corruption": corruption, "direction": direction, "k": k, "statistic": statistic,
            "level": level, "level_label": None if level is None else level_label(level, params),
            "a_value": ea.value, "a_ci": list(ea.interval) if ea.interval else None,
            "b_value": eb.value, "b_ci": list(eb.interval) if eb.interval else None,
            "diff": d.value, "diff_ci": list(d.interval) if d.interval else None, "p_value": d.p_value}


def compare_run(run_dir: str | Path, models: Sequence[str] | None = None, ks: Sequence[int] = DEFAULT_KS,
                alpha: float = 0.05, bootstrap: int | None = None, ranks: RunRanks | None = None) -> dict:
    """Every (pair, corruption, direction, k): recall and retention at each level and auc / auc_retention, as flat
    rows (``statistic``, ``level`` (None for the curve statistics), a, b and a - b with intervals, p-value)."""
    if not 0 < alpha < 1:
        raise ConfigError(f"--alpha must be in (0, 1), got {alpha}")
    run = read_run(run_dir)
    cfg = run["config"]
    run_ks = [int(k) for k in cfg["ks"]]
    missing = [k for k in ks if int(k) not in run_ks]
    if missing:
        raise ConfigError(f"k = {', '.join(map(str, missing))} not computed in this run; it has {run_ks}")
    ks = tuple(int(k) for k in ks)
    ranks = ranks if ranks is not None else load_ranks(Path(run_dir) / "ranks.pt")
    run_models = list(dict.fromkeys(m for m, _, _, _ in ranks.ranks))
    pairs = model_pairs(run_models, models)
    n_boot = bootstrap if bootstrap is not None else (cfg["bootstrap"] or FALLBACK_BOOTSTRAP)
    if n_boot < 1:
        raise ConfigError(f"--bootstrap must be >= 1 to compare, got {n_boot}")
    n_studies = {qs.n_studies for qs in ranks.query_studies.values()}.pop()
    resamples = StudyResamples(n_studies, n_boot, cfg["seed"])
    params = _corruption_params(run_dir)
    corruptions = list(dict.fromkeys(c for _, c, _, _ in ranks.ranks))
    directions = list(dict.fromkeys(d for _, _, _, d in ranks.ranks))
    curves: dict[tuple[str, str, str], RecallCurve] = {}

    def curve(model: str, corruption: str, direction: str) -> RecallCurve:
        key = (model, corruption, direction)
        if key not in curves:
            curves[key] = recall_curve(ranks.curve(*key), ranks.query_studies[direction], ks, resamples)
        return curves[key]

    rows = []
    for (a, b), corruption, direction in itertools.product(pairs, corruptions, directions):
        if not (ranks.curve(a, corruption, direction) and ranks.curve(b, corruption, direction)):
            continue  # one of the two was not run on this corruption
        ca, cb = curve(a, corruption, direction), curve(b, corruption, direction)
        if ca.levels != cb.levels:
            raise DataError(f"{a} and {b} were run at different levels of {corruption}: {ca.levels} / {cb.levels}")
        sa, sb, diff = curve_summary(ca, alpha), curve_summary(cb, alpha), paired_difference(ca, cb, alpha)
        p = params.get(corruption, {})
        for statistic in ("recall", "retention"):
            for lv in ca.levels:
                for k in ks:
                    rows.append(_row(a, b, corruption, p, direction, k, statistic, lv, sa["levels"][lv][statistic][k],
                                     sb["levels"][lv][statistic][k], diff["levels"][lv][statistic][k]))
        for statistic in ("auc", "auc_retention"):
            for k in ks:
                rows.append(_row(a, b, corruption, p, direction, k, statistic, None, sa[statistic][k],
                                 sb[statistic][k], diff[statistic][k]))
    return {"run_id": run.get("run_id"), "pairs": [list(p) for p in pairs], "ks": list(ks), "alpha": alpha,
            "bootstrap": n_boot, "seed": cfg["seed"], "n_studies": n_studies, "unit": "study",
            "corruption_params": params, "p_value": P_VALUE_RULE, "rows": rows}


def _corruption_params(run_dir: str | Path) -> dict[str, dict]:
    """corruption name -> its params, from records.jsonl (for level labels)."""
    path = Path(run_dir) / "records.jsonl"
    out: dict[str, dict] = {}
    if path.is_file():
        with open(path) as fh:
            for line in fh:
                r = json.loads(line)
                out.setdefault(r["corruption"], r.get("corruption_params") or {})
    return out


def write_compare(report: dict, run_dir: str | Path) -> Path:
    path = Path(run_dir) / "compare.json"
    write_text_atomic(path, json.dumps(report, indent=1) + "\n")
    return path


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{x * 100:.1f}"


def _ci(ci: list | None) -> str:
    return "" if not ci else f"[{ci[0] * 100:.1f}, {ci[1] * 100:.1f}]"


def _diff(value: float | None, ci: list | None) -> str:
    if value is None:
        return "—"
    return f"{value * 100:+.1f} " + ("" if not ci else f"[{ci[0] * 100:+.1f}, {ci[1] * 100:+.1f}]")


def _p(p: float | None) -> str:
    return "—" if p is None else f"{p:.3f}" if p >= 0.001 else f"{p:.1e}"


def format_table(report: dict) -> str:
    """A compact text table: one block per (pair, corruption, direction, k); values in %, a - b in points."""
    lines = [f"paired study bootstrap: {report['bootstrap']} resamples of {report['n_studies']} studies "
             f"(seed {report['seed']}), {100 * (1 - report['alpha']):g}% intervals; p: {report['p_value']}", ""]
    blocks: dict[tuple, list[dict]] = {}
    for r in report["rows"]:
        blocks.setdefault((r["a"], r["b"], r["corruption"], r["direction"], r["k"]), []).append(r)
    for (a, b, corruption, direction, k), rows in blocks.items():
        lines.append(f"{a} - {b}: {corruption}, {direction}, R@{k}")
        lines.append(f"  {'':14s} {'level':>12s} {a[:22]:>24s} {b[:22]:>24s} {'a - b':>24s} {'p':>8s}")
        for r in rows:
            if r["statistic"] == "retention" and r["level"] == 0:
                continue  # 1 - 1 by definition (kept in compare.json)
            name = {"recall": "recall", "retention": "retention", "auc": "auc", "auc_retention": "auc retention"}
            where = r["level_label"] or "curve"
            lines.append(f"  {name[r['statistic']]:14s} {where:>12s} "
                         f"{(_pct(r['a_value']) + ' ' + _ci(r['a_ci'])):>24s} "
                         f"{(_pct(r['b_value']) + ' ' + _ci(r['b_ci'])):>24s} "
                         f"{_diff(r['diff'], r['diff_ci']):>24s} {_p(r['p_value']):>8s}")
        lines.append("")
    return "\n".join(lines)
