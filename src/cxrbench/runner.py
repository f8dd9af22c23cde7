"""The sweep: models x corruptions x levels on one dataset, each piece of work done once. This module only
orchestrates; each stage is owned elsewhere (docs/architecture.md, "Orchestration"): config checks the options,
prepared loads the data and runs the one decode pass, plan settles corruptions, achieved levels and the decode
plan, engine embeds (texts once per model, images at every level of each corruption, sharded over ranks),
embed_cache keeps embeddings on disk chunk by chunk, scoring scores each level, examples keeps example images and
results holds what comes out.
"""

from __future__ import annotations

import time
from dataclasses import asdict, replace
from functools import partial

import torch

from cxrbench import corruptions as corruption_registry
from cxrbench import distributed, stats
from cxrbench.config import SweepConfig
from cxrbench.data import Dataset
from cxrbench.embed_cache import CleanChunks, EmbeddingCache, chunk_keys, model_text_embeddings
from cxrbench.engine import (
    embed_images,
    embed_texts_checked,
    image_chunks,
    set_memory_format,
    uses_channels_last,
)
from cxrbench.errors import ConfigError, WeightsNotAvailable
from cxrbench.examples import ExampleImages
from cxrbench.mask_geometry import MaskGeometry
from cxrbench.models import Encoder, load_model
from cxrbench.plan import build_corruptions, check_achieved_levels, geometry_plan
from cxrbench.precision import resolve_precision
from cxrbench.prepared import Prepared, prepare
from cxrbench.provenance import device_description, environment, resolve_device
from cxrbench.results import LevelResult, SweepResult
from cxrbench.scoring import add_study_statistics, score_levels


def run_sweep(cfg: SweepConfig, progress: bool = True, dataset: Dataset | None = None,
              encoders: dict[str, Encoder] | None = None, prepared: Prepared | None = None) -> SweepResult:
    """Run the sweep described by ``cfg``. Tests and benchmarks may pass in ``dataset``, ``prepared`` (decoded
    images and geometry shared between runs) and ``encoders``."""
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
    result = SweepResult(config=cfg, dataset=prep.run_summary(), device=device_description(device),
                         environment=environment(), rank=rank, world_size=size)
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
    corruptions = build_corruptions(cfg, masks)
    examples = ExampleImages(prep, cfg.seed, masks=masks) if rank == 0 else None
    # every model is loaded first: a missing or broken checkpoint stops the run before any long compute, and the
    # decode pass runs every model's geometry stage on each decoded image
    loaded = {}
    for name in cfg.models:
        encoder = _load_encoder(name, cfg, device, encoders, result)
        if encoder is not None:  # weights not configured: the reason is in result.skipped
            loaded[name] = encoder
    prep.register(loaded.values())
    achieved = check_achieved_levels(loaded, corruptions, cfg, prep)  # a mislabelled level: an error before compute
    t0 = time.perf_counter()
    prep.compute_geometry(geometry_plan(loaded, corruptions, prep, cfg, cache, examples, masks), progress)
    result.timings.decode_pass_s = time.perf_counter() - t0
    for name in list(loaded):
        encoder = loaded.pop(name)  # freed once its work is done
        model = encoder.info.name
        t0, text_emb = time.perf_counter(), None
        if rank == 0:
            embed = partial(embed_texts_checked, encoder, prep, device, cfg, model)
            text_emb, from_cache = model_text_embeddings(text_cache, encoder, prep, cfg.precision, embed)
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
            scores, score_times = score_levels(embeddings, levels, text_emb, labels, cfg, device, prep.image_ids,
                                               context=f"model {model}, {cname}")
            t1 = time.perf_counter()
            add_study_statistics(scores, result.query_studies, cfg, resamples)
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
    # the format the cache key names (a passed-in encoder may hold either from an earlier run)
    set_memory_format(encoder, uses_channels_last(encoder, cfg.channels_last))
    return encoder
