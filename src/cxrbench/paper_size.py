"""Synthetic data of MIMIC-CXR's evaluation size: the paper's protocol without its (credentialed) images.

:func:`build_paper_data` writes grayscale JPEGs of MIMIC-CXR-JPG's typical size (2544 x 3056, quality 95) and a
``manifest.csv`` (``study_id,image_path,findings``), so the folder is a ``manifest`` dataset. At full scale it has
MIMIC-CXR's evaluation counts: 994 studies and 1,770 images (776 studies with two images, 218 with one); smaller
sets keep that ratio. Pixels: phantom radiographs (:mod:`cxrbench.phantom`) rendered at 512 px from each report's
MeSH tags, then resized up. Texts: the longer of FINDINGS / IMPRESSION of real IU X-ray reports. Rendering uses a
process pool; a folder that already holds the same data is reused.

Used by ``cxrbench bench --paper-size`` and ``scripts/gpu_check.py``.
"""

from __future__ import annotations

import csv
import json
import math
import multiprocessing
import os
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from cxrbench.errors import ConfigError
from cxrbench.io import atomic_path

MIMIC_STUDIES, MIMIC_TWO_IMAGE_STUDIES = 994, 776  # 776 x 2 + 218 x 1 = 1,770 images
MIMIC_IMAGES = 1770
MIMIC_SIZE = (2544, 3056)  # (width, height): MIMIC-CXR-JPG's typical PA image
DATA_MARKER = "gpu_check_data.json"


@dataclass(frozen=True)
class PaperData:
    """What to build: studies (with ``two_image_studies`` of them holding a lateral view too), the JPEG size
    (width, height), the phantom render size and the JPEG quality."""

    studies: int = MIMIC_STUDIES
    two_image_studies: int | None = None  # default: studies x 776 / 994
    width: int = MIMIC_SIZE[0]
    height: int = MIMIC_SIZE[1]
    render_size: int = 512
    jpeg_quality: int = 95

    @classmethod
    def for_images(cls, images: int, **kw) -> PaperData:
        """About ``images`` images with MIMIC's share of two-image studies."""
        studies = max(1, round(images * MIMIC_STUDIES / MIMIC_IMAGES))
        return cls(studies=studies, two_image_studies=min(studies, max(0, images - studies)), **kw)

    @property
    def n_two(self) -> int:
        if self.two_image_studies is not None:
            return self.two_image_studies
        return round(self.studies * MIMIC_TWO_IMAGE_STUDIES / MIMIC_STUDIES)

    def folder_name(self) -> str:
        return (f"data-{self.studies}-{self.n_two}x2-{self.width}x{self.height}-r{self.render_size}"
                f"-q{self.jpeg_quality}")


def parse_size(text: str) -> tuple[int, int]:
    """``WxH``, or one number: the height, with MIMIC's width/height ratio."""
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if m:
        return int(m.group(1)), int(m.group(2))
    if text.strip().isdigit():
        h = int(text)
        return max(1, round(h * MIMIC_SIZE[0] / MIMIC_SIZE[1])), h
    raise ConfigError(f"image size {text!r}: use WxH (e.g. 2544x3056) or one number (the height)")


def _write(path: Path, write: Callable[[Path], object]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        write(Path(tmp))


def _render_job(job: tuple[str, tuple[str, ...], int, str, int, int, int, int]) -> int:
    """Render one phantom at ``render_size``, resize to (width, height), save as JPEG; return the file size."""
    from PIL import Image

    from cxrbench import phantom

    out, majors, seed, view, render_size, width, height, quality = job
    pixels = phantom.render(phantom.parse_mesh(majors), seed=seed, view=view, size=render_size)
    image = Image.fromarray(pixels, mode="L")
    if image.size != (width, height):
        image = image.resize((width, height), Image.Resampling.BICUBIC)
    _write(Path(out), lambda tmp: image.save(tmp, format="JPEG", quality=quality))
    return Path(out).stat().st_size


def build_paper_data(folder: str | Path, spec: PaperData = PaperData(), workers: int | None = None,
                     log: Callable[[str], None] | None = None) -> dict:
    """Write (or reuse) the JPEGs and manifest.csv of ``spec`` in ``folder``; return what was built (``manifest``:
    the manifest path) and how long rendering took (``render_s``, 0 when reused)."""
    from cxrbench import phantom
    from cxrbench.data.iu_phantom import study_seed
    from cxrbench.data.iu_reports import load_reports

    log = log or (lambda msg: None)
    n2 = spec.n_two
    if spec.studies < 1 or not 0 <= n2 <= spec.studies:
        raise ConfigError(f"paper-size data: {n2} two-image studies must lie between 0 and {spec.studies} studies")
    params = {"studies": spec.studies, "two_image_studies": n2, "width": spec.width, "height": spec.height,
              "render_size": spec.render_size, "jpeg_quality": spec.jpeg_quality,
              "renderer_version": phantom.RENDERER_VERSION, "format": 1}
    folder = Path(folder)
    marker, manifest = folder / DATA_MARKER, folder / "manifest.csv"
    if marker.is_file():
        stored = json.loads(marker.read_text())
        if stored.get("params") != params:
            raise ConfigError(f"{folder} holds other data ({stored.get('params')}); use another folder")
        if manifest.is_file():
            log(f"data: reusing {folder} ({stored['images']} images)")
            return {**stored, "reused": True, "render_s": 0.0}

    reports = [r for r in load_reports() if max(len(r.findings), len(r.impression)) > 0]
    if spec.studies > len(reports):
        raise ConfigError(f"paper-size data: {spec.studies} studies asked, only {len(reports)} IU reports have text")
    two = {math.floor(k * spec.studies / n2) for k in range(n2)} if n2 else set()  # spread over the studies
    rows, jobs = [], []
    for i, report in enumerate(reports[: spec.studies]):
        text = report.findings if len(report.findings) >= len(report.impression) else report.impression
        sid = f"s{50000000 + i}"
        for k, view in enumerate(("frontal", "lateral")[: 2 if i in two else 1]):
            rel = f"files/{sid[:4]}/{sid}/{report.uid}_{k}.jpg"
            rows.append((sid, rel, text))
            if not (folder / rel).is_file():
                jobs.append((str(folder / rel), report.majors, study_seed(report.uid), view, spec.render_size,
                             spec.width, spec.height, spec.jpeg_quality))
    folder.mkdir(parents=True, exist_ok=True)
    workers = max(1, min(workers or os.cpu_count() or 1, len(jobs) or 1))
    log(f"data: rendering {len(jobs)} of {len(rows)} images ({spec.render_size} px -> {spec.width}x{spec.height} "
        f"JPEG q{spec.jpeg_quality}) with {workers} process(es) into {folder}")
    t0 = time.perf_counter()
    if jobs:
        if workers == 1:
            for job in jobs:
                _render_job(job)
        else:
            # spawn: the parent may hold torch's thread pools, which do not survive fork
            with multiprocessing.get_context("spawn").Pool(workers) as pool:
                for _ in pool.imap_unordered(_render_job, jobs, chunksize=8):
                    pass
    render_s = time.perf_counter() - t0

    def write_manifest(tmp: Path) -> None:
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(["study_id", "image_path", "findings"])
            writer.writerows(rows)

    _write(manifest, write_manifest)
    info = {"params": params, "spec": asdict(spec), "folder": str(folder), "manifest": str(manifest),
            "studies": spec.studies, "images": len(rows),
            "bytes": sum((folder / r[1]).stat().st_size for r in rows), "rendered_now": len(jobs),
            "render_workers": workers, "render_s_when_built": round(render_s, 2),
            "reports": "IU X-ray (OpenI) reports, longest section"}
    _write(marker, lambda tmp: tmp.write_text(json.dumps(info, indent=1)))
    log(f"data: rendered {len(jobs)} images in {render_s:.1f} s")
    return {**info, "reused": False, "render_s": round(render_s, 2)}


__all__ = ["MIMIC_IMAGES", "MIMIC_SIZE", "MIMIC_STUDIES", "MIMIC_TWO_IMAGE_STUDIES", "PaperData",
           "build_paper_data", "parse_size"]
