"""Tables from flat result records (see :func:`cxrbench.results.records`)."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

from cxrbench.io import atomic_path
from cxrbench.report.labels import level_kind

PAPER_KS = (5, 10, 20, 30, 50, 100)
CSV_FIELDS = (
    "run_id", "dataset", "split", "policy", "model", "checkpoint_sha256", "corruption", "level", "seed", "direction",
    "k", "value", "ci95_low", "ci95_high", "chance", "mean_rank", "median_rank", "n_queries", "n_gallery", "precision",
    "device", "code_version", "wall_time_s",
    # added later, after the original columns so that readers of the old layout keep working: the occlusion level
    # achieved in the model's frame, and the study-level statistics (cxrbench.stats)
    "achieved_level",
    "n_studies", "ci95_study_low", "ci95_study_high", "retention", "retention_ci95_low", "retention_ci95_high",
    "auc", "auc_ci95_low", "auc_ci95_high", "auc_retention", "auc_retention_ci95_low", "auc_retention_ci95_high",
    "dataset_fingerprint",
    # what `level` is: fraction (occlusion) or severity (0..5)
    "level_kind",
    # how the images were decoded (exact, or fast: --decode fast)
    "decode",
)
#: record fields holding a [low, high] interval, written as <field>_low / <field>_high columns
_INTERVALS = ("ci95", "ci95_study", "retention_ci95", "auc_ci95", "auc_retention_ci95")


def write_csv(records: Sequence[dict], path: str | Path) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=CSV_FIELDS, extrasaction="ignore")
        w.writeheader()
        for r in records:
            row = dict(r)
            for name in _INTERVALS:
                row[f"{name}_low"], row[f"{name}_high"] = r.get(name) or (None, None)
            w.writerow(row)


def _index(records: Sequence[dict]) -> dict:
    return {(r["model"], r["corruption"], r["level"], r["direction"], r["k"]): r for r in records}


def markdown_tables(records: Sequence[dict], ks: Sequence[int] = PAPER_KS, percent: bool = True) -> str:
    """One table per (corruption, direction): rows model x level, columns R@k (as in the paper's Table 1).

    Occlusion levels are shown as blocked percentages (``49%``), the other families' as severities (``3``, with
    ``0 (clean)``); the kind comes from the record's ``corruption_params["family"]``."""
    idx = _index(records)
    models = list(dict.fromkeys(r["model"] for r in records))
    corrs = list(dict.fromkeys(r["corruption"] for r in records))
    dirs = list(dict.fromkeys(r["direction"] for r in records))
    have_ks = sorted({r["k"] for r in records})
    ks = [k for k in ks if k in have_ks] or have_ks
    lines = []
    for corr in corrs:
        for direction in dirs:
            sample = next(r for r in records if r["corruption"] == corr and r["direction"] == direction)
            fraction = level_kind(sample.get("corruption_params")) == "fraction"
            lines.append(f"### {direction} — {'occlusion ' if fraction else ''}`{corr}` ({_describe(sample)})")
            lines.append("")
            lines.append(f"| Model | {'Occlusion' if fraction else 'Severity'} | " + " | ".join(f"R@{k}" for k in ks)
                         + " |")
            lines.append("|---|---:|" + "---:|" * len(ks))
            for model in models:
                levels = sorted({r["level"] for r in records if r["model"] == model and r["corruption"] == corr})
                for lv in levels:
                    cells = []
                    for k in ks:
                        r = idx.get((model, corr, lv, direction, k))
                        cells.append("" if r is None else _fmt(r["value"], percent))
                    shown = f"{lv * 100:.0f}%" if fraction else ("0 (clean)" if lv == 0 else f"{lv:g}")
                    lines.append(f"| {model} | {shown} | " + " | ".join(cells) + " |")
            chance = ", ".join(f"R@{k} {_fmt(min(1.0, k / sample['n_gallery']), percent)}" for k in ks)
            lines.append("")
            lines.append(f"Queries: {sample['n_queries']}; gallery: {sample['n_gallery']}; nominal chance (k / gallery): "
                         f"{chance}.")
            lines.append("")
    return "\n".join(lines)


def _fmt(v: float, percent: bool) -> str:
    return f"{v * 100:.1f}" if percent else f"{v:.3f}"


def _describe(r: dict) -> str:
    p = r.get("corruption_params") or {}
    if level_kind(p) == "fraction":
        bits = [f"fill {p.get('fill', '?')}"]
        if "patch_size" in p:
            bits.append(f"patch {p['patch_size']}")
        if "lung_fields" in p:
            bits.append(f"lung fields: {p['lung_fields']}")
    else:
        bits = [_severity_parameter(p)]
    bits.append(f"seed {r['seed']}")
    bits.append(f"{r['dataset']}/{r['split']}, text: {r['policy']}")
    return "; ".join(bits)


def _severity_parameter(params: dict) -> str:
    """``std 0.04 / 0.08 / 0.12 / 0.18 / 0.26 at severities 1-5`` from a severity family's params."""
    for name, values in params.items():
        if name in ("family", "version") or not isinstance(values, list) or len(values) != 5:
            continue
        shown = " / ".join(_short(v) for v in values)
        return f"{name} {shown} at severities 1-5"
    return f"{params.get('family', '?')} severities 1-5"


def _short(value) -> str:
    if isinstance(value, (list, tuple)) and len(value) > 3:
        return f"{value[0]:g}..{value[-1]:g}"
    if isinstance(value, (list, tuple)):
        return "(" + ", ".join(f"{v:g}" for v in value) + ")"
    return f"{value:g}" if isinstance(value, float) else str(value)
