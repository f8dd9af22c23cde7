"""Decoding radiographs from files into 8-bit PIL images (what every model adapter's geometry stage takes).

* JPEG, PNG (8-bit grayscale, RGB, palette; 16-bit grayscale) through Pillow. 16-bit images are rescaled linearly
  from their own [min, max] to 0..255 (the full stored range, not the bit depth: many 16-bit exports use 12 bits).
* DICOM through pydicom (optional extra ``cxrbench[dicom]``): the modality LUT (RescaleSlope/Intercept) is applied,
  then the VOI window from WindowCenter/WindowWidth when the file gives one (the first, if several), else the
  image's own [min, max] range, to 0..255; MONOCHROME1 images (bright = air) are inverted so that bone is bright, as
  in MONOCHROME2 and as the models were trained on.

Orientation: a JPEG (or PNG, TIFF) whose EXIF ``Orientation`` tag says the camera was rotated is turned upright
(Pillow's ``ImageOps.exif_transpose``), as every viewer shows it; DICOM has no such tag.

Limits, checked from the file header before the pixels are decoded: at most :data:`MAX_PIXELS` pixels (a larger
image is almost surely a decompression bomb; Pillow's own bomb check applies too) and an aspect ratio of at most
:data:`MAX_ASPECT` (a 40000 x 1 image is 40 kB on disk, but resizing its shorter side to a model's 224 pixels
would need GBs). A path with a NUL byte cannot name a file.

Fast decoding (``--decode fast``, opt-in): ``decode_image(path, draft=need)`` lets a JPEG be decoded reduced in
the DCT domain (Pillow's draft mode: 1/2, 1/4 or 1/8 scale), to the smallest such scale whose size is still at
least ``need(width, height)`` in both dimensions (sizes of the upright image). Other formats decode in full.

Every failure raises :class:`cxrbench.errors.DataError` naming the file and what to do; with
``--on-bad-image skip`` the image is left out and counted instead.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from cxrbench.errors import DataError

DICOM_SUFFIXES = {".dcm", ".dicom"}
#: the most pixels an image may have (a 10000 x 10000 radiograph is 100 M; chest X-rays are < 20 M)
MAX_PIXELS = 100_000_000
#: the largest ratio of an image's longer to its shorter side (chest X-rays are below 1.5)
MAX_ASPECT = 10.0
#: ``need(width, height) -> (w, h) | None``: the smallest size an upright width x height image may be decoded at
#: (None: full size); see :func:`decode_image`
DraftSize = Callable[[int, int], "tuple[int, int] | None"]
#: EXIF orientations that swap width and height (transposed or rotated by 90 degrees)
_SWAPPING_ORIENTATIONS = (5, 6, 7, 8)
_SKIP = "replace it, or pass --on-bad-image skip to leave it out (counted in the results)"


def check_size(path: Path, width: int, height: int) -> None:
    """DataError unless ``width`` x ``height`` is within :data:`MAX_PIXELS` and :data:`MAX_ASPECT`."""
    if width < 1 or height < 1:
        raise DataError(f"{path}: image of size {width}x{height} has no pixels; {_SKIP}")
    if width * height > MAX_PIXELS:
        raise DataError(f"{path}: image of {width}x{height} = {width * height:,} pixels is larger than the "
                        f"{MAX_PIXELS:,}-pixel limit (a decompression bomb?); {_SKIP}")
    if max(width, height) / min(width, height) > MAX_ASPECT:
        raise DataError(f"{path}: image of {width}x{height} has an aspect ratio above {MAX_ASPECT:g}:1, not a "
                        f"radiograph (resizing it would need huge memory); {_SKIP}")


def shown_path(path: str | Path) -> str:
    """A path as messages show it (a NUL byte as \\x00)."""
    return str(path).replace("\x00", "\\x00")


def _to_uint8(arr: np.ndarray, lo: float | None = None, hi: float | None = None) -> np.ndarray:
    arr = arr.astype(np.float64)
    lo = float(arr.min()) if lo is None else lo
    hi = float(arr.max()) if hi is None else hi
    if hi <= lo:
        return np.zeros(arr.shape, dtype=np.uint8)
    return np.clip(np.round((arr - lo) / (hi - lo) * 255.0), 0, 255).astype(np.uint8)


def _from_pil(im: Image.Image, path: Path) -> Image.Image:
    if im.mode in ("L", "RGB"):
        return im
    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        return Image.fromarray(_to_uint8(np.asarray(im)), mode="L")
    if im.mode in ("LA", "P", "PA", "RGBA", "CMYK", "YCbCr", "1"):
        return im.convert("RGB") if im.mode not in ("LA", "1") else im.convert("L")
    raise DataError(f"{path}: unsupported image mode {im.mode!r}; convert it to 8-bit grayscale or RGB")


def _first(value) -> float:
    """A DICOM DS value or the first of a multi-valued one."""
    try:
        return float(value)
    except TypeError:
        return float(value[0])


def decode_dicom(path: Path) -> Image.Image:
    try:
        import pydicom
        from pydicom.errors import InvalidDicomError
    except ImportError as exc:
        raise DataError(f"{path}: reading DICOM needs pydicom: pip install 'cxrbench[dicom]'") from exc
    try:
        ds = pydicom.dcmread(str(path))
        rows, columns = int(getattr(ds, "Rows", 0) or 0), int(getattr(ds, "Columns", 0) or 0)
        if rows and columns:
            check_size(path, columns, rows)  # before the pixel data is decoded
        arr = ds.pixel_array.astype(np.float64)
        slope = float(getattr(ds, "RescaleSlope", 1) or 1)
        intercept = float(getattr(ds, "RescaleIntercept", 0) or 0)
        center, width = getattr(ds, "WindowCenter", None), getattr(ds, "WindowWidth", None)
        window = (_first(center), _first(width)) if center is not None and width is not None else None
        photometric = str(getattr(ds, "PhotometricInterpretation", "MONOCHROME2")).strip().upper()
    except DataError:
        raise
    except (InvalidDicomError, OSError, ValueError, AttributeError, RuntimeError) as exc:
        raise DataError(f"{path}: not a readable DICOM image ({exc}); check the file or remove it") from exc
    except Exception as exc:  # a damaged file makes pydicom's parser raise struct.error, TypeError, KeyError...
        raise DataError(f"{path}: not a readable DICOM image, the file may be truncated or damaged "
                        f"({type(exc).__name__}: {exc}); replace it or remove it") from exc
    if arr.ndim != 2:
        raise DataError(f"{path}: DICOM pixel data has shape {arr.shape}; only single-frame grayscale is supported")
    arr = arr * slope + intercept
    lo = hi = None
    if window is not None and window[1] > 0:
        lo, hi = window[0] - window[1] / 2, window[0] + window[1] / 2
    out = _to_uint8(arr, lo, hi)
    if photometric == "MONOCHROME1":
        out = 255 - out
    return Image.fromarray(out, mode="L")


def image_size(path: str | Path) -> tuple[int, int]:
    """(width, height) of an image file as :func:`decode_image` returns it (EXIF orientation applied), read from
    the header only (DICOM: Rows / Columns); DataError when the header cannot be read."""
    p = Path(path)
    try:
        if p.suffix.lower() in DICOM_SUFFIXES:
            import pydicom

            ds = pydicom.dcmread(str(p), stop_before_pixels=True)
            return int(ds.Columns), int(ds.Rows)
        with Image.open(p) as im:
            w, h = im.size
            turned = im.getexif().get(0x0112, 1) in (5, 6, 7, 8)  # EXIF orientations that swap the sides
            return (h, w) if turned else (w, h)
    except Exception as exc:  # Pillow and pydicom raise many types on unreadable headers
        raise DataError(f"{p}: cannot read the image size from its header ({type(exc).__name__}: {exc})") from exc


def draft_request(need: DraftSize, width: int, height: int, orientation: int = 1) -> tuple[int, int] | None:
    """The size to hand Pillow's ``draft`` for a stored ``width`` x ``height`` JPEG with EXIF ``orientation``:
    ``need`` is asked about the upright image, and its answer turned back into the stored orientation."""
    swap = orientation in _SWAPPING_ORIENTATIONS
    want = need(height, width) if swap else need(width, height)
    if want is None:
        return None
    w, h = want
    return (h, w) if swap else (w, h)


def decode_image(path: str | Path, draft: DraftSize | None = None) -> Image.Image:
    """Decode one image file into an 8-bit 'L' or 'RGB' PIL image (fully loaded, file closed, EXIF orientation
    applied), after checking its size from the header (see the module docstring). ``draft``: let a JPEG be
    decoded at a reduced scale no smaller than ``draft(width, height)`` (``--decode fast``)."""
    if "\x00" in str(path):
        raise DataError(f"{shown_path(path)}: the image path contains a NUL byte, so it cannot name a file; fix the "
                        "path, or pass --on-bad-image skip")
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: image file not found; check the dataset root, or pass --on-bad-image skip")
    if p.suffix.lower() in DICOM_SUFFIXES:
        return decode_dicom(p)
    try:
        with Image.open(p) as im:
            check_size(p, *im.size)
            orientation = im.getexif().get(0x0112, 1)
            if draft is not None and im.format == "JPEG":
                request = draft_request(draft, *im.size, orientation)
                if request is not None:
                    im.draft(im.mode, request)  # DCT-domain scaling: 1/2, 1/4 or 1/8, never below request
            im.load()
            if orientation != 1:  # EXIF Orientation: not upright as stored
                im = ImageOps.exif_transpose(im)
            return _from_pil(im, p)
    except Image.DecompressionBombError as exc:
        raise DataError(f"{p}: {exc} (a decompression bomb?); {_SKIP}") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"{p}: cannot decode image ({exc}); the file may be truncated or not an image. "
                        "Replace it, or pass --on-bad-image skip to leave it out (counted in the results)") from exc
