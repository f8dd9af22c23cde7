"""``report.html``: one self-contained page for a results folder (``cxrbench report RUN``; ``cxrbench run``
writes it unless ``--no-report``).

The page is rendered with jinja2 (``templates/report.html.j2``) from the run folder's files only: ``run.json``
(configuration, versions, models), ``records.jsonl`` (values, intervals, retention, AUC), ``ranks.pt`` (the paired
comparisons, :mod:`cxrbench.report.compare`) and ``examples.npz`` (the example grids). CSS is inline and every
figure is a PNG inlined as a ``data:`` URI: the page loads nothing from anywhere and holds no external address.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from pathlib import Path

from cxrbench.errors import CxrBenchError, DataError
from cxrbench.io import write_text_atomic
from cxrbench.report.compare import compare_run, read_run
from cxrbench.report.figures import example_grid_png, recall_curves_png
from cxrbench.report.labels import level_kind, level_label
from cxrbench.report.run_files import read_examples

DEFAULT_KS = (5, 10, 50)


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _pct(x: float | None, digits: int = 1) -> str:
    return "—" if x is None else f"{x * 100:.{digits}f}"


def _ci(ci: Sequence[float] | None, signed: bool = False) -> str:
    if not ci:
        return ""
    fmt = "{:+.1f}" if signed else "{:.1f}"
    return f"[{fmt.format(ci[0] * 100)}, {fmt.format(ci[1] * 100)}]"


def _p(p: float | None) -> str:
    return "" if p is None else f"p = {p:.3f}" if p >= 0.001 else f"p = {p:.1e}"


def _cell(value: float | None, ci: Sequence[float] | None) -> dict:
    return {"value": _pct(value), "ci": _ci(ci)}


def _read_records(run_dir: Path) -> list[dict]:
    path = run_dir / "records.jsonl"
    if not path.is_file():
        raise DataError(f"{path} not found: give a results folder written by `cxrbench run`")
    with open(path) as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _recall_tables(recs: list[dict], models: list[str], directions: list[str], ks: list[int]) -> list[dict]:
    """Per direction: rows model x level; cells Recall@k with its study interval."""
    idx = {(r["model"], r["level"], r["direction"], r["k"]): r for r in recs}
    params = recs[0].get("corruption_params")
    tables = []
    for direction in directions:
        rows = []
        for model in models:
            for lv in sorted({r["level"] for r in recs if r["model"] == model}):
                cells = []
                for k in ks:
                    r = idx.get((model, lv, direction, k))
                    cells.append(_cell(r["value"], r.get("ci95_study") or r.get("ci95")) if r else _cell(None, None))
                rows.append({"model": model, "level": level_label(lv, params), "cells": cells})
        sample = next(r for r in recs if r["direction"] == direction)
        chance = [_pct(next((r["chance"] for r in recs if r["direction"] == direction and r["k"] == k), None))
                  for k in ks]
        tables.append({"direction": direction, "rows": rows, "chance": chance, "n_queries": sample["n_queries"],
                       "n_gallery": sample["n_gallery"]})
    return tables


def _retention_tables(recs: list[dict], models: list[str], directions: list[str], ks: list[int]) -> list[dict]:
    """Per direction: rows model x k; cells retention at each level, then auc and auc_retention."""
    params = recs[0].get("corruption_params")
    levels = sorted({r["level"] for r in recs})
    idx = {(r["model"], r["level"], r["direction"], r["k"]): r for r in recs}
    tables = []
    for direction in directions:
        rows = []
        for model in models:
            for k in ks:
                at = [idx.get((model, lv, direction, k)) for lv in levels]
                first = next((r for r in at if r), None)
                if first is None:
                    continue
                rows.append({"model": model, "k": k,
                             "retention": [_cell(r.get("retention"), r.get("retention_ci95")) if r else
                                           _cell(None, None) for r in at],
                             "auc": _cell(first.get("auc"), first.get("auc_ci95")),
                             "auc_retention": _cell(first.get("auc_retention"), first.get("auc_retention_ci95"))})
        tables.append({"direction": direction, "levels": [level_label(lv, params) for lv in levels], "rows": rows})
    return tables


_STAT_NAMES = {"recall": "Recall@k", "retention": "retention", "auc": "AUC", "auc_retention": "AUC retention"}


def _comparison_tables(compare: dict | None, corruption: str) -> list[dict]:
    """Per (pair, direction): rows statistic x level; cells a - b per k with interval and p-value."""
    if not compare:
        return []
    tables: dict[tuple, dict] = {}
    for r in compare["rows"]:
        if r["corruption"] != corruption:
            continue
        if r["statistic"] == "retention" and r["level"] == 0:
            continue  # 1 - 1 by definition
        t = tables.setdefault((r["a"], r["b"], r["direction"]), {"a": r["a"], "b": r["b"],
                                                                  "direction": r["direction"], "rows": {}})
        row = t["rows"].setdefault((r["statistic"], r["level"]), {
            "statistic": _STAT_NAMES[r["statistic"]], "level": r["level_label"] or "whole curve", "cells": {}})
        sig = r["diff_ci"] is not None and (r["diff_ci"][0] > 0 or r["diff_ci"][1] < 0)
        row["cells"][r["k"]] = {"diff": "—" if r["diff"] is None else f"{r['diff'] * 100:+.1f}",
                                "ci": _ci(r["diff_ci"], signed=True), "p": _p(r["p_value"]),
                                "cls": ("sig-pos" if r["diff"] > 0 else "sig-neg") if sig else ""}
    out = []
    for t in tables.values():
        t["rows"] = list(t["rows"].values())
        out.append(t)
    return out


def _overview(recs: list[dict], models: list[str], directions: list[str], corruptions: list[str],
              k: int) -> list[dict]:
    """Per direction: rows models, columns corruptions; cell clean Recall@k and AUC retention at one k."""
    out = []
    for direction in directions:
        rows = []
        for model in models:
            cells = []
            for corruption in corruptions:
                mine = [r for r in recs if (r["model"], r["corruption"], r["direction"], r["k"]) ==
                        (model, corruption, direction, k)]
                clean = next((r for r in mine if r["level"] == 0), None)
                first = mine[0] if mine else {}
                cells.append({"clean": _cell(clean["value"], clean.get("ci95_study")) if clean else _cell(None, None),
                              "auc_retention": _cell(first.get("auc_retention"), first.get("auc_retention_ci95"))})
            rows.append({"model": model, "cells": cells})
        out.append({"direction": direction, "rows": rows})
    return out


def _describe(params: dict) -> str:
    items = [f"{k} {v}" for k, v in params.items() if k != "family" and not isinstance(v, (list, dict))]
    family = params.get("family", "occlusion")
    kind = "blocked fraction of the model frame" if level_kind(params) == "fraction" else "severity 0..5"
    return f"family {family}; levels: {kind}" + ("; " + ", ".join(items) if items else "")


def build_context(run_dir: str | Path, models: Sequence[str] | None = None, ks: Sequence[int] = DEFAULT_KS,
                  alpha: float = 0.05) -> dict:
    run_dir = Path(run_dir)
    run = read_run(run_dir)
    recs = _read_records(run_dir)
    have_ks = sorted({r["k"] for r in recs})
    ks = [k for k in ks if k in have_ks] or have_ks[:3]
    run_models = list(dict.fromkeys(r["model"] for r in recs))
    directions = list(dict.fromkeys(r["direction"] for r in recs))
    compare, compare_note = None, ""
    if len(run_models) >= 2:
        try:
            compare = compare_run(run_dir, models=models, ks=ks, alpha=alpha)
        except CxrBenchError as exc:
            compare_note = f"No paired comparisons: {exc}"
    else:
        compare_note = "One model in this run: nothing to compare."
    examples, examples_note = None, ""
    if (run_dir / "examples.npz").is_file():
        examples = read_examples(run_dir / "examples.npz")
    else:
        examples_note = "This run saved no example images (examples.npz)."
    corruptions = []
    for name in dict.fromkeys(r["corruption"] for r in recs):
        mine = [r for r in recs if r["corruption"] == name]
        params = mine[0].get("corruption_params") or {}
        grid = None
        if examples and any(e["corruption"] == name for e in examples["entries"]):
            grid = _data_uri(example_grid_png(examples["entries"], examples["geometries"], name))
        corruptions.append({
            "name": name, "anchor": f"c-{len(corruptions)}", "description": _describe(params),
            "curves": _data_uri(recall_curves_png(mine, name, ks)), "grid": grid,
            "grid_image": examples["image_ids"][0] if examples else None,
            "recall_tables": _recall_tables(mine, run_models, directions, ks),
            "retention_tables": _retention_tables(mine, run_models, directions, ks),
            "comparisons": _comparison_tables(compare, name),
        })
    cfg = run["config"]
    dataset = run["dataset"]
    overview_k = 10 if 10 in ks else ks[0]
    return {
        "run_id": run.get("run_id") or run_dir.name,
        "dataset": {k: dataset.get(k) for k in ("name", "split", "policy", "studies", "images", "unique_texts")},
        "config": [(k, json.dumps(v) if isinstance(v, (list, dict)) else str(v)) for k, v in sorted(cfg.items())],
        "environment": sorted((run.get("environment") or {}).items()) + [("device", run.get("device", ""))],
        "models": [{"name": m, "family": info.get("family"), "checkpoint": info.get("checkpoint"),
                    "sha256": (info.get("checkpoint_sha256") or "")[:16]} for m, info in run["models"].items()],
        "skipped": run.get("skipped") or {},
        "ks": ks, "alpha": alpha, "coverage": f"{100 * (1 - alpha):g}",
        "bootstrap": cfg.get("bootstrap"), "seed": cfg.get("seed"),
        "n_studies": next((r.get("n_studies") for r in recs if r.get("n_studies")), dataset.get("studies")),
        "compare": compare, "compare_note": compare_note, "examples_note": examples_note,
        "corruptions": corruptions,
        "overview_k": overview_k,
        "overview": _overview(recs, run_models, directions, [c["name"] for c in corruptions], overview_k),
    }


def render(context: dict) -> str:
    import jinja2

    env = jinja2.Environment(loader=jinja2.PackageLoader("cxrbench.report", "templates"),
                             autoescape=jinja2.select_autoescape(["html", "j2"]), undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True)
    return env.get_template("report.html.j2").render(**context)


def write_report(run_dir: str | Path, models: Sequence[str] | None = None, ks: Sequence[int] = DEFAULT_KS,
                 alpha: float = 0.05) -> Path:
    """Write ``report.html`` into the run folder (atomically) and return its path."""
    path = Path(run_dir) / "report.html"
    write_text_atomic(path, render(build_context(run_dir, models, ks, alpha)))
    return path
