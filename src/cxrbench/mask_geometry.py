"""Per-image lung masks in each model's input frame, for the ``lungs(masks)`` occlusion mode.

A dataset's lung masks (:attr:`cxrbench.data.Dataset.lung_masks`: 8-bit images at the image's size, nonzero =
lung) go through the model's own geometry stage (``Encoder.geometry``: the very resize, crop and pad its images
get), as a 0 / 255 image, and are thresholded at 128 (half-way) back to bool: a resampled edge pixel is lung when
it is at least half lung. The result, (n_images, H, W) bool, is shared by every model with the same geometry key,
kept in memory and, with the cache on, on disk as one checksummed entry under ``<cache>/geometry/`` keyed by the
images, the geometry and where the masks come from (``lung_masks.source``), like the image geometry tensors of
:class:`cxrbench.prepared.Prepared`.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import torch

from cxrbench.cache import EntryStore, cache_root
from cxrbench.models import Encoder
from cxrbench.prepared import Prepared

#: a resampled mask pixel is lung when its value is at least this (of 255)
THRESHOLD = 128
#: bump when the way masks are brought into the frame changes (part of the disk key)
VERSION = 1


def frame_mask(encoder: Encoder, mask) -> torch.Tensor:
    """One mask image (``L``, 0 / 255) through ``encoder``'s geometry stage: (H, W) bool in its frame."""
    pixels = encoder.geometry(mask.convert("L") if mask.mode != "L" else mask)
    return pixels[0] >= THRESHOLD  # every channel is the same grey


class MaskGeometry:
    """The lung masks of a prepared dataset in each model's frame (see the module docstring)."""

    def __init__(self, prep: Prepared):
        self.prep = prep
        self._masks: dict[str, torch.Tensor] = {}

    @property
    def available(self) -> bool:
        return self.prep.dataset.lung_masks is not None

    def source(self) -> str:
        return str(getattr(self.prep.dataset.lung_masks, "source", type(self.prep.dataset.lung_masks).__name__))

    def masks(self, encoder: Encoder, indices: Sequence[int] | None = None, progress: bool = False) -> torch.Tensor:
        """(n, H, W) bool lung masks of every image (or those at ``indices``) in ``encoder``'s frame."""
        key = encoder.geometry_key
        if key not in self._masks:
            self._masks[key] = self._compute(encoder, progress)
        whole = self._masks[key]
        return whole if indices is None else whole[list(indices)]

    def _compute(self, encoder: Encoder, progress: bool) -> torch.Tensor:
        from tqdm.auto import tqdm

        prep = self.prep
        store = EntryStore("geometry", enabled=prep.use_cache, root=cache_root())
        disk_key = {"images": prep.images_hash(), "geometry": encoder.geometry_key, "lung_masks": self.source(),
                    "mask_geometry": VERSION}
        cached = store.read(disk_key)
        if cached is not None and tuple(cached.shape[:1]) == (len(prep.image_ids),) and cached.dtype == torch.bool:
            return cached
        dataset = prep.dataset

        def one(record):
            return frame_mask(encoder, dataset.load_lung_mask(record))

        with ThreadPoolExecutor(max_workers=prep.workers) as pool:
            frames = list(tqdm(pool.map(one, prep.image_records), total=len(prep.image_records),
                               desc=f"lung masks + geometry {encoder.geometry_key}", unit="img",
                               disable=not progress))
        out = torch.stack(frames)
        store.write(disk_key, out)
        return out
