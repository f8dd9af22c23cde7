"""``chexpert-plus``: CheXpert Plus (Chambon et al. 2024) reports paired with their CheXpert images.

Index: the CheXpert Plus CSV (``df_chexpert_plus_240401.csv``), one row per image. Columns read:

* ``path_to_image`` (required), e.g. ``train/patient00001/study1/view1_frontal.jpg``. The study id is the
  path's patient and study folders, ``patient00001/study1``; rows of one study are its images.
* ``section_findings``, ``section_impression`` (required): the report's sections. Empty sections are empty cells
  (pandas' NaN when the CSV was written); a cell holding just ``nan`` is read as empty too.
* ``split`` (required): ``train`` or ``valid`` (any label the CSV uses; ``split="all"`` keeps every row).
* optional: ``frontal_lateral`` (``Frontal``/``Lateral``: the image's view; without it, or when empty, the
  file name's ``_frontal``/``_lateral`` decides), ``ap_pa``, ``deid_patient_id``,
  ``patient_report_date_order`` (kept in each study's ``meta``). Other columns are ignored.

Finding the files. ``root`` is the folder that holds the images' ``train/`` and ``valid/`` folders. The CSV is
``csv_file=`` (absolute, or relative to ``root``) or else the single ``df_chexpert_plus*.csv`` in ``root``.
``image_root=`` overrides where image paths are resolved (default: ``root``; or ``root/PNG`` when ``root`` has a
``PNG`` folder and no ``train``/``valid`` folder).

JPEG or PNG. The CSV names ``.jpg`` files (the original CheXpert JPEGs); the CheXpert Plus PNG release stores
the same images as ``.png``. With ``image_suffix=None`` (default) each image is looked up at the CSV path and,
when that file does not exist but the same path with the other suffix (``.png`` for ``.jpg``/``.jpeg``, ``.jpg``
for ``.png``) does, that file is used (counted in ``summary["image_suffix_swapped"]``). ``image_suffix=".png"``
(or ``".jpg"``) replaces every path's suffix and looks nowhere else.

Checks (errors name the CSV and its line: physical line, header = line 1): missing columns; an empty or
too-short ``path_to_image``; an absolute path, or one leading outside the image root once ``..`` and symbolic
links are resolved (allowed only with ``allow_outside=True``); the same image listed twice; rows of one study
that disagree on the report sections (whitespace collapsed) or the split; a missing image file (or with
``on_bad_image="skip"`` a warning and a count; a study left without images is dropped and counted); an empty
split; nothing left after the policy. Default split: ``valid`` (the 200 hand-checked studies of CheXpert's
validation set); default policy: whatever the registry says (``longest`` keeps studies that have only an
impression, common in CheXpert Plus).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

from cxrbench.data.common import (
    Located,
    PathResolver,
    Row,
    StudyCollector,
    Table,
    check_choice,
    parse_views,
    progress_bar,
    read_csv,
)
from cxrbench.data.records import Dataset, ImageRecord, Study, collapse_whitespace
from cxrbench.errors import DataError

NAME = "chexpert-plus"
CSV_GLOB = "df_chexpert_plus*.csv"
REQUIRED_COLUMNS = ("path_to_image", "section_findings", "section_impression", "split")
OPTIONAL_COLUMNS = ("frontal_lateral", "ap_pa", "deid_patient_id", "patient_report_date_order")
_SWAP = {".jpg": ".png", ".jpeg": ".png", ".png": ".jpg"}
ATTRIBUTION = ("CheXpert Plus, Chambon P., Delbrouck J.-B. et al., 'CheXpert Plus: Augmenting a Large Chest X-ray "
               "Dataset with Text Radiology Reports, Patient Demographics and Additional Image Formats', 2024; "
               "Stanford University School of Medicine CheXpert Plus Dataset Research Use Agreement.")


def find_csv(root: Path, csv_file: str | Path | None) -> Path:
    """The CheXpert Plus CSV: ``csv_file`` (relative to ``root`` unless absolute) or the one match in ``root``."""
    if csv_file is not None:
        p = Path(csv_file).expanduser()
        p = p if p.is_absolute() else root / p
        if not p.is_file():
            raise DataError(f"{p}: CheXpert Plus CSV not found (csv_file={str(csv_file)!r})")
        return p
    found = sorted(root.glob(CSV_GLOB))
    if not found:
        raise DataError(f"{root}: no {CSV_GLOB} here; put the CheXpert Plus CSV (df_chexpert_plus_240401.csv) in "
                        "the root folder or pass csv_file=")
    if len(found) > 1:
        raise DataError(f"{root}: several CheXpert Plus CSVs ({', '.join(p.name for p in found)}); pass "
                        "csv_file= to choose one")
    return found[0]


def study_id_of(path: str) -> str | None:
    """``train/patient00001/study1/view1_frontal.jpg`` -> ``patient00001/study1`` (None if too short)."""
    parts = PurePosixPath(path.replace("\\", "/")).parts
    return f"{parts[-3]}/{parts[-2]}" if len(parts) >= 3 else None


def _section(value: str | None) -> str:
    text = collapse_whitespace(value)
    return "" if text.lower() == "nan" else text


def _view(values: dict[str, str], path: str, csv_path: Path, line: int) -> str | None:
    raw = values.get("frontal_lateral", "").strip().lower()
    if raw in ("frontal", "lateral"):
        return raw
    if raw and raw != "nan":
        raise DataError(f"{csv_path}, line {line}: frontal_lateral {values['frontal_lateral']!r} is not Frontal "
                        "or Lateral (leave it empty when unknown)")
    stem = PurePosixPath(path).stem.lower()
    if stem.endswith("_frontal"):
        return "frontal"
    if stem.endswith("_lateral"):
        return "lateral"
    return None


def _normalise_suffix(image_suffix: str | None) -> str | None:
    if image_suffix is None:
        return None
    suffix = image_suffix if image_suffix.startswith(".") else f".{image_suffix}"
    check_choice("image_suffix", suffix.lower(), (".jpg", ".jpeg", ".png"))
    return suffix


def default_image_root(root: Path) -> Path:
    if not (root / "train").is_dir() and not (root / "valid").is_dir() and (root / "PNG").is_dir():
        return root / "PNG"
    return root


class _StudyRows:
    def __init__(self, row: Row, sections: tuple[str, str], split: str):
        self.first = row
        self.sections = sections
        self.split = split
        self.rows: list[tuple[Row, str, str | None]] = []  # row, path as written, view


def _read_rows(csv_path: Path) -> Table:
    def check(columns: list[str]) -> None:
        missing = [c for c in REQUIRED_COLUMNS if c not in columns]
        if missing:
            raise DataError(f"{csv_path}: missing column(s) {', '.join(map(repr, missing))}; a CheXpert Plus CSV "
                            f"has {', '.join(REQUIRED_COLUMNS)} (and frontal_lateral, ap_pa, ...)")

    table = read_csv(csv_path, check, keep=(*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS))
    if not table.rows:
        raise DataError(f"{csv_path}: no data rows")
    return table


def _group_rows(csv_path: Path, rows: list[Row]) -> dict[str, _StudyRows]:
    """The CSV's rows grouped into studies (by the image path's patient/study folders), every row checked."""
    studies: dict[str, _StudyRows] = {}
    seen: dict[str, int] = {}
    for row in rows:
        v = row.values
        raw = v["path_to_image"]
        sid = study_id_of(raw) if raw else None
        if sid is None:
            raise DataError(f"{csv_path}, line {row.line}: path_to_image {raw!r} is not a "
                            "<split>/<patient>/<study>/<view>.jpg path")
        norm = os.path.normpath(raw)
        if norm in seen:
            raise DataError(f"{csv_path}: lines {seen[norm]} and {row.line} both list image {raw!r}")
        seen[norm] = row.line
        sections = (_section(v["section_findings"]), _section(v["section_impression"]))
        entry = studies.get(sid)
        if entry is None:
            entry = studies[sid] = _StudyRows(row, sections, v["split"])
        elif entry.sections != sections:
            raise DataError(f"{csv_path}: lines {entry.first.line} and {row.line} give study {sid!r} different "
                            "report sections; rows of one study must repeat the same report")
        elif entry.split != v["split"]:
            raise DataError(f"{csv_path}: lines {entry.first.line} and {row.line} put study {sid!r} in different "
                            f"splits ({entry.split!r}, {v['split']!r})")
        entry.rows.append((row, raw, _view(v, raw, csv_path, row.line)))
    return studies


def _study(sid: str, entry: _StudyRows, images: list[ImageRecord]) -> Study:
    first = entry.first.values
    meta = {
        "lines": [r.line for r, _, _ in entry.rows],
        "split": entry.split,
        "patient_id": first.get("deid_patient_id") or None,
        "report_date_order": first.get("patient_report_date_order") or None,
        "ap_pa": {r.values["path_to_image"]: r.values.get("ap_pa") or None for r, _, _ in entry.rows},
    }
    return Study(sid, tuple(images), entry.sections[0], entry.sections[1], meta=meta)


def _locate(resolver: PathResolver, raw: str, suffix: str | None) -> tuple[Located, bool]:
    """Where the CSV's image path ``raw`` leads: with its suffix replaced by ``suffix``; or (``suffix=None``) as
    written, else with the other suffix when only that file exists (then True)."""
    where = resolver.locate(str(PurePosixPath(raw).with_suffix(suffix)) if suffix else raw)
    if not where.exists and suffix is None:
        other = _SWAP.get(PurePosixPath(raw).suffix.lower())
        alt = resolver.locate(str(PurePosixPath(raw).with_suffix(other))) if other else None
        if alt is not None and alt.exists:
            return alt, True
    return where, False


def load(root: str | Path, split: str = "valid", policy: str = "longest", on_bad_image: str = "error",
         progress: bool = True, csv_file: str | Path | None = None, image_root: str | Path | None = None,
         image_suffix: str | None = None, views: str | Iterable[str] | None = None,
         allow_outside: bool = False) -> Dataset:
    """CheXpert Plus studies of ``split`` ("valid", "train", "all"): see the module docstring."""
    keep_views = parse_views(views)
    view_filter = sorted(keep_views) if keep_views else None
    collector = StudyCollector(NAME, split, policy, on_bad_image, filters={"views": view_filter})
    suffix = _normalise_suffix(image_suffix)
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(f"{root}: CheXpert Plus root folder not found")
    csv_path = find_csv(root, csv_file)
    images_at = Path(image_root).expanduser() if image_root is not None else default_image_root(root)
    if not images_at.is_dir():
        raise DataError(f"{images_at}: image root folder not found")
    table = _read_rows(csv_path)
    studies = _group_rows(csv_path, table.rows)
    present: dict[str, int] = {}
    for e in studies.values():
        present[e.split] = present.get(e.split, 0) + 1
    if split != "all" and split not in present:
        raise DataError(
            f"{csv_path}: no studies in split {split!r}; the CSV has "
            f"{', '.join(f'{k!r} ({n} studies)' for k, n in sorted(present.items()))}; or use split='all'")
    chosen = [(sid, e) for sid, e in studies.items() if split == "all" or e.split == split]

    resolver = PathResolver(images_at)
    swapped = 0
    for sid, entry in progress_bar(chosen, "check chexpert-plus images", "study", progress):
        images = []
        for row, raw, view in entry.rows:
            if keep_views is not None and view not in keep_views:
                collector.drop("images_not_in_views")
                continue
            if os.path.isabs(raw) and not allow_outside:
                raise DataError(f"{csv_path}, line {row.line}: absolute image path {raw!r}; CSV paths are "
                                f"relative to the image root {images_at} (pass allow_outside=True to accept it)")
            where, swap = _locate(resolver, raw, suffix)
            swapped += swap
            if where.outside and not allow_outside:
                raise DataError(f"{csv_path}, line {row.line}: image path {raw!r} leads outside the image root "
                                f"{images_at} (to {where.path}); pass allow_outside=True to accept it")
            if where.exists:
                images.append(ImageRecord(PurePosixPath(raw.replace("\\", "/")).as_posix(), where.path, view))
            else:
                tried = f" (nor with {_SWAP.get(PurePosixPath(raw).suffix.lower())})" if suffix is None else ""
                collector.missing_image(f"{where.path}{tried}", f"study {sid!r}, {csv_path} line {row.line}",
                                        "check root/image_root")
        if images:
            collector.add(_study(sid, entry, images))
        else:
            collector.drop("dropped_no_images")
    return collector.finish(
        csv_path, len(chosen),
        facts={"csv_rows": len(table.rows), "studies_per_split_in_csv": dict(sorted(present.items())),
               "studies_in_split": len(chosen)},
        details={"image_suffix_swapped": swapped},
        provenance={"root": str(root.resolve()), "image_root": str(images_at.resolve()),
                    "index_files": [table.fingerprint],
                    "options": {"split": split, "image_suffix": suffix, "views": view_filter,
                                "allow_outside": allow_outside},
                    "source": ATTRIBUTION})
