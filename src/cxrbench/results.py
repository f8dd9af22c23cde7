"""What a sweep produces: :class:`SweepResult` (one :class:`LevelResult` per model x corruption x level, dataset
summary, model info, :class:`Timings`) and the flat record schema, :func:`records`.

Everything that reads results (``report/``, the command line, the benchmark suite, thresholds) reads them from
here, never from the runner.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from cxrbench.config import SweepConfig
from cxrbench.provenance import code_version


@dataclass
class LevelResult:
    model: str
    corruption: str
    corruption_params: dict
    level: float
    metrics: dict  # direction -> direction_metrics(...)
    wall_time_s: float
    cached: bool = False
    #: the fraction actually blocked in the model's frame (occlusion; None where not known before the data)
    achieved_level: float | None = None
    #: what ``level`` is: ``fraction`` (occlusion: the blocked fraction) or ``severity`` (0..5, 0 = clean)
    level_kind: str = "fraction"


@dataclass
class StageTimes:
    """Seconds spent on one (model, corruption): geometry (plus decoding of images not decoded yet), the image
    tower over every level not cached (with gathering across ranks and writing the cache), and scoring."""

    geometry_s: float = 0.0
    embed_s: float = 0.0
    score_s: float = 0.0


@dataclass
class ModelTimes:
    texts_s: float = 0.0
    #: the text embeddings came from the on-disk text cache (no text was embedded)
    texts_cached: bool = False
    corruptions: dict[str, StageTimes] = field(default_factory=dict)  # corruption name -> stages


@dataclass
class Timings:
    """Where a sweep's time went: ``timings.models["reference"].corruptions["pixels"].embed_s``.

    ``decode_pass_s`` is the run's one decode pass (every model's geometry stage on each decoded image,
    :meth:`cxrbench.prepared.Prepared.compute_geometry`); ``decode_s`` and ``geometry_s`` split the time of every
    decode of the run into decoding and geometry stages (in proportion to their thread time), and
    ``images_decoded`` counts the images decoded (an image decoded twice counts twice; none when the geometry cache
    had them)."""

    dataset_s: float = 0.0
    total_s: float = 0.0
    decode_pass_s: float = 0.0
    decode_s: float = 0.0
    geometry_s: float = 0.0
    images_decoded: int = 0
    models: dict[str, ModelTimes] = field(default_factory=dict)

    def model(self, name: str) -> ModelTimes:
        return self.models.setdefault(name, ModelTimes())

    def stage(self, model: str, corruption: str) -> StageTimes:
        return self.model(model).corruptions.setdefault(corruption, StageTimes())

    def as_dict(self, digits: int | None = None) -> dict:
        """Nested plain dict (run.json, ``cxrbench bench``), seconds rounded to ``digits`` if given."""
        def rounded(x):
            if isinstance(x, dict):
                return {k: rounded(v) for k, v in x.items()}
            return x if digits is None or not isinstance(x, float) else round(x, digits)

        return rounded(asdict(self))


@dataclass
class SweepResult:
    config: SweepConfig
    dataset: dict
    models: dict = field(default_factory=dict)  # name -> ModelInfo as dict
    skipped: dict = field(default_factory=dict)  # name -> reason
    levels: list[LevelResult] = field(default_factory=list)
    timings: Timings = field(default_factory=Timings)
    device: str = ""
    environment: dict = field(default_factory=dict)
    #: torch.distributed rank that produced this object; only rank 0 holds metrics and writes results.
    rank: int = 0
    world_size: int = 1
    #: direction -> :class:`cxrbench.stats.QueryStudies` (each query's study; saved in ranks.pt for later
    #: study-level resampling)
    query_studies: dict = field(default_factory=dict)
    #: corrupted example images per geometry (:meth:`cxrbench.examples.ExampleImages.as_dict`), for the report
    examples: dict | None = None

    def get(self, model: str, corruption: str, level: float) -> LevelResult | None:
        for r in self.levels:
            if r.model == model and r.corruption == corruption and abs(r.level - level) < 1e-12:
                return r
        return None


#: dataset summary counts copied into every record
COUNT_KEYS = ("studies", "images", "unique_texts", "dropped_empty_text", "skipped_missing_images",
              "skipped_undecodable_images", "skipped_missing_lung_masks")


def _pair(x) -> list | None:
    return list(x) if x else None


def records(result: SweepResult, run_id: str = "") -> list[dict]:
    """One flat record per (dataset, model, corruption, level, direction, k).

    ``corruption`` is the corruption's name (``pixels``, ``lungs(masks)``, ``motion_blur``, ...) and
    ``corruption_params`` its parameters (``family`` always: ``occlusion`` or the severity family); ``level`` is a
    number whose meaning ``level_kind`` gives: ``fraction`` (occlusion: the blocked fraction) or ``severity``
    (0..5, 0 = clean).

    ``ci95`` is the query-level bootstrap interval (resampling queries, as before); ``ci95_study`` resamples
    studies (:mod:`cxrbench.stats`), as do ``retention_ci95``, ``auc_ci95`` and ``auc_retention_ci95``.
    ``retention`` is the value over the clean (level 0) value; ``auc`` / ``auc_retention`` (the same in every
    record of one model, corruption, direction and k) are the normalised areas under the recall and retention
    curves over ``auc_range``. The study fields are None where the sweep did not compute them.
    ``dataset_fingerprint`` identifies the evaluation set (:mod:`cxrbench.fingerprint`).
    """
    cfg = result.config
    out = []
    for lr in result.levels:
        info = result.models.get(lr.model, {})
        for direction, m in lr.metrics.items():
            for k, value in m["recall"].items():
                ci = m.get("recall_ci95", {}).get(k)
                out.append({
                    "run_id": run_id,
                    "dataset": result.dataset["name"],
                    "split": result.dataset["split"],
                    "policy": result.dataset["policy"],
                    "protocol": (cfg.protocol or {}).get("name"),
                    "dataset_counts": {x: result.dataset.get(x) for x in COUNT_KEYS if x in result.dataset},
                    "model": lr.model,
                    "model_family": info.get("family"),
                    "checkpoint": info.get("checkpoint"),
                    "checkpoint_sha256": info.get("checkpoint_sha256"),
                    "corruption": lr.corruption,
                    "corruption_params": lr.corruption_params,
                    "level": lr.level,
                    "level_kind": lr.level_kind,
                    "achieved_level": lr.achieved_level,
                    "seed": cfg.seed,
                    "direction": direction,
                    "k": k,
                    "metric": "recall",
                    "value": value,
                    "ci95": list(ci) if ci else None,
                    "bootstrap": cfg.bootstrap,
                    "mean_rank": m["mean_rank"],
                    "median_rank": m["median_rank"],
                    "n_queries": m["n_queries"],
                    "n_gallery": m["n_gallery"],
                    "chance": m["chance"][k],
                    "precision": cfg.precision,
                    "decode": cfg.decode,
                    "device": result.device,
                    "code_version": code_version(),
                    "wall_time_s": round(lr.wall_time_s, 4),
                    "from_cache": lr.cached,
                    "n_studies": m.get("n_studies"),
                    "ci95_study": _pair(m.get("recall_ci95_study", {}).get(k)),
                    "retention": m.get("retention", {}).get(k),
                    "retention_ci95": _pair(m.get("retention_ci95", {}).get(k)),
                    "auc": m.get("auc", {}).get(k),
                    "auc_ci95": _pair(m.get("auc_ci95", {}).get(k)),
                    "auc_retention": m.get("auc_retention", {}).get(k),
                    "auc_retention_ci95": _pair(m.get("auc_retention_ci95", {}).get(k)),
                    "auc_range": m.get("auc_range"),
                    "dataset_fingerprint": result.dataset.get("fingerprint"),
                })
    return out
