"""Stored Recall@k thresholds (``thresholds.yaml``): load, check, update from a run.

Layout::

    version: 1
    thresholds:
      <dataset>/<split>:      # e.g. iu-phantom/test
        <model>:
          <corruption>:
            "<level>":            # e.g. "0", "0.09", "0.81"
              image_to_text: {1: 0.05, 5: 0.2, ...}
              text_to_image: {...}

A record passes when its value is >= the stored threshold. ``update`` sets threshold = value - margin (floored to
3 decimals) and stores nothing where that would be <= 0, since a threshold of 0 cannot fail.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from pathlib import Path

import yaml

from cxrbench.errors import ConfigError
from cxrbench.io import write_text_atomic

DEFAULT_FILE = "thresholds.yaml"


def level_key(level: float) -> str:
    return f"{float(level):g}"


def dataset_key(record: dict) -> str:
    """Thresholds belong to one evaluation set: the dataset and its split."""
    return f"{record['dataset']}/{record['split']}"


def load(path: str | Path = DEFAULT_FILE) -> dict:
    p = Path(path)
    if not p.is_file():
        return {}
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: not valid YAML ({exc})") from exc
    if not isinstance(data, dict) or not isinstance(data.get("thresholds", {}), dict):
        raise ConfigError(f"{p}: expected a mapping with a 'thresholds' mapping (see cxrbench.thresholds)")
    return data.get("thresholds") or {}


def lookup(th: dict, dataset: str, model: str, corruption: str, level: float, direction: str) -> dict[int, float]:
    node = th.get(dataset, {}).get(model, {}).get(corruption, {}).get(level_key(level), {}).get(direction, {})
    return {int(k): float(v) for k, v in (node or {}).items()}


def check(records: Iterable[dict], th: dict) -> tuple[list[dict], int]:
    """Records below their threshold (with the threshold added) and the number of records that had one."""
    failures, checked = [], 0
    for r in records:
        bounds = lookup(th, dataset_key(r), r["model"], r["corruption"], r["level"], r["direction"])
        if r["k"] in bounds:
            checked += 1
            if r["value"] < bounds[r["k"]]:
                failures.append({**r, "threshold": bounds[r["k"]]})
    return failures, checked


def update(th: dict, records: Sequence[dict], margin: float, models: Sequence[str] | None = None) -> dict:
    """New thresholds from ``records`` (value - margin), merged into ``th``; other entries are kept."""
    if not (0 <= margin < 1):
        raise ConfigError(f"margin {margin} must lie in [0, 1) (an absolute Recall@k difference)")
    out = json.loads(json.dumps(th))  # deep copy
    for r in records:
        if models and r["model"] not in models:
            continue
        node = (out.setdefault(dataset_key(r), {}).setdefault(r["model"], {}).setdefault(r["corruption"], {})
                .setdefault(level_key(r["level"]), {}).setdefault(r["direction"], {}))
        value = math.floor(round((r["value"] - margin) * 1000, 6)) / 1000  # round() absorbs 0.3-0.02=0.2799..
        if value > 0:
            node[int(r["k"])] = value
        else:
            node.pop(int(r["k"]), None)
    return _prune(out)


def _prune(node):
    if isinstance(node, dict):
        pruned = {k: _prune(v) for k, v in node.items()}
        return {k: v for k, v in pruned.items() if v != {}}
    return node


def save(th: dict, path: str | Path, source: str, margin: float) -> None:
    header = (
        "# Recall@k thresholds gating `pytest benchmarks/` (a result passes when value >= threshold).\n"
        f"# Last updated {datetime.now(timezone.utc).strftime('%Y-%m-%d')} by `cxrbench thresholds update --from {source} "
        f"--margin {margin}`.\n# Lowering a value hides a regression: say why in the commit message.\n"
    )
    body = yaml.safe_dump({"version": 1, "thresholds": th}, sort_keys=True, default_flow_style=None, width=120)
    write_text_atomic(path, header + body)


def read_records(run_dir: str | Path) -> list[dict]:
    p = Path(run_dir)
    f = p / "records.jsonl" if p.is_dir() else p
    if not f.is_file():
        raise ConfigError(f"{f}: no records.jsonl here; give a results folder written by `cxrbench run`")
    return [json.loads(line) for line in f.read_text().splitlines() if line.strip()]
