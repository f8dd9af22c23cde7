"""Tests for :func:`cxrbench.data.images.decode_image`: every format it reads, the intensity mapping it applies
(16-bit min..max rescale; DICOM modality LUT, VOI window, MONOCHROME1 inversion), and the DataError naming the
file for every unreadable input (missing, not an image, truncated, damaged)."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from PIL import Image

from cxrbench.data.images import decode_image
from cxrbench.errors import DataError

from dicom_writer import write_dicom

H, W = 32, 40


def _ramp(lo: int, hi: int) -> np.ndarray:
    """A (H, W) ramp from lo to hi inclusive (every value distinct enough to check the mapping)."""
    return np.linspace(lo, hi, H * W).round().astype(np.int64).reshape(H, W)


def _minmax(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    return np.round((x - x.min()) / (x.max() - x.min()) * 255).astype(np.uint8)


def _window(x: np.ndarray, center: float, width: float) -> np.ndarray:
    lo, hi = center - width / 2, center + width / 2
    return np.clip(np.round((x.astype(np.float64) - lo) / (hi - lo) * 255), 0, 255).astype(np.uint8)


# --- Pillow formats -------------------------------------------------------------------------------------------


def test_png_8bit_grayscale_is_returned_unchanged(tmp_path):
    arr = np.random.default_rng(0).integers(0, 256, (H, W), dtype=np.uint8)
    Image.fromarray(arr).save(tmp_path / "a.png")
    im = decode_image(tmp_path / "a.png")
    assert im.mode == "L" and im.size == (W, H)
    np.testing.assert_array_equal(np.asarray(im), arr)


def test_png_8bit_rgb_is_returned_unchanged(tmp_path):
    arr = np.random.default_rng(1).integers(0, 256, (H, W, 3), dtype=np.uint8)
    Image.fromarray(arr).save(tmp_path / "a.png")
    im = decode_image(str(tmp_path / "a.png"))
    assert im.mode == "RGB"
    np.testing.assert_array_equal(np.asarray(im), arr)


def test_png_16bit_is_rescaled_linearly_from_its_own_min_max(tmp_path):
    arr = _ramp(1000, 4000).astype(np.uint16)  # a 12-bit export: the bit depth (65535) must not be the scale
    arr[0, 0], arr[-1, -1] = 4000, 1000  # extremes anywhere
    Image.fromarray(arr).save(tmp_path / "a.png")
    assert Image.open(tmp_path / "a.png").mode.startswith("I")
    out = np.asarray(decode_image(tmp_path / "a.png"))
    assert out.dtype == np.uint8 and out.min() == 0 and out.max() == 255
    np.testing.assert_array_equal(out, _minmax(arr))
    assert out[0, 0] == 255 and out[-1, -1] == 0


def test_png_16bit_constant_image_is_black(tmp_path):
    Image.fromarray(np.full((H, W), 777, np.uint16)).save(tmp_path / "a.png")
    out = np.asarray(decode_image(tmp_path / "a.png"))
    assert out.dtype == np.uint8 and not out.any()


def test_palette_and_alpha_pngs_become_rgb_or_l(tmp_path):
    arr = np.random.default_rng(2).integers(0, 256, (H, W, 3), dtype=np.uint8)
    Image.fromarray(arr).convert("P").save(tmp_path / "p.png")
    Image.fromarray(arr[..., 0]).convert("LA").save(tmp_path / "la.png")
    assert decode_image(tmp_path / "p.png").mode == "RGB"
    la = decode_image(tmp_path / "la.png")
    assert la.mode == "L"
    np.testing.assert_array_equal(np.asarray(la), arr[..., 0])


@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_jpeg(tmp_path, mode):
    shape = (H, W) if mode == "L" else (H, W, 3)
    arr = np.full(shape, 120, np.uint8)
    Image.fromarray(arr).save(tmp_path / "a.jpg", quality=95)
    im = decode_image(tmp_path / "a.jpg")
    assert im.mode == mode and im.size == (W, H)
    assert np.abs(np.asarray(im).astype(int) - 120).max() <= 2


def test_content_decides_not_the_suffix(tmp_path):
    Image.fromarray(np.zeros((H, W), np.uint8)).save(tmp_path / "really_png.jpg", format="PNG")
    assert decode_image(tmp_path / "really_png.jpg").size == (W, H)


# --- DICOM ----------------------------------------------------------------------------------------------------


def test_dicom_monochrome2_without_window_uses_min_max(tmp_path):
    arr = _ramp(100, 3000)
    write_dicom(tmp_path / "a.dcm", arr)
    im = decode_image(tmp_path / "a.dcm")
    assert im.mode == "L" and im.size == (W, H)
    np.testing.assert_array_equal(np.asarray(im), _minmax(arr))


def test_dicom_monochrome1_is_inverted(tmp_path):
    arr = _ramp(100, 3000)
    write_dicom(tmp_path / "a.dcm", arr, photometric="MONOCHROME1")
    np.testing.assert_array_equal(np.asarray(decode_image(tmp_path / "a.dcm")), 255 - _minmax(arr))


def test_dicom_window_is_applied_after_rescale_slope_and_intercept(tmp_path):
    arr = _ramp(0, 2000)
    write_dicom(tmp_path / "a.dcm", arr, WindowCenter=1500, WindowWidth=1000, RescaleSlope=2, RescaleIntercept=-500)
    out = np.asarray(decode_image(tmp_path / "a.dcm"))
    expected = _window(arr * 2 - 500, 1500, 1000)
    np.testing.assert_array_equal(out, expected)
    assert (out == 0).any() and (out == 255).any()  # the window clips both ends of this ramp


def test_dicom_monochrome1_with_window_and_rescale(tmp_path):
    arr = _ramp(0, 2000)
    write_dicom(tmp_path / "a.dcm", arr, photometric="MONOCHROME1", WindowCenter=800, WindowWidth=600,
                RescaleSlope=0.5, RescaleIntercept=100)
    expected = 255 - _window(arr * 0.5 + 100, 800, 600)
    np.testing.assert_array_equal(np.asarray(decode_image(tmp_path / "a.dcm")), expected)


def test_dicom_rescale_without_window_keeps_min_max_mapping(tmp_path):
    arr = _ramp(10, 900)
    write_dicom(tmp_path / "a.dcm", arr, RescaleSlope=3, RescaleIntercept=-1024)
    np.testing.assert_array_equal(np.asarray(decode_image(tmp_path / "a.dcm")), _minmax(arr))


def test_dicom_first_of_several_windows_is_used(tmp_path):
    arr = _ramp(0, 4000)
    write_dicom(tmp_path / "a.dcm", arr, WindowCenter=[1000, 3000], WindowWidth=[500, 2000])
    np.testing.assert_array_equal(np.asarray(decode_image(tmp_path / "a.dcm")), _window(arr, 1000, 500))


def test_dicom_zero_window_width_falls_back_to_min_max(tmp_path):
    arr = _ramp(0, 4000)
    write_dicom(tmp_path / "a.dcm", arr, WindowCenter=1000, WindowWidth=0)
    np.testing.assert_array_equal(np.asarray(decode_image(tmp_path / "a.dcm")), _minmax(arr))


def test_dicom_multiframe_is_refused_naming_the_file(tmp_path):
    write_dicom(tmp_path / "multi.dcm", np.stack([_ramp(0, 100)] * 2), frames=2)
    with pytest.raises(DataError, match=r"multi\.dcm.*single-frame"):
        decode_image(tmp_path / "multi.dcm")


def test_dicom_without_pixel_data_names_the_file(tmp_path):
    write_dicom(tmp_path / "a.dcm", _ramp(0, 100))
    ds = pydicom.dcmread(tmp_path / "a.dcm")
    del ds.PixelData
    ds.save_as(tmp_path / "nopix.dcm", enforce_file_format=True)
    with pytest.raises(DataError, match=r"nopix\.dcm"):
        decode_image(tmp_path / "nopix.dcm")


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_dicom_with_a_damaged_window_value_names_the_file(tmp_path):
    write_dicom(tmp_path / "a.dcm", _ramp(0, 100), WindowCenter="1234.5", WindowWidth=100)
    data = (tmp_path / "a.dcm").read_bytes()
    assert data.count(b"1234.5") == 1
    (tmp_path / "bad.dcm").write_bytes(data.replace(b"1234.5", b"12x4.5"))
    with pytest.raises(DataError, match=r"bad\.dcm"):
        decode_image(tmp_path / "bad.dcm")


@pytest.mark.filterwarnings("ignore::UserWarning")  # pydicom warns about the cut-off values it reads
def test_dicom_truncated_anywhere_raises_data_error_naming_the_file(tmp_path):
    """Cut the file at every byte: before the fix, cuts inside some elements escaped as struct.error or
    pydicom's BytesLengthException instead of a DataError."""
    write_dicom(tmp_path / "a.dcm", _ramp(0, 1000)[:8, :8], WindowCenter=500, WindowWidth=400)
    data = (tmp_path / "a.dcm").read_bytes()
    target = tmp_path / "cut.dcm"
    for n in range(len(data)):
        target.write_bytes(data[:n])
        with pytest.raises(DataError, match=r"cut\.dcm"):
            decode_image(target)


def test_dicom_suffix_is_case_insensitive(tmp_path):
    write_dicom(tmp_path / "A.DCM", _ramp(0, 100))
    assert decode_image(tmp_path / "A.DCM").mode == "L"


# --- unreadable inputs ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt,suffix", [("PNG", ".png"), ("JPEG", ".jpg")])
def test_truncated_image_names_the_file(tmp_path, fmt, suffix):
    arr = np.random.default_rng(3).integers(0, 256, (H, W), dtype=np.uint8)
    Image.fromarray(arr).save(tmp_path / f"full{suffix}", format=fmt)
    data = (tmp_path / f"full{suffix}").read_bytes()
    for n in (0, 10, len(data) // 3, len(data) // 2, len(data) - 40):
        target = tmp_path / f"cut{n}{suffix}"
        target.write_bytes(data[:n])
        with pytest.raises(DataError, match=rf"cut{n}\{suffix}.*truncated"):
            decode_image(target)


@pytest.mark.parametrize("name", ["notes.png", "notes.jpg", "notes.dcm", "notes.txt"])
def test_non_image_file_names_the_file(tmp_path, name):
    (tmp_path / name).write_text("FINDINGS: heart size normal.\n")
    with pytest.raises(DataError, match=name.replace(".", r"\.")):
        decode_image(tmp_path / name)


def test_missing_file_and_folder_name_the_path(tmp_path):
    with pytest.raises(DataError, match=r"nowhere\.png: image file not found"):
        decode_image(tmp_path / "nowhere.png")
    (tmp_path / "folder.png").mkdir()
    with pytest.raises(DataError, match=r"folder\.png"):
        decode_image(tmp_path / "folder.png")
