"""Example images for the report: a few images of the run, corrupted at every level, per model geometry.

So a reader of the report sees what "severity 3 motion blur" or "49% lungs occlusion" does to a model's input,
the run keeps a handful of images (by default the first study's views) after each model's geometry stage
(resize, crop, pad: the model frame, uint8) and corrupts them at every level of every corruption with the
corruption's own interface (``prepare`` once, ``apply`` per level, the image keys of the sweep's seed): the very
function calls and randomness the sweep applies before the intensity stage (``lungs(masks)`` gets the images' lung
masks in the model's frame, :mod:`cxrbench.mask_geometry`, as in the sweep). Models that share a geometry key share
one set. The arrays are written to ``examples.npz`` by :mod:`cxrbench.report` (which never imports the runner).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from cxrbench.corruptions import Corruption, image_keys
from cxrbench.mask_geometry import MaskGeometry
from cxrbench.models import Encoder
from cxrbench.prepared import Prepared

#: how many images the run keeps as examples
N_EXAMPLES = 2


def example_indices(image_study: Sequence[int], n: int = N_EXAMPLES) -> list[int]:
    """The images of the first study with at least ``n`` images (a frontal and a lateral view in IU), else the
    first ``n`` images."""
    by_study: dict[int, list[int]] = {}
    for i, s in enumerate(image_study):
        by_study.setdefault(int(s), []).append(i)
    for members in by_study.values():
        if len(members) >= n:
            return members[:n]
    return list(range(min(n, len(image_study))))


def corrupt_examples(corruption: Corruption, pixels: torch.Tensor, keys: torch.Tensor, levels: Sequence[Any],
                     masks: torch.Tensor | None = None) -> dict[Any, np.ndarray]:
    """``{level: (N, C, H, W) uint8}``: ``pixels`` (uint8 model-frame tensors) corrupted at each level, the
    randomness drawn once (``prepare``) and reused for every level, as in the sweep. Values are rounded to grey
    levels for display (occlusion with a mean fill is not integral)."""
    state = corruption.prepare(pixels, keys, masks=masks) if any(float(lv) > 0 for lv in levels) else None
    out = {}
    for lv in levels:
        x = corruption.apply(pixels, keys, lv, state=state)
        out[lv] = x.round().clamp(0, 255).to(torch.uint8).cpu().numpy()
    return out


class ExampleImages:
    """Collects :func:`corrupt_examples` for every (geometry key, corruption) of a run."""

    def __init__(self, prep: Prepared, seed: int, n: int = N_EXAMPLES, masks: MaskGeometry | None = None):
        self.prep = prep
        self.masks = masks
        self.indices = example_indices(prep.image_study, n)
        self.image_ids = [prep.image_ids[i] for i in self.indices]
        self.keys = image_keys(self.image_ids, seed)
        self.geometries: dict[str, list[str]] = {}  # geometry key -> models
        self.entries: list[dict] = []
        self._pixels: dict[str, torch.Tensor] = {}
        self._done: set[tuple[str, str]] = set()

    def add(self, encoder: Encoder, corruption: Corruption, levels: Sequence[Any]) -> None:
        """Corrupt the examples in ``encoder``'s geometry at ``levels`` (once per geometry key and corruption).

        A corruption that needs per-image lung masks gets the examples' masks in the frame (from ``masks``); it is
        left out of the examples when there are none."""
        key = encoder.geometry_key
        models = self.geometries.setdefault(key, [])
        if encoder.info.name not in models:
            models.append(encoder.info.name)
        uses_masks = getattr(corruption, "uses_masks", False)
        if (key, corruption.name) in self._done or (uses_masks and (self.masks is None or not self.masks.available)):
            return
        self._done.add((key, corruption.name))
        if key not in self._pixels:  # the sweep's own geometry tensors (its decode pass includes these images)
            self._pixels[key] = self.prep.geometry(encoder, progress=False, indices=self.indices).clone()
        masks = self.masks.masks(encoder, self.indices) if uses_masks else None
        arrays = corrupt_examples(corruption, self._pixels[key], self.keys, levels, masks=masks)
        for lv, arr in arrays.items():
            self.entries.append({"geometry": key, "corruption": corruption.name, "params": corruption.params(),
                                 "level": lv, "pixels": arr})

    def as_dict(self) -> dict:
        """Plain data for :class:`cxrbench.results.SweepResult`: image ids, geometry key -> models, and one entry
        per (geometry, corruption, level) with its (N, C, H, W) uint8 array."""
        return {"image_ids": list(self.image_ids), "geometries": {k: list(v) for k, v in self.geometries.items()},
                "entries": list(self.entries)}
