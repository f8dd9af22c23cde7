"""What a sweep must settle before it embeds anything: its corruptions (``lungs`` with the dataset's masks or the
template), the occlusion levels each model's frame really achieves (a
mislabelled level is an error before any compute) and the decode plan (which images each model still needs in its
frame, given the embedding cache). Called by :mod:`cxrbench.runner`."""

from __future__ import annotations

from cxrbench import distributed
from cxrbench.config import SweepConfig
from cxrbench.embed_cache import EmbeddingCache, chunk_keys
from cxrbench.engine import image_chunks
from cxrbench.errors import ConfigError
from cxrbench.examples import ExampleImages
from cxrbench.mask_geometry import MaskGeometry
from cxrbench.models import Encoder
from cxrbench.prepared import Prepared


def build_corruptions(cfg: SweepConfig, masks: MaskGeometry) -> list:
    """The sweep's corruptions, built once (``lungs`` uses the dataset's lung masks when it has them); a corruption
    that needs masks on a dataset without them is a ConfigError."""
    corruptions = [cfg.corruption(name, lung_masks=masks.available) for name in cfg.corruptions]
    for name, corr in zip(cfg.corruptions, corruptions):
        if corr.uses_masks and not masks.available:
            raise ConfigError(f"{name} needs per-image lung masks and this dataset has none; pass --data-option "
                              "lung_masks=DIR, or use 'lungs' (the fixed template)")
    return corruptions


def check_achieved_levels(loaded: dict[str, Encoder], corruptions: list, cfg: SweepConfig,
                           prep: Prepared) -> dict[tuple[str, str], dict[float, float | None]]:
    """``{(model, corruption): {level: fraction blocked}}`` for corruptions that can say, every model's frame
    taken from one decoded image (:meth:`Prepared.frame_sizes`)."""
    checked = {c.name: c for c in corruptions
               if c.level_kind == "fraction" and getattr(c, "check_achieved", None) is not None}
    if not checked or not loaded:
        return {}
    frames = prep.frame_sizes(list(loaded.values()))
    return {(name, cname): achieved_levels(corr, cfg.levels_for(corr), frames[enc.geometry_key])
            for name, enc in loaded.items() for cname, corr in checked.items()}


def geometry_plan(loaded: dict[str, Encoder], corruptions: list, prep: Prepared, cfg: SweepConfig,
                   cache: EmbeddingCache, examples: ExampleImages | None,
                   masks: MaskGeometry) -> list[tuple[Encoder, list[int] | None]]:
    """``(encoder, images it needs in its frame)`` for the decode pass: the images of this rank's chunks that still
    miss a cached level of some corruption, plus the report's example images (None: every image)."""
    rank, size = distributed.world()
    n = len(prep.image_ids)
    plan = []
    for encoder in loaded.values():
        chunks = image_chunks(encoder, prep, cfg)
        needed: set[int] = set(examples.indices) if examples is not None else set()
        for corr in corruptions:
            levels = cfg.levels_for(corr)
            present = cache.present(chunk_keys(encoder, prep, corr, cfg, chunks, levels,
                                               lung_masks=masks.source() if corr.uses_masks else None))
            for c in range(rank, len(chunks), size):
                if any((c, lv) not in present for lv in levels):
                    needed.update(range(*chunks[c]))
        plan.append((encoder, None if len(needed) == n else sorted(needed)))
    return plan


def achieved_levels(corruption, levels, frame: tuple[int, int]) -> dict[float, float | None]:
    """``{level: fraction actually blocked}`` in the model's frame, for occlusion (``Occlusion.check_achieved``:
    a ConfigError when a level is more than the tolerance off); {} for the severity families, whose levels are
    not fractions."""
    check = getattr(corruption, "check_achieved", None)
    if corruption.level_kind != "fraction" or check is None:
        return {}
    return check(levels, *frame)


__all__ = ["achieved_levels", "build_corruptions", "check_achieved_levels", "geometry_plan"]
