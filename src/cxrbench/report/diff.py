"""Compare two results folders (``cxrbench diff BASE NEW``): what moved between two runs, and whether the move is
real.

Matching. A record of BASE and one of NEW are the same metric when they agree on (dataset, split, model,
corruption, corruption parameters, level, direction, k). The checkpoint's SHA-256 is not part of the match: a model
whose checkpoint changed is still compared (a new checkpoint that is worse is a regression), and the change is
reported first. Records found in one folder only are counted, not compared.

Refusals. Two runs are compared only when they were measured on the same evaluation set (the dataset
fingerprint, :mod:`cxrbench.fingerprint`), with the same seed (occlusion masks and study resamples) and under the
same protocol. Otherwise :func:`diff_runs` raises a ConfigError listing every difference, unless ``force``.

Statistics. For every matched (model, corruption, direction) curve, ``recall`` at each level and k, and over the
whole curve ``auc`` (the mean Recall@k over the swept levels; only when both runs swept the same levels), as
NEW - BASE. ``auc_retention`` is not compared: a model that gets worse on clean images keeps a larger share of
its smaller recall under occlusion, so its retention "improves" as it regresses; recall and auc say what a gate
needs. When both
folders hold ``ranks.pt`` over the same queries (the same study of every query, in the same order), each change
gets a paired study-bootstrap interval: the very same study resamples (:class:`cxrbench.stats.StudyResamples`,
BASE's seed) are applied to both runs' per-query ranks, and the interval is that of the resampled differences
(:func:`cxrbench.stats.paired_difference`), with its two-sided bootstrap p-value. The flag at ``alpha`` with
``tolerance`` t (absolute, recall units):

* ``regressed``: the whole (1 - alpha) interval of NEW - BASE lies below -t;
* ``improved``: it lies above +t;
* ``unchanged``: otherwise (two identical runs give 0 with the interval [0, 0]);
* ``untested``: no paired interval (a folder without ``ranks.pt``, or forced over different queries).

A metric *moved* when it is regressed or improved (or, untested, when its change exceeds t).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from cxrbench.errors import ConfigError, DataError
from cxrbench.io import write_text_atomic
from cxrbench.report.compare import FALLBACK_BOOTSTRAP, P_VALUE_RULE, read_run
from cxrbench.report.labels import level_label
from cxrbench.report.run_files import RunRanks, load_ranks
from cxrbench.stats import Estimate, RecallCurve, StudyResamples, paired_difference, recall_curve
from cxrbench.thresholds import read_records

STATISTICS = ("recall", "auc")
FLAGS = ("regressed", "improved", "unchanged", "untested")
FAIL_ON = ("regression", "never")
#: run.json fields shown under the table when they differ (they explain a move, they do not stop a comparison)
_CONTEXT = (("device", ("device",)), ("precision", ("config", "precision")), ("code", ("environment", "cxrbench")),
            ("torch", ("environment", "torch")))


def _get(d: dict, path: Sequence[str]):
    for key in path:
        d = d.get(key) if isinstance(d, dict) else None
    return d


def _params(r: dict) -> str:
    return json.dumps(r.get("corruption_params") or {}, sort_keys=True)


def match_key(r: dict) -> tuple:
    """What makes a record of one run the same metric as a record of another (see the module docstring)."""
    return (r["dataset"], r["split"], r["model"], r["corruption"], _params(r), float(r["level"]), r["direction"],
            int(r["k"]))


def _index(records: Sequence[dict], where: Path) -> dict[tuple, dict]:
    out: dict[tuple, dict] = {}
    for r in records:
        key = match_key(r)
        if key in out:
            raise DataError(f"{where}/records.jsonl holds two records for {r['model']} {r['corruption']} level "
                            f"{r['level']:g} {r['direction']} k={r['k']}; the folder is damaged, run again")
        out[key] = r
    return out


def _protocol(run: dict) -> dict | None:
    p = run["config"].get("protocol")
    return None if not p else {"name": p.get("name"), "overridden": p.get("overridden")}


def refusals(base: dict, new: dict) -> list[str]:
    """Why two runs (their ``run.json``) must not be compared: dataset fingerprint, seed, protocol."""
    out = []
    fb, fn = base["dataset"].get("fingerprint"), new["dataset"].get("fingerprint")
    if fb is None or fn is None:
        which = " and ".join(n for n, f in (("BASE", fb), ("NEW", fn)) if f is None)
        out.append(f"{which} has no dataset fingerprint (written by an older cxrbench), so the evaluation sets "
                   "cannot be shown to be the same; run it again")
    elif fb != fn:
        out.append(f"dataset fingerprint differs: BASE {fb} ({_describe(base)}), NEW {fn} ({_describe(new)}): "
                   "not the same studies, images or report texts")
    sb, sn = base["config"].get("seed"), new["config"].get("seed")
    if sb != sn:
        out.append(f"seed differs: BASE {sb}, NEW {sn} (other occlusion masks and study resamples)")
    pb, pn = _protocol(base), _protocol(new)
    if pb != pn:
        out.append(f"protocol differs: BASE {pb or 'none'}, NEW {pn or 'none'}")
    return out


def _describe(run: dict) -> str:
    d = run["dataset"]
    return (f"{d.get('name')}/{d.get('split')}, {d.get('studies')} studies, {d.get('images')} images, "
            f"policy {d.get('policy')}")


def checkpoint_changes(base: dict[tuple, dict], new: dict[tuple, dict]) -> list[dict]:
    """Models compared whose checkpoint SHA-256 differs between the runs."""
    seen: dict[str, dict] = {}
    for key in base.keys() & new.keys():
        b, n = base[key], new[key]
        if b.get("checkpoint_sha256") != n.get("checkpoint_sha256"):
            seen.setdefault(b["model"], {"model": b["model"], "base": b.get("checkpoint_sha256"),
                                         "new": n.get("checkpoint_sha256"), "base_path": b.get("checkpoint"),
                                         "new_path": n.get("checkpoint")})
    return [seen[m] for m in sorted(seen)]


def _same_queries(a: RunRanks, b: RunRanks) -> str | None:
    """None when both runs' queries belong to the same studies in the same order; else why not."""
    if set(a.query_studies) != set(b.query_studies):
        return "the runs scored different directions"
    for direction, qa in a.query_studies.items():
        qb = b.query_studies[direction]
        if (qa.n_queries, qa.n_studies) != (qb.n_queries, qb.n_studies) or not (
                np.array_equal(qa.query, qb.query) and np.array_equal(qa.study, qb.study)
                and np.array_equal(qa.weight, qb.weight)):
            return (f"{direction} queries differ ({qa.n_queries} queries of {qa.n_studies} studies in BASE, "
                    f"{qb.n_queries} of {qb.n_studies} in NEW)")
    return None


def flag(estimate: Estimate, tolerance: float) -> str:
    """regressed / improved / unchanged from a paired interval of NEW - BASE; untested without one."""
    if estimate.interval is None:
        return "untested"
    low, high = estimate.interval
    if high < -tolerance:
        return "regressed"
    if low > tolerance:
        return "improved"
    return "unchanged"


def _row(key: tuple, statistic: str, level: float | None, k: int, base_value, new_value, est: Estimate | None,
         tolerance: float, params: dict) -> dict:
    dataset, split, model, corruption, _, _, direction, _ = key
    change = None if base_value is None or new_value is None else new_value - base_value
    if est is not None and est.value is not None:
        change = est.value
    estimate = est or Estimate(change)
    return {"dataset": dataset, "split": split, "model": model, "corruption": corruption,
            "corruption_params": params, "direction": direction, "k": k, "statistic": statistic,
            "level": level, "level_label": None if level is None else level_label(level, params),
            "base": base_value, "new": new_value, "change": change,
            "ci": list(estimate.interval) if estimate.interval else None, "p_value": estimate.p_value,
            "flag": flag(estimate, tolerance) if est is not None else "untested"}


def moved(row: dict, tolerance: float) -> bool:
    if row["flag"] in ("regressed", "improved"):
        return True
    return row["flag"] == "untested" and row["change"] is not None and abs(row["change"]) > tolerance


def diff_runs(base_dir: str | Path, new_dir: str | Path, alpha: float = 0.05, tolerance: float = 0.0,
              bootstrap: int | None = None, force: bool = False) -> dict:
    """The comparison of two results folders as a plain dict (``diff.json``; see the module docstring)."""
    if not 0 < alpha < 1:
        raise ConfigError(f"--alpha must be in (0, 1), got {alpha}")
    if not (math.isfinite(tolerance) and 0 <= tolerance < 1):
        raise ConfigError(f"--tolerance must be in [0, 1) (recall units: 0.01 = 1 point), got {tolerance}")
    if bootstrap is not None and bootstrap < 1:
        raise ConfigError(f"--bootstrap must be >= 1, got {bootstrap}")
    base_dir, new_dir = Path(base_dir), Path(new_dir)
    base_run, new_run = read_run(base_dir), read_run(new_dir)
    reasons = refusals(base_run, new_run)
    if reasons and not force:
        raise ConfigError(f"will not compare {base_dir} with {new_dir}: {'; '.join(reasons)}. Pass --force to "
                          "compare anyway (changes are then shown, and tested only if the queries are the same)")
    base = _index(read_records(base_dir), base_dir)
    new = _index(read_records(new_dir), new_dir)
    # by model, corruption, direction, then level and k (keys: dataset, split, model, corruption, params, level,
    # direction, k)
    common = sorted(base.keys() & new.keys(), key=lambda t: (t[0], t[1], t[2], t[3], t[4], t[6], t[5], t[7]))

    untested_reason = None
    ranks: tuple[RunRanks, RunRanks] | None = None
    missing = [str(d / "ranks.pt") for d in (base_dir, new_dir) if not (d / "ranks.pt").is_file()]
    if missing:
        untested_reason = f"no ranks.pt in {' and '.join(missing)}"
    else:
        ranks = (_ranks(base_dir), _ranks(new_dir))
        untested_reason = _same_queries(*ranks)
        if untested_reason is not None:
            ranks = None
    n_boot = bootstrap or base_run["config"].get("bootstrap") or FALLBACK_BOOTSTRAP
    seed = int(base_run["config"].get("seed") or 0)

    curves: dict[tuple, list[tuple]] = {}  # (dataset, split, model, corruption, params, direction) -> keys
    for key in common:
        curves.setdefault(key[:5] + (key[6],), []).append(key)
    resamples = None
    if ranks is not None:
        n_studies = {qs.n_studies for qs in ranks[0].query_studies.values()}.pop()
        resamples = StudyResamples(n_studies, n_boot, seed)
    rows = []
    for curve_key, keys in curves.items():
        rows.extend(_curve_rows(curve_key, keys, base, new, ranks, resamples, alpha, tolerance))
    summary = {f: sum(1 for r in rows if r["flag"] == f) for f in FLAGS}
    only_base, only_new = base.keys() - new.keys(), new.keys() - base.keys()
    context = {name: {"base": _get(base_run, path), "new": _get(new_run, path)} for name, path in _CONTEXT
               if _get(base_run, path) != _get(new_run, path)}
    return {
        "base": str(base_dir), "new": str(new_dir),
        "base_run_id": base_run.get("run_id"), "new_run_id": new_run.get("run_id"),
        "dataset_fingerprint": {"base": base_run["dataset"].get("fingerprint"),
                                "new": new_run["dataset"].get("fingerprint")},
        "forced": reasons, "alpha": alpha, "tolerance": tolerance,
        "paired": ranks is not None, "untested_reason": None if ranks is not None else untested_reason,
        "bootstrap": n_boot if ranks is not None else None, "seed": seed,
        "n_studies": resamples.n_studies if resamples is not None else None, "unit": "study",
        "p_value": P_VALUE_RULE,
        "flag_rule": (f"regressed: the {100 * (1 - alpha):g}% paired interval of NEW - BASE lies below "
                      f"-{tolerance:g}; improved: above +{tolerance:g}; else unchanged"),
        "checkpoint_changes": checkpoint_changes(base, new),
        "only_in_base": _count(only_base, base), "only_in_new": _count(only_new, new),
        "context": context, "summary": summary, "rows": rows,
    }


def _ranks(run_dir: Path) -> RunRanks:
    path = run_dir / "ranks.pt"
    try:
        return load_ranks(path)
    except (ConfigError, DataError):
        raise
    except Exception as exc:  # torch.load on a damaged file: pickle, zip or tensor errors
        raise DataError(f"{path}: cannot read the ranks ({type(exc).__name__}: {exc}); the file is damaged: run "
                        "the sweep again, or remove ranks.pt to compare without intervals") from None


def _count(keys: set, records: dict[tuple, dict]) -> dict:
    return {"records": len(keys), "models": sorted({records[k]["model"] for k in keys}),
            "corruptions": sorted({records[k]["corruption"] for k in keys})}


def _curve_rows(curve_key: tuple, keys: list[tuple], base: dict, new: dict, ranks: tuple[RunRanks, RunRanks] | None,
                resamples: StudyResamples | None, alpha: float, tolerance: float) -> list[dict]:
    """Rows of one (model, corruption, direction): recall at each level and k, then auc per k."""
    dataset, split, model, corruption, _, direction = curve_key
    params = base[keys[0]].get("corruption_params") or {}
    levels = tuple(sorted({k[5] for k in keys}))
    ks = tuple(sorted({k[7] for k in keys}))
    base_levels = {k[5] for k in base if k[:5] + (k[6],) == curve_key}
    new_levels = {k[5] for k in new if k[:5] + (k[6],) == curve_key}
    whole_curve = base_levels == new_levels and len(levels) > 1
    diff, curve_b, curve_n = None, None, None
    if ranks is not None and resamples is not None:
        curve_b = _curve(ranks[0], model, corruption, direction, levels, ks, resamples)
        curve_n = _curve(ranks[1], model, corruption, direction, levels, ks, resamples)
        if curve_b is not None and curve_n is not None:
            diff = paired_difference(curve_n, curve_b, alpha)
    rows = []
    for key in keys:
        lv, k = key[5], key[7]
        est = diff["levels"][lv]["recall"][k] if diff is not None else None
        rows.append(_row(key, "recall", lv, k, base[key]["value"], new[key]["value"], est, tolerance, params))
    if not whole_curve:
        return rows
    for k in ks:
        key = next(x for x in keys if x[7] == k)
        if diff is not None and curve_b is not None and curve_n is not None:
            j = ks.index(k)
            bv, nv, est = _finite(curve_b.auc()[0][j]), _finite(curve_n.auc()[0][j]), diff["auc"][k]
        else:
            bv, nv, est = base[key].get("auc"), new[key].get("auc"), None
        if bv is not None or nv is not None:
            rows.append(_row(key, "auc", None, k, bv, nv, est, tolerance, params))
    return rows


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def _curve(ranks: RunRanks, model: str, corruption: str, direction: str, levels: tuple[float, ...],
           ks: tuple[int, ...], resamples: StudyResamples) -> RecallCurve | None:
    by_level = ranks.curve(model, corruption, direction)
    if not all(lv in by_level for lv in levels):
        return None
    return recall_curve({lv: by_level[lv] for lv in levels}, ranks.query_studies[direction], ks, resamples)


def gate(report: dict, fail_on: str) -> tuple[list[dict], str | None]:
    """The gate's verdict: the rows that fail it (regressed rows under ``--fail-on regression``, none under
    ``never``) and, when it could test nothing, why it fails anyway (a gate that tests nothing cannot catch a
    regression)."""
    if fail_on not in FAIL_ON:
        raise ConfigError(f"--fail-on must be one of {', '.join(FAIL_ON)}, not {fail_on!r}")
    if fail_on == "never":
        return [], None
    failed = [r for r in report["rows"] if r["flag"] == "regressed"]
    if not any(r["flag"] != "untested" for r in report["rows"]):
        why = report["untested_reason"] or "no metric of BASE matches one of NEW"
        return failed, f"the regression gate tested nothing ({why})"
    return failed, None


def write_diff(report: dict, path: str | Path) -> Path:
    write_text_atomic(path, json.dumps(report, indent=1) + "\n")
    return Path(path)


# --- the Markdown table -------------------------------------------------------------------------------------------


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{x * 100:.1f}"


def _change(row: dict) -> str:
    if row["change"] is None:
        return "—"
    ci = row["ci"]
    return f"{row['change'] * 100:+.1f}" + ("" if not ci else f" [{ci[0] * 100:+.1f}, {ci[1] * 100:+.1f}]")


def _p(p: float | None) -> str:
    return "—" if p is None else f"{p:.3f}"


def _short(sha: str | None) -> str:
    return "none" if sha is None else f"`{sha[:12]}`"


def format_markdown(report: dict) -> str:
    """What moved, as compact Markdown: a few header lines (changed checkpoints, a forced comparison, untested
    metrics, records in one run only), then one table row per moved metric (regressions first). Empty when
    nothing moved and nothing needs saying."""
    tol = report["tolerance"]
    rows = [r for r in report["rows"] if moved(r, tol)]
    head = []
    for c in report["checkpoint_changes"]:
        head.append(f"- **checkpoint changed**: `{c['model']}` {_short(c['base'])} → {_short(c['new'])} "
                    "(still compared and gated)")
    for reason in report["forced"]:
        head.append(f"- **forced** (--force) although {reason}")
    if not report["paired"]:
        head.append(f"- **no paired test**: {report['untested_reason']}; changes are shown without intervals and "
                    "nothing is flagged")
    for side in ("base", "new"):
        only = report[f"only_in_{side}"]
        if only["records"]:
            head.append(f"- {only['records']} record(s) only in {side.upper()} (models {', '.join(only['models'])}; "
                        f"corruptions {', '.join(only['corruptions'])}): not compared")
    if not rows and not head:
        return ""
    order = {"regressed": 0, "improved": 1, "untested": 2, "unchanged": 3}
    rows.sort(key=lambda r: (order[r["flag"]], r["model"], r["corruption"], r["direction"],
                             STATISTICS.index(r["statistic"]), -1 if r["level"] is None else r["level"], r["k"]))
    ci = f"{100 * (1 - report['alpha']):g}% CI"
    lines = [*head, ""] if head else []
    if rows:
        lines += [f"| model | corruption | level | direction | statistic | k | base % | new % | change, points [{ci}] "
                  "| p | flag |",
                  "|---|---|---:|---|---|---:|---:|---:|---:|---:|---|"]
        for r in rows:
            lines.append(f"| {r['model']} | {r['corruption']} | {r['level_label'] or 'curve'} | {r['direction']} | "
                         f"{r['statistic']} | {r['k']} | {_pct(r['base'])} | {_pct(r['new'])} | {_change(r)} | "
                         f"{_p(r['p_value'])} | **{r['flag']}** |")
        if report["context"]:
            lines += ["", "Also differs: " + "; ".join(f"{name} {v['base']} → {v['new']}"
                                                       for name, v in report["context"].items())]
    return "\n".join(lines).strip("\n") + "\n"


def summary_line(report: dict, fail_on: str = "never") -> str:
    s = report["summary"]
    how = (f"paired study bootstrap, {report['bootstrap']} resamples of {report['n_studies']} studies, "
           f"alpha {report['alpha']:g}, tolerance {report['tolerance']:g}" if report["paired"]
           else f"not tested: {report['untested_reason']}")
    failed, empty = gate(report, fail_on)
    verdict = "" if fail_on == "never" else f"; gate --fail-on {fail_on}: {'FAILED' if failed or empty else 'passed'}"
    return (f"{len(report['rows'])} metrics compared ({how}): {s['regressed']} regressed, {s['improved']} "
            f"improved, {s['unchanged']} unchanged, {s['untested']} untested{verdict}")
