"""Decoding radiographs from files into 8-bit PIL images (what every model adapter's geometry stage takes).

* JPEG, PNG (8-bit grayscale, RGB, palette; 16-bit grayscale) through Pillow. 16-bit images are rescaled linearly
  from their own [min, max] to 0..255 (the full stored range, not the bit depth: many 16-bit exports use 12 bits).
* DICOM through pydicom (optional extra ``cxrbench[dicom]``): the modality LUT (RescaleSlope/Intercept) is applied,
  then the VOI window from WindowCenter/WindowWidth when the file gives one (the first, if several), else the
  image's own [min, max] range, to 0..255; MONOCHROME1 images (bright = air) are inverted so that bone is bright, as
  in MONOCHROME2 and as the models were trained on.

Every failure raises :class:`cxrbench.errors.DataError` naming the file and what to do.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from cxrbench.errors import DataError

DICOM_SUFFIXES = {".dcm", ".dicom"}


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
        arr = ds.pixel_array.astype(np.float64)
        slope = float(getattr(ds, "RescaleSlope", 1) or 1)
        intercept = float(getattr(ds, "RescaleIntercept", 0) or 0)
        center, width = getattr(ds, "WindowCenter", None), getattr(ds, "WindowWidth", None)
        window = (_first(center), _first(width)) if center is not None and width is not None else None
        photometric = str(getattr(ds, "PhotometricInterpretation", "MONOCHROME2")).strip().upper()
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


def decode_image(path: str | Path) -> Image.Image:
    """Decode one image file into an 8-bit 'L' or 'RGB' PIL image (fully loaded, file closed)."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: image file not found; check the dataset root, or pass --on-bad-image skip")
    if p.suffix.lower() in DICOM_SUFFIXES:
        return decode_dicom(p)
    try:
        with Image.open(p) as im:
            im.load()
            return _from_pil(im, p)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"{p}: cannot decode image ({exc}); the file may be truncated or not an image. "
                        "Replace it, or pass --on-bad-image skip to leave it out (counted in the results)") from exc
