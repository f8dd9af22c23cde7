"""Per-image lung-field masks for the ``lungs`` occlusion mode: a folder of mask PNGs, and the checks a sweep runs
on them before any model is loaded.

``--data-option lung_masks=DIR`` works with every dataset: ``DIR/<image id>.png`` is the mask of the image with that
id (an id with ``/`` in it names a subfolder); for an id that ends in an image suffix (manifest ids are the image
paths, ``images/p1.jpg``) ``DIR/images/p1.png`` is read when ``DIR/images/p1.jpg.png`` does not exist. Any 8-bit or 16-bit grayscale, palette, RGB or 1-bit PNG is read;
a nonzero pixel is lung. A mask must have its image's size, or the same aspect ratio (within 1%): it is then
resized to the image's size (nearest neighbour), so masks made at a lower resolution work too. A missing,
undecodable or empty mask, or one of another aspect ratio, is a DataError naming the file; with
``--on-bad-image skip`` its image is left out of the run instead and counted (``skipped_missing_lung_masks``).

iu-phantom has masks of its own (rendered with the images, :mod:`cxrbench.data.iu_phantom`); other datasets
without ``lung_masks`` have none, and the sweep's ``lungs`` mode falls back to the fixed template
(``lungs(template)``).
"""

from __future__ import annotations

import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image

from cxrbench.data.images import image_size, shown_path
from cxrbench.data.records import Dataset, ImageRecord, count_summary
from cxrbench.errors import ConfigError, DataError

#: the data option that names a folder of masks
OPTION = "lung_masks"
#: the largest relative difference of aspect ratio between a mask and its image that is resized, not refused
ASPECT_TOLERANCE = 0.01
#: suffixes of image ids that may be replaced by .png to name their mask
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".dcm", ".dicom", ".tif", ".tiff", ".bmp")
_FIX = ("add or fix it, pass --on-bad-image skip to leave the image out (counted), or drop lung_masks to use the "
        "fixed template (lungs(template))")


def check_folder(folder: object) -> Path:
    """``lung_masks=DIR`` as a Path; ConfigError unless it is an existing folder."""
    if not isinstance(folder, (str, Path)) or not str(folder).strip():
        raise ConfigError(f"--data-option lung_masks={folder!r}: give the folder of lung-mask PNGs "
                          "(<image id>.png)")
    path = Path(str(folder)).expanduser()
    if not path.is_dir():
        raise ConfigError(f"--data-option lung_masks={folder}: no such folder; give the folder of lung-mask PNGs "
                          "named after the image ids (<image id>.png)")
    return path


def binary_mask(mask: np.ndarray) -> Image.Image:
    """An array (nonzero = lung) as an ``L`` image of 0 / 255."""
    return Image.fromarray(np.where(mask != 0, 255, 0).astype(np.uint8), mode="L")


class LungMaskFolder:
    """The masks of ``lung_masks=DIR``: called with an ImageRecord, returns its mask as an ``L`` image (0 / 255)
    at the image's size. Picklable (a Dataset is)."""

    def __init__(self, folder: str | Path):
        self.folder = check_folder(folder)
        self.source = f"folder {self.folder.resolve()}"

    def path(self, record: ImageRecord) -> Path:
        """The mask file of ``record``: ``<id>.png``, else ``<id without its image suffix>.png`` if that exists."""
        exact = self.folder / f"{record.image_id}.png"
        stem = Path(record.image_id)
        if exact.is_file() or stem.suffix.lower() not in IMAGE_SUFFIXES:
            return exact
        other = self.folder / stem.with_suffix(".png")
        return other if other.is_file() else exact

    def check_exists(self, record: ImageRecord) -> None:
        path = self.path(record)
        if not path.is_file():
            raise DataError(f"{shown_path(path)}: lung mask of image {record.image_id!r} not found (masks are "
                            f"<image id>.png in {self.folder}); {_FIX}")

    def __call__(self, record: ImageRecord) -> Image.Image:
        self.check_exists(record)
        path = self.path(record)
        try:
            with Image.open(path) as im:
                im.load()
                arr = np.asarray(im.convert("L") if im.mode in ("P", "PA", "RGB", "RGBA", "LA", "1") else im)
        except Exception as exc:  # Pillow raises OSError, SyntaxError, ValueError... on damaged files
            raise DataError(f"{path}: cannot decode the lung mask ({type(exc).__name__}: {exc}); {_FIX}") from None
        if arr.ndim != 2:
            raise DataError(f"{path}: lung mask has shape {arr.shape}, not one grey channel; {_FIX}")
        if not (arr != 0).any():
            raise DataError(f"{path}: lung mask has no lung pixel (all zero); {_FIX}")
        mask = binary_mask(arr)
        want = image_size(record.source)
        if mask.size == want:
            return mask
        (mw, mh), (iw, ih) = mask.size, want
        if abs((mw / mh) / (iw / ih) - 1.0) > ASPECT_TOLERANCE:
            raise DataError(f"{path}: lung mask of {mw}x{mh} does not fit its image of {iw}x{ih} (another aspect "
                            f"ratio); {_FIX}")
        return mask.resize(want, Image.Resampling.NEAREST)


def attach(dataset: Dataset, folder: str | Path) -> Dataset:
    """``dataset`` with the masks of ``folder`` (its summary says where they come from)."""
    masks = LungMaskFolder(folder)
    return replace(dataset, lung_masks=masks, summary={**dataset.summary, "lung_masks": masks.source})


def check_masks(dataset: Dataset, progress: bool = False) -> Dataset:
    """Before any model runs: with ``on_bad_image="error"``, a DataError naming the first image whose mask file is
    missing (and how many are); with ``"skip"``, every mask is read and the images whose mask is missing or bad are
    left out with one warning, listed in ``bad_lung_masks`` of the summary and counted in
    ``skipped_missing_lung_masks``. A dataset without masks is returned as it is."""
    masks = dataset.lung_masks
    if masks is None:
        return dataset
    records = dataset.images
    if dataset.on_bad_image != "skip":
        exists = getattr(masks, "check_exists", None)
        if exists is None:  # masks that are made, not read (iu-phantom): checked as they are made
            return dataset
        missing = []
        for rec in records:
            try:
                exists(rec)
            except DataError as exc:
                missing.append(exc)
        if missing:
            more = f" ({len(missing)} of {len(records)} masks are missing)" if len(missing) > 1 else ""
            raise DataError(f"{missing[0]}{more}")
        return dataset
    bad: list[dict] = []
    for rec in records:
        try:
            masks(rec)
        except DataError as exc:
            bad.append({"image_id": rec.image_id, "source": str(rec.source), "error": str(exc)})
    if not bad:
        return dataset
    shown = "; ".join(b["error"].split(":")[0] for b in bad[:5])
    warnings.warn(f"{dataset.name}: left out {len(bad)} image(s) whose lung mask is missing or bad "
                  f"(--on-bad-image skip): {shown}", stacklevel=3)
    gone = {b["image_id"] for b in bad}
    studies, dropped = [], 0
    for st in dataset.studies:
        images = tuple(im for im in st.images if im.image_id not in gone)
        if images:
            studies.append(replace(st, images=images))
        else:
            dropped += 1
    summary = {**dataset.summary, "skipped_missing_lung_masks": len(bad), "bad_lung_masks": bad,
               "dropped_studies_without_lung_masks": dropped}
    summary.update(count_summary(studies))
    if not studies:
        raise DataError(f"{dataset.name}: no image has a usable lung mask; first problem: {bad[0]['error']}")
    return replace(dataset, studies=studies, summary=summary)
