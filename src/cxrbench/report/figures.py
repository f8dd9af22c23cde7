"""Figures of the HTML report, as PNG bytes: recall curves with study-bootstrap bands, example-image grids.

Every figure is drawn from result records or the example arrays (never the runner) and returned as PNG bytes, so
the report can inline it as a ``data:`` URI. PNG metadata is left out (matplotlib writes its web address there by
default, and the page holds no external address).
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np

from cxrbench.report.labels import axis_label, axis_value, level_label, panel_axes


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig, dpi: int) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    _pyplot().close(fig)
    return buf.getvalue()


def recall_curves_png(records: Sequence[dict], corruption: str, ks: Sequence[int], dpi: int = 80) -> bytes:
    """Recall@k against level: one panel per (direction, k), one line per model with its ``ci95_study`` band
    (``ci95`` where the study interval is missing), chance dotted."""
    plt = _pyplot()
    recs = [r for r in records if r["corruption"] == corruption]
    params = recs[0].get("corruption_params")
    models, dirs, ks = panel_axes(recs, ks)
    fig, axes = plt.subplots(len(dirs), len(ks), figsize=(3.4 * len(ks) + 0.6, 2.7 * len(dirs) + 0.5),
                             squeeze=False)
    colors = plt.get_cmap("tab10")
    for i, direction in enumerate(dirs):
        for j, k in enumerate(ks):
            ax = axes[i][j]
            for n, model in enumerate(models):
                pts = sorted((r["level"], r) for r in recs
                             if r["model"] == model and r["direction"] == direction and r["k"] == k)
                if not pts:
                    continue
                xs = [axis_value(lv, params) for lv, _ in pts]
                ys = [r["value"] * 100 for _, r in pts]
                ax.plot(xs, ys, marker="o", ms=3, color=colors(n % 10), label=model)
                cis = [r.get("ci95_study") or r.get("ci95") for _, r in pts]
                if all(cis):
                    ax.fill_between(xs, [c[0] * 100 for c in cis], [c[1] * 100 for c in cis], color=colors(n % 10),
                                    alpha=0.2, lw=0)
            chance = [r["chance"] for r in recs if r["direction"] == direction and r["k"] == k]
            if chance:
                ax.axhline(chance[0] * 100, color="grey", lw=0.8, ls=":")
            ax.set_title(f"{direction}, R@{k}", fontsize=9)
            ax.set_ylim(bottom=0)
            ax.grid(alpha=0.3)
            ax.tick_params(labelsize=7)
            if i == len(dirs) - 1:
                ax.set_xlabel(axis_label(corruption, params), fontsize=8)
            if j == 0:
                ax.set_ylabel("Recall@k (%)", fontsize=8)
    axes[0][0].legend(fontsize=7, loc="best")
    fig.suptitle(f"{corruption}: Recall@k, 95% study-bootstrap bands (dotted: chance)", fontsize=10)
    fig.tight_layout()
    return _png(fig, dpi)


def example_grid_png(entries: Sequence[dict], geometries: dict[str, list[str]], corruption: str,
                     image: int = 0, dpi: int = 100) -> bytes:
    """Rows: model geometries; columns: levels; cell: example ``image`` after geometry and the corruption."""
    plt = _pyplot()
    mine = [e for e in entries if e["corruption"] == corruption]
    keys = list(dict.fromkeys(e["geometry"] for e in mine))
    levels = sorted({e["level"] for e in mine})
    params = mine[0]["params"]
    fig, axes = plt.subplots(len(keys), len(levels), figsize=(1.5 * len(levels) + 1.2, 1.75 * len(keys) + 0.3),
                             squeeze=False)
    for i, key in enumerate(keys):
        for j, lv in enumerate(levels):
            ax = axes[i][j]
            ax.set_xticks([])
            ax.set_yticks([])
            e = next((e for e in mine if e["geometry"] == key and e["level"] == lv), None)
            if e is None:
                ax.axis("off")
                continue
            px = np.asarray(e["pixels"][image])
            if px.shape[0] == 1:
                ax.imshow(px[0], cmap="gray", vmin=0, vmax=255, interpolation="nearest")
            else:
                ax.imshow(np.moveaxis(px[:3], 0, -1), interpolation="nearest")
            if i == 0:
                ax.set_title(level_label(lv, params), fontsize=8)
            if j == 0:
                models = "\n".join(geometries.get(key, []))
                ax.set_ylabel(f"{models}\n({px.shape[1]}x{px.shape[2]})", fontsize=7, rotation=0, ha="right",
                              va="center")
    fig.tight_layout(pad=0.4)
    return _png(fig, dpi)
