"""Tables from flat result records (see :func:`cxrbench.results.records`)."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

from cxrbench.io import atomic_path

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
    """One table per (corruption, direction): rows model x level, columns R@k (as in the paper's Table 1)."""
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
            lines.append(f"### {direction} — occlusion `{corr}` ({_describe(sample)})")
            lines.append("")
            lines.append("| Model | Occlusion | " + " | ".join(f"R@{k}" for k in ks) + " |")
            lines.append("|---|---:|" + "---:|" * len(ks))
            for model in models:
                levels = sorted({r["level"] for r in records if r["model"] == model and r["corruption"] == corr})
                for lv in levels:
                    cells = []
                    for k in ks:
                        r = idx.get((model, corr, lv, direction, k))
                        cells.append("" if r is None else _fmt(r["value"], percent))
                    lines.append(f"| {model} | {lv * 100:.0f}% | " + " | ".join(cells) + " |")
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
    bits = [f"fill {p.get('fill', '?')}"]
    if "patch_size" in p:
        bits.append(f"patch {p['patch_size']}")
    bits.append(f"seed {r['seed']}")
    bits.append(f"{r['dataset']}/{r['split']}, text: {r['policy']}")
    return "; ".join(bits)
