"""``iu-phantom``: the real IU X-ray reports paired with phantom radiographs rendered from their MeSH tags.

What is real: every report text (FINDINGS, IMPRESSION), the MeSH tags, the number of images per study and,
where the DICOM metadata gives it, each image's view. What is synthetic: every pixel. Each listed image is
rendered by :mod:`cxrbench.phantom` from the study's MeSH ``<major>`` terms, with a per-patient seed
derived from the study id (both views of a study show the same patient) and the image's view.

Split (fixed; "iu-phantom split v1", :mod:`cxrbench.data.iu_split`, shared with ``iu-xray``): the eligible
studies (at least one image, FINDINGS or IMPRESSION non-empty) are ordered by SHA-256 of
``"iu-phantom-split-v1:" + uid``; the first 1,000 form ``test``, the rest ``train``. The split does not depend on
the report-text policy; the policy then drops test studies whose chosen text is empty (counted in the summary).

Rendered images are cached as PNG under ``<cache>/iu-phantom/r<renderer version>-<size>/``, each carrying the
SHA-256 of its image id and pixels in a PNG text chunk (``cxrbench-image-sha256``) that is checked whenever the
image is read: a damaged, truncated or unverifiable PNG is reported in one warning line and rendered again, never
used (PNGs without the chunk, written by an older cxrbench, are rendered again once, with one warning). Missing
images are rendered up front by a process pool whose workers exit when their parent dies. When the cache cannot
be written (read-only, full disk) the images are rendered in memory as they are read, after one warning.

Lung-field masks (for the ``lungs`` occlusion mode) come from the same renders: :func:`cxrbench.phantom.render_with_lungs`
gives each image and its lung fields in one pass, and the masks are cached next to the images, under
``<image folder>/lungs-v<LUNG_MASK_VERSION>/<image id>.png`` (0 = outside, 255 = lung), checksummed and verified
the same way. Rendering the masks never changes the images (or ``RENDERER_VERSION``): an image folder rendered by an
older cxrbench gets its masks rendered once, when the dataset is next loaded.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import os
import signal
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from cxrbench import phantom
from cxrbench.cache import CorruptEntry, cache_root, cache_unusable, is_unusable, warn
from cxrbench.data.iu_reports import ATTRIBUTION, IUReport, image_views, load_reports, view_positions
from cxrbench.data.iu_split import SPLIT_VERSION, eligible_reports, split_reports
from cxrbench.data.records import Dataset, ImageRecord, Study, apply_policy, count_summary
from cxrbench.errors import DataError
from cxrbench.io import atomic_path

DEFAULT_SIZE = 512


def study_seed(uid: str) -> int:
    """Per-patient seed for the renderer (stable across machines and Python versions)."""
    return int.from_bytes(hashlib.sha256(f"iu-phantom-patient:{uid}".encode()).digest()[:8], "little")


def image_dir(size: int = DEFAULT_SIZE) -> Path:
    return cache_root() / "iu-phantom" / f"r{phantom.RENDERER_VERSION}-{size}"


def mask_dir(size: int = DEFAULT_SIZE) -> Path:
    """Where the lung-field masks of the images in :func:`image_dir` are cached."""
    return image_dir(size) / f"lungs-v{phantom.LUNG_MASK_VERSION}"


def mask_path(image_path: str | Path) -> Path:
    """The cached lung mask of the rendered image at ``image_path``."""
    p = Path(image_path)
    return p.parent / f"lungs-v{phantom.LUNG_MASK_VERSION}" / p.name


def _to_study(report: IUReport, views: dict[str, str], size: int) -> Study:
    folder = image_dir(size)
    images = tuple(
        ImageRecord(image_id, folder / f"{image_id}.png", view)
        for image_id, view in zip(report.image_ids, image_views(report.image_ids, views))
    )
    return Study(report.uid, images, report.findings, report.impression, report.majors,
                 meta={"seed": study_seed(report.uid)})


#: PNG text chunk holding the SHA-256 of a rendered phantom's pixels
CHECKSUM_CHUNK = "cxrbench-image-sha256"
#: (MeSH majors, seed, view, size): what :func:`cxrbench.phantom.render` needs for one image
RenderJob = tuple[tuple[str, ...], int, str, int]


def pixels_checksum(pixels: np.ndarray, image_id: str) -> str:
    """SHA-256 of the image id, the pixels' shape and their bytes (a valid PNG of another image fails it too)."""
    h = hashlib.sha256(f"{image_id}:{pixels.dtype.str}:{pixels.shape}:".encode())
    h.update(np.ascontiguousarray(pixels).tobytes())
    return h.hexdigest()


def render_pixels(job: RenderJob) -> np.ndarray:
    majors, seed, view, size = job
    return phantom.render(phantom.parse_mesh(majors), seed=seed, view=view, size=size)


def render_with_lungs(job: RenderJob) -> tuple[np.ndarray, np.ndarray]:
    """The image of :func:`render_pixels` and its lung-field mask as uint8 0 / 255, from one render."""
    majors, seed, view, size = job
    pixels, lungs = phantom.render_with_lungs(phantom.parse_mesh(majors), seed=seed, view=view, size=size)
    return pixels, np.where(lungs, 255, 0).astype(np.uint8)


def save_rendered(pixels: np.ndarray, out: str | Path) -> None:
    """Write a rendered image atomically as PNG (``<image id>.png``) with its checksum chunk."""
    info = PngInfo()
    info.add_text(CHECKSUM_CHUNK, pixels_checksum(pixels, Path(out).stem))
    with atomic_path(out) as tmp:
        Image.fromarray(pixels, mode="L").save(tmp, format="PNG", compress_level=1, pnginfo=info)


def read_rendered(path: str | Path) -> Image.Image:
    """A rendered phantom from the cache (``<image id>.png``), verified against its checksum chunk; CorruptEntry
    says what is wrong (FileNotFoundError when it is not rendered yet)."""
    try:
        with Image.open(path) as im:
            im.load()
            stored = im.text.get(CHECKSUM_CHUNK) if hasattr(im, "text") else None
            pixels = np.asarray(im)
            mode = im.mode
    except (FileNotFoundError, NotADirectoryError):
        raise FileNotFoundError(path) from None
    except Exception as exc:  # Pillow raises OSError, SyntaxError, ValueError, zlib.error... on damaged files
        raise CorruptEntry(f"cannot decode it: {type(exc).__name__}: {exc}") from None
    if stored is None:
        raise CorruptEntry(f"no {CHECKSUM_CHUNK} chunk, so its pixels cannot be verified")
    if mode != "L" or pixels_checksum(pixels, Path(path).stem) != stored:
        raise CorruptEntry("pixel checksum mismatch")
    return Image.fromarray(pixels, mode="L")


def _render_one(args: tuple[tuple[str, ...], int, str, int, str, bool, bool]) -> str:
    """Render one image and write the image and / or its lung mask (whichever the job asks for)."""
    majors, seed, view, size, out, image, mask = args
    pixels, lungs = render_with_lungs((majors, seed, view, size))
    if image:
        save_rendered(pixels, out)
    if mask:
        save_rendered(lungs, mask_path(out))
    return out


def _exit_with_parent(parent: int) -> None:
    """Pool-worker initializer: end this worker when the process that started it dies (a ``kill -9`` of
    ``cxrbench run`` would otherwise leave the workers waiting for work forever). Linux: the parent-death signal;
    everywhere: a thread that watches the parent id."""
    if sys.platform == "linux":
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(0.5)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, daemon=True, name="exit-with-parent").start()


def _state(path: Path) -> str:
    """``ok`` (rendered, with a checksum chunk), ``missing``, ``legacy`` (rendered by a cxrbench without
    checksums) or why the file cannot be read (a header-only look: the loader verifies the pixels)."""
    try:
        with Image.open(path) as im:
            return "ok" if CHECKSUM_CHUNK in im.info else "legacy"
    except (FileNotFoundError, NotADirectoryError):
        return "missing"
    except Exception as exc:  # damaged header: Pillow raises OSError, SyntaxError, ValueError...
        return f"{type(exc).__name__}: {exc}"


def render_missing(studies: list[Study], size: int = DEFAULT_SIZE, workers: int | None = None,
                   progress: bool = True) -> int:
    """Render every image of ``studies`` whose image or lung mask is not cached yet, or whose file cannot be
    verified (no checksum chunk, a damaged header); return how many images were rendered.

    Damaged pixel data is found by the loaders, which check each image and mask as they read it and render a bad
    one again. When the cache cannot be written this stops after one warning, and the loaders render in memory.
    """
    jobs, legacy = [], 0
    for s in studies:
        for im in s.images:
            state = _state(Path(im.source))
            mask_state = _state(mask_path(im.source))
            if state == "ok" and mask_state == "ok":
                continue
            if state == "legacy":
                legacy += 1
            elif state not in ("ok", "missing"):
                warn(f"rendered phantom {im.source} is damaged ({state}); rendering it again")
            if mask_state not in ("ok", "missing", "legacy"):
                warn(f"phantom lung mask {mask_path(im.source)} is damaged ({mask_state}); rendering it again")
            jobs.append((s.tags, s.meta["seed"], im.view or "frontal", size, str(im.source), state != "ok",
                         mask_state != "ok"))
    root = cache_root()
    if not jobs or is_unusable(root):
        return 0
    if legacy:
        warn(f"{legacy} rendered phantom(s) in {image_dir(size)} have no checksum (an older cxrbench wrote them); "
             "rendering them again, once")
    try:
        mask_dir(size).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        cache_unusable(root, exc, "creating the phantom render folder")
        return 0
    workers = workers or min(len(jobs), os.cpu_count() or 1)
    from tqdm.auto import tqdm

    what = "" if any(j[5] for j in jobs) else " lung masks"
    bar = tqdm(total=len(jobs), desc=f"render iu-phantom{what} ({size}px)", unit="img", disable=not progress)
    try:
        if workers <= 1:
            for job in jobs:
                _render_one(job)
                bar.update()
        else:
            with ProcessPoolExecutor(max_workers=workers, initializer=_exit_with_parent,
                                     initargs=(os.getpid(),)) as pool:
                for _ in pool.map(_render_one, jobs, chunksize=16):
                    bar.update()
    except OSError as exc:
        cache_unusable(root, exc, "writing rendered phantoms")
    finally:
        bar.close()
    return len(jobs)


class _CachedRender:
    """Reads one rendered array per record from the render cache, verified; a missing or damaged one is rendered
    (again) from the record's job and, when the cache can be written, saved. Picklable (a Dataset is)."""

    what = "phantom image"  # how warnings and errors name one array

    def __init__(self, jobs: dict[str, RenderJob]):
        self.jobs = jobs

    def path(self, record: ImageRecord) -> Path:
        raise NotImplementedError

    def render(self, job: RenderJob) -> np.ndarray:
        raise NotImplementedError

    def __call__(self, record: ImageRecord) -> Image.Image:
        path = self.path(record)
        try:
            return read_rendered(path)
        except FileNotFoundError:
            pass
        except CorruptEntry as exc:
            warn(f"{self.what} {path} is damaged ({exc}); rendering it again")
            with contextlib.suppress(OSError):
                path.unlink()
        job = self.jobs.get(record.image_id)
        if job is None:
            raise DataError(f"{path}: the {self.what} of {record.image_id!r} is not rendered and the image is not "
                            "part of this dataset; load the dataset with cxrbench.data.iu_phantom.load")
        pixels = self.render(job)
        root = cache_root()
        if not is_unusable(root):
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                save_rendered(pixels, path)
            except OSError as exc:
                cache_unusable(root, exc, f"saving the {self.what} {path.name}")
        return Image.fromarray(pixels, mode="L")


class PhantomImages(_CachedRender):
    """The image loader of iu-phantom (see :class:`_CachedRender`)."""

    what = "phantom image"

    def path(self, record: ImageRecord) -> Path:
        return Path(record.source)

    def render(self, job: RenderJob) -> np.ndarray:
        return render_pixels(job)


class PhantomLungMasks(_CachedRender):
    """The lung-field masks of iu-phantom (see :class:`_CachedRender`): an ``L`` image (0 / 255) at the image's
    size."""

    what = "phantom lung mask"
    source = f"iu-phantom renderer, lung masks v{phantom.LUNG_MASK_VERSION}"

    def path(self, record: ImageRecord) -> Path:
        return mask_path(record.source)

    def render(self, job: RenderJob) -> np.ndarray:
        return render_with_lungs(job)[1]


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
        "lung_masks": PhantomLungMasks.source,
    }
    jobs = {im.image_id: (s.tags, s.meta["seed"], im.view or "frontal", size) for s in kept for im in s.images}
    ds = Dataset(
        name="iu-phantom", split=split, policy=policy, studies=kept, summary=summary,
        image_loader=PhantomImages(jobs), lung_masks=PhantomLungMasks(jobs),
        provenance={"renderer_version": phantom.RENDERER_VERSION, "image_size": size,
                    "split_version": SPLIT_VERSION, "reports": ATTRIBUTION},
        on_bad_image=on_bad_image,
    )
    if render:
        render_missing(kept, size=size, workers=workers, progress=progress)
    return ds
