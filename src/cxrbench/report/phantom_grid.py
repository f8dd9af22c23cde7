"""A picture grid of iu-phantom studies: each study's phantom views beside its real report text (verbatim).

The IU reports are CC BY-NC-ND 4.0, so cxrbench renders derived pictures on the user's machine; the docs carry one
small grid made by ``cxrbench phantom-grid``.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

from cxrbench.io import atomic_path


def _pick(studies, n: int, seed: int):
    """n studies with varied, mostly abnormal tags (deterministic): one per distinct first tag, then fill."""
    import random

    rng = random.Random(seed)
    pool = [s for s in studies if len(s.images) >= 2]
    rng.shuffle(pool)
    chosen, seen = [], set()
    for s in pool:
        head = (s.tags[0].split("/")[0] if s.tags else "normal").lower()
        if head not in seen and (head != "normal" or not chosen):
            chosen.append(s)
            seen.add(head)
        if len(chosen) == n:
            break
    return chosen


def write_grid(path: str | Path, n: int = 8, seed: int = 0) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from cxrbench.data import iu_phantom
    from cxrbench.data.iu_reports import ATTRIBUTION

    ds = iu_phantom.load(split="test", render=False, progress=False)
    studies = _pick(ds.studies, n, seed)
    iu_phantom.render_missing(studies, progress=False)
    fig, axes = plt.subplots(n, 3, figsize=(12, 3.1 * n), gridspec_kw={"width_ratios": [1, 1, 2.2]})
    for row, s in zip(axes, studies):
        for ax, im in zip(row[:2], s.images[:2]):
            ax.imshow(ds.load_image(im), cmap="gray", vmin=0, vmax=255)
            ax.set_title(f"{im.image_id} ({im.view})", fontsize=7)
            ax.axis("off")
        text = f"{s.study_id}  MeSH: {'; '.join(s.tags)}\n\nFINDINGS: {s.findings or '—'}\n\nIMPRESSION: {s.impression or '—'}"
        wrapped = "\n".join(textwrap.fill(p, 70) if p else "" for p in text.split("\n"))
        row[2].text(0, 1, wrapped, va="top", ha="left", fontsize=7.5, family="monospace", transform=row[2].transAxes)
        row[2].axis("off")
    fig.suptitle("iu-phantom: synthetic images rendered from MeSH tags, real IU reports (verbatim)\n"
                 + textwrap.fill(ATTRIBUTION, 150), fontsize=8)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.25 / n))
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=80, format="png")
    plt.close(fig)
