"""The sweep: models x corruptions x levels on one dataset, with each piece of work done once.

This module only orchestrates; each step is owned elsewhere (docs/architecture.md):

* :mod:`cxrbench.config` checks the options; :mod:`cxrbench.prepared` loads the dataset and merges identical texts
  into one gallery entry. Every model is loaded before any long compute; then one decode pass decodes each image
  once and runs every model's geometry stage on it (shared per ``Encoder.geometry_key``, kept as uint8).
* :mod:`cxrbench.engine` embeds the texts once per model (they do not depend on the corruption; with the cache on,
  once per model and text set: :mod:`cxrbench.embed_cache` keeps them) and the images at every level, occlusion
  randomness drawn once per batch, sharded over torch.distributed ranks.
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
from cxrbench.engine import embed_images, embed_texts, image_chunks, to_channels_last
from cxrbench.errors import ConfigError, WeightsNotAvailable
from cxrbench.examples import ExampleImages
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
    examples = ExampleImages(prep, cfg.seed) if rank == 0 else None
    # every model is loaded first: a missing or broken checkpoint stops the run before any long compute, and the
    # decode pass runs every model's geometry stage on each decoded image
    loaded = {}
    for name in cfg.models:
        encoder = _load_encoder(name, cfg, device, encoders, result)
        if encoder is not None:  # weights not configured: the reason is in result.skipped
            loaded[name] = encoder
    prep.register(loaded.values())
    occlusions = {cname: corruption_registry.get(cname, fill=cfg.fill, patch_size=cfg.patch_size)
                  for cname in cfg.corruptions}
    achieved = _check_achieved_levels(loaded, occlusions, cfg, prep)  # a mislabelled level: an error before compute
    t0 = time.perf_counter()
    prep.compute_geometry(_geometry_plan(loaded, occlusions, prep, cfg, cache, examples), progress)
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
        for cname, occ in occlusions.items():
            keys = chunk_keys(encoder, prep, occ, cfg, image_chunks(encoder, prep, cfg))
            cached = cache.read_chunks(keys)
            t0 = time.perf_counter()
            embeddings, geometry_s = embed_images(
                encoder, prep, occ, cfg.levels, image_keys, device, cfg, progress, cached=cached,
                on_chunk=lambda c, embs, keys=keys: cache.write_chunk(keys, c, embs))
            if embeddings is None:  # not rank 0: rank 0 scores and writes
                continue
            embed_s = time.perf_counter() - t0
            scores, score_times = _score(embeddings, text_emb, labels, cfg, device, prep.image_ids,
                                         context=f"model {model}, {cname}")
            t1 = time.perf_counter()
            _add_study_statistics(scores, result.query_studies, cfg, resamples)
            stats_s = time.perf_counter() - t1
            if examples is not None:
                examples.add(encoder, occ, list(scores))
            computed = {lv: sum(1 for ck in keys if ck[1] == lv and ck not in cached) for lv in cfg.levels}
            for lv in cfg.levels:  # a level's wall time: its share of the embedding time, plus its scoring
                share = embed_s * computed[lv] / max(1, sum(computed.values()))
                result.levels.append(LevelResult(model, cname, occ.params(), lv, scores[lv],
                                                 wall_time_s=share + score_times[lv], cached=computed[lv] == 0,
                                                 achieved_level=achieved.get((name, cname), {}).get(lv)))
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


def _embed_texts(encoder: Encoder, prep: Prepared, device: torch.device, cfg: SweepConfig,
                 model: str) -> torch.Tensor:
    """The model's embeddings of the unique texts, checked finite (so a broken tower is never cached)."""
    text_emb = embed_texts(encoder, prep.unique_texts, device, cfg.precision)
    metrics.check_finite(text_emb, "text", ids=[repr(t[:60]) for t in prep.unique_texts], context=f"model {model}")
    return text_emb


def _check_achieved_levels(loaded: dict[str, Encoder], occlusions: dict, cfg: SweepConfig,
                           prep: Prepared) -> dict[tuple[str, str], dict[float, float | None]]:
    """``{(model, corruption): {level: fraction blocked}}`` for corruptions that can say, every model's frame
    taken from one decoded image (:meth:`Prepared.frame_sizes`)."""
    checked = {c: occ for c, occ in occlusions.items() if getattr(occ, "check_achieved", None) is not None}
    if not checked or not loaded:
        return {}
    frames = prep.frame_sizes(list(loaded.values()))
    return {(name, cname): _achieved_levels(occ, cfg.levels, frames[enc.geometry_key])
            for name, enc in loaded.items() for cname, occ in checked.items()}


def _geometry_plan(loaded: dict[str, Encoder], occlusions: dict, prep: Prepared, cfg: SweepConfig,
                   cache: EmbeddingCache, examples: ExampleImages | None) -> list[tuple[Encoder, list[int] | None]]:
    """``(encoder, images it needs in its frame)`` for the decode pass: the images of this rank's chunks that still
    miss a cached level of some corruption, plus the report's example images (None: every image)."""
    rank, size = distributed.world()
    n = len(prep.image_ids)
    plan = []
    for encoder in loaded.values():
        chunks = image_chunks(encoder, prep, cfg)
        needed: set[int] = set(examples.indices) if examples is not None else set()
        for occ in occlusions.values():
            present = cache.present(chunk_keys(encoder, prep, occ, cfg, chunks))
            for c in range(rank, len(chunks), size):
                if any((c, lv) not in present for lv in cfg.levels):
                    needed.update(range(*chunks[c]))
        plan.append((encoder, None if len(needed) == n else sorted(needed)))
    return plan


def _achieved_levels(corruption, levels, frame: tuple[int, int]) -> dict[float, float | None]:
    """``{level: fraction actually blocked}`` in the model's frame, for corruptions that can say
    (``Occlusion.check_achieved``: a ConfigError when a level is more than the tolerance off); else {}."""
    check = getattr(corruption, "check_achieved", None)
    return check(levels, *frame) if check is not None else {}


def _new_result(cfg: SweepConfig, prep: Prepared, device: torch.device) -> SweepResult:
    dataset = prep.dataset
    summary = {"name": dataset.name, "split": dataset.split, "policy": dataset.policy, **prep.summary(),
               "provenance": dataset.provenance, "bad_images": prep.bad_images}
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
    if cfg.channels_last:
        to_channels_last(encoder)
    return encoder


def _score(embeddings: dict[float, torch.Tensor], text_emb: torch.Tensor, labels: torch.Tensor, cfg: SweepConfig,
           device: torch.device, image_ids: list[str], context: str) -> tuple[dict[float, dict], dict[float, float]]:
    """Recall@k, ranks and bootstrap intervals at every level, and the seconds each level took; non-finite image
    embeddings are an error naming the images and the level."""
    scores, seconds = {}, {}
    for lv in cfg.levels:
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
