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

Selection (``split``, ``views``, ``sections``, ``require``, ``fallback``, ``policy``):

1. Rows of the split csv whose ``split`` is the chosen one (``validate`` by default; ``train``, ``test``,
   ``all``; ``val``/``validation`` mean ``validate``) are grouped into studies, in csv order.
2. Images whose ``ViewPosition`` (metadata csv) is not in ``views`` are dropped (``views=None``: keep all).
   ``views`` takes ViewPosition values (``{"PA", "AP"}`` or ``"PA,AP"``, any case); ``frontal`` means PA and
   AP, ``lateral`` means LATERAL and LL, ``unknown`` an empty ViewPosition or an image missing from the
   metadata. The image's ``view`` is ``frontal`` for PA/AP, ``lateral`` for LATERAL/LL, otherwise None.
3. Every remaining image file must exist (a stat). A missing one is a DataError naming the file and its split
   csv line, or, with ``on_bad_image="skip"``, counted (``skipped_missing_images``).
4. The report of every study that still has images is read (only those) and cut into sections by the parser
   ``sections`` names (:func:`cxrbench.data.mimic_sections.split_sections`): ``mitlcp`` (default: MIT-LCP's
   own ``section_parser.py`` / ``create_section_files.py``, reproduced exactly) or ``lenient`` (this
   project's tolerant parser). A missing or non-UTF-8 report is a DataError naming the expected file, or with
   ``on_bad_image="skip"`` counted (``missing_reports``, ``unreadable_reports``).
5. ``require`` says which sections a study must have: ``any`` (default: FINDINGS or IMPRESSION), ``both``
   (FINDINGS and IMPRESSION: the paper protocol's choice, :data:`PAPER_REQUIREMENT`), ``findings`` or
   ``impression``. A study has a section when the parser gives it non-empty text. Under ``mitlcp`` a section
   whose only text is ``___`` (de-identified) therefore counts, as it does in MIT-LCP's own statistics (its
   ``mimic_cxr_sectioned.csv`` holds the ``___``); under ``lenient`` it does not. The 54 studies of MIT-LCP's
   hand-made per-study rules have no FINDINGS / IMPRESSION under ``mitlcp`` (they have no row in upstream's
   sectioned table; their text is upstream's "conclusion"), so every requirement leaves them out
   (``section_requirements.special_case_studies`` counts them). Reports with neither section are counted in
   ``dropped_no_sections``, reports with one but not the required ones in ``dropped_by_requirement``.
   ``fallback=True`` (only with ``require="any"``) keeps reports with neither section, their impression being
   the parser's fallback text (``mitlcp``: upstream's conclusion: last paragraph, comparison or the per-study
   rule; ``lenient``: its last-paragraph rule).
6. Section texts are stored whitespace-collapsed (``mitlcp`` keeps upstream's line breaks and indents, which
   would otherwise count in ``longest``'s length comparison). The report-text ``policy`` (default
   ``longest``) drops studies whose chosen text is empty (``dropped_empty_text``).

The summary records ``sections`` and ``require``; ``section_requirements`` gives the studies and images under
every requirement (counted after steps 1-4, before the requirement and the policy) and the paper protocol's
choice; ``paper_comparison`` sets the loaded counts beside the paper's (994 studies, 1,770 images), MIT-LCP's
published validate split (1,808 / 2,991) and this split csv, lists the options that differ from the paper
protocol (:data:`PAPER_PROTOCOL`), and states nothing else. The paper protocol itself is the named preset
``paper`` of :mod:`cxrbench.protocols`.

Whatever ``on_bad_image="skip"`` leaves out is named in one warning (counts and the first few files). The
summary has the keys every loader's has (:class:`cxrbench.data.common.StudyCollector`: ``views`` counts the
kept images per view, ``text_available``, ``unique_texts``) plus the MIMIC ones above and ``view_positions``
(kept images per ViewPosition); every option, the section parser included, is recorded in the provenance.

Performance: the csvs are streamed with the :mod:`csv` module; dicts are built only for the chosen split, so
duplicate ``dicom_id`` rows are detected within the chosen split (``split="all"`` checks the whole file).
"""

from __future__ import annotations

import csv
import gzip
import io
import os
import re
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from cxrbench.data import mimic_paper as paper
from cxrbench.data.common import (
    EXAMPLES,
    HashingReader,
    PathResolver,
    StudyCollector,
    check_choice,
    first_non_utf8_line,
    progress_bar,
)
from cxrbench.data.mimic_paper import DEFAULT_REQUIREMENT, PAPER_REQUIREMENT, REQUIREMENTS, meets
from cxrbench.data.mimic_sections import DEFAULT_SECTION_PARSER, SECTION_PARSERS, Sections, split_sections
from cxrbench.data.records import Dataset, ImageRecord, Study, collapse_whitespace
from cxrbench.errors import ConfigError, DataError

NAME = "mimic-cxr"
SPLITS = ("train", "validate", "test")
SPLIT_ALIASES = {"val": "validate", "valid": "validate", "validation": "validate"}
DEFAULT_SPLIT = "validate"
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
#: What the loader counts as left out (summary key -> in words), in the order the summary lists them.
DROPS = {
    "dropped_by_view": "images not in the chosen views",
    "dropped_studies_no_view": "studies without an image of the chosen views",
    "skipped_missing_images": "missing image file(s)",
    "dropped_studies_no_images": "studies left without images",
    "missing_reports": "missing report(s)",
    "unreadable_reports": "unreadable report(s)",
    "dropped_no_sections": "reports without a FINDINGS or IMPRESSION section",
    "dropped_by_requirement": "reports without the required section(s)",
}


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
    """Streams the rows of a csv or csv.gz file as (line number, row), checking the required columns; the file
    is hashed as it is read (``fingerprint`` once every row has been read)."""

    def __init__(self, path: Path, required: tuple[str, ...]):
        self.path = path
        self.required = required
        self.columns: dict[str, int] = {}
        self.fingerprint: dict | None = None

    def _binary(self, hashing: HashingReader) -> io.BufferedIOBase:
        raw = hashing.buffered()
        return gzip.GzipFile(fileobj=raw, mode="rb") if self.path.name.endswith(".gz") else raw

    def rows(self) -> Iterator[tuple[int, list[str]]]:
        reader = None
        try:
            with HashingReader(self.path) as hashing, io.TextIOWrapper(self._binary(hashing), encoding="utf-8-sig",
                                                                       newline="") as text:
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
                self.fingerprint = hashing.fingerprint()
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
            found = first_non_utf8_line(raw)
        if found is None:
            return ""
        number, exc = found
        return f"line {number}: not UTF-8 text (byte {exc.start} of the line: {exc.reason}); "

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


def normalise_split(split: str | None) -> str:
    """The split name ``split`` means (``None``: the default ``validate``; ``val`` -> ``validate``)."""
    s = (split or DEFAULT_SPLIT).strip().lower()
    s = SPLIT_ALIASES.get(s, s)
    if s not in (*SPLITS, "all"):
        raise ConfigError(f"mimic-cxr has splits {', '.join(SPLITS)} and 'all', not {split!r}")
    return s


def _read_split(path: Path, split: str) -> tuple[dict[str, _Study], int, dict]:
    """Studies of ``split`` (in csv order), the number of csv rows in the file, and its fingerprint."""
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
    assert table.fingerprint is not None  # every row was read
    return studies, n_rows, table.fingerprint


def _read_metadata(path: Path, studies: dict[str, _Study]) -> tuple[int, dict]:
    """Fill in ViewPosition for the chosen images; return how many chosen images the metadata lacks, and the
    file's fingerprint."""
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
    assert table.fingerprint is not None  # every row was read
    return len(wanted) - len(found), table.fingerprint


def parse_views(views: str | Iterable[str] | None) -> frozenset[str] | None:
    """The ViewPosition values ``views`` names (None: every view; ``frontal``, ``lateral``, ``unknown`` groups)."""
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


def _existing_file(resolver: PathResolver, path: Path, where: str) -> bool:
    """Whether ``path`` is an existing file; a DataError when it resolves (symlinks, ``..``) outside the
    resolver's folder."""
    found = resolver.locate(path)
    if found.outside:
        raise DataError(f"{path}: {where}: resolves to {found.path}, outside {resolver.real_base}; refusing to read "
                        "files outside the dataset root")
    return found.exists


# ---------------------------------------------------------------------------------------------------- reports


class _Reports:
    """Reads ``pXX/pSSSSSSSS/sTTTTTTTT.txt`` reports from a folder or a zip."""

    def __init__(self, kind: str, location: Path, searched: str = ""):
        self.kind = kind  # "folder" (location = the files/ folder) or "zip"
        self.location = location
        self.searched = searched
        self.prefix = ""
        self._zip: zipfile.ZipFile | None = None
        self._resolver = PathResolver(location) if kind == "folder" else None
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
        assert self._resolver is not None
        if not _existing_file(self._resolver, path, where):
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


@dataclass
class _Candidate:
    """A study with the image files it kept, waiting for its report."""

    study: _Study
    records: tuple[ImageRecord, ...]
    view_positions: tuple[str, ...]


def _check_images(root: Path, split_csv: Path, studies: dict[str, _Study], view_set: frozenset[str] | None,
                  collector: StudyCollector) -> tuple[list[_Candidate], dict[str, int]]:
    """Each study's images of the chosen views whose files exist (missing ones go to ``collector``), and the
    number of kept images per ViewPosition."""
    files = root / "files"
    if studies and not files.is_dir():
        raise DataError(f"{files}: image folder not found; MIMIC-CXR-JPG keeps images in "
                        "<root>/files/pXX/pSSSSSSSS/sTTTTTTTT/<dicom_id>.jpg")
    resolver = PathResolver(files)
    positions: dict[str, int] = {}
    candidates = []
    for s in studies.values():
        kept = [im for im in s.images if view_set is None or im.view_position in view_set]
        collector.drop("dropped_by_view", len(s.images) - len(kept))
        if not kept:
            collector.drop("dropped_studies_no_view")
            continue
        found = []
        for im in kept:
            path = files / s.rel_dir / f"{im.dicom_id}.jpg"
            if _existing_file(resolver, path, f"{split_csv.name} line {im.line}"):
                found.append(im)
                positions[im.view_position or "unknown"] = positions.get(im.view_position or "unknown", 0) + 1
            else:
                collector.missing_image(path, f"{split_csv} line {im.line}, dicom_id {im.dicom_id!r}", "check root")
        if found:
            records = tuple(ImageRecord(im.dicom_id, files / s.rel_dir / f"{im.dicom_id}.jpg",
                                        image_view(im.view_position)) for im in found)
            candidates.append(_Candidate(s, records, tuple(im.view_position for im in found)))
        else:
            collector.drop("dropped_studies_no_images")
    return candidates, dict(sorted(positions.items(), key=lambda kv: (-kv[1], kv[0])))


def _decode_report(data: bytes) -> str:
    """A report's text; UnicodeDecodeError for bytes that are not UTF-8 text (a NUL byte means binary data)."""
    if b"\x00" in data:
        raise UnicodeDecodeError("utf-8", data, data.index(b"\x00"), data.index(b"\x00") + 1,
                                 "NUL byte: binary data, not text")
    return data.decode("utf-8")


def _read_reports(source: _Reports, candidates: list[_Candidate], split_csv: Path, parser: str, require: str,
                  fallback: bool, collector: StudyCollector, progress: bool) -> tuple[list[str], int, paper.SectionTally]:
    """Read and section every candidate's report, adding the studies that meet ``require`` (or, with
    ``fallback``, have fallback text) to ``collector``; return examples of reports without FINDINGS or
    IMPRESSION, how many used the fallback text, and the tally of every report's sections."""
    no_section_examples: list[str] = []
    fallbacks = 0
    tally = paper.SectionTally()
    for c in progress_bar(candidates, "mimic-cxr reports", "report", progress):
        s, at = c.study, source.where(c.study.rel_report)
        where = f"study {s.study_id}, {split_csv.name} line {s.line}"
        data = source.read(s.rel_report, where)
        if data is None:
            collector.skip_or_raise("missing_reports", f"{at}: report not found ({where})",
                                    source.searched or "check the reports= folder or zip")
            continue
        try:
            text = _decode_report(data)
        except UnicodeDecodeError as exc:
            collector.skip_or_raise("unreadable_reports",
                                    f"{at}: not UTF-8 text (byte {exc.start}: {exc.reason}; {where})",
                                    "re-download the report")
            continue
        try:
            sections: Sections = split_sections(text, s.study_id, parser=parser, fallback=fallback)
        except DataError as exc:
            raise DataError(f"{at}: {where}: {exc}") from exc
        used_fallback = sections.fallback is not None
        has_findings = bool(sections.findings.strip())
        has_impression = bool(sections.impression.strip()) and not used_fallback
        tally.add(sections, has_findings, has_impression, len(c.records))
        if not (has_findings or has_impression) and not used_fallback:
            collector.drop("dropped_no_sections")
            if len(no_section_examples) < EXAMPLES:
                no_section_examples.append(at)
            continue
        if not used_fallback and not meets(require, has_findings, has_impression):
            collector.drop("dropped_by_requirement")
            continue
        fallbacks += used_fallback
        collector.add(Study(s.study_id, c.records, collapse_whitespace(sections.findings),
                            collapse_whitespace(sections.impression),
                            meta={"subject_id": "p" + s.subject, "report": at, "view_positions": c.view_positions,
                                  "headers": tuple(sections.headers), "fallback": sections.fallback,
                                  "custom_rule": sections.custom_rule}))
    return no_section_examples, fallbacks, tally


def load(root: str | Path | None, split: str | None = DEFAULT_SPLIT, policy: str = "longest",
         on_bad_image: str = "error", progress: bool = True, reports: str | Path | None = None,
         views: str | Iterable[str] | None = None, sections: str = DEFAULT_SECTION_PARSER,
         require: str = DEFAULT_REQUIREMENT, fallback: bool = False) -> Dataset:
    """The MIMIC-CXR evaluation set of ``split`` (see the module docstring for the layout and the selection).

    ``reports``: reports folder or zip (default: searched under ``root``); ``views``: ViewPosition values to
    keep (None: all); ``sections``: the section parser, ``mitlcp`` (MIT-LCP's own) or ``lenient``;
    ``require``: the sections a study must have (``any``, ``both``, ``findings``, ``impression``);
    ``fallback``: with ``require="any"``, keep reports without FINDINGS/IMPRESSION, their impression being the
    parser's fallback text.
    """
    check_choice("sections", sections, SECTION_PARSERS)
    check_choice("require", require, REQUIREMENTS)
    if fallback and require != "any":
        raise ConfigError(f"fallback=True keeps reports without FINDINGS or IMPRESSION, so it needs require='any', "
                          f"not {require!r}")
    if root is None:
        raise ConfigError("mimic-cxr needs the MIMIC-CXR-JPG folder: pass --root (root=...)")
    split = normalise_split(split)
    view_set = parse_views(views)
    view_filter = sorted(view_set) if view_set else None
    collector = StudyCollector(NAME, split, policy, on_bad_image, drops=DROPS,
                               filters={"views": view_filter,
                                        "require": None if require == DEFAULT_REQUIREMENT else require})
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(f"{root}: MIMIC-CXR-JPG root folder not found")
    root = Path(os.path.realpath(root))
    split_csv = _find_index(root, SPLIT_FILES, "split")
    metadata_csv = _find_index(root, METADATA_FILES, "metadata")
    by_study, split_rows, split_fingerprint = _read_split(split_csv, split)
    no_metadata, metadata_fingerprint = _read_metadata(metadata_csv, by_study)
    candidates, positions = _check_images(root, split_csv, by_study, view_set, collector)
    source = _open_reports(root, reports, [c.study for c in candidates])
    try:
        no_section_examples, fallbacks, tally = _read_reports(source, candidates, split_csv, sections, require,
                                                              fallback, collector, progress)
    finally:
        source.close()

    by_requirement = tally.counts()
    options = {"split": split, "policy": policy, "views": view_filter, "sections": sections, "require": require,
               "fallback": fallback, "on_bad_image": on_bad_image}
    ds = collector.finish(
        split_csv, len(by_study),
        facts={"sections": sections, "require": require, "fallback": fallback, "split_csv_rows": split_rows,
               "split_studies": len(by_study), "split_images": sum(len(s.images) for s in by_study.values())},
        details={"no_section_examples": no_section_examples, "fallback_sections": fallbacks,
                 "images_without_metadata": no_metadata, "view_positions": positions,
                 "reports_source": source.provenance(),
                 "section_requirements": {
                     "parser": sections, "required": require, "paper_protocol": PAPER_REQUIREMENT,
                     "counts": by_requirement,
                     "counted": "studies of the split with images of the chosen views and a readable report, "
                                "before the requirement and the text policy",
                     "special_case_studies": tally.special_cases,
                     "deidentified_only": tally.deidentified_only}},
        provenance={"root": str(root), "split_csv": split_fingerprint, "metadata_csv": metadata_fingerprint,
                    "reports": source.provenance(), "options": options, "section_parser": sections})
    skipped = sum(collector.drops[k] for k in ("skipped_missing_images", "missing_reports", "unreadable_reports"))
    ds.summary["paper_comparison"] = paper.paper_comparison(
        ds.summary, paper.differences(split, view_set, sections, require, fallback), by_requirement, skipped)
    return ds
