"""``manifest``: any image-report collection described by one CSV or JSONL file.

``root`` is the manifest file itself (``*.csv`` or ``*.jsonl``, chosen by suffix) or a folder holding exactly one
of ``manifest.csv`` / ``manifest.jsonl``. One row per image:

=============== ========= ======================================================================================
column          required  meaning
=============== ========= ======================================================================================
``study_id``    yes       the study (report) the image belongs to; rows of one study share its report
``image_path``  yes       the image file (JPEG, PNG, DICOM), relative to the manifest's folder
``findings``    one of    the FINDINGS section
``impression``  these     the IMPRESSION section
``report``      three     the whole report text, when it is not split into sections (see below)
``view``        no        ``frontal`` / ``lateral`` (also ``PA``, ``AP``, ``LL``, ``RL``, ``LATERAL``); empty: unknown
``split``       no        any label (``train``, ``test``...); ``split=`` then keeps only that label's rows
=============== ========= ======================================================================================

Report text and policies. A row gives either sections (``findings`` and/or ``impression``) or a whole
``report``, not both (a row with a non-empty ``report`` and a non-empty section is an error). A ``report`` counts
as FINDINGS + IMPRESSION text for every policy: ``findings``, ``impression``, ``findings+impression`` and
``longest`` all return the report unchanged (it is stored as the study's FINDINGS, or as its IMPRESSION under
the ``impression`` policy, so that it is never dropped as empty nor doubled). Studies with sections follow the
policies as usual. A manifest may mix both kinds of study; the summary counts them (``text_source``).

Checks (every error names the manifest file and its line; CSV lines are physical lines, the header is line 1):

* unknown columns are an error naming them and listing the known ones, unless ``extra_columns="ignore"``;
  missing ``study_id`` / ``image_path`` or no text column is an error;
* rows of one study must agree on the report text (compared with whitespace collapsed) and on the split: the
  error names both lines; the same (study, image) twice, or one image file listed for two studies, names both
  lines too;
* relative image paths are resolved against the manifest's folder, with ``..`` and symbolic links resolved; a
  path that ends up outside that folder is an error, and so is an absolute path: both are allowed only with
  ``allow_outside=True`` (the manifest then vouches for every path; absolute paths are used as given);
* every image of the selected rows must exist (one ``stat``; decoding happens later, per image). A missing file is
  an error naming it and its line, or with ``on_bad_image="skip"`` a warning and a count
  (``summary["skipped_missing_images"]``); a study left with no image is dropped and counted;
* an empty result (no rows in the split, nothing left after the policy) is an error.
"""

from __future__ import annotations

import io
import json
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from cxrbench.data.common import (
    HashingReader,
    PathResolver,
    Row,
    StudyCollector,
    check_choice,
    parse_views,
    progress_bar,
    read_csv,
    utf8_error,
)
from cxrbench.data.records import Dataset, ImageRecord, Study, collapse_whitespace
from cxrbench.errors import ConfigError, DataError

NAME = "manifest"
REQUIRED_COLUMNS = ("study_id", "image_path")
TEXT_COLUMNS = ("findings", "impression", "report")
KNOWN_COLUMNS = (*REQUIRED_COLUMNS, *TEXT_COLUMNS, "view", "split")
MANIFEST_NAMES = ("manifest.csv", "manifest.jsonl")
VIEW_NAMES = {"frontal": "frontal", "lateral": "lateral", "pa": "frontal", "ap": "frontal", "ll": "lateral",
              "rl": "lateral", "lat": "lateral"}


# --- reading the manifest -----------------------------------------------------------------------------------


def find_manifest(root: str | Path) -> Path:
    """The manifest file ``root`` names, or the manifest.csv / manifest.jsonl inside the folder ``root``."""
    p = Path(root).expanduser()
    if p.is_dir():
        found = [p / n for n in MANIFEST_NAMES if (p / n).is_file()]
        if not found:
            raise DataError(f"{p}: folder has no {' or '.join(MANIFEST_NAMES)}; pass the manifest file as root")
        if len(found) > 1:
            raise DataError(f"{p}: folder has both {' and '.join(MANIFEST_NAMES)}; pass the one to use as root")
        return found[0]
    if not p.is_file():
        raise DataError(f"{p}: manifest not found; root must be a .csv or .jsonl file, or a folder holding "
                        f"{' or '.join(MANIFEST_NAMES)}")
    if p.suffix.lower() not in (".csv", ".jsonl"):
        raise ConfigError(f"{p}: a manifest must end in .csv or .jsonl (got {p.suffix or 'no suffix'!r})")
    return p


def _json_value(path: Path, line: int, key: str, value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, int) and not isinstance(value, bool) and key in ("study_id", "split"):
        return str(value)
    raise DataError(f"{path}, line {line}: {key!r} must be a string (or null), not {type(value).__name__} "
                    f"{value!r}")


def _jsonl_rows(path: Path) -> tuple[list[str], list[Row], dict]:
    """Keys (in first-seen order), rows and fingerprint of a JSONL manifest (hashed as it is read)."""
    columns: dict[str, None] = {}
    rows = []
    try:
        with HashingReader(path) as hashing, io.TextIOWrapper(hashing.buffered(), encoding="utf-8-sig") as fh:
            for line, text in enumerate(fh, start=1):
                if not text.strip():
                    continue
                try:
                    obj = json.loads(text)
                except json.JSONDecodeError as exc:
                    raise DataError(f"{path}, line {line}: not valid JSON ({exc})") from exc
                if not isinstance(obj, dict):
                    raise DataError(f"{path}, line {line}: each line must be a JSON object, got "
                                    f"{type(obj).__name__}")
                columns.update(dict.fromkeys(obj))
                rows.append(Row(line, {k: _json_value(path, line, k, v) for k, v in obj.items()}))
            fingerprint = hashing.fingerprint()
    except UnicodeDecodeError as exc:
        raise utf8_error(path, exc) from exc
    return list(columns), rows, fingerprint


def _check_columns(path: Path, columns: list[str], extra_columns: str) -> None:
    dupes = sorted({c for c in columns if columns.count(c) > 1})
    if dupes:
        raise DataError(f"{path}: column(s) {', '.join(map(repr, dupes))} appear more than once in the header")
    unknown = [c for c in columns if c not in KNOWN_COLUMNS]
    if unknown and extra_columns == "error":
        raise DataError(f"{path}: unknown column(s) {', '.join(map(repr, unknown))}; known columns: "
                        f"{', '.join(KNOWN_COLUMNS)} (pass extra_columns='ignore' to ignore the others)")
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(map(repr, missing))}; a manifest needs "
                        f"{', '.join(REQUIRED_COLUMNS)} and at least one of {', '.join(TEXT_COLUMNS)}")
    if not any(c in columns for c in TEXT_COLUMNS):
        raise DataError(f"{path}: no report text column; add at least one of {', '.join(TEXT_COLUMNS)}")


def _view(path: Path, row: Row) -> str | None:
    raw = row.values.get("view", "")
    if not raw:
        return None
    view = VIEW_NAMES.get(raw.lower())
    if view is None:
        raise DataError(f"{path}, line {row.line}: view {raw!r} is not one of frontal, lateral (or PA, AP, LL, "
                        "RL, LATERAL); leave it empty when unknown")
    return view


@dataclass
class _StudyRows:
    first: Row
    text: tuple[str, str, str]
    split: str
    images: list[tuple[Row, str, str | None, bool]] = field(default_factory=list)  # row, real path, view, exists


def _read_rows(path: Path, extra_columns: str) -> tuple[list[str], list[Row], dict]:
    """The manifest's columns, rows and fingerprint (CSV or JSONL by suffix), columns checked."""
    if path.suffix.lower() == ".csv":
        table = read_csv(path, lambda cols: _check_columns(path, cols, extra_columns))
        return table.columns, table.rows, table.fingerprint
    columns, rows, fingerprint = _jsonl_rows(path)
    if not rows:
        raise DataError(f"{path}: no rows; each line must be a JSON object with "
                        f"{', '.join(REQUIRED_COLUMNS)} and report text")
    _check_columns(path, columns, extra_columns)
    return columns, rows, fingerprint


def _group_rows(path: Path, rows: list[Row], allow_outside: bool) -> dict[str, _StudyRows]:
    """The manifest's rows grouped into studies, every row checked (text, split, path, duplicates)."""
    base = path.parent.resolve()
    resolver = PathResolver(base)
    studies: dict[str, _StudyRows] = {}
    seen_pairs: dict[tuple[str, str], int] = {}
    seen_images: dict[str, tuple[str, int]] = {}
    for row in rows:
        v = row.values
        for key in REQUIRED_COLUMNS:
            if not v.get(key):
                raise DataError(f"{path}, line {row.line}: empty or missing {key!r}")
        sid, raw = v["study_id"], v["image_path"]
        findings, impression, report = (collapse_whitespace(v.get(k)) for k in TEXT_COLUMNS)
        if report and (findings or impression):
            raise DataError(f"{path}, line {row.line}: study {sid!r} gives both 'report' and "
                            "'findings'/'impression'; give the whole report OR its sections")
        text = (findings, impression, report)
        row_split = v.get("split", "")
        view = _view(path, row)
        entry = studies.get(sid)
        if entry is None:
            entry = studies[sid] = _StudyRows(row, text, row_split)
        else:
            if entry.text != text:
                raise DataError(f"{path}: lines {entry.first.line} and {row.line} give study {sid!r} different "
                                "report texts; rows of one study must repeat the same report")
            if entry.split != row_split:
                raise DataError(f"{path}: lines {entry.first.line} and {row.line} put study {sid!r} in different "
                                f"splits ({entry.split!r}, {row_split!r})")
        if os.path.isabs(raw) and not allow_outside:
            raise DataError(f"{path}, line {row.line}: absolute image path {raw!r}; write it relative to "
                            f"{base}, or pass allow_outside=True")
        where = resolver.locate(raw)
        if where.outside and not allow_outside:
            raise DataError(f"{path}, line {row.line}: image path {raw!r} leads outside the manifest's folder "
                            f"{base} (to {where.path}); pass allow_outside=True to accept it")
        pair = (sid, where.path)
        if pair in seen_pairs:
            raise DataError(f"{path}: lines {seen_pairs[pair]} and {row.line} both list image {raw!r} for study "
                            f"{sid!r}; remove the duplicate row")
        seen_pairs[pair] = row.line
        if where.path in seen_images:
            other_sid, other_line = seen_images[where.path]
            raise DataError(f"{path}: lines {other_line} and {row.line} list the same image file {raw!r} for "
                            f"studies {other_sid!r} and {sid!r}; an image belongs to one study")
        seen_images[where.path] = (sid, row.line)
        entry.images.append((row, where.path, view, where.exists))
    if not studies:
        raise DataError(f"{path}: no rows; add one row per image")
    return studies


def load(root: str | Path, split: str | None = None, policy: str = "longest", on_bad_image: str = "error",
         progress: bool = True, allow_outside: bool = False, extra_columns: str = "error",
         views: str | Iterable[str] | None = None) -> Dataset:
    """The studies a CSV/JSONL manifest lists (see the module docstring for columns, checks and policies).

    ``split``: keep rows whose ``split`` column equals it (None or "all": every row). ``views``: keep only
    frontal or lateral images (images of unknown view are then left out; counted). ``allow_outside``: accept
    image paths outside the manifest's folder, absolute ones included. ``extra_columns``: "error" or "ignore".
    """
    keep_views = parse_views(views)
    view_filter = sorted(keep_views) if keep_views else None
    collector = StudyCollector(NAME, split or "all", policy, on_bad_image, filters={"views": view_filter})
    check_choice("extra_columns", extra_columns, ("error", "ignore"))
    path = find_manifest(root)
    columns, rows, fingerprint = _read_rows(path, extra_columns)
    if split is not None and split != "all" and "split" not in columns:
        raise ConfigError(f"{path}: split={split!r} asks for a split, but the manifest has no 'split' column "
                          "(omit split to use every row)")
    studies = _group_rows(path, rows, allow_outside)
    present = sorted({e.split for e in studies.values()})
    chosen = [(sid, e) for sid, e in studies.items() if split in (None, "all") or e.split == split]
    if not chosen:
        raise DataError(f"{path}: no rows with split {split!r}; the manifest has splits "
                        f"{', '.join(repr(s) for s in present)}")

    sources = {"sections": 0, "report": 0}
    for sid, entry in progress_bar(chosen, "check manifest images", "study", progress):
        images = []
        for row, real, view, exists in entry.images:
            if keep_views is not None and view not in keep_views:
                collector.drop("images_not_in_views")
            elif not exists:
                collector.missing_image(real, f"image of study {sid!r}, {path} line {row.line}", "fix the path")
            else:  # id: the path as written, normalised (unique: two spellings of one file were refused above)
                images.append(ImageRecord(Path(os.path.normpath(row.values["image_path"])).as_posix(), real, view))
        if not images:
            collector.drop("dropped_no_images")
            continue
        findings, impression, report = entry.text
        source = "report" if report else "sections"
        sources[source] += 1
        if report:
            findings, impression = ("", report) if policy == "impression" else (report, "")
        collector.add(Study(sid, tuple(images), findings, impression,
                            meta={"lines": [r.line for r, *_ in entry.images], "text_source": source,
                                  "split": entry.split}))
    return collector.finish(
        path, len(chosen),
        facts={"splits_in_manifest": present, "rows": len(rows), "studies_in_split": len(chosen)},
        details={"text_source": sources},
        provenance={"root": str(path.parent.resolve()), "index_files": [fingerprint],
                    "options": {"split": split, "allow_outside": allow_outside, "extra_columns": extra_columns,
                                "views": view_filter}})
