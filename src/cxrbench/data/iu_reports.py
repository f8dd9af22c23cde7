"""The Indiana University chest X-ray reports (OpenI, Demner-Fushman et al. 2016), read from the
``torchxrayvision`` wheel at run time.

The archive ``torchxrayvision/data/NLMCXR_reports.tgz`` holds 3,955 XML reports (``ecgen-radiology/*.xml``).
Each has ``<AbstractText Label="FINDINGS">`` / ``"IMPRESSION"`` sections, MeSH ``<major>`` terms such as
``Opacity/lung/upper lobe/right``, and one ``<parentImage id="CXR1_1_IM-0001-3001">`` per image. The wheel's
``nlmcxr_dicom_metadata.csv.gz`` gives a DICOM ``View Position`` for about two thirds of the images.

Licence: CC BY-NC-ND 4.0. cxrbench never copies the reports into its repository; it reads them from the
installed wheel and quotes them verbatim.
"""

from __future__ import annotations

import csv
import gzip
import importlib.util
import io
import tarfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from cxrbench.errors import DataError

ATTRIBUTION = (
    "Indiana University Chest X-ray Collection (OpenI), Demner-Fushman D. et al., 'Preparing a collection of "
    "radiology examinations for distribution and retrieval', JAMIA 2016; licence CC BY-NC-ND 4.0; reports read "
    "from the torchxrayvision wheel."
)

_FRONTAL = {"PA", "AP"}
_LATERAL = {"LL", "RL", "LATERAL", "LARGE LATERAL"}


@dataclass(frozen=True)
class IUReport:
    uid: str  # e.g. "CXR3029"
    findings: str
    impression: str
    majors: tuple[str, ...]  # MeSH <major> terms, raw
    image_ids: tuple[str, ...]  # parentImage ids, in XML order
    xml_name: str


def _data_dir() -> Path:
    # Locate the wheel without importing it (importing torchxrayvision pulls in scikit-image and takes seconds).
    spec = importlib.util.find_spec("torchxrayvision")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("the IU X-ray reports ship in the torchxrayvision wheel: pip install torchxrayvision")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def reports_archive() -> Path:
    path = _data_dir() / "NLMCXR_reports.tgz"
    if not path.is_file():
        raise DataError(f"{path} is missing: reinstall torchxrayvision (pip install --force-reinstall torchxrayvision)")
    return path


def parse_report_xml(data: bytes, name: str) -> IUReport:
    """Parse one OpenI report XML document; DataError names the file if it is malformed."""
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise DataError(f"{name}: not well-formed XML ({exc})") from exc
    sections = {}
    for node in root.iter("AbstractText"):
        label = (node.get("Label") or "").strip().upper()
        sections[label] = " ".join("".join(node.itertext()).split())
    uid_node = root.find("uId")
    uid = uid_node.get("id") if uid_node is not None else None
    if not uid:
        raise DataError(f"{name}: no <uId id=...> element")
    majors = tuple((m.text or "").strip() for m in root.iter("major") if (m.text or "").strip())
    image_ids = tuple(p.get("id") for p in root.iter("parentImage") if p.get("id"))
    return IUReport(uid, sections.get("FINDINGS", ""), sections.get("IMPRESSION", ""), majors, image_ids, name)


@lru_cache(maxsize=2)
def load_reports(archive: str | None = None) -> tuple[IUReport, ...]:
    """All reports in the archive, sorted by uid number."""
    path = Path(archive) if archive else reports_archive()
    out = []
    try:
        with tarfile.open(path) as tf:
            for member in tf:
                if member.isfile() and member.name.endswith(".xml"):
                    fh = tf.extractfile(member)
                    out.append(parse_report_xml(fh.read(), f"{path}:{member.name}"))
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DataError(f"{path}: cannot read the report archive ({exc}); reinstall torchxrayvision") from exc
    out.sort(key=lambda r: (int("".join(c for c in r.uid if c.isdigit()) or 0), r.uid))
    return tuple(out)


DICOM_METADATA = "nlmcxr_dicom_metadata.csv.gz"


@lru_cache(maxsize=1)
def dicom_metadata() -> tuple[dict[str, str], ...]:
    """The rows of the DICOM metadata table shipped with torchxrayvision (none if absent), read once."""
    path = _data_dir() / DICOM_METADATA
    if not path.is_file():
        return ()
    with gzip.open(path, "rb") as raw:
        return tuple(csv.DictReader(io.TextIOWrapper(raw, encoding="utf-8", errors="replace")))


@lru_cache(maxsize=1)
def view_positions() -> dict[str, str]:
    """image id -> "frontal" | "lateral", from the DICOM metadata shipped with torchxrayvision."""
    out = {}
    for row in dicom_metadata():
        pos = (row.get("View Position") or "").strip().upper()
        if pos in _FRONTAL:
            out[row["imageid"]] = "frontal"
        elif pos in _LATERAL:
            out[row["imageid"]] = "lateral"
    return out


def image_views(image_ids: tuple[str, ...], known: dict[str, str]) -> tuple[str, ...]:
    """View of each image: the DICOM View Position when known; otherwise by order (OpenI lists the frontal
    image first in most two-image studies): the first unknown image is frontal unless the study already has a
    known frontal, later unknown ones lateral unless the study already has a known lateral."""
    views = [known.get(i) for i in image_ids]
    have = {v for v in views if v}
    out = []
    for v in views:
        if v is None:
            v = "lateral" if ("frontal" in have and "lateral" not in have) else "frontal"
            have.add(v)
        out.append(v)
    return tuple(out)
