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

``load`` checks the whole file before anything runs: a missing file, a file without the ``thresholds`` mapping,
an unknown direction, a k that is not a whole number >= 1, a level that is not a number, a duplicated key, or a
threshold that is not a number in [0, 1] (a string, true, -0.1, 1.5) is a :class:`~cxrbench.errors.ConfigError`
naming the file, the line and the key. A gate that checks nothing is a failure (:func:`gate_summary`), unless the
caller allows it (``--allow-empty``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from pathlib import Path

import yaml

from cxrbench.errors import ConfigError, DataError
from cxrbench.io import write_text_atomic

DEFAULT_FILE = "thresholds.yaml"


def level_key(level: float) -> str:
    return f"{float(level):g}"


def dataset_key(record: dict) -> str:
    """Thresholds belong to one evaluation set: the dataset and its split."""
    return f"{record['dataset']}/{record['split']}"


DIRECTIONS = ("image_to_text", "text_to_image")
_LEVELS = ("dataset/split", "model", "corruption", "level", "direction", "k")


def load(path: str | Path = DEFAULT_FILE, missing_ok: bool = False) -> dict:
    """The ``thresholds`` mapping of a thresholds file, checked (see the module docstring). A missing file is an
    error unless ``missing_ok`` (``cxrbench thresholds update`` creating a new file): then ``{}``."""
    p = Path(path)
    if not p.is_file():
        if missing_ok and not p.exists():
            return {}
        what = "is not a file" if p.exists() else "does not exist"
        raise ConfigError(f"thresholds file {p} {what}; give --thresholds PATH of a file written by "
                          "`cxrbench thresholds update`")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: cannot read the thresholds file ({exc})") from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f", line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{p}{where}: not valid YAML ({problem})") from None
    return _Checker(p).document(root)


class _Checker:
    """Builds the thresholds mapping from the YAML node tree, checking every key and value with its line."""

    def __init__(self, path: Path):
        self.path = path
        self.constructor = yaml.SafeLoader("")

    def fail(self, node, message: str) -> ConfigError:
        return ConfigError(f"{self.path}, line {node.start_mark.line + 1}: {message}")

    def scalar(self, node):
        return self.constructor.construct_object(node, deep=True)

    def mapping(self, node, where: str) -> list[tuple]:
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(node, f"{where} must be a mapping, found {self._kind(node)}")
        seen: dict = {}
        pairs = []
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise self.fail(key_node, f"{where} has a key that is not a plain value")
            key = self.scalar(key_node)
            if key in seen:
                raise self.fail(key_node, f"{where}: key {key!r} appears twice (first on line {seen[key]})")
            seen[key] = key_node.start_mark.line + 1
            pairs.append((key_node, key, value_node))
        return pairs

    @staticmethod
    def _kind(node) -> str:
        if isinstance(node, yaml.SequenceNode):
            return "a list"
        if isinstance(node, yaml.ScalarNode):
            return f"the value {node.value!r}" if node.value else "nothing"
        return "a mapping"

    def document(self, root) -> dict:
        if root is None:
            raise ConfigError(f"{self.path}: the file is empty; it needs a 'thresholds' mapping "
                              "(see cxrbench.thresholds), written by `cxrbench thresholds update`")
        top = {key: (key_node, value) for key_node, key, value in self.mapping(root, "the file")}
        if "thresholds" not in top:
            raise self.fail(root, "no 'thresholds' key, so this file gates nothing; write it with "
                                  "`cxrbench thresholds update`")
        if "version" in top and self.scalar(top["version"][1]) != 1:
            raise self.fail(top["version"][1], "version must be 1")
        node = top["thresholds"][1]
        if isinstance(node, yaml.ScalarNode) and node.tag.endswith(":null"):
            return {}
        return self.level(node, 0, ["thresholds"])

    def level(self, node, depth: int, path: list[str]) -> dict:
        out: dict = {}
        where = ".".join(path)
        for key_node, key, value_node in self.mapping(node, where):
            name = self.key(key_node, key, depth, where)
            if depth == len(_LEVELS) - 1:
                out[name] = self.value(value_node, f"{where}.{name}")
            else:
                out[name] = self.level(value_node, depth + 1, [*path, str(name)])
        return out

    def key(self, node, key, depth: int, where: str):
        what = _LEVELS[depth]
        if depth == 0 and not (isinstance(key, str) and "/" in key):
            raise self.fail(node, f"{where}: {key!r} is not a dataset/split key such as 'iu-phantom/test'")
        if depth in (1, 2) and not (isinstance(key, str) and key):
            raise self.fail(node, f"{where}: {key!r} is not a {what} name")
        if depth == 3:
            try:
                value = float(key)
            except (TypeError, ValueError):
                value = math.nan
            if isinstance(key, bool) or not (math.isfinite(value) and value >= 0):
                raise self.fail(node, f"{where}: level {key!r} is not a number >= 0 (e.g. '0.25')")
            return level_key(value)
        if depth == 4 and key not in DIRECTIONS:
            raise self.fail(node, f"{where}: unknown direction {key!r}; use {' or '.join(DIRECTIONS)}")
        if depth == 5:
            if isinstance(key, bool) or not isinstance(key, int) or key < 1:
                raise self.fail(node, f"{where}: k {key!r} is not a whole number >= 1")
            return int(key)
        return key

    def value(self, node, where: str) -> float:
        value = self.scalar(node) if isinstance(node, yaml.ScalarNode) else None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise self.fail(node, f"threshold {where} is {self._kind(node)}, not a number in [0, 1]")
        if not 0.0 <= value <= 1.0:
            raise self.fail(node, f"threshold {where} = {value!r} is outside [0, 1] (a Recall@k floor)")
        return float(value)


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


#: the keys ``check`` needs in every record
RECORD_KEYS = ("dataset", "split", "model", "corruption", "level", "direction", "k", "value")


def read_records(run_dir: str | Path) -> list[dict]:
    """The records of a results folder (or a ``records.jsonl``); a line that is not a complete JSON record is a
    DataError naming the file and the line."""
    p = Path(run_dir)
    f = p / "records.jsonl" if p.is_dir() else p
    if not f.is_file():
        raise ConfigError(f"{f}: no records.jsonl here; give a results folder written by `cxrbench run`")
    out = []
    try:
        lines = f.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{f}: cannot read the records ({exc})") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise DataError(f"{f}, line {number}: not a JSON record ({exc}); the file is damaged, run again "
                            "to rewrite it") from None
        missing = [k for k in RECORD_KEYS if not isinstance(record, dict) or k not in record]
        if missing:
            raise DataError(f"{f}, line {number}: record lacks {', '.join(missing)}; not a cxrbench records file?")
        out.append(record)
    return out


def gate_summary(checked: int, records: Sequence[dict], allow_empty: bool = False) -> str | None:
    """Why a gate that checked ``checked`` of ``records`` must fail (None when it checked something, or when
    ``allow_empty``): a gate that checks nothing cannot catch a regression."""
    if checked or allow_empty:
        return None
    datasets = sorted({dataset_key(r) for r in records}) or ["-"]
    models = sorted({r["model"] for r in records}) or ["-"]
    return (f"no stored threshold applies to these {len(records)} records ({', '.join(datasets)}; models "
            f"{', '.join(models)}), so the gate checked nothing; store thresholds with `cxrbench thresholds "
            "update --from <results>`, or pass --allow-empty")
