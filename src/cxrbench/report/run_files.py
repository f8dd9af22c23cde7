"""The binary files of a run folder: ``ranks.pt`` (per-query ranks and each query's studies) and
``examples.npz`` (corrupted example images), written from a :class:`~cxrbench.results.SweepResult` and read back
by ``cxrbench compare`` and the HTML report.

``ranks.pt`` (``torch.load(path, weights_only=True)``) maps

* ``"<model>|<corruption>|<level>|<direction>"`` -> ``TargetRanks.to_dict()`` (tensors: above, tied,
  tied_targets, n_targets, n_gallery), one per query in the dataset's order;
* ``"query_studies|<direction>"`` -> ``QueryStudies.to_dict()`` (tensors: query, study, weight, n_queries,
  n_studies): which studies each query belongs to, for study-level resampling after the run.

``examples.npz`` (``numpy.load(path)``, no pickles) holds ``meta``, a JSON string (image ids, geometry key ->
models, and one entry per array: geometry, corruption, its params, level, array name), and the arrays ``e0``,
``e1``, ... : (N, C, H, W) uint8 model-frame images.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from cxrbench.errors import ConfigError, DataError
from cxrbench.io import atomic_path
from cxrbench.results import SweepResult
from cxrbench.retrieval import TargetRanks
from cxrbench.stats import QueryStudies

QUERY_STUDIES = "query_studies"


def ranks_payload(result: SweepResult) -> dict:
    """What ``ranks.pt`` holds (see the module docstring)."""
    out = {f"{r.model}|{r.corruption}|{r.level}|{d}": m["ranks"].to_dict()
           for r in result.levels for d, m in r.metrics.items()}
    for direction, qs in result.query_studies.items():
        out[f"{QUERY_STUDIES}|{direction}"] = qs.to_dict()
    return out


def write_ranks(result: SweepResult, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(ranks_payload(result), tmp)


@dataclass
class RunRanks:
    """``ranks.pt`` read back: ``ranks[(model, corruption, level, direction)]`` and ``query_studies[direction]``."""

    ranks: dict[tuple[str, str, float, str], TargetRanks]
    query_studies: dict[str, QueryStudies]

    def curve(self, model: str, corruption: str, direction: str) -> dict[float, TargetRanks]:
        return {lv: r for (m, c, lv, d), r in self.ranks.items() if (m, c, d) == (model, corruption, direction)}


def load_ranks(path: str | Path) -> RunRanks:
    """Read ``ranks.pt``; a file from before query studies were saved is a :class:`DataError` saying so."""
    path = Path(path)
    if not path.is_file():
        # a wrong folder on the command line is a usage error (exit 2), as for `thresholds --from`
        raise ConfigError(f"{path} not found: give a results folder written by `cxrbench run`")
    raw = torch.load(path, weights_only=True)
    ranks, query_studies = {}, {}
    for key, value in raw.items():
        parts = key.split("|")
        if len(parts) == 2 and parts[0] == QUERY_STUDIES:
            query_studies[parts[1]] = QueryStudies.from_dict(value)
        elif len(parts) == 4:
            model, corruption, level, direction = parts
            ranks[(model, corruption, float(level), direction)] = TargetRanks.from_dict(value)
        else:
            raise DataError(f"{path}: unexpected entry {key!r}; is this a ranks.pt written by `cxrbench run`?")
    if not query_studies:
        raise DataError(f"{path} has no query -> study map (written by an older cxrbench): re-run the sweep to "
                        "get study-level statistics")
    return RunRanks(ranks, query_studies)


def write_examples(examples: dict, path: str | Path) -> None:
    """``examples.npz`` from :meth:`cxrbench.examples.ExampleImages.as_dict`."""
    arrays, entries = {}, []
    for i, e in enumerate(examples["entries"]):
        name = f"e{i}"
        arrays[name] = np.ascontiguousarray(e["pixels"], dtype=np.uint8)
        entries.append({"array": name, "geometry": e["geometry"], "corruption": e["corruption"],
                        "params": e["params"], "level": e["level"]})
    meta = {"image_ids": examples["image_ids"], "geometries": examples["geometries"], "entries": entries}
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, meta=np.array(json.dumps(meta, default=str)), **arrays)


def read_examples(path: str | Path) -> dict:
    """``examples.npz`` read back: the meta dict with each entry's ``pixels`` array added."""
    with np.load(path, allow_pickle=False) as npz:
        meta = json.loads(str(npz["meta"]))
        for e in meta["entries"]:
            e["pixels"] = npz[e["array"]]
    return meta
