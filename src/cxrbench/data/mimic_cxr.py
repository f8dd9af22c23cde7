"""``mimic-cxr``: MIMIC-CXR-JPG 2.x chest radiographs with the MIMIC-CXR free-text reports (PhysioNet).

Layout read (``root`` is the MIMIC-CXR-JPG folder)::

    <root>/mimic-cxr-2.0.0-split.csv[.gz]      dicom_id, study_id, subject_id, split (train | validate | test)
    <root>/mimic-cxr-2.0.0-metadata.csv[.gz]   dicom_id, subject_id, study_id, ViewPosition, Rows, Columns, ...
    <root>/files/pXX/pSSSSSSSS/sTTTTTTTT/<dicom_id>.jpg

where ``pSSSSSSSS`` is ``"p"`` + the subject id, ``pXX`` its first two digits, and ``sTTTTTTTT`` is ``"s"`` + the
study id (the csvs may give the ids with or without these prefixes). Reports are ``files/pXX/pSSSSSSSS/
sTTTTTTTT.txt`` inside a reports folder or inside ``mimic-cxr-reports.zip`` (optionally under a top folder).
``reports=`` names that folder (the one holding ``files/``, or ``files/`` itself) or the zip. By default the
first of these is used: ``<root>/mimic-cxr-reports/``; ``.txt`` files next to the image folders
(``<root>/files/pXX/pSSSSSSSS/sTTTTTTTT.txt``, detected from the first chosen studies);
``<root>/mimic-cxr-reports.zip``.

Protocol (the paper's, arXiv 2501.09134: the validation split, every view, studies with a FINDINGS or
IMPRESSION section; 994 studies, 1,770 images):

1. Rows of the split csv whose ``split`` is the chosen one (``validate`` by default; ``train``, ``test``,
   ``all``; ``val``/``validation`` mean ``validate``) are grouped into studies, in csv order.
2. Images whose ``ViewPosition`` (metadata csv) is not in ``views`` are dropped (``views=None``: keep all).
   ``views`` takes ViewPosition values (``{"PA", "AP"}`` or ``"PA,AP"``, any case); ``frontal`` means PA and
   AP, ``lateral`` means LATERAL and LL, ``unknown`` an empty ViewPosition or an image missing from the
   metadata. The image's ``view`` is ``frontal`` for PA/AP, ``lateral`` for LATERAL/LL, otherwise None.
3. Every remaining image file must exist (a stat). A missing one is a DataError naming the file and its split
   csv line, or, with ``on_bad_image="skip"``, a warning and a count (``skipped_missing_images``).
4. The report of every study that still has images is read (only those) and split into FINDINGS and
   IMPRESSION by :mod:`cxrbench.data.mimic_sections`. A missing or non-UTF-8 report is a DataError naming the
   expected file, or with ``on_bad_image="skip"`` a warning and a count (``missing_reports``,
   ``unreadable_reports``). Reports with neither section are dropped and counted (``dropped_no_sections``);
   ``fallback=True`` applies the community's last-paragraph rule to them instead.
5. The report-text ``policy`` (default ``longest``) drops studies whose chosen text is empty
   (``dropped_empty_text``).

Performance: the csvs are streamed with the :mod:`csv` module; dicts are built only for the chosen split, so
duplicate ``dicom_id`` rows are detected within the chosen split (``split="all"`` checks the whole file).
"""

from __future__ import annotations

import csv
import gzip
import io
import os
import re
import stat
import warnings
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from cxrbench.data.common import ON_BAD_IMAGE, check_choice, check_policy, decode_record, file_fingerprint
from cxrbench.data.mimic_sections import Sections, parse_sections
from cxrbench.data.records import Dataset, ImageRecord, Study, apply_policy, count_summary
from cxrbench.errors import ConfigError, DataError

NAME = "mimic-cxr"
SPLITS = ("train", "validate", "test")
SPLIT_ALIASES = {"val": "validate", "valid": "validate", "validation": "validate"}
DEFAULT_SPLIT = "validate"
PAPER_STUDIES = 994
PAPER_IMAGES = 1770
SPLIT_FILES = ("mimic-cxr-2.0.0-split.csv", "mimic-cxr-2.0.0-split.csv.gz")
METADATA_FILES = ("mimic-cxr-2.0.0-metadata.csv", "mimic-cxr-2.0.0-metadata.csv.gz")
SPLIT_COLUMNS = ("dicom_id", "study_id", "subject_id", "split")
METADATA_COLUMNS = ("dicom_id", "subject_id", "study_id", "ViewPosition")
REPORTS_DIR = "mimic-cxr-reports"
REPORTS_ZIP = "mimic-cxr-reports.zip"
FRONTAL = frozenset({"PA", "AP"})
LATERAL = frozenset({"LATERAL", "LL"})
_VIEW_GROUPS = {"FRONTAL": FRONTAL, "LATERAL": LATERAL, "UNKNOWN": frozenset({""})}
_ZIP_MEMBER = re.compile(r"^(.*?)files/p\d\d/p\d+/s\d+\.txt$")
_EXAMPLES = 5


def image_view(view_position: str) -> str | None:
    """``frontal`` for PA/AP, ``lateral`` for LATERAL/LL, else None (DICOM ViewPosition, any case)."""
    vp = view_position.strip().upper()
    return "frontal" if vp in FRONTAL else "lateral" if vp in LATERAL else None


# ----------------------------------------------------------------------------------------------------- csv files


def _find_index(root: Path, names: tuple[str, ...], what: str) -> Path:
    for name in names:
        if (root / name).is_file():
            return root / name
    raise DataError(f"{root}: no {what} csv; expected {' or '.join(str(root / n) for n in names)} "
                    "(from MIMIC-CXR-JPG 2.x)")


class _Csv:
    """Streams the rows of a csv or csv.gz file as (line number, row), checking the required columns."""

    def __init__(self, path: Path, required: tuple[str, ...]):
        self.path = path
        self.required = required
        self.columns: dict[str, int] = {}

    def rows(self) -> Iterator[tuple[int, list[str]]]:
        reader = None
        try:
            raw = gzip.open(self.path, "rb") if self.path.name.endswith(".gz") else open(self.path, "rb")  # noqa: SIM115
            with raw, io.TextIOWrapper(raw, encoding="utf-8-sig", newline="") as text:
                reader = csv.reader(text)
                header = next(reader, None)
                if header is None:
                    raise DataError(f"{self.path}: empty file, expected a header row with columns "
                                    f"{', '.join(self.required)}")
                self.columns = {name.strip(): i for i, name in enumerate(header)}
                for col in self.required:
                    if col not in self.columns:
                        raise DataError(f"{self.path}: line 1: required column {col!r} is missing "
                                        f"(columns found: {', '.join(self.columns) or 'none'})")
                width = max(self.columns[c] for c in self.required) + 1
                for row in reader:
                    if not row:
                        continue
                    if len(row) < width:
                        raise DataError(f"{self.path}: line {reader.line_num}: {len(row)} fields, expected at "
                                        f"least {width} ({', '.join(self.required)})")
                    yield reader.line_num, row
        except DataError:
            raise
        except UnicodeDecodeError as exc:
            raise DataError(f"{self.path}: {self._bad_line()}cannot read the csv as UTF-8 ({exc}); "
                            "re-download the file") from exc
        except (OSError, EOFError, csv.Error, zlib.error) as exc:
            where = f"line {reader.line_num}: " if reader is not None and reader.line_num else ""
            raise DataError(f"{self.path}: {where}cannot read the csv ({type(exc).__name__}: {exc}); "
                            "re-download or decompress it again") from exc

    def _bad_line(self) -> str:
        """For a decoding error (the text layer decodes in blocks): the first line that is not UTF-8."""
        with gzip.open(self.path, "rb") if self.path.name.endswith(".gz") else open(self.path, "rb") as raw:  # noqa: SIM115
            for number, line in enumerate(raw, 1):
                try:
                    line.decode("utf-8")
                except UnicodeDecodeError as exc:
                    return f"line {number}: not UTF-8 text (byte {exc.start} of the line: {exc.reason}); "
        return ""

    def get(self, row: list[str], column: str) -> str:
        return row[self.columns[column]].strip()


def _digits(value: str, prefix: str, column: str, path: Path, line: int) -> str:
    """The digits of an id written with or without its letter prefix ("s50414267" or "50414267")."""
    v = value.strip()
    if v[:1].lower() == prefix:
        v = v[1:]
    if not v.isdigit() or len(v) < 2:
        raise DataError(f"{path}: line {line}: {column} {value!r} is not a MIMIC-CXR id "
                        f"(digits, optionally prefixed with {prefix!r})")
    return v


def _file_id(path: Path) -> dict:
    st = path.stat()
    return {"path": str(path), "size": st.st_size, "mtime": int(st.st_mtime)}


# --------------------------------------------------------------------------------------------------- split rows


@dataclass
class _Image:
    dicom_id: str
    line: int
    view_position: str = ""


@dataclass
class _Study:
    study: str  # digits
    subject: str  # digits
    line: int  # split csv line of its first image
    images: list[_Image] = field(default_factory=list)

    @property
    def study_id(self) -> str:
        return "s" + self.study

    @property
    def rel_dir(self) -> str:
        return f"p{self.subject[:2]}/p{self.subject}/s{self.study}"

    @property
    def rel_report(self) -> str:
        return f"p{self.subject[:2]}/p{self.subject}/s{self.study}.txt"


def _normalise_split(split: str | None) -> str:
    s = (split or DEFAULT_SPLIT).strip().lower()
    s = SPLIT_ALIASES.get(s, s)
    if s not in (*SPLITS, "all"):
        raise ConfigError(f"mimic-cxr has splits {', '.join(SPLITS)} and 'all', not {split!r}")
    return s


def _read_split(path: Path, split: str) -> tuple[dict[str, _Study], int]:
    """Studies of ``split`` (in csv order) and the number of csv rows in the file."""
    table = _Csv(path, SPLIT_COLUMNS)
    studies: dict[str, _Study] = {}
    seen: dict[str, int] = {}
    n_rows = 0
    for line, row in table.rows():
        n_rows += 1
        value = table.get(row, "split").lower()
        if value not in SPLITS:
            raise DataError(f"{path}: line {line}: split {value!r} is not one of {', '.join(SPLITS)}")
        if split != "all" and value != split:
            continue
        dicom = table.get(row, "dicom_id")
        if not dicom:
            raise DataError(f"{path}: line {line}: empty dicom_id")
        if dicom in seen:
            raise DataError(f"{path}: line {line}: duplicate dicom_id {dicom!r} (first on line {seen[dicom]}); "
                            "each image must appear once")
        seen[dicom] = line
        study = _digits(table.get(row, "study_id"), "s", "study_id", path, line)
        subject = _digits(table.get(row, "subject_id"), "p", "subject_id", path, line)
        entry = studies.get(study)
        if entry is None:
            entry = studies[study] = _Study(study, subject, line)
        elif entry.subject != subject:
            raise DataError(f"{path}: line {line}: study s{study} has subject_id {subject}, but line {entry.line} "
                            f"gives {entry.subject}")
        entry.images.append(_Image(dicom, line))
    return studies, n_rows


def _read_metadata(path: Path, studies: dict[str, _Study]) -> int:
    """Fill in ViewPosition for the chosen images; return how many chosen images the metadata lacks."""
    table = _Csv(path, METADATA_COLUMNS)
    wanted = {im.dicom_id: (s, im) for s in studies.values() for im in s.images}
    found: dict[str, int] = {}
    for line, row in table.rows():
        dicom = row[table.columns["dicom_id"]].strip()
        hit = wanted.get(dicom)
        if hit is None:
            continue
        study, image = hit
        if dicom in found:
            raise DataError(f"{path}: line {line}: duplicate dicom_id {dicom!r} (first on line {found[dicom]})")
        found[dicom] = line
        s_id = _digits(table.get(row, "study_id"), "s", "study_id", path, line)
        p_id = _digits(table.get(row, "subject_id"), "p", "subject_id", path, line)
        if (s_id, p_id) != (study.study, study.subject):
            raise DataError(f"{path}: line {line}: dicom_id {dicom!r} belongs to study s{s_id} of subject p{p_id} "
                            f"here, but to s{study.study} of p{study.subject} in the split csv (line {image.line})")
        image.view_position = table.get(row, "ViewPosition").upper()
    return len(wanted) - len(found)


def _parse_views(views: str | Iterable[str] | None) -> frozenset[str] | None:
    if views is None:
        return None
    tokens = views.split(",") if isinstance(views, str) else list(views)
    out: set[str] = set()
    for token in tokens:
        if not isinstance(token, str):
            raise ConfigError(f"views must be ViewPosition names, got {token!r}")
        t = token.strip().upper()
        if t == "ALL":
            return None
        if not t:
            continue
        out |= _VIEW_GROUPS.get(t, {t})
    if not out:
        raise ConfigError(f"views={views!r} names no view; use e.g. 'PA,AP', 'frontal', or None for all")
    return frozenset(out)


# ---------------------------------------------------------------------------------------------------- paths


class _Inside:
    """Checks that paths stay inside ``base`` after resolving symlinks and ``..`` (caching directories)."""

    def __init__(self, base: Path):
        self.base = os.path.realpath(base)
        self._dirs: dict[str, str] = {}

    def _within(self, real: str) -> bool:
        return real == self.base or real.startswith(self.base.rstrip(os.sep) + os.sep)

    def check(self, path: Path, where: str) -> os.stat_result | None:
        """The file's lstat (None when missing); DataError when it resolves outside ``base``."""
        parent = str(path.parent)
        real_parent = self._dirs.get(parent)
        if real_parent is None:
            real_parent = self._dirs[parent] = os.path.realpath(parent)
        name = path.name
        suspicious = name in ("", ".", "..") or not self._within(real_parent)
        try:
            st = os.lstat(path)
        except (FileNotFoundError, NotADirectoryError):
            st = None
        if suspicious or (st is not None and stat.S_ISLNK(st.st_mode)):
            real = os.path.realpath(path)
            if not self._within(real):
                raise DataError(f"{path}: {where}: resolves to {real}, outside {self.base}; refusing to read "
                                "files outside the dataset root")
            try:
                st = os.stat(real)
            except (FileNotFoundError, NotADirectoryError):
                st = None
        return st


# ---------------------------------------------------------------------------------------------------- reports


class _Reports:
    """Reads ``pXX/pSSSSSSSS/sTTTTTTTT.txt`` reports from a folder or a zip."""

    def __init__(self, kind: str, location: Path, searched: str = ""):
        self.kind = kind  # "folder" (location = the files/ folder) or "zip"
        self.location = location
        self.searched = searched
        self.prefix = ""
        self._zip: zipfile.ZipFile | None = None
        self._inside = _Inside(location) if kind == "folder" else None
        if kind == "zip":
            try:
                self._zip = zipfile.ZipFile(location)
            except (OSError, zipfile.BadZipFile) as exc:
                raise DataError(f"{location}: cannot open the reports zip ({exc})") from exc
            self.prefix = self._find_prefix()

    def _find_prefix(self) -> str:
        assert self._zip is not None
        for info in self._zip.infolist():
            m = _ZIP_MEMBER.match(info.filename)
            if m:
                return m.group(1) + "files/"
        raise DataError(f"{self.location}: no files/pXX/pSSSSSSSS/sTTTTTTTT.txt reports inside the zip")

    def where(self, rel: str) -> str:
        return f"{self.location}:{self.prefix}{rel}" if self.kind == "zip" else str(self.location / rel)

    def read(self, rel: str, where: str) -> bytes | None:
        """The report's bytes, or None when it does not exist."""
        if self._zip is not None:
            try:
                return self._zip.read(self.prefix + rel)
            except KeyError:
                return None
            except (OSError, zipfile.BadZipFile, EOFError, zlib.error) as exc:
                raise DataError(f"{self.where(rel)}: {where}: cannot read the report from the zip ({exc})") from exc
        path = self.location / rel
        assert self._inside is not None
        st = self._inside.check(path, where)
        if st is None or not stat.S_ISREG(st.st_mode):
            return None
        try:
            return path.read_bytes()
        except OSError as exc:
            raise DataError(f"{path}: {where}: cannot read the report ({exc})") from exc

    def provenance(self) -> dict:
        info = {"kind": self.kind, **_file_id(self.location)} if self.kind == "zip" else {
            "kind": self.kind, "path": str(self.location)}
        if self.prefix:
            info["member_prefix"] = self.prefix
        return info

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()


def _folder_reports(path: Path) -> Path:
    """The ``files/`` folder of a reports folder given as the folder holding ``files/`` or as ``files/``."""
    return path / "files" if (path / "files").is_dir() else path


def _open_reports(root: Path, reports: str | Path | None, studies: list[_Study]) -> _Reports:
    if reports is not None:
        p = Path(reports).expanduser()
        if p.is_dir():
            return _Reports("folder", _folder_reports(p))
        if p.is_file():
            if not zipfile.is_zipfile(p):
                raise DataError(f"{p}: reports= must be a folder or a zip file; this file is not a zip")
            return _Reports("zip", p)
        raise DataError(f"{p}: reports folder or zip not found (reports= option)")
    searched = (f"looked for {root / REPORTS_DIR}/, .txt reports next to the image folders in {root / 'files'} and "
                f"{root / REPORTS_ZIP}; pass reports=<folder or zip>")
    if (root / REPORTS_DIR).is_dir():
        return _Reports("folder", _folder_reports(root / REPORTS_DIR), searched)
    files = root / "files"
    if any((files / s.rel_report).is_file() for s in studies[:50]):
        return _Reports("folder", files, searched)
    if (root / REPORTS_ZIP).is_file():
        return _Reports("zip", root / REPORTS_ZIP, searched)
    return _Reports("folder", files, searched)


# ----------------------------------------------------------------------------------------------------- load


def _warn_or_raise(message: str, on_bad_image: str) -> None:
    if on_bad_image == "error":
        raise DataError(message)
    warnings.warn(message + " (skipped: on_bad_image='skip')", stacklevel=3)


def _paper_comparison(studies: int, images: int, split: str, views: frozenset[str] | None, policy: str,
                      fallback: bool, skipped: int, by_requirement: dict) -> dict:
    differences = []
    if split != "validate":
        differences.append(f"split={split!r} (paper: 'validate')")
    if views is not None:
        differences.append(f"views={sorted(views)} (paper: every view)")
    if policy in ("findings", "impression"):
        differences.append(f"policy={policy!r} keeps only studies with a non-empty {policy.upper()} "
                           "(paper: FINDINGS or IMPRESSION)")
    if fallback:
        differences.append("fallback=True also keeps reports without FINDINGS/IMPRESSION headers")
    if skipped:
        differences.append(f"{skipped} missing or unreadable files were skipped")
    matches = studies == PAPER_STUDIES and images == PAPER_IMAGES
    if matches:
        note = "same counts as the paper's evaluation set"
        if differences:
            note += " (although the options differ: " + "; ".join(differences) + ")"
    elif differences:
        note = (f"{studies - PAPER_STUDIES:+d} studies, {images - PAPER_IMAGES:+d} images against the paper, "
                "whose protocol differs from these options: " + "; ".join(differences)
                + ". Use split='validate', views=None, policy='longest' to compare")
    else:
        note = (f"the paper's protocol, but {studies - PAPER_STUDIES:+d} studies and {images - PAPER_IMAGES:+d} "
                "images against the paper: the MIMIC-CXR-JPG / report release, the section parser "
                "(cxrbench.data.mimic_sections) or an incomplete copy of the data may differ; "
                "by_section_requirement gives the counts under other section rules")
    return {"paper_studies": PAPER_STUDIES, "paper_images": PAPER_IMAGES, "studies": studies, "images": images,
            "matches": matches, "note": note, "by_section_requirement": by_requirement}


def load(root: str | Path | None = None, split: str | None = DEFAULT_SPLIT, policy: str = "longest",
         on_bad_image: str = "error", progress: bool = True, reports: str | Path | None = None,
         views: str | Iterable[str] | None = None, fallback: bool = False, **unknown) -> Dataset:
    """The MIMIC-CXR evaluation set of ``split`` (see the module docstring for the layout and the protocol).

    ``reports``: reports folder or zip (default: searched under ``root``); ``views``: ViewPosition values to
    keep (None: all); ``fallback``: give reports without FINDINGS/IMPRESSION headers the community's
    last-paragraph conclusion as IMPRESSION instead of dropping them.
    """
    if unknown:
        raise ConfigError(f"mimic-cxr: unknown option(s) {', '.join(sorted(unknown))}; "
                          "known: root, split, policy, on_bad_image, progress, reports, views, fallback")
    if root is None:
        raise ConfigError("mimic-cxr needs the MIMIC-CXR-JPG folder: pass --root (root=...)")
    check_policy(policy)
    check_choice("on_bad_image", on_bad_image, ON_BAD_IMAGE)
    split = _normalise_split(split)
    view_set = _parse_views(views)
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(f"{root}: MIMIC-CXR-JPG root folder not found")
    root = Path(os.path.realpath(root))
    split_csv = _find_index(root, SPLIT_FILES, "split")
    metadata_csv = _find_index(root, METADATA_FILES, "metadata")

    by_study, split_rows = _read_split(split_csv, split)
    split_images = sum(len(s.images) for s in by_study.values())
    no_metadata = _read_metadata(metadata_csv, by_study) if by_study else 0

    # views, then image files
    files = root / "files"
    if by_study and not files.is_dir():
        raise DataError(f"{files}: image folder not found; MIMIC-CXR-JPG keeps images in "
                        "<root>/files/pXX/pSSSSSSSS/sTTTTTTTT/<dicom_id>.jpg")
    inside = _Inside(files)
    dropped_by_view = dropped_view_studies = skipped_images = dropped_missing_studies = 0
    view_counts: dict[str, int] = {}
    candidates: list[tuple[_Study, tuple[ImageRecord, ...]]] = []
    positions: dict[str, str] = {}  # dicom_id -> ViewPosition of the kept images
    for s in by_study.values():
        kept = [im for im in s.images if view_set is None or im.view_position in view_set]
        dropped_by_view += len(s.images) - len(kept)
        if not kept:
            dropped_view_studies += 1
            continue
        records = []
        for im in kept:
            path = files / s.rel_dir / f"{im.dicom_id}.jpg"
            where = f"{split_csv.name} line {im.line}"
            st = inside.check(path, where)
            if st is None or not stat.S_ISREG(st.st_mode):
                _warn_or_raise(f"{path}: image file not found ({split_csv} line {im.line}, dicom_id "
                               f"{im.dicom_id!r})", on_bad_image)
                skipped_images += 1
                continue
            vp = im.view_position or "unknown"
            view_counts[vp] = view_counts.get(vp, 0) + 1
            records.append(ImageRecord(im.dicom_id, path, image_view(im.view_position)))
            positions[im.dicom_id] = im.view_position
        if records:
            candidates.append((s, tuple(records)))
        else:
            dropped_missing_studies += 1

    # reports
    source = _open_reports(root, reports, [s for s, _ in candidates])
    from tqdm.auto import tqdm

    studies: list[Study] = []
    missing_reports = unreadable_reports = dropped_no_sections = fallbacks = 0
    no_section_examples: list[str] = []
    try:
        for s, records in tqdm(candidates, desc="mimic-cxr reports", unit="report", disable=not progress):
            where = f"study {s.study_id}, {split_csv.name} line {s.line}"
            data = source.read(s.rel_report, where)
            if data is None:
                hint = f"; {source.searched}" if source.searched else ""
                _warn_or_raise(f"{source.where(s.rel_report)}: report not found ({where}){hint}", on_bad_image)
                missing_reports += 1
                continue
            try:
                if b"\x00" in data:
                    raise UnicodeDecodeError("utf-8", data, data.index(b"\x00"), data.index(b"\x00") + 1,
                                             "NUL byte: binary data, not text")
                text = data.decode("utf-8")
            except UnicodeDecodeError as exc:
                _warn_or_raise(f"{source.where(s.rel_report)}: not UTF-8 text (byte {exc.start}: {exc.reason}; "
                               f"{where})", on_bad_image)
                unreadable_reports += 1
                continue
            sections: Sections = parse_sections(text, fallback=fallback)
            if not (sections.findings or sections.impression):
                dropped_no_sections += 1
                if len(no_section_examples) < _EXAMPLES:
                    no_section_examples.append(source.where(s.rel_report))
                continue
            fallbacks += sections.fallback is not None
            studies.append(Study(
                s.study_id, records, sections.findings, sections.impression,
                meta={"subject_id": "p" + s.subject, "report": source.where(s.rel_report),
                      "view_positions": tuple(positions[im.image_id] for im in records),
                      "headers": tuple(sections.headers), "fallback": sections.fallback},
            ))
    finally:
        source.close()

    by_requirement = {}
    for name, test in (("findings_or_impression", lambda st: bool(st.findings or st.impression)),
                       ("findings", lambda st: bool(st.findings)), ("impression", lambda st: bool(st.impression)),
                       ("findings_and_impression", lambda st: bool(st.findings and st.impression))):
        chosen = [st for st in studies if test(st) and st.meta["fallback"] is None]
        by_requirement[name] = {"studies": len(chosen), "images": sum(len(st.images) for st in chosen)}
    kept, dropped_empty = apply_policy(studies, policy)
    if not kept:
        raise DataError(
            f"{root}: no studies left: split={split!r} has {len(by_study)} studies ({split_images} images) in "
            f"{split_csv}; views={sorted(view_set) if view_set else 'all'} dropped {dropped_by_view} images "
            f"({dropped_view_studies} studies); {skipped_images} images and {missing_reports + unreadable_reports} "
            f"reports missing or unreadable; {dropped_no_sections} reports without FINDINGS/IMPRESSION; "
            f"policy={policy!r} dropped {dropped_empty} studies with empty text")
    counts = count_summary(kept)
    summary = {
        **counts,
        "split": split,
        "views": sorted(view_set) if view_set else None,
        "fallback": fallback,
        "split_csv_rows": split_rows,
        "split_studies": len(by_study),
        "split_images": split_images,
        "dropped_by_view": dropped_by_view,
        "dropped_studies_no_view": dropped_view_studies,
        "skipped_missing_images": skipped_images,
        "dropped_studies_no_images": dropped_missing_studies,
        "missing_reports": missing_reports,
        "unreadable_reports": unreadable_reports,
        "dropped_no_sections": dropped_no_sections,
        "no_section_examples": no_section_examples,
        "fallback_sections": fallbacks,
        "dropped_empty_text": dropped_empty,
        "images_without_metadata": no_metadata,
        "view_positions": dict(sorted(view_counts.items(), key=lambda kv: (-kv[1], kv[0]))),
        "reports_source": source.provenance(),
        "paper_comparison": _paper_comparison(counts["studies"], counts["images"], split, view_set, policy,
                                              fallback, skipped_images + missing_reports + unreadable_reports,
                                              by_requirement),
    }
    provenance = {
        "root": str(root),
        "split_csv": file_fingerprint(split_csv),
        "metadata_csv": file_fingerprint(metadata_csv),
        "reports": source.provenance(),
        "options": {"split": split, "policy": policy, "views": summary["views"], "fallback": fallback,
                    "on_bad_image": on_bad_image},
        "section_parser": "cxrbench.data.mimic_sections",
    }
    return Dataset(name=NAME, split=split, policy=policy, studies=kept, summary=summary, image_loader=decode_record,
                   provenance=provenance, on_bad_image=on_bad_image)
