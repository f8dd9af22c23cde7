"""The sweep: models x corruptions x levels on one dataset, with each piece of work done once.

This module only orchestrates; each step is owned elsewhere (docs/architecture.md):

* :mod:`cxrbench.config` checks the options; :mod:`cxrbench.prepared` loads the dataset and merges identical texts
  into one gallery entry. Every model is loaded before any long compute; then one decode pass decodes each image
  once and runs every model's geometry stage on it (shared per ``Encoder.geometry_key``, kept as uint8).
* :mod:`cxrbench.engine` embeds the texts once per model (they do not depend on the corruption; with the cache on,
  once per model and text set: :mod:`cxrbench.embed_cache` keeps them) and the images at every level of each
  corruption (occlusion modes and severity families alike, through their ``prepare`` / ``apply``), the
  corruption's randomness drawn once per batch, sharded over torch.distributed ranks;
  :mod:`cxrbench.mask_geometry` brings the dataset's lung masks into each model's frame for ``lungs(masks)``.
* :mod:`cxrbench.embed_cache` keeps image embeddings on disk per (model checkpoint, corruption, level, seed,
  precision, chunk of studies), written as each chunk finishes, so an interrupted or repeated run resumes where it
  stopped and loses at most the chunk in progress.
* :mod:`cxrbench.metrics` scores each level; :mod:`cxrbench.stats` adds the study-level bootstrap intervals,
  retention and area under the curve of each (model, corruption), with the same study resamples for all of them;
  :mod:`cxrbench.examples` keeps a few corrupted example images per geometry; :mod:`cxrbench.results` holds what
  comes out.
"""

from __future__ import annotations

import time
from dataclasses import asdict, replace

import torch

from cxrbench import corruptions as corruption_registry
from cxrbench import distributed, metrics, stats
from cxrbench.config import SweepConfig
from cxrbench.data import Dataset
from cxrbench.embed_cache import EmbeddingCache, cached_text_embeddings, chunk_keys, text_embedding_key
from cxrbench.engine import embed_images, embed_texts, image_chunks, set_memory_format, uses_channels_last
from cxrbench.errors import ConfigError, WeightsNotAvailable
from cxrbench.examples import ExampleImages
from cxrbench.fingerprint import dataset_fingerprint
from cxrbench.mask_geometry import MaskGeometry
from cxrbench.models import Encoder, load_model
from cxrbench.precision import resolve_precision
from cxrbench.prepared import Prepared, prepare
from cxrbench.provenance import device_description, environment, resolve_device
from cxrbench.results import LevelResult, SweepResult


def run_sweep(cfg: SweepConfig, progress: bool = True, dataset: Dataset | None = None,
              encoders: dict[str, Encoder] | None = None, prepared: Prepared | None = None) -> SweepResult:
    """Run the sweep described by ``cfg``.

    ``dataset``, ``prepared`` (decoded images and geometry shared between runs) and ``encoders`` may be passed in
    by tests and benchmarks.
    """
    cfg.validate()
    t_start = time.perf_counter()
    device = distributed.init(resolve_device(cfg.device))
    cfg = replace(cfg, precision=resolve_precision(cfg.precision, device))  # auto: what the device runs natively
    rank, size = distributed.world()
    if size > 1 and cfg.use_cache:
        cfg = replace(cfg, use_cache=False)  # ranks could disagree on what is cached
    prep = prepared if prepared is not None else prepare(cfg, progress, dataset)
    if prep.decode != cfg.decode:
        raise ConfigError(f"the prepared dataset decodes {prep.decode!r} but the sweep asks for {cfg.decode!r}")
    decoded_before = prep.decode_stats.copy()
    result = _new_result(cfg, prep, device)
    result.timings.dataset_s = time.perf_counter() - t_start
    cache = EmbeddingCache(enabled=cfg.use_cache)
    text_cache = EmbeddingCache(enabled=cfg.use_cache, kind="texts")
    image_keys = corruption_registry.image_keys(prep.image_ids, cfg.seed)
    labels = torch.tensor(prep.image_text)
    n_studies = len(prep.dataset.studies)
    result.query_studies = stats.direction_query_studies(prep.image_study, prep.image_text, n_studies,
                                                         len(prep.unique_texts))
    resamples = stats.StudyResamples(n_studies, cfg.bootstrap, cfg.seed)  # one set for every model and level
    masks = MaskGeometry(prep)
    corruptions = [cfg.corruption(name, lung_masks=masks.available) for name in cfg.corruptions]
    for name, corr in zip(cfg.corruptions, corruptions):
        if corr.uses_masks and not masks.available:
            raise ConfigError(f"{name} needs per-image lung masks and this dataset has none; pass --data-option "
                              "lung_masks=DIR, or use 'lungs' (the fixed template)")
    examples = ExampleImages(prep, cfg.seed, masks=masks) if rank == 0 else None
    # every model is loaded first: a missing or broken checkpoint stops the run before any long compute, and the
    # decode pass runs every model's geometry stage on each decoded image
    loaded = {}
    for name in cfg.models:
        encoder = _load_encoder(name, cfg, device, encoders, result)
        if encoder is not None:  # weights not configured: the reason is in result.skipped
            loaded[name] = encoder
    prep.register(loaded.values())
    achieved = _check_achieved_levels(loaded, corruptions, cfg, prep)  # a mislabelled level: an error before compute
    t0 = time.perf_counter()
    prep.compute_geometry(_geometry_plan(loaded, corruptions, prep, cfg, cache, examples, masks), progress)
    result.timings.decode_pass_s = time.perf_counter() - t0
    for name in list(loaded):
        encoder = loaded.pop(name)  # freed once its work is done
        model = encoder.info.name
        t0 = time.perf_counter()
        text_emb = None
        if rank == 0:
            text_key = text_embedding_key(encoder, prep, cfg.precision) if text_cache.enabled else None
            text_emb, from_cache = cached_text_embeddings(
                text_cache, text_key, lambda encoder=encoder, model=model: _embed_texts(encoder, prep, device, cfg,
                                                                                       model))
            result.timings.model(model).texts_cached = from_cache
        result.timings.model(model).texts_s = time.perf_counter() - t0
        clean = CleanChunks(enabled=size == 1)  # level 0 is the same images for every corruption: embedded once
        for corr in corruptions:
            cname, levels = corr.name, cfg.levels_for(corr)
            keys = chunk_keys(encoder, prep, corr, cfg, image_chunks(encoder, prep, cfg), levels,
                              lung_masks=masks.source() if corr.uses_masks else None)
            cached = cache.read_chunks(keys)
            clean.remember(cached)
            shared = clean.share(keys, cached, cache)
            t0 = time.perf_counter()
            embeddings, geometry_s = embed_images(
                encoder, prep, corr, levels, image_keys, device, cfg, progress, cached={**cached, **shared},
                on_chunk=lambda c, embs, keys=keys, clean=clean: (cache.write_chunk(keys, c, embs),
                                                                  clean.remember_chunk(c, embs)),
                lung_masks=lambda indices, encoder=encoder: masks.masks(encoder, indices, progress))
            if embeddings is None:  # not rank 0: rank 0 scores and writes
                continue
            embed_s = time.perf_counter() - t0
            scores, score_times = _score(embeddings, levels, text_emb, labels, cfg, device, prep.image_ids,
                                         context=f"model {model}, {cname}")
            t1 = time.perf_counter()
            _add_study_statistics(scores, result.query_studies, cfg, resamples)
            stats_s = time.perf_counter() - t1
            if examples is not None:
                examples.add(encoder, corr, list(scores))
            computed = {lv: sum(1 for ck in keys if ck[1] == lv and ck not in cached and ck not in shared)
                        for lv in levels}
            for lv in levels:  # a level's wall time: its share of the embedding time, plus its scoring
                share = embed_s * computed[lv] / max(1, sum(computed.values()))
                from_cache = all(ck in cached for ck in keys if ck[1] == lv)
                result.levels.append(LevelResult(model, cname, corr.params(), lv, scores[lv],
                                                 wall_time_s=share + score_times[lv], cached=from_cache,
                                                 achieved_level=achieved.get((name, cname), {}).get(lv),
                                                 level_kind=corr.level_kind))
            stage = result.timings.stage(model, cname)
            stage.geometry_s, stage.embed_s = geometry_s, embed_s - geometry_s
            stage.score_s = sum(score_times.values()) + stats_s
        del encoder
    if examples is not None:
        result.examples = examples.as_dict()
    decoded = prep.decode_stats.minus(decoded_before)
    result.timings.images_decoded = decoded.images
    result.timings.decode_s, result.timings.geometry_s = decoded.split_s()
    result.timings.total_s = time.perf_counter() - t_start
    return result


class CleanChunks:
    """One model's clean (level 0) image embeddings per chunk, shared by every corruption of the run: level 0 is
    the identity for every corruption, so the images are embedded once (or read from the cache once), not once per
    corruption. Off under torch.distributed (each rank holds only its own chunks)."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self.chunks: dict[int, torch.Tensor] = {}

    def remember(self, embeddings: dict[tuple[int, float], torch.Tensor]) -> None:
        """Keep the level-0 entries of ``{(chunk, level): embeddings}``."""
        for (c, lv), emb in embeddings.items():
            if self.enabled and lv == 0:
                self.chunks.setdefault(c, emb)

    def remember_chunk(self, chunk: int, embeddings: dict[float, torch.Tensor]) -> None:
        if self.enabled and 0 in embeddings:
            self.chunks.setdefault(chunk, embeddings[0].clone())

    def share(self, keys: dict[tuple[int, float], dict], cached: dict, cache: EmbeddingCache) -> dict:
        """``{(chunk, 0): embeddings}`` for this corruption's level-0 keys not in ``cached`` that an earlier
        corruption embedded; written to the cache under this corruption's keys too."""
        out = {}
        for (c, lv), key in keys.items():
            if lv == 0 and (c, lv) not in cached and c in self.chunks:
                out[(c, lv)] = self.chunks[c]
                cache.write(key, self.chunks[c])
        return out


def _embed_texts(encoder: Encoder, prep: Prepared, device: torch.device, cfg: SweepConfig,
                 model: str) -> torch.Tensor:
    """The model's embeddings of the unique texts, checked finite (so a broken tower is never cached)."""
    text_emb = embed_texts(encoder, prep.unique_texts, device, cfg.precision)
    metrics.check_finite(text_emb, "text", ids=[repr(t[:60]) for t in prep.unique_texts], context=f"model {model}")
    return text_emb


def _check_achieved_levels(loaded: dict[str, Encoder], corruptions: list, cfg: SweepConfig,
                           prep: Prepared) -> dict[tuple[str, str], dict[float, float | None]]:
    """``{(model, corruption): {level: fraction blocked}}`` for corruptions that can say, every model's frame
    taken from one decoded image (:meth:`Prepared.frame_sizes`)."""
    checked = {c.name: c for c in corruptions
               if c.level_kind == "fraction" and getattr(c, "check_achieved", None) is not None}
    if not checked or not loaded:
        return {}
    frames = prep.frame_sizes(list(loaded.values()))
    return {(name, cname): _achieved_levels(corr, cfg.levels_for(corr), frames[enc.geometry_key])
            for name, enc in loaded.items() for cname, corr in checked.items()}


def _geometry_plan(loaded: dict[str, Encoder], corruptions: list, prep: Prepared, cfg: SweepConfig,
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


def _achieved_levels(corruption, levels, frame: tuple[int, int]) -> dict[float, float | None]:
    """``{level: fraction actually blocked}`` in the model's frame, for occlusion (``Occlusion.check_achieved``:
    a ConfigError when a level is more than the tolerance off); {} for the severity families, whose levels are
    not fractions."""
    check = getattr(corruption, "check_achieved", None)
    if corruption.level_kind != "fraction" or check is None:
        return {}
    return check(levels, *frame)


def _new_result(cfg: SweepConfig, prep: Prepared, device: torch.device) -> SweepResult:
    dataset = prep.dataset
    summary = {"name": dataset.name, "split": dataset.split, "policy": dataset.policy, **prep.summary(),
               "provenance": dataset.provenance, "bad_images": prep.bad_images,
               "fingerprint": dataset_fingerprint(dataset)}
    rank, size = distributed.world()
    return SweepResult(config=cfg, dataset=summary, device=device_description(device), environment=environment(),
                       rank=rank, world_size=size)


def _load_encoder(name: str, cfg: SweepConfig, device: torch.device, encoders: dict[str, Encoder] | None,
                  result: SweepResult) -> Encoder | None:
    """The encoder passed in or built by the registry; None (reason in ``result.skipped``) without weights."""
    try:
        encoder = (encoders or {}).get(name) or load_model(
            name, device=str(device), config=cfg.models_config, **cfg.model_settings.get(name, {}))
    except WeightsNotAvailable as exc:
        result.skipped[name] = str(exc)
        return None
    result.models[encoder.info.name] = asdict(encoder.info)
    if cfg.channels_last:  # the faster memory format of its family (a passed-in encoder may hold either)
        set_memory_format(encoder, uses_channels_last(encoder, True))
    return encoder


def _score(embeddings: dict[float, torch.Tensor], levels, text_emb: torch.Tensor, labels: torch.Tensor,
           cfg: SweepConfig, device: torch.device, image_ids: list[str],
           context: str) -> tuple[dict[float, dict], dict[float, float]]:
    """Recall@k, ranks and bootstrap intervals at every level, and the seconds each level took; non-finite image
    embeddings are an error naming the images and the level."""
    scores, seconds = {}, {}
    for lv in levels:
        t0 = time.perf_counter()
        metrics.check_finite(embeddings[lv], "image", ids=image_ids, context=f"{context} level {lv:g}")
        scores[lv] = metrics.retrieval_metrics(embeddings[lv].to(device), text_emb.to(device), labels.to(device),
                                               ks=cfg.ks, bootstrap=cfg.bootstrap, seed=cfg.seed)
        seconds[lv] = time.perf_counter() - t0
    return scores, seconds


def _add_study_statistics(scores: dict[float, dict], query_studies: dict[str, stats.QueryStudies],
                          cfg: SweepConfig, resamples: stats.StudyResamples) -> None:
    """Study-level intervals, retention and area under the curve of one (model, corruption), merged into each
    level's direction metrics (the same study resamples for every model and level of the run)."""
    ranks = {lv: {d: m["ranks"] for d, m in scores[lv].items()} for lv in scores}
    fields = stats.level_fields(ranks, query_studies, cfg.ks, resamples)
    for lv in scores:
        for direction, extra in fields[float(lv)].items():
            scores[lv][direction].update(extra)
