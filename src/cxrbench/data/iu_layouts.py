"""Where the IU X-ray images are: the three layouts researchers download, detected from the folder ``root``.

The reports, the split and the studies always come from the OpenI XML reports in the torchxrayvision wheel
(:mod:`cxrbench.data.iu_reports`); a layout only says which image file belongs to which report (and, for the
Kaggle layout, which view it is). Each layout is an :class:`ImageSource`; :func:`open_layout` detects it.

``openi`` (the OpenI releases, https://openi.nlm.nih.gov/faq)
    PNG release ``NLMCXR_png``: ``CXR1_1_IM-0001-3001.png``, the report's ``parentImage`` id + ``.png``. DICOM
    release ``NLMCXR_dcm``: ``<n>/1_IM-0001-3001.dcm`` style files; the file of a ``parentImage`` id is the
    ``filename`` column of torchxrayvision's ``nlmcxr_dicom_metadata.csv.gz`` (``CXR1000_IM-0003-2001`` ->
    ``1000_IM-0003-2001.dcm``), else the id without ``CXR``, else for ids such as ``CXR1_1_IM-0001-3001`` whose
    metadata row reads ``CXR1_IM-0001-3001``, ``<uid number>_IM-....dcm``. Files are searched directly in
    ``root``, else in each folder one level below; ``format="png"|"dcm"`` chooses when both are there.
``kaggle`` (Kaggle dataset ``raddar/chest-xrays-indiana-university``)
    ``root`` holds ``indiana_reports.csv`` (columns ``uid, MeSH, Problems, image, indication, comparison,
    findings, impression``; ``uid`` is the report number: ``1`` for ``CXR1``), ``indiana_projections.csv``
    (columns ``uid, filename, projection``; ``projection`` is ``Frontal`` or ``Lateral``) and
    ``images/images_normalized/<filename>``. A file name is the OpenI DICOM file name + ``.png``
    (``1_IM-0001-4001.dcm.png``), so a ``parentImage`` id is matched through the DICOM names above. The image's
    view is the row's ``projection`` (it sometimes differs from the rule the other layouts use:
    ``views_differing_from_rule`` counts it); rows of a loaded study that match none of its ``parentImage`` ids
    are counted (``projection_rows_not_matched``). ``indiana_reports.csv`` is not read: its text is that of the
    same XML reports.
``r2gen`` (R2Gen, github.com/cuhksz-nlp/R2Gen, and most report-generation code after it)
    ``root`` is the ``iu_xray`` folder (or the folder holding it) with ``annotation.json`` and ``images/``.
    ``annotation.json`` maps ``train``, ``val`` and ``test`` to lists of ``{"id": "CXR2384_IM-0942", "report":
    ..., "image_path": ["CXR2384_IM-0942/0.png", "CXR2384_IM-0942/1.png"], "split": ...}``; the images are
    ``images/<image_path>``. The study of an entry is the part of its ``id`` before the first ``_``
    (``CXR2384``). R2Gen's file names do not say which OpenI image or view a file is, so image ids are the
    ``image_path`` values and views are unknown. R2Gen keeps only part of the IU studies (its loader reads two
    images per study, and its ``report`` is the FINDINGS section: ``r2gen_report_differs`` counts loaded
    studies whose R2Gen text is not the XML FINDINGS, whitespace collapsed). The splits ``r2gen-train``,
    ``r2gen-val``, ``r2gen-test`` select R2Gen's own split (:data:`R2GEN_SPLITS`).

Sources: the column names and file patterns are those read by public code for each layout (docs/datasets.md,
"IU X-ray layouts", cites it).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Protocol

from cxrbench.data.common import PathResolver, check_choice, file_fingerprint, read_csv
from cxrbench.data.iu_reports import IUReport, dicom_metadata, image_views
from cxrbench.data.records import collapse_whitespace
from cxrbench.errors import ConfigError, DataError

LAYOUTS = ("openi", "kaggle", "r2gen")
FORMATS = ("png", "dcm")
#: ``split=`` values that select R2Gen's own split (r2gen layout only) -> the key in annotation.json.
R2GEN_SPLITS = {"r2gen-train": "train", "r2gen-val": "val", "r2gen-test": "test"}
KAGGLE_REPORTS = "indiana_reports.csv"
KAGGLE_PROJECTIONS = "indiana_projections.csv"
KAGGLE_PROJECTION_COLUMNS = ("uid", "filename", "projection")
KAGGLE_IMAGE_FOLDERS = ("images/images_normalized", "images_normalized", "images")
R2GEN_ANNOTATION = "annotation.json"
R2GEN_ENTRY_KEYS = ("id", "report", "image_path")
_KAGGLE_VIEWS = {"frontal": "frontal", "lateral": "lateral"}
_R2GEN_FOLDER = re.compile(r"^CXR\d+_")

LAYOUTS_HELP = (
    "cxrbench reads three IU X-ray layouts: OpenI (the NLMCXR_png folder of CXR<n>_IM-....png files, or "
    "NLMCXR_dcm with <n>/<n>_IM-....dcm, in root or one folder below); Kaggle 'chest-xrays-indiana-university' "
    f"(root holds {KAGGLE_REPORTS}, {KAGGLE_PROJECTIONS} and images/images_normalized/<n>_IM-....dcm.png); R2Gen "
    f"(root is the iu_xray folder holding {R2GEN_ANNOTATION} and images/CXR<n>_IM-.../0.png). For anything else, "
    "list your images and reports in a CSV or JSONL manifest (study_id, image_path, findings/impression) and "
    "use the 'manifest' dataset")


@dataclass(frozen=True)
class FoundImage:
    """One image of a report in a layout: ``path`` None when the file is missing (``expected`` names where it
    was looked for, ``context`` where it is listed); ``view_source`` says where the view came from."""

    image_id: str
    path: Path | None
    view: str | None
    view_source: str
    expected: str
    context: str


class ImageSource(Protocol):
    layout: str
    root: Path
    format: str

    def images(self, report: IUReport, known_views: dict[str, str]) -> list[FoundImage]: ...

    def facts(self) -> dict: ...

    def index_files(self) -> list[dict]: ...


# --- OpenI ------------------------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def dicom_filenames() -> dict[str, str]:
    """parentImage id -> DICOM file name (``filename`` column of the wheel's DICOM metadata, without ``./``)."""
    out = {}
    for row in dicom_metadata():
        name = (row.get("filename") or "").strip()
        if row.get("imageid") and name:
            out[row["imageid"]] = os.path.basename(name)
    return out


def candidate_names(image_id: str, fmt: str, dicom_names: dict[str, str] | None = None) -> list[str]:
    """File names an OpenI ``parentImage`` id may have in the PNG or DICOM release, most likely first."""
    if fmt == "png":
        return [f"{image_id}.png"]
    names = []
    if dicom_names and image_id in dicom_names:
        names.append(dicom_names[image_id])
    bare = image_id[3:] if image_id.upper().startswith("CXR") else image_id
    names.append(f"{bare}.dcm")
    number, sep, rest = bare.partition("_")
    if sep and "_IM-" in f"_{rest}" and not rest.startswith("IM-"):
        names.append(f"{number}_{rest[rest.index('IM-'):]}.dcm")  # CXR1_1_IM-0001-3001 -> 1_IM-0001-3001.dcm
    return list(dict.fromkeys(names))


@dataclass
class ImageIndex:
    """The OpenI image files found under ``root``: ``files`` maps lower-case file names to paths; ``folders``
    says whether they are in ``root`` itself ("flat") or one folder below ("subfolders")."""

    root: Path
    format: str
    folders: str
    files: dict[str, Path] = field(default_factory=dict)

    def expected(self, name: str) -> str:
        return str(self.root / name) if self.folders == "flat" else f"{self.root}{os.sep}*{os.sep}{name}"


def _scan(folder: Path) -> tuple[dict[str, list[Path]], list[Path]]:
    files: dict[str, list[Path]] = {f: [] for f in FORMATS}
    subdirs = []
    try:
        with os.scandir(folder) as it:
            for e in it:
                if e.name.startswith("."):
                    continue
                if e.is_dir():
                    subdirs.append(Path(e.path))
                elif e.is_file():
                    suffix = os.path.splitext(e.name)[1].lower().lstrip(".")
                    if suffix in files:
                        files[suffix].append(Path(e.path))
    except OSError as exc:
        raise DataError(f"{folder}: cannot list the folder ({exc})") from exc
    return files, sorted(subdirs)


def _pick(root: Path, files: dict[str, list[Path]], fmt: str | None, where: str) -> str | None:
    kinds = [f for f in FORMATS if files[f]] if fmt is None else [fmt] if files[fmt] else []
    if len(kinds) > 1:
        raise ConfigError(f"{root}: {where} holds both .png ({len(files['png'])}) and .dcm ({len(files['dcm'])}) "
                          "files; pass format='png' or format='dcm'")
    return kinds[0] if kinds else None


def _not_openi_hint(root: Path, files: list[Path], subdirs: list[Path]) -> str:
    """A sentence when ``root`` is the image folder of another layout (pointed at too deep)."""
    if files and all(p.name.lower().endswith(".dcm.png") for p in files[:20]):
        return (f" These look like the Kaggle layout's images/images_normalized files: point root at the folder "
                f"holding {KAGGLE_PROJECTIONS}.")
    if subdirs and all(_R2GEN_FOLDER.match(d.name) and (d / "0.png").is_file() for d in subdirs[:20]):
        return f" These look like R2Gen's images/ folders: point root at the folder holding {R2GEN_ANNOTATION}."
    return ""


def index_images(root: str | Path, format: str | None = None) -> ImageIndex:
    """Find the OpenI image files under ``root`` (directly, else one folder level down); detect the release."""
    if format is not None:
        check_choice("format", format, FORMATS)
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(f"{root}: IU X-ray image folder not found; point root at NLMCXR_png or NLMCXR_dcm (or the "
                        "Kaggle or R2Gen folder)")
    top, subdirs = _scan(root)
    hint = _not_openi_hint(root, top["png"], subdirs)
    if hint:
        raise DataError(f"{root}: not an OpenI image folder.{hint}")
    fmt = _pick(root, top, format, "the folder itself")
    if fmt is not None:
        index = ImageIndex(root, fmt, "flat")
        for p in top[fmt]:
            index.files[p.name.lower()] = p
        return index
    below: dict[str, list[Path]] = {f: [] for f in FORMATS}
    for sub in subdirs:
        files, _ = _scan(sub)
        for f in FORMATS:
            below[f].extend(files[f])
    fmt = _pick(root, below, format, "its subfolders")
    if fmt is None:
        wanted = f".{format}" if format else ".png or .dcm"
        raise DataError(f"{root}: no {wanted} files in this folder or the folders one level below, and no "
                        f"{KAGGLE_PROJECTIONS} or {R2GEN_ANNOTATION}. {LAYOUTS_HELP}.")
    index = ImageIndex(root, fmt, "subfolders")
    for p in below[fmt]:
        key = p.name.lower()
        if key in index.files:
            raise DataError(f"{root}: image file name {p.name!r} appears twice ({index.files[key]} and {p}); "
                            "remove one copy")
        index.files[key] = p
    return index


class OpenISource:
    """The OpenI PNG or DICOM release."""

    layout = "openi"

    def __init__(self, root: Path, format: str | None):
        self.index = index_images(root, format)
        self.root = self.index.root
        self.format = self.index.format
        self._dicom_names = dicom_filenames() if self.format == "dcm" else {}

    def images(self, report: IUReport, known_views: dict[str, str]) -> list[FoundImage]:
        out = []
        for image_id, view in zip(report.image_ids, image_views(report.image_ids, known_views)):
            names = candidate_names(image_id, self.format, self._dicom_names)
            found = next((self.index.files[n.lower()] for n in names if n.lower() in self.index.files), None)
            tried = f"; also tried {', '.join(names[1:])}" if len(names) > 1 else ""
            out.append(FoundImage(image_id, found, view,
                                  "dicom_metadata" if image_id in known_views else "image_order",
                                  self.index.expected(names[0]),
                                  f"parentImage {image_id} of report {report.xml_name}{tried}"))
        return out

    def facts(self) -> dict:
        return {"folders": self.index.folders, "image_files_found": len(self.index.files)}

    def index_files(self) -> list[dict]:
        return []


# --- Kaggle -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Projection:
    line: int
    uid: str
    filename: str
    view: str


class KaggleSource:
    """Kaggle's ``chest-xrays-indiana-university``: two CSVs and ``images/images_normalized``."""

    layout = "kaggle"
    format = "png"

    def __init__(self, root: Path):
        self.root = root
        self.csv = root / KAGGLE_PROJECTIONS
        folder = next((root / f for f in KAGGLE_IMAGE_FOLDERS if (root / f).is_dir()), None)
        if folder is None:
            raise DataError(f"{root}: Kaggle layout ({KAGGLE_PROJECTIONS} found) but no image folder; expected "
                            f"{' or '.join(str(root / f) for f in KAGGLE_IMAGE_FOLDERS)}")
        self.folder = folder
        self._resolver = PathResolver(folder)
        table = read_csv(self.csv, self._check_columns, keep=KAGGLE_PROJECTION_COLUMNS)
        self._fingerprint = table.fingerprint
        self.rows: dict[str, _Projection] = {}
        for row in table.rows:
            v = row.values
            name = v["filename"]
            view = _KAGGLE_VIEWS.get(v["projection"].strip().lower())
            if not name:
                raise DataError(f"{self.csv}, line {row.line}: empty filename")
            if view is None:
                raise DataError(f"{self.csv}, line {row.line}: projection {v['projection']!r} is not Frontal or "
                                "Lateral")
            if name.lower() in self.rows:
                raise DataError(f"{self.csv}: lines {self.rows[name.lower()].line} and {row.line} both list "
                                f"{name!r}")
            self.rows[name.lower()] = _Projection(row.line, v["uid"].strip(), name, view)
        self._matched: set[str] = set()
        self._uids_seen: set[str] = set()
        self._views_differing = 0

    def _check_columns(self, columns: list[str]) -> None:
        missing = [c for c in KAGGLE_PROJECTION_COLUMNS if c not in columns]
        if missing:
            raise DataError(f"{self.csv}: missing column(s) {', '.join(map(repr, missing))}; Kaggle's "
                            f"{KAGGLE_PROJECTIONS} has {', '.join(KAGGLE_PROJECTION_COLUMNS)}")

    def images(self, report: IUReport, known_views: dict[str, str]) -> list[FoundImage]:
        number = report.uid[3:] if report.uid.upper().startswith("CXR") else report.uid
        self._uids_seen.add(number)
        names = dicom_filenames()
        out = []
        for image_id, rule_view in zip(report.image_ids, image_views(report.image_ids, known_views)):
            candidates = [f"{n}.png" for n in candidate_names(image_id, "dcm", names)]
            row = next((self.rows[c.lower()] for c in candidates if c.lower() in self.rows), None)
            expected = str(self.folder / candidates[0])
            if row is None:
                out.append(FoundImage(image_id, None, rule_view, "image_order", expected,
                                      f"parentImage {image_id} of report {report.xml_name}: {KAGGLE_PROJECTIONS} "
                                      f"has no row for {' or '.join(candidates)}"))
                continue
            if row.uid != number:
                raise DataError(f"{self.csv}, line {row.line}: {row.filename!r} is listed for uid {row.uid!r}, but it "
                                f"is parentImage {image_id} of report {report.uid} ({report.xml_name})")
            self._matched.add(row.filename.lower())
            self._views_differing += row.view != rule_view
            located = self._resolver.locate(row.filename)
            if located.outside:
                raise DataError(f"{self.csv}, line {row.line}: {row.filename!r} resolves to {located.path}, outside "
                                f"{self.folder}")
            out.append(FoundImage(image_id, Path(located.path) if located.exists else None, row.view,
                                  "projections_csv", str(self.folder / row.filename),
                                  f"parentImage {image_id} of report {report.xml_name}, {KAGGLE_PROJECTIONS} line "
                                  f"{row.line}"))
        return out

    def facts(self) -> dict:
        unmatched = sum(1 for key, row in self.rows.items() if row.uid in self._uids_seen and key not in self._matched)
        return {"image_folder": str(self.folder), "image_files_found": len(self.rows),
                "views_differing_from_rule": self._views_differing, "projection_rows_not_matched": unmatched}

    def index_files(self) -> list[dict]:
        out = [self._fingerprint]
        if (self.root / KAGGLE_REPORTS).is_file():
            out.append(file_fingerprint(self.root / KAGGLE_REPORTS))
        return out


# --- R2Gen ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _R2GenEntry:
    id: str
    split: str
    report: str
    image_paths: tuple[str, ...]


class R2GenSource:
    """R2Gen's ``iu_xray`` folder: ``annotation.json`` and ``images/<id>/<k>.png``."""

    layout = "r2gen"
    format = "png"

    def __init__(self, root: Path):
        self.root = root
        self.annotation = root / R2GEN_ANNOTATION
        self.folder = root / "images"
        if not self.folder.is_dir():
            raise DataError(f"{root}: R2Gen layout ({R2GEN_ANNOTATION} found) but no images/ folder next to it")
        self._resolver = PathResolver(self.folder)
        self.by_uid: dict[str, list[_R2GenEntry]] = {}
        for entry in self._read():
            uid = entry.id.split("_", 1)[0]
            known = self.by_uid.setdefault(uid, [])
            if known and known[0].split != entry.split:
                raise DataError(f"{self.annotation}: study {uid} has entries in R2Gen's {known[0].split!r} and "
                                f"{entry.split!r} splits ({known[0].id!r}, {entry.id!r})")
            known.append(entry)
        self._report_differs = 0

    def _read(self) -> list[_R2GenEntry]:
        try:
            data = json.loads(self.annotation.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise DataError(f"{self.annotation}: cannot read R2Gen's annotation file ({exc})") from exc
        if not isinstance(data, dict) or not set(R2GEN_SPLITS.values()) & set(data):
            raise DataError(f"{self.annotation}: expected a JSON object with R2Gen's splits "
                            f"{', '.join(R2GEN_SPLITS.values())} as keys")
        out = []
        for split, entries in data.items():
            if split not in R2GEN_SPLITS.values():
                continue
            if not isinstance(entries, list):
                raise DataError(f"{self.annotation}: {split!r} must be a list of entries")
            for i, e in enumerate(entries):
                where = f"{self.annotation}: {split}[{i}]"
                if not isinstance(e, dict) or any(k not in e for k in R2GEN_ENTRY_KEYS):
                    raise DataError(f"{where}: an entry needs the keys {', '.join(R2GEN_ENTRY_KEYS)}")
                paths = e["image_path"]
                if not isinstance(paths, list) or not paths or not all(isinstance(p, str) and p for p in paths):
                    raise DataError(f"{where} (id {e['id']!r}): image_path must be a non-empty list of paths")
                if not _R2GEN_FOLDER.match(str(e["id"])):
                    raise DataError(f"{where}: id {e['id']!r} is not an IU X-ray id (CXR<n>_IM-...)")
                out.append(_R2GenEntry(str(e["id"]), split, str(e["report"] or ""), tuple(paths)))
        return out

    def split_uids(self, r2gen_split: str) -> list[str]:
        return [uid for uid, entries in self.by_uid.items() if entries[0].split == r2gen_split]

    def images(self, report: IUReport, known_views: dict[str, str]) -> list[FoundImage]:
        entries = self.by_uid.get(report.uid)
        if not entries:
            return [FoundImage(report.uid, None, None, "unknown", f"{self.folder}{os.sep}{report.uid}_IM-*",
                               f"study {report.uid} ({report.xml_name}) has no entry in {self.annotation}: R2Gen "
                               "keeps only part of the IU studies; use split='r2gen-test' (or r2gen-train, "
                               "r2gen-val) for R2Gen's own split")]
        self._report_differs += collapse_whitespace(entries[0].report) != collapse_whitespace(report.findings)
        out = []
        for entry in entries:
            for rel in entry.image_paths:
                located = self._resolver.locate(rel)
                if located.outside:
                    raise DataError(f"{self.annotation}: {entry.split} entry {entry.id!r}: image_path {rel!r} resolves "
                                    f"to {located.path}, outside {self.folder}")
                out.append(FoundImage(rel, Path(located.path) if located.exists else None, None, "unknown",
                                      str(self.folder / rel),
                                      f"{self.annotation.name} {entry.split} entry {entry.id!r}"))
        return out

    def facts(self) -> dict:
        return {"image_files_found": sum(len(e.image_paths) for es in self.by_uid.values() for e in es),
                "r2gen_studies": {s: len(self.split_uids(s)) for s in R2GEN_SPLITS.values()},
                "r2gen_report_differs": self._report_differs}

    def index_files(self) -> list[dict]:
        return [file_fingerprint(self.annotation)]


# --- detection --------------------------------------------------------------------------------------------------


def _r2gen_root(root: Path) -> Path | None:
    for folder in (root, root / "iu_xray"):
        if (folder / R2GEN_ANNOTATION).is_file():
            return folder
    return None


def detect_layout(root: Path) -> str:
    """``r2gen`` when ``root`` (or ``root/iu_xray``) holds annotation.json, ``kaggle`` when it holds
    indiana_projections.csv, else ``openi``."""
    if _r2gen_root(root) is not None:
        return "r2gen"
    if (root / KAGGLE_PROJECTIONS).is_file():
        return "kaggle"
    return "openi"


def open_layout(root: str | Path, layout: str | None = None, format: str | None = None) -> ImageSource:
    """The image source of ``root`` in ``layout`` (None: detected, :func:`detect_layout`)."""
    if layout is not None:
        check_choice("layout", layout, LAYOUTS)
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(f"{root}: IU X-ray image folder not found; point root at NLMCXR_png or NLMCXR_dcm (or the "
                        "Kaggle or R2Gen folder)")
    layout = layout or detect_layout(root)
    if format is not None and layout != "openi":
        raise ConfigError(f"format={format!r} chooses between the OpenI PNG and DICOM releases; the {layout} layout "
                          "has PNG files only (leave format out)")
    if layout == "r2gen":
        folder = _r2gen_root(root)
        if folder is None:
            raise DataError(f"{root}: no {R2GEN_ANNOTATION} here or in {root / 'iu_xray'} (layout='r2gen')")
        return R2GenSource(folder)
    if layout == "kaggle":
        if not (root / KAGGLE_PROJECTIONS).is_file():
            raise DataError(f"{root}: no {KAGGLE_PROJECTIONS} here (layout='kaggle')")
        return KaggleSource(root)
    return OpenISource(root, format)


def check_views_known(source: ImageSource, views: Iterable[str] | None) -> None:
    """R2Gen's files carry no view: a views= filter cannot be applied to them."""
    if source.layout == "r2gen" and views is not None:
        raise ConfigError(f"views={sorted(views)}: R2Gen's image files do not say which view they are (0.png, "
                          "1.png); leave views out (all images) with the R2Gen layout")
