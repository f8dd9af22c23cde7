"""``iu-xray``: the IU X-ray (OpenI) reports of ``iu-phantom`` with the REAL OpenI radiographs.

Reports, split and views are exactly those of ``iu-phantom`` (same XML reports from the torchxrayvision wheel,
:mod:`cxrbench.data.iu_reports`; same fixed ``test``/``train`` split "iu-phantom-split-v1",
:mod:`cxrbench.data.iu_split`; same view rule), so numbers on ``iu-xray`` and ``iu-phantom`` compare study for
study; ``split="all"`` takes every eligible study (one image or more, FINDINGS or IMPRESSION non-empty). Only the
pixels differ: ``root`` holds the OpenI images, either release:

* PNG release (``NLMCXR_png``): ``CXR1_1_IM-0001-3001.png``, the report's ``parentImage`` id + ``.png``.
* DICOM release (``NLMCXR_dcm``): ``<n>/1_IM-0001-3001.dcm`` style files. The file of a ``parentImage`` id is the
  ``filename`` column of torchxrayvision's ``nlmcxr_dicom_metadata.csv.gz`` (``CXR1000_IM-0003-2001`` ->
  ``1000_IM-0003-2001.dcm``); ids missing there are looked up as the id without ``CXR`` and, for ids such as
  ``CXR1_1_IM-0001-3001`` whose metadata row reads ``CXR1_IM-0001-3001``, as ``<uid number>_IM-....dcm``.

Finding the files: ``.png`` / ``.dcm`` files are searched directly in ``root`` first; if there are none, in each
folder one level below ``root`` (so ``root`` may be ``NLMCXR_png``, its parent, or ``NLMCXR_dcm`` with its
per-study folders). Files are matched by name (suffix case ignored). ``format="png"|"dcm"`` forces a release;
otherwise it is detected, and a root holding both kinds at the same level is an error asking for ``format=``. The
same file name in two folders is an error naming both.

Options: ``views`` ("frontal", "lateral", or both: default) keeps only images of those views (a study left
without images is dropped and counted); ``studies`` (uids such as "CXR4", a set or a comma-separated string)
and ``max_studies`` (the first N studies by uid number) narrow the split for smoke runs and tests.

Checks: every image of the selected studies must exist; a missing one is a DataError naming the expected file, its
``parentImage`` id and the report XML (``NLMCXR_reports.tgz:ecgen-radiology/<n>.xml``), or with
``on_bad_image="skip"`` a warning and a count (``summary["skipped_missing_images"]``). torchxrayvision's DICOM
metadata has no row for three images (``CXR1000_IM-0003-1001`` and CXR1's two), so the DICOM release may lack
them: use ``on_bad_image="skip"`` then, and the summary says how many were left out.
"""

from __future__ import annotations

import importlib.metadata
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from cxrbench.data.common import (
    StudyCollector,
    check_choice,
    file_fingerprint,
    parse_views,
    progress_bar,
)
from cxrbench.data.iu_reports import (
    ATTRIBUTION,
    DICOM_METADATA,
    IUReport,
    _data_dir,
    dicom_metadata,
    image_views,
    load_reports,
    reports_archive,
    view_positions,
)
from cxrbench.data.iu_split import SPLIT_VERSION, eligible_reports, split_reports
from cxrbench.data.records import Dataset, ImageRecord, Study
from cxrbench.errors import ConfigError, DataError

NAME = "iu-xray"
FORMATS = ("png", "dcm")
SPLITS = ("test", "train", "all")


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
    """The image files found under ``root``: ``files`` maps lower-case file names to paths."""

    root: Path
    format: str
    layout: str  # "flat": files directly in root; "subfolders": one level down
    files: dict[str, Path] = field(default_factory=dict)

    def expected(self, name: str) -> str:
        return str(self.root / name) if self.layout == "flat" else f"{self.root}{os.sep}*{os.sep}{name}"


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


def index_images(root: str | Path, format: str | None = None) -> ImageIndex:
    """Find the OpenI image files under ``root`` (directly, else one folder level down); detect the release."""
    if format is not None:
        check_choice("format", format, FORMATS)
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(f"{root}: IU X-ray image folder not found; point root at NLMCXR_png or NLMCXR_dcm")
    top, subdirs = _scan(root)
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
        raise DataError(f"{root}: no {wanted} files in this folder or the folders one level below; point root at "
                        "the OpenI NLMCXR_png folder (PNG release) or NLMCXR_dcm folder (DICOM release)")
    index = ImageIndex(root, fmt, "subfolders")
    for p in below[fmt]:
        key = p.name.lower()
        if key in index.files:
            raise DataError(f"{root}: image file name {p.name!r} appears twice ({index.files[key]} and {p}); "
                            "remove one copy")
        index.files[key] = p
    return index


def _select(split: str, studies: str | Iterable[str] | None,
            max_studies: int | None) -> tuple[list[IUReport], int]:
    """The reports to load, and how many studies the whole split has."""
    check_choice("split", split, SPLITS)
    reports = split_reports(split)
    in_split = len(reports)
    if studies is not None:
        wanted = {s.strip() for s in studies.split(",")} if isinstance(studies, str) else set(studies)
        wanted.discard("")
        have = {r.uid for r in reports}
        unknown = sorted(wanted - have)
        if unknown:
            raise ConfigError(f"studies= names {', '.join(unknown[:10])}{' ...' if len(unknown) > 10 else ''}, not "
                              f"in iu-xray split {split!r} (eligible studies have images and FINDINGS or IMPRESSION"
                              " text; use split='all' for every one)")
        reports = [r for r in reports if r.uid in wanted]
    if max_studies is not None:
        if isinstance(max_studies, bool) or not isinstance(max_studies, int) or max_studies < 1:
            raise ConfigError(f"max_studies={max_studies!r}: give a positive whole number")
        reports = reports[:max_studies]
    return reports, in_split


def _provenance(index: ImageIndex, split: str, format: str | None, views: list[str] | None,
                reports: list[IUReport] | None, max_studies: int | None) -> dict:
    index_files = [file_fingerprint(reports_archive())]
    if index.format == "dcm" and (_data_dir() / DICOM_METADATA).is_file():
        index_files.append(file_fingerprint(_data_dir() / DICOM_METADATA))
    try:
        txv = importlib.metadata.version("torchxrayvision")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - the reports come from it
        txv = None
    return {
        "root": str(index.root.resolve()),
        "format": index.format,
        "layout": index.layout,
        "index_files": index_files,
        "torchxrayvision": txv,
        "split_version": SPLIT_VERSION,
        "options": {"split": split, "format": format, "views": views,
                    "studies": [r.uid for r in reports] if reports is not None else None,
                    "max_studies": max_studies},
        "reports": ATTRIBUTION,
    }


def load(root: str | Path, split: str = "test", policy: str = "longest", on_bad_image: str = "error",
         progress: bool = True, format: str | None = None, views: str | Iterable[str] | None = None,
         studies: str | Iterable[str] | None = None, max_studies: int | None = None) -> Dataset:
    """IU X-ray studies of ``split`` ("test", "train", "all") with the OpenI images under ``root``."""
    keep_views = parse_views(views)
    view_filter = sorted(keep_views) if keep_views else None
    collector = StudyCollector(NAME, split, policy, on_bad_image, filters={"views": view_filter})
    reports, in_split = _select(split, studies, max_studies)
    index = index_images(root, format)
    known_views = view_positions()
    dicom_names = dicom_filenames() if index.format == "dcm" else {}

    view_source = {"dicom_metadata": 0, "image_order": 0}
    for report in progress_bar(reports, "check iu-xray images", "study", progress):
        images = []
        for image_id, view in zip(report.image_ids, image_views(report.image_ids, known_views)):
            if keep_views is not None and view not in keep_views:
                collector.drop("images_not_in_views")
                continue
            names = candidate_names(image_id, index.format, dicom_names)
            found = next((index.files[n.lower()] for n in names if n.lower() in index.files), None)
            if found is None:
                tried = f"; also tried {', '.join(names[1:])}" if len(names) > 1 else ""
                collector.missing_image(index.expected(names[0]),
                                        f"parentImage {image_id} of report {report.xml_name}{tried}", "check root")
                continue
            view_source["dicom_metadata" if image_id in known_views else "image_order"] += 1
            images.append(ImageRecord(image_id, str(found), view))
        if images:
            collector.add(Study(report.uid, tuple(images), report.findings, report.impression, report.majors,
                                meta={"report": report.xml_name.rpartition(":")[2]}))
        else:
            collector.drop("dropped_no_images")
    return collector.finish(
        index.root, len(reports),
        facts={"split_version": SPLIT_VERSION,
               "comparable_with": f"iu-phantom split {split!r}: same reports and split, real OpenI images",
               "format": index.format, "layout": index.layout, "image_files_found": len(index.files),
               "split_studies": in_split, "studies_selected": len(reports)},
        details={"view_source": view_source,
                 "dropped_no_images_or_text_overall": len(load_reports()) - len(eligible_reports())},
        provenance=_provenance(index, split, format, view_filter, reports if studies is not None else None,
                               max_studies))
