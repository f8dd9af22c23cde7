"""Stored Recall@k thresholds (``thresholds.yaml``): load, check, derive from a run, update.

Layout::

    version: 1
    evaluation_sets:          # what each dataset/split key was stored for (see "Evaluation sets")
      iu-phantom/test: {fingerprint: e05f8b29edd78ff4, studies: 1000, images: 1950, unique_texts: 857,
                        policy: longest, protocol: null}
    thresholds:
      <dataset>/<split>:      # e.g. iu-phantom/test
        <model>:
          <corruption>:
            "<level>":            # e.g. "0", "0.09", "0.81"
              image_to_text: {1: 0.05, 5: 0.2, ...}
              text_to_image: {...}

A record passes when its value is >= the stored threshold.

Deriving a threshold (:func:`derive`). A threshold is the lower end of the record's 95% study-bootstrap interval
(``ci95_study``, or the value itself if that is lower) minus a stated ``tolerance`` (default
:data:`DEFAULT_TOLERANCE`), floored to 3 decimals: a rerun that scores within the run's own sampling uncertainty
passes, a model that loses more than that fails. None is stored at or below chance (the record's ``chance``, the
expected Recall@k of a random ranking): such a threshold could only fail on a collapse below chance, so it checks
nothing. Records without a study interval (``--bootstrap 0``) get none either. The older rule, value - ``margin``,
is still available (``margin=``, ``--margin``), with the same chance rule.

Updating (:func:`plan_update`). A plain update sets every threshold the run derives; one that would come out
lower than the stored value (or disappear) is a lowering and needs ``allow_lower`` (``--allow-lower``), otherwise
the update is refused and nothing is written. A ratchet update (``ratchet``, ``--ratchet``) raises a stored
threshold only when the new run is significantly better, defined as: its study-level lower bound exceeds the
stored threshold by more than the tolerance. Since a threshold is a lower bound minus the tolerance, that is the
same as "the threshold the new run gives is higher", and the threshold is raised to it. Otherwise the stored value
is kept without an error (lowered only with ``allow_lower``). Thresholds for keys the run does not have are kept in
both modes, and every lowering is listed.

Evaluation sets. The key is dataset/split, but loader options (MIMIC-CXR ``require=both``, ``sections=lenient``),
``--protocol``, ``--policy`` or a new release of the data change the evaluation set without changing the split
label. Each key therefore stores the dataset fingerprint (:mod:`cxrbench.fingerprint`) of the run it came from,
under ``evaluation_sets``, and a threshold gates only records with that fingerprint: records of another evaluation
set are not checked (and a gate that checks nothing fails, saying why). An update from records of another
evaluation set than the one stored for their key is refused; write another file (``--file``) or remove the key to
replace it deliberately. (``--max-studies`` already changes the split label: ``test[:300]``.)

``load`` checks the whole file before anything runs: a missing file, a file without the ``thresholds`` mapping,
an unknown direction, a k that is not a whole number >= 1, a level that is not a number, a duplicated key, a
threshold that is not a number in [0, 1] (a string, true, -0.1, 1.5), or an ``evaluation_sets`` entry without a
hexadecimal fingerprint is a :class:`~cxrbench.errors.ConfigError` naming the file, the line and the key. A gate
that checks nothing is a failure (:func:`gate_summary`), unless the caller allows it (``--allow-empty``).
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import yaml

from cxrbench.errors import ConfigError, DataError
from cxrbench.io import write_text_atomic

DEFAULT_FILE = "thresholds.yaml"
#: subtracted from the study-level lower bound (recall units: 0.01 = 1 point); covers device and precision noise
DEFAULT_TOLERANCE = 0.01
#: what an evaluation set entry may hold besides its fingerprint
EVALUATION_SET_FIELDS = ("fingerprint", "studies", "images", "unique_texts", "policy", "protocol")


class Thresholds(dict):
    """The ``thresholds`` mapping of a file (dataset/split -> model -> corruption -> level -> direction -> k ->
    threshold), with ``evaluation_sets``: dataset/split -> the evaluation set it was stored for (its
    ``fingerprint`` and counts). A plain dict works wherever a Thresholds does (no evaluation sets: every record of
    a key is gated)."""

    def __init__(self, tree: dict | None = None, evaluation_sets: dict | None = None):
        super().__init__(tree or {})
        self.evaluation_sets: dict[str, dict] = dict(evaluation_sets or {})

    def copy(self) -> Thresholds:
        return Thresholds(copy.deepcopy(dict(self)), copy.deepcopy(self.evaluation_sets))


def level_key(level: float) -> str:
    return f"{float(level):g}"


def dataset_key(record: dict) -> str:
    """Thresholds belong to one evaluation set: the dataset and its split."""
    return f"{record['dataset']}/{record['split']}"


DIRECTIONS = ("image_to_text", "text_to_image")
_LEVELS = ("dataset/split", "model", "corruption", "level", "direction", "k")


def load(path: str | Path = DEFAULT_FILE, missing_ok: bool = False) -> Thresholds:
    """The ``thresholds`` mapping of a thresholds file, checked (see the module docstring), with its evaluation
    sets. A missing file is an error unless ``missing_ok`` (``cxrbench thresholds update`` creating a new file):
    then an empty one."""
    p = Path(path)
    if not p.is_file():
        if missing_ok and not p.exists():
            return Thresholds()
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

    def document(self, root) -> Thresholds:
        if root is None:
            raise ConfigError(f"{self.path}: the file is empty; it needs a 'thresholds' mapping "
                              "(see cxrbench.thresholds), written by `cxrbench thresholds update`")
        top = {key: (key_node, value) for key_node, key, value in self.mapping(root, "the file")}
        if "thresholds" not in top:
            raise self.fail(root, "no 'thresholds' key, so this file gates nothing; write it with "
                                  "`cxrbench thresholds update`")
        if "version" in top and self.scalar(top["version"][1]) != 1:
            raise self.fail(top["version"][1], "version must be 1")
        sets = self.evaluation_sets(top["evaluation_sets"][1]) if "evaluation_sets" in top else {}
        node = top["thresholds"][1]
        if isinstance(node, yaml.ScalarNode) and node.tag.endswith(":null"):
            return Thresholds({}, sets)
        return Thresholds(self.level(node, 0, ["thresholds"]), sets)

    def evaluation_sets(self, node) -> dict[str, dict]:
        if isinstance(node, yaml.ScalarNode) and node.tag.endswith(":null"):
            return {}
        out = {}
        for key_node, key, value_node in self.mapping(node, "evaluation_sets"):
            if not (isinstance(key, str) and "/" in key):
                raise self.fail(key_node, f"evaluation_sets: {key!r} is not a dataset/split key such as "
                                          "'iu-phantom/test'")
            entry = {}
            for field_node, name, v in self.mapping(value_node, f"evaluation_sets.{key}"):
                if name not in EVALUATION_SET_FIELDS:
                    raise self.fail(field_node, f"evaluation_sets.{key}: unknown field {name!r}; fields are "
                                                f"{', '.join(EVALUATION_SET_FIELDS)}")
                if not isinstance(v, yaml.ScalarNode):
                    raise self.fail(v, f"evaluation_sets.{key}.{name} must be a plain value, found {self._kind(v)}")
                entry[name] = self.scalar(v)
            fp = entry.get("fingerprint")
            if not (isinstance(fp, str) and fp and all(c in "0123456789abcdef" for c in fp)):
                raise self.fail(value_node, f"evaluation_sets.{key}: fingerprint {fp!r} is not a hexadecimal "
                                            "dataset fingerprint (written by `cxrbench thresholds update`)")
            out[key] = entry
        return out

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


def stored_fingerprint(th: dict, key: str) -> str | None:
    """The dataset fingerprint the thresholds of ``key`` were stored for (None: not recorded, they gate any)."""
    return getattr(th, "evaluation_sets", {}).get(key, {}).get("fingerprint")


def same_evaluation_set(th: dict, record: dict) -> bool:
    """Whether the thresholds stored for the record's dataset/split were made on the record's evaluation set."""
    stored = stored_fingerprint(th, dataset_key(record))
    return stored is None or record.get("dataset_fingerprint") == stored


def check(records: Iterable[dict], th: dict) -> tuple[list[dict], int]:
    """Records below their threshold (with the threshold added) and the number of records that had one. Records
    of another evaluation set than the thresholds' (:func:`same_evaluation_set`) have none."""
    failures, checked = [], 0
    for r in records:
        if not same_evaluation_set(th, r):
            continue
        bounds = lookup(th, dataset_key(r), r["model"], r["corruption"], r["level"], r["direction"])
        if r["k"] in bounds:
            checked += 1
            if r["value"] < bounds[r["k"]]:
                failures.append({**r, "threshold": bounds[r["k"]]})
    return failures, checked


def _describe_set(entry: dict) -> str:
    return (f"{entry.get('fingerprint')}: {entry.get('studies')} studies, {entry.get('images')} images, "
            f"{entry.get('unique_texts')} texts, policy {entry.get('policy')}, protocol {entry.get('protocol')}")


def evaluation_set_of(record: dict) -> dict:
    """The ``evaluation_sets`` entry that describes the record's evaluation set."""
    counts = record.get("dataset_counts") or {}
    return {"fingerprint": record.get("dataset_fingerprint"), "studies": counts.get("studies"),
            "images": counts.get("images"), "unique_texts": counts.get("unique_texts"),
            "policy": record.get("policy"), "protocol": record.get("protocol")}


def other_evaluation_sets(records: Iterable[dict], th: dict) -> list[str]:
    """One line per dataset/split whose stored thresholds are for another evaluation set than these records'."""
    seen: dict[str, dict] = {}
    for r in records:
        if not same_evaluation_set(th, r):
            seen.setdefault(dataset_key(r), evaluation_set_of(r))
    return [f"the thresholds of {key} are for evaluation set {_describe_set(th.evaluation_sets[key])}, these "
            f"records are of {_describe_set(entry)}" for key, entry in seen.items()]


def _floor3(x: float) -> float:
    return math.floor(round(x * 1000, 6)) / 1000  # round() absorbs 0.3 - 0.02 = 0.2799..


AT_CHANCE = "at or below chance"
NO_INTERVAL = "no study interval (a run with --bootstrap 0)"


def derive(record: dict, tolerance: float = DEFAULT_TOLERANCE, margin: float | None = None
           ) -> tuple[float | None, str | None]:
    """The threshold a record supports, or None with the reason (see the module docstring): ``min(lower end of
    ci95_study, value) - tolerance``, or ``value - margin`` if a margin is given; floored to 3 decimals; none at or
    below the record's ``chance`` (or at or below 0)."""
    if margin is not None:
        candidate = _floor3(record["value"] - margin)
    else:
        interval = record.get("ci95_study")
        if not interval:
            return None, NO_INTERVAL
        candidate = _floor3(min(float(interval[0]), float(record["value"])) - tolerance)
    chance = record.get("chance")
    if candidate <= 0 or (chance is not None and candidate <= float(chance)):
        return None, AT_CHANCE
    return candidate, None


@dataclass(frozen=True)
class Change:
    """One stored threshold that an update adds, raises, lowers, removes or keeps."""

    key: tuple  # (dataset/split, model, corruption, level key, direction, k)
    old: float | None
    new: float | None

    def __str__(self) -> str:
        ds, model, corruption, level, direction, k = self.key
        return f"{ds} {model} {corruption} {level} {direction} R@{k}: {_fmt(self.old)} -> {_fmt(self.new)}"


def _fmt(x: float | None) -> str:
    return "none" if x is None else f"{x:.3f}"


@dataclass
class UpdatePlan:
    """What an update does (:func:`plan_update`): the new thresholds and every change, with the counts its output
    and the file's header report."""

    thresholds: Thresholds
    method: str
    records: int = 0
    derived: int = 0  # records that support a threshold
    left_out: dict[str, int] = field(default_factory=dict)  # reason -> records without one
    added: list[Change] = field(default_factory=list)
    raised: list[Change] = field(default_factory=list)
    lowered: list[Change] = field(default_factory=list)  # lowered or removed (only with allow_lower)
    refused: list[Change] = field(default_factory=list)  # lowerings not done (no allow_lower): stored values kept
    unchanged: int = 0

    def counts_text(self) -> str:
        return (f"{len(self.added)} added, {len(self.raised)} raised, {len(self.lowered)} lowered (--allow-lower), "
                f"{len(self.refused)} kept (the run gives less; not lowered), {self.unchanged} unchanged")

    def left_out_text(self) -> str:
        total = sum(self.left_out.values())
        if not total:
            return "none left out"
        return f"{total} left out: " + ", ".join(f"{n} {why}" for why, n in sorted(self.left_out.items()))


def method_text(tolerance: float, margin: float | None) -> str:
    if margin is not None:
        return f"threshold = value - margin {margin:g}"
    return f"threshold = lower end of the 95% study-bootstrap interval - tolerance {tolerance:g}"


def plan_update(th: dict, records: Sequence[dict], tolerance: float = DEFAULT_TOLERANCE,
                margin: float | None = None, models: Sequence[str] | None = None, ratchet: bool = False,
                allow_lower: bool = False) -> UpdatePlan:
    """New thresholds from ``records`` merged into ``th`` (see the module docstring for the rules). Lowerings are
    done only with ``allow_lower``; without it they are listed in ``refused`` (a plain update must then stop)."""
    if margin is not None and not (0 <= margin < 1):
        raise ConfigError(f"margin {margin} must lie in [0, 1) (an absolute Recall@k difference)")
    if not (math.isfinite(tolerance) and 0 <= tolerance < 1):
        raise ConfigError(f"tolerance {tolerance} must lie in [0, 1) (an absolute Recall@k difference)")
    if ratchet and margin is not None:
        raise ConfigError("--ratchet compares study intervals; it cannot be combined with --margin")
    chosen = [r for r in records if not models or r["model"] in models]
    # a deep copy that keeps the keys' types (k is an int; a JSON round trip would make it a string)
    out = Thresholds(copy.deepcopy(dict(th)), copy.deepcopy(getattr(th, "evaluation_sets", {})))
    _merge_evaluation_sets(out, chosen)
    plan = UpdatePlan(out, method_text(tolerance, margin), records=len(chosen))
    for r in chosen:
        node = (out.setdefault(dataset_key(r), {}).setdefault(r["model"], {}).setdefault(r["corruption"], {})
                .setdefault(level_key(r["level"]), {}).setdefault(r["direction"], {}))
        k = int(r["k"])
        key = (dataset_key(r), r["model"], r["corruption"], level_key(r["level"]), r["direction"], k)
        old = node.get(k)
        new, why = derive(r, tolerance, margin)
        if new is None:
            plan.left_out[why] = plan.left_out.get(why, 0) + 1
        else:
            plan.derived += 1
        if old is None:
            if new is not None:
                node[k] = new
                plan.added.append(Change(key, None, new))
            continue
        # new > old is the ratchet's "significantly better": new = floor(lower bound - tolerance) > old exactly
        # when the run's study lower bound exceeds the stored threshold + tolerance (up to the 3-decimal floor)
        if new is not None and new > old:
            node[k] = new
            plan.raised.append(Change(key, old, new))
        elif new == old:
            plan.unchanged += 1
        elif allow_lower:
            if new is None:
                node.pop(k)
            else:
                node[k] = new
            plan.lowered.append(Change(key, old, new))
        else:  # a plain update stops on these; a ratchet keeps the stored values
            plan.refused.append(Change(key, old, new))
    plan.thresholds = Thresholds(_prune(out), out.evaluation_sets)
    used = set(plan.thresholds)
    plan.thresholds.evaluation_sets = {k: v for k, v in out.evaluation_sets.items() if k in used}
    return plan


def _merge_evaluation_sets(th: Thresholds, records: Sequence[dict]) -> None:
    """Record each key's evaluation set; records of another set than the one stored for their key are refused."""
    found: dict[str, dict] = {}
    for r in records:
        entry = evaluation_set_of(r)
        key = dataset_key(r)
        if key in found and found[key]["fingerprint"] != entry["fingerprint"]:
            raise ConfigError(f"the records mix two evaluation sets under {key} ({_describe_set(found[key])}; "
                              f"{_describe_set(entry)}); update from one run at a time")
        found.setdefault(key, entry)
    for key, entry in found.items():
        stored = th.evaluation_sets.get(key)
        if entry["fingerprint"] is None:
            if stored is not None and th.get(key):
                raise ConfigError(f"the thresholds of {key} were stored for evaluation set {_describe_set(stored)}; "
                                  "these records carry no dataset fingerprint (written by an older cxrbench), so "
                                  "they cannot be shown to be of the same set: run the sweep again")
            continue  # records from before fingerprints, for a key without one: nothing to record or compare
        if stored is not None and stored.get("fingerprint") != entry["fingerprint"] and th.get(key):
            raise ConfigError(f"the thresholds of {key} were stored for evaluation set {_describe_set(stored)}; "
                              f"these records are of {_describe_set(entry)}. A threshold must not gate another "
                              f"evaluation set: write these to another file (--file), or delete the {key} entries "
                              "(thresholds and evaluation_sets) to replace them deliberately")
        th.evaluation_sets[key] = entry


def update(th: dict, records: Sequence[dict], margin: float | None = None, models: Sequence[str] | None = None,
           tolerance: float = DEFAULT_TOLERANCE) -> Thresholds:
    """New thresholds from ``records`` merged into ``th`` (other entries kept), lowering where the run says so:
    :func:`plan_update` with ``allow_lower``. ``margin``: value - margin; else the study-interval rule."""
    return plan_update(th, records, tolerance=tolerance, margin=margin, models=models, allow_lower=True).thresholds


def _prune(node):
    if isinstance(node, dict):
        pruned = {k: _prune(v) for k, v in node.items()}
        return {k: v for k, v in pruned.items() if v != {}}
    return node


def save(th: dict, path: str | Path, source: str, margin: float | None = None, plan: UpdatePlan | None = None,
         command: str | None = None) -> None:
    """Write ``th`` with a header saying how it was made: the command, the method and, from ``plan``, how many
    thresholds the run gave and how many records were left out, and why."""
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    command = command or f"cxrbench thresholds update --from {source}" + ("" if margin is None else
                                                                          f" --margin {margin}")
    lines = ["Recall@k thresholds gating `pytest benchmarks/` and `cxrbench thresholds check`",
             "(a result passes when its value >= the threshold).",
             f"Last updated {when} by `{command}`."]
    if plan is not None:
        lines += [f"Method: {plan.method},",
                  "floored to 3 decimals; none is stored at or below chance (the record's `chance`, the Recall@k of",
                  "a random ranking), where a threshold could not fail.",
                  f"That run: {plan.records} records, {plan.derived} gave a threshold, {plan.left_out_text()}.",
                  f"This update: {plan.counts_text()}."]
    lines += ["A threshold gates only records of the evaluation set (dataset fingerprint) under evaluation_sets.",
              "Lowering a value hides a regression: it needs --allow-lower; say why in the commit message."]
    header = "".join(f"# {line}\n" for line in lines)
    doc: dict = {"version": 1, "thresholds": dict(th)}
    sets = getattr(th, "evaluation_sets", {})
    if sets:
        doc["evaluation_sets"] = sets
    body = yaml.safe_dump(doc, sort_keys=True, default_flow_style=None, width=120)
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


def gate_summary(checked: int, records: Sequence[dict], allow_empty: bool = False,
                 th: dict | None = None) -> str | None:
    """Why a gate that checked ``checked`` of ``records`` must fail (None when it checked something, or when
    ``allow_empty``): a gate that checks nothing cannot catch a regression. With ``th``, thresholds stored for
    another evaluation set are named."""
    if checked or allow_empty:
        return None
    datasets = sorted({dataset_key(r) for r in records}) or ["-"]
    models = sorted({r["model"] for r in records}) or ["-"]
    others = other_evaluation_sets(records, th) if th is not None else []
    why = f" ({'; '.join(others)})" if others else ""
    return (f"no stored threshold applies to these {len(records)} records ({', '.join(datasets)}; models "
            f"{', '.join(models)}){why}, so the gate checked nothing; store thresholds with `cxrbench thresholds "
            "update --from <results>`, or pass --allow-empty")
