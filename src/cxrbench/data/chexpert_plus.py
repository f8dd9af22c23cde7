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

Finding the files. The CSV is ``csv_file=`` (absolute, or relative to ``root``) or else the single
``df_chexpert_plus*.csv`` in ``root``. Image paths are resolved against one or more *image roots*, folders that
hold ``train/`` and/or ``valid/``. By default they are found under ``root``: ``root`` itself, ``root/PNG``,
``root/PNG/PNG`` (the PNG release's chunks unzipped into one folder: their members are ``PNG/train/...``), and
every chunk folder ``png_chexpert_plus_chunk_<k>`` in ``root`` or ``root/PNG`` (the release ships
``png_chexpert_plus_chunk_0.zip`` ... each extracted to its own folder), taking in each chunk the first of
``<chunk>``, ``<chunk>/PNG``, ``<chunk>/PNG/PNG`` that holds ``train/`` or ``valid/``; chunks in numeric order.
If none holds them, ``root`` is the one image root. ``image_root=`` (a folder or a list of folders) replaces the
search; each given folder descends the same way into ``PNG/`` or ``PNG/PNG/``. An image is looked up in every
image root in order and the first one that has it is used (``summary["images_per_root"]`` counts them).

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
from cxrbench.errors import ConfigError, DataError

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


CHUNK_GLOB = "png_chexpert_plus_chunk_*"


def _holds_splits(folder: Path) -> bool:
    return (folder / "train").is_dir() or (folder / "valid").is_dir()


def _descend(folder: Path) -> Path:
    """``folder``, ``folder/PNG`` or ``folder/PNG/PNG``: the first that holds train/ or valid/ (else ``folder``)."""
    return next((f for f in (folder, folder / "PNG", folder / "PNG" / "PNG") if _holds_splits(f)), folder)


def _chunk_key(path: Path) -> tuple[int, str]:
    tail = path.name.rpartition("_")[2]
    return (int(tail) if tail.isdigit() else -1, path.name)


def default_image_roots(root: Path) -> list[Path]:
    """The image roots found under ``root`` (module docstring); ``[root]`` when none holds train/ or valid/."""
    found = [f for f in (root, root / "PNG", root / "PNG" / "PNG") if _holds_splits(f)]
    for parent in (root, root / "PNG"):
        chunks = sorted((c for c in parent.glob(CHUNK_GLOB) if c.is_dir()), key=_chunk_key)
        found.extend(d for d in map(_descend, chunks) if _holds_splits(d))
    unique: dict[str, Path] = {}
    for f in found:
        unique.setdefault(os.path.realpath(f), f)
    return list(unique.values()) or [root]


def image_roots(root: Path, image_root: str | Path | Iterable[str | Path] | None) -> list[Path]:
    """The image roots: ``image_root`` (one folder or several, each descending into PNG/ or PNG/PNG/ when that
    holds the split folders) or those found under ``root``."""
    if image_root is None:
        return default_image_roots(root)
    given = [image_root] if isinstance(image_root, (str, os.PathLike)) else list(image_root)
    if not given:
        raise ConfigError("image_root= is empty; give a folder or a list of folders (or leave it out)")
    out = []
    for item in given:
        folder = Path(item).expanduser()
        if not folder.is_dir():
            raise DataError(f"{folder}: image root folder not found (image_root=)")
        out.append(_descend(folder))
    return out


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


def _find_image(resolvers: list[PathResolver], raw: str, suffix: str | None) -> tuple[int, Located, bool]:
    """The first image root holding the CSV path ``raw`` (index, where, suffix swapped); when none does, index 0
    and where it was looked for there. A path leading outside a root is returned at once (the caller refuses it)."""
    first: tuple[int, Located, bool] | None = None
    for i, resolver in enumerate(resolvers):
        where, swap = _locate(resolver, raw, suffix)
        if where.exists or where.outside:
            return i, where, swap
        first = first or (i, where, swap)
    assert first is not None  # there is at least one image root
    return first


def load(root: str | Path, split: str = "valid", policy: str = "longest", on_bad_image: str = "error",
         progress: bool = True, csv_file: str | Path | None = None,
         image_root: str | Path | Iterable[str | Path] | None = None, image_suffix: str | None = None,
         views: str | Iterable[str] | None = None, allow_outside: bool = False) -> Dataset:
    """CheXpert Plus studies of ``split`` ("valid", "train", "all"): see the module docstring."""
    keep_views = parse_views(views)
    view_filter = sorted(keep_views) if keep_views else None
    collector = StudyCollector(NAME, split, policy, on_bad_image, filters={"views": view_filter})
    suffix = _normalise_suffix(image_suffix)
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(f"{root}: CheXpert Plus root folder not found")
    csv_path = find_csv(root, csv_file)
    roots = image_roots(root, image_root)
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

    resolvers = [PathResolver(r) for r in roots]
    others = (f"; also looked under {len(roots) - 1} other image root{'s' if len(roots) > 2 else ''}: "
              f"{', '.join(map(str, roots[1:]))}") if len(roots) > 1 else ""
    root_of: dict[str, int] = {}
    swapped = 0
    for sid, entry in progress_bar(chosen, "check chexpert-plus images", "study", progress):
        images = []
        for row, raw, view in entry.rows:
            if keep_views is not None and view not in keep_views:
                collector.drop("images_not_in_views")
                continue
            if os.path.isabs(raw) and not allow_outside:
                raise DataError(f"{csv_path}, line {row.line}: absolute image path {raw!r}; CSV paths are "
                                f"relative to the image root {roots[0]} (pass allow_outside=True to accept it)")
            k, where, swap = _find_image(resolvers, raw, suffix)
            if where.outside and not allow_outside:
                raise DataError(f"{csv_path}, line {row.line}: image path {raw!r} leads outside the image root "
                                f"{roots[k]} (to {where.path}); pass allow_outside=True to accept it")
            if where.exists:
                swapped += swap
                root_of[where.path] = k
                images.append(ImageRecord(PurePosixPath(raw.replace("\\", "/")).as_posix(), where.path, view))
            else:
                tried = f" (nor with {_SWAP.get(PurePosixPath(raw).suffix.lower())})" if suffix is None else ""
                collector.missing_image(f"{where.path}{tried}", f"study {sid!r}, {csv_path} line {row.line}{others}",
                                        "check root/image_root")
        if images:
            collector.add(_study(sid, entry, images))
        else:
            collector.drop("dropped_no_images")
    ds = collector.finish(
        csv_path, len(chosen),
        facts={"csv_rows": len(table.rows), "studies_per_split_in_csv": dict(sorted(present.items())),
               "studies_in_split": len(chosen)},
        details={"image_suffix_swapped": swapped, "image_roots": [str(r) for r in roots]},
        provenance={"root": str(root.resolve()), "image_roots": [str(r.resolve()) for r in roots],
                    "index_files": [table.fingerprint],
                    "options": {"split": split, "image_suffix": suffix, "views": view_filter,
                                "allow_outside": allow_outside},
                    "source": ATTRIBUTION})
    per_root = [0] * len(roots)
    for im in ds.images:
        per_root[root_of[str(im.source)]] += 1
    ds.summary["images_per_root"] = {str(r): n for r, n in zip(roots, per_root)}
    return ds
