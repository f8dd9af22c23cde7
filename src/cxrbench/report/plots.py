"""Recall@k against level (occlusion: blocked %; other families: severity 0..5), one panel per (direction, model)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from cxrbench.io import atomic_path
from cxrbench.report.labels import level_kind, panel_axes

PLOT_KS = (5, 10, 20, 50, 100)


def plot_recall(records: Sequence[dict], path: str | Path, ks: Sequence[int] = PLOT_KS, corruption: str | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    corruption = corruption or records[0]["corruption"]
    recs = [r for r in records if r["corruption"] == corruption]
    fraction = level_kind(recs[0].get("corruption_params")) == "fraction"
    scale = 100 if fraction else 1
    models, dirs, ks = panel_axes(recs, ks)
    fig, axes = plt.subplots(len(dirs), len(models), figsize=(3.6 * len(models), 3.0 * len(dirs)), squeeze=False,
                             sharey=True)
    cmap = plt.get_cmap("viridis")
    for i, direction in enumerate(dirs):
        for j, model in enumerate(models):
            ax = axes[i][j]
            for n, k in enumerate(ks):
                pts = sorted((r["level"], r["value"]) for r in recs
                             if r["model"] == model and r["direction"] == direction and r["k"] == k)
                if not pts:
                    continue
                xs, ys = zip(*pts)
                color = cmap(n / max(1, len(ks) - 1))
                ax.plot([x * scale for x in xs], ys, marker="o", ms=3, color=color, label=f"R@{k}")
                chance = next(r["chance"] for r in recs if r["direction"] == direction and r["k"] == k)
                ax.axhline(chance, color=color, lw=0.7, ls=":")
            ax.set_title(f"{model}\n{direction}", fontsize=9)
            ax.set_ylim(0, 1)
            ax.grid(alpha=0.3)
            if i == len(dirs) - 1:
                ax.set_xlabel(f"occlusion ({corruption}) %" if fraction else f"{corruption}: severity (0 = clean)")
                if not fraction:
                    ax.set_xticks(sorted({r["level"] for r in recs}))
            if j == 0:
                ax.set_ylabel("Recall@k")
    axes[0][-1].legend(fontsize=7, loc="upper right")
    what = "occlusion" if fraction else "severity"
    fig.suptitle(f"{recs[0]['dataset']}/{recs[0]['split']}: Recall@k vs {what} (dotted: chance)", fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
