"""``iu-xray``: the IU X-ray (OpenI) reports of ``iu-phantom`` with the REAL radiographs, in the layout you have.

Reports, split and (except for the Kaggle layout) views are exactly those of ``iu-phantom`` (same XML reports
from the torchxrayvision wheel, :mod:`cxrbench.data.iu_reports`; same fixed ``test``/``train`` split
"iu-phantom-split-v1", :mod:`cxrbench.data.iu_split`; same view rule), so numbers on ``iu-xray`` and
``iu-phantom`` compare study for study; ``split="all"`` takes every eligible study (one image or more, FINDINGS
or IMPRESSION non-empty). Only the pixels differ.

``root`` holds the images in one of three layouts, detected automatically (``layout=`` forces one;
:mod:`cxrbench.data.iu_layouts` gives the exact file names):

* ``openi``: the OpenI PNG release (``NLMCXR_png``: ``CXR1_1_IM-0001-3001.png``) or DICOM release
  (``NLMCXR_dcm``: ``<n>/1_IM-0001-3001.dcm``), in ``root`` or one folder below; ``format="png"|"dcm"``
  chooses when both are there, and the same file name in two folders is an error naming both.
* ``kaggle``: Kaggle's ``chest-xrays-indiana-university`` (``indiana_reports.csv``,
  ``indiana_projections.csv``, ``images/images_normalized/1_IM-0001-4001.dcm.png``). Views come from the
  ``projection`` column.
* ``r2gen``: R2Gen's ``iu_xray`` folder (``annotation.json``, ``images/CXR2384_IM-0942/0.png``). Views are
  unknown (R2Gen's file names do not say). ``split="r2gen-train" | "r2gen-val" | "r2gen-test"`` evaluates on
  R2Gen's own split instead of iu-phantom's (R2Gen keeps only part of the IU studies, so with the ``test``,
  ``train`` or ``all`` split the studies R2Gen left out are missing images).

A folder in none of these layouts is an error that lists the three and points to the ``manifest`` dataset.

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
from collections.abc import Iterable
from pathlib import Path

from cxrbench.data.common import StudyCollector, check_choice, file_fingerprint, parse_views, progress_bar
from cxrbench.data.iu_layouts import (
    LAYOUTS,
    R2GEN_SPLITS,
    ImageSource,
    R2GenSource,
    candidate_names,
    check_views_known,
    dicom_filenames,
    index_images,
    open_layout,
)
from cxrbench.data.iu_reports import (
    ATTRIBUTION,
    DICOM_METADATA,
    IUReport,
    _data_dir,
    load_reports,
    reports_archive,
    view_positions,
)
from cxrbench.data.iu_split import SPLIT_VERSION, eligible_reports, split_reports
from cxrbench.data.records import Dataset, ImageRecord, Study
from cxrbench.errors import ConfigError, DataError

NAME = "iu-xray"
SPLITS = ("test", "train", "all")
__all__ = ["LAYOUTS", "NAME", "R2GEN_SPLITS", "SPLITS", "candidate_names", "dicom_filenames", "index_images", "load"]


def _split_reports(split: str, source: ImageSource) -> list[IUReport]:
    """The eligible reports of an iu-phantom split, or the reports of R2Gen's own split (by uid number)."""
    if split not in R2GEN_SPLITS:
        return split_reports(split)
    if not isinstance(source, R2GenSource):
        raise ConfigError(f"split={split!r} is R2Gen's own split: it needs the R2Gen layout (annotation.json), but "
                          f"{source.root} is in the {source.layout} layout; use split 'test', 'train' or 'all'")
    by_uid = {r.uid: r for r in load_reports()}
    uids = source.split_uids(R2GEN_SPLITS[split])
    unknown = [u for u in uids if u not in by_uid]
    if unknown:
        raise DataError(f"{source.annotation}: R2Gen's {R2GEN_SPLITS[split]!r} split names {', '.join(unknown[:5])}"
                        f"{' ...' if len(unknown) > 5 else ''}, which the IU X-ray reports do not have")
    return sorted((by_uid[u] for u in uids), key=lambda r: int(r.uid[3:]))  # ids are CXR<n>, checked when read


def _select(split: str, source: ImageSource, studies: str | Iterable[str] | None,
            max_studies: int | None) -> tuple[list[IUReport], int]:
    """The reports to load, and how many studies the whole split has."""
    reports = _split_reports(split, source)
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


def _provenance(source: ImageSource, options: dict) -> dict:
    index_files = [file_fingerprint(reports_archive())]
    if source.format == "dcm" and (_data_dir() / DICOM_METADATA).is_file():
        index_files.append(file_fingerprint(_data_dir() / DICOM_METADATA))
    index_files.extend(source.index_files())
    try:
        txv = importlib.metadata.version("torchxrayvision")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - the reports come from it
        txv = None
    return {
        "root": str(source.root.resolve()),
        "layout": source.layout,
        "format": source.format,
        "index_files": index_files,
        "torchxrayvision": txv,
        "split_version": SPLIT_VERSION,
        "options": options,
        "reports": ATTRIBUTION,
    }


def _comparable_with(split: str, source: ImageSource) -> str:
    if split in R2GEN_SPLITS:
        return (f"R2Gen's {R2GEN_SPLITS[split]!r} split, with the IU XML reports (R2Gen's report text is their "
                "FINDINGS)")
    views = "views from Kaggle's projection column" if source.layout == "kaggle" else "same views"
    return f"iu-phantom split {split!r}: same reports and split, {views}, real images ({source.layout} layout)"


def load(root: str | Path, split: str = "test", policy: str = "longest", on_bad_image: str = "error",
         progress: bool = True, layout: str | None = None, format: str | None = None,
         views: str | Iterable[str] | None = None, studies: str | Iterable[str] | None = None,
         max_studies: int | None = None) -> Dataset:
    """IU X-ray studies of ``split`` ("test", "train", "all"; with the R2Gen layout also "r2gen-train",
    "r2gen-val", "r2gen-test") with the images under ``root`` (layout detected unless ``layout`` is given)."""
    check_choice("split", split, (*SPLITS, *R2GEN_SPLITS))
    keep_views = parse_views(views)
    view_filter = sorted(keep_views) if keep_views else None
    collector = StudyCollector(NAME, split, policy, on_bad_image, filters={"views": view_filter})
    source = open_layout(root, layout, format)
    check_views_known(source, keep_views)
    reports, in_split = _select(split, source, studies, max_studies)
    known_views = view_positions()

    view_source = {"dicom_metadata": 0, "image_order": 0, "projections_csv": 0, "unknown": 0}
    for report in progress_bar(reports, "check iu-xray images", "study", progress):
        images = []
        for found in source.images(report, known_views):
            if keep_views is not None and found.view not in keep_views:
                collector.drop("images_not_in_views")
                continue
            if found.path is None:
                collector.missing_image(found.expected, found.context, "check root")
                continue
            view_source[found.view_source] += 1
            images.append(ImageRecord(found.image_id, str(found.path), found.view))
        if images:
            collector.add(Study(report.uid, tuple(images), report.findings, report.impression, report.majors,
                                meta={"report": report.xml_name.rpartition(":")[2]}))
        else:
            collector.drop("dropped_no_images")
    options = {"split": split, "layout": layout, "format": format, "views": view_filter,
               "studies": [r.uid for r in reports] if studies is not None else None, "max_studies": max_studies}
    return collector.finish(
        source.root, len(reports),
        facts={"split_version": SPLIT_VERSION if split not in R2GEN_SPLITS else "r2gen annotation.json",
               "comparable_with": _comparable_with(split, source),
               "layout": source.layout, "format": source.format, **source.facts(),
               "split_studies": in_split, "studies_selected": len(reports)},
        details={"view_source": view_source,
                 "dropped_no_images_or_text_overall": len(load_reports()) - len(eligible_reports())},
        provenance=_provenance(source, options))
