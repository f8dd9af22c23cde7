"""``iu-phantom``: the real IU X-ray reports paired with phantom radiographs rendered from their MeSH tags.

What is real: every report text (FINDINGS, IMPRESSION), the MeSH tags, the number of images per study and,
where the DICOM metadata gives it, each image's view. What is synthetic: every pixel. Each listed image is
rendered by :mod:`cxrbench.phantom` from the study's MeSH ``<major>`` terms, with a per-patient seed
derived from the study id (both views of a study show the same patient) and the image's view.

Split (fixed; "iu-phantom split v1", :mod:`cxrbench.data.iu_split`, shared with ``iu-xray``): the eligible
studies (at least one image, FINDINGS or IMPRESSION non-empty) are ordered by SHA-256 of
``"iu-phantom-split-v1:" + uid``; the first 1,000 form ``test``, the rest ``train``. The split does not depend on
the report-text policy; the policy then drops test studies whose chosen text is empty (counted in the summary).

Rendered images are cached as PNG under ``<cache>/iu-phantom/r<renderer version>-<size>/``; rendering uses a
process pool.
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from PIL import Image

from cxrbench import phantom
from cxrbench.cache import cache_root
from cxrbench.data.iu_reports import ATTRIBUTION, IUReport, image_views, load_reports, view_positions
from cxrbench.data.iu_split import SPLIT_VERSION, eligible_reports, split_reports
from cxrbench.data.records import Dataset, ImageRecord, Study, apply_policy, count_summary
from cxrbench.io import atomic_path

DEFAULT_SIZE = 512


def study_seed(uid: str) -> int:
    """Per-patient seed for the renderer (stable across machines and Python versions)."""
    return int.from_bytes(hashlib.sha256(f"iu-phantom-patient:{uid}".encode()).digest()[:8], "little")


def image_dir(size: int = DEFAULT_SIZE) -> Path:
    return cache_root() / "iu-phantom" / f"r{phantom.RENDERER_VERSION}-{size}"


def _to_study(report: IUReport, views: dict[str, str], size: int) -> Study:
    folder = image_dir(size)
    images = tuple(
        ImageRecord(image_id, folder / f"{image_id}.png", view)
        for image_id, view in zip(report.image_ids, image_views(report.image_ids, views))
    )
    return Study(report.uid, images, report.findings, report.impression, report.majors,
                 meta={"seed": study_seed(report.uid)})


def _render_one(args: tuple[tuple[str, ...], int, str, int, str]) -> str:
    majors, seed, view, size, out = args
    spec = phantom.parse_mesh(majors)
    pixels = phantom.render(spec, seed=seed, view=view, size=size)
    with atomic_path(out) as tmp:
        Image.fromarray(pixels, mode="L").save(tmp, format="PNG", compress_level=1)
    return out


def render_missing(studies: list[Study], size: int = DEFAULT_SIZE, workers: int | None = None,
                   progress: bool = True) -> int:
    """Render every image of ``studies`` that is not cached yet; return how many were rendered."""
    jobs = [
        (s.tags, s.meta["seed"], im.view or "frontal", size, str(im.source))
        for s in studies for im in s.images if not Path(im.source).is_file()
    ]
    if not jobs:
        return 0
    image_dir(size).mkdir(parents=True, exist_ok=True)
    workers = workers or min(len(jobs), os.cpu_count() or 1)
    from tqdm.auto import tqdm

    bar = tqdm(total=len(jobs), desc=f"render iu-phantom ({size}px)", unit="img", disable=not progress)
    if workers <= 1:
        for job in jobs:
            _render_one(job)
            bar.update()
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for _ in pool.map(_render_one, jobs, chunksize=16):
                bar.update()
    bar.close()
    return len(jobs)


def _load_png(record: ImageRecord) -> Image.Image:
    path = Path(record.source)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: phantom not rendered yet; call cxrbench.data.iu_phantom.render_missing")
    with Image.open(path) as im:
        im.load()
        return im


def load(split: str = "test", policy: str = "longest", size: int = DEFAULT_SIZE, render: bool = True,
         workers: int | None = None, progress: bool = True, on_bad_image: str = "error") -> Dataset:
    """The iu-phantom dataset; renders missing images into the cache unless ``render=False``."""
    views = view_positions()
    reports = split_reports(split)
    studies = [_to_study(r, views, size) for r in reports]
    kept, dropped = apply_policy(studies, policy)
    unknown: dict[str, int] = {}
    occurrences = 0
    for s in kept:
        spec = phantom.parse_mesh(s.tags)
        occurrences += len(s.tags)
        for term in spec.unknown_terms:
            unknown[term] = unknown.get(term, 0) + 1
    summary = {
        **count_summary(kept),
        "split": split,
        "split_studies_before_policy": len(studies),
        "dropped_empty_text": dropped,
        "dropped_no_images_or_text_overall": len(load_reports()) - len(eligible_reports()),
        "mesh_tag_occurrences": occurrences,
        "unknown_mesh_terms": dict(sorted(unknown.items(), key=lambda kv: (-kv[1], kv[0]))),
        "unique_texts": len({t for t in (Dataset("", "", policy, kept).texts)}),
    }
    ds = Dataset(
        name="iu-phantom", split=split, policy=policy, studies=kept, summary=summary, image_loader=_load_png,
        provenance={"renderer_version": phantom.RENDERER_VERSION, "image_size": size,
                    "split_version": SPLIT_VERSION, "reports": ATTRIBUTION},
        on_bad_image=on_bad_image,
    )
    if render:
        render_missing(kept, size=size, workers=workers, progress=progress)
    return ds
