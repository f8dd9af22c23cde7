"""Tests for the ``iu-xray`` loader (cxrbench.data.iu_xray): the real IU reports from the torchxrayvision wheel with
fake OpenI image trees (PNG release, flat or one folder down; DICOM release, flat or per-study folders)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cxrbench.data import iu_xray
from cxrbench.data.iu_reports import image_views, load_reports, view_positions
from cxrbench.data.iu_split import SPLIT_VERSION, split_reports
from cxrbench.errors import ConfigError, DataError

from dicom_writer import write_dicom as write_dicom_file

# CXR1: image ids "CXR1_1_IM-..." whose DICOM metadata rows read "CXR1_IM-..."; CXR3: impression only;
# CXR4: test split; CXR37: metadata says lateral then frontal; CXR1000: three images, one without metadata.
STUDIES = ("CXR1", "CXR3", "CXR4", "CXR37", "CXR1000")


def _png_bytes(seed: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (32, 40), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def write_dicom(path: Path, seed: int) -> None:
    """A 12-bit MONOCHROME1 DICOM of seeded noise (as OpenI's DICOM release stores them)."""
    pixels = np.random.default_rng(seed).integers(0, 4096, (32, 40))
    write_dicom_file(path, pixels, photometric="MONOCHROME1", bits_stored=12)


def _reports(uids=STUDIES):
    by_uid = {r.uid: r for r in load_reports()}
    return [by_uid[u] for u in uids]


def png_tree(folder: Path, uids=STUDIES) -> Path:
    """The PNG release: <folder>/<parentImage id>.png for every image of ``uids``."""
    folder.mkdir(parents=True, exist_ok=True)
    variants = [_png_bytes(i) for i in range(8)]
    for k, r in enumerate(_reports(uids)):
        for j, image_id in enumerate(r.image_ids):
            (folder / f"{image_id}.png").write_bytes(variants[(k + j) % 8])
    return folder


def dicom_tree(folder: Path, uids=STUDIES, per_study: bool = True) -> Path:
    """The DICOM release: <folder>/<n>/<file>.dcm, file names as torchxrayvision's metadata gives them."""
    names = iu_xray.dicom_filenames()
    for k, r in enumerate(_reports(uids)):
        for j, image_id in enumerate(r.image_ids):
            name = iu_xray.candidate_names(image_id, "dcm", names)[-1 if image_id.startswith("CXR1_1_") else 0]
            write_dicom(folder / (r.uid[3:] if per_study else "") / name, k * 10 + j)
    return folder


KAGGLE_REPORT_COLUMNS = ["uid", "MeSH", "Problems", "image", "indication", "comparison", "findings", "impression"]
# Kaggle's indiana_projections.csv labels CXR1's images the other way round from the view rule (which takes the
# first-listed image as frontal): 1_IM-0001-4001.dcm.png Frontal, 1_IM-0001-3001.dcm.png Lateral.
KAGGLE_VIEW_OVERRIDES = {"CXR1_1_IM-0001-4001": "frontal", "CXR1_1_IM-0001-3001": "lateral"}


def kaggle_name(image_id: str) -> str:
    """Kaggle's file name of an image: the OpenI DICOM name + ``.png`` (``1_IM-0001-4001.dcm.png``)."""
    names = iu_xray.candidate_names(image_id, "dcm", iu_xray.dicom_filenames())
    return names[-1 if image_id.startswith("CXR1_1_") else 0] + ".png"


def kaggle_tree(folder: Path, uids=STUDIES, extra_rows=()) -> Path:
    """Kaggle's chest-xrays-indiana-university: the two CSVs and images/images_normalized/<name>.dcm.png."""
    images = folder / "images" / "images_normalized"
    images.mkdir(parents=True, exist_ok=True)
    known = view_positions()
    with open(folder / "indiana_reports.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(KAGGLE_REPORT_COLUMNS)
        for r in _reports(uids):
            w.writerow([r.uid[3:], ";".join(r.majors) or "normal", "normal", "Xray Chest PA and Lateral", "", "",
                        r.findings, r.impression])
    with open(folder / "indiana_projections.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["uid", "filename", "projection"])
        for k, r in enumerate(_reports(uids)):
            for j, (image_id, view) in enumerate(zip(r.image_ids, image_views(r.image_ids, known))):
                name = kaggle_name(image_id)
                w.writerow([r.uid[3:], name, KAGGLE_VIEW_OVERRIDES.get(image_id, view).capitalize()])
                (images / name).write_bytes(_png_bytes(k + j))
        w.writerows(extra_rows)
    return folder


def r2gen_id(image_id: str) -> str:
    """R2Gen's entry id: the first parentImage id without its last ``-NNNN`` (``CXR2384_IM-0942``)."""
    return image_id.rsplit("-", 1)[0]


R2GEN_SPLIT_OF = {"CXR1": "train", "CXR3": "val", "CXR4": "test", "CXR37": "test"}  # CXR1000: not in R2Gen


def r2gen_tree(base: Path, split_of=R2GEN_SPLIT_OF) -> Path:
    """R2Gen's iu_xray folder: annotation.json ({train, val, test: [{id, report, image_path, split}]}) and
    images/<id>/0.png, 1.png. The report is the FINDINGS (for CXR3, which has none, its IMPRESSION)."""
    folder = base / "iu_xray"
    ann: dict[str, list] = {"train": [], "val": [], "test": []}
    for k, r in enumerate(_reports(list(split_of))):
        eid = r2gen_id(r.image_ids[0])
        paths = [f"{eid}/{j}.png" for j in range(2)]
        for j, rel in enumerate(paths):
            (folder / "images" / rel).parent.mkdir(parents=True, exist_ok=True)
            (folder / "images" / rel).write_bytes(_png_bytes(k + j))
        ann[split_of[r.uid]].append({"id": eid, "report": r.findings or r.impression, "image_path": paths,
                                     "split": split_of[r.uid]})
    (folder / "annotation.json").write_text(json.dumps(ann))
    return folder


@pytest.fixture(scope="module")
def test_split_tree(tmp_path_factory) -> Path:
    """Every image of the iu-phantom test split (1,000 studies) as a tiny PNG, flat."""
    return png_tree(tmp_path_factory.mktemp("iu") / "NLMCXR_png", [r.uid for r in split_reports("test")])


def _load(root, **kw):
    kw.setdefault("progress", False)
    return iu_xray.load(root, **kw)


# --- split, counts, views ------------------------------------------------------------------------------------------


def test_default_split_is_iu_phantoms_test_split(test_split_tree):
    ds = _load(test_split_tree)
    expected = split_reports("test")
    assert ds.name == "iu-xray" and ds.split == "test" and ds.policy == "longest"
    assert [s.study_id for s in ds.studies] == [r.uid for r in expected]
    assert ds.summary["studies"] == 1000 and ds.summary["images"] == sum(len(r.image_ids) for r in expected)
    assert ds.summary["split_version"] == SPLIT_VERSION == ds.provenance["split_version"]
    assert ds.summary["format"] == "png" and ds.summary["folders"] == "flat" and ds.summary["layout"] == "openi"
    assert ds.summary["dropped_empty_text"] == 0 and ds.summary["skipped_missing_images"] == 0
    known = view_positions()
    assert [im.view for im in ds.images] == [v for r in expected for v in image_views(r.image_ids, known)]
    assert sum(ds.summary["view_source"].values()) == ds.summary["images"]
    s = ds.studies[0]
    assert (s.findings, s.impression) == (expected[0].findings, expected[0].impression)
    assert [im.image_id for im in s.images] == list(expected[0].image_ids)
    assert Path(s.images[0].source) == test_split_tree / f"{expected[0].image_ids[0]}.png"
    assert ds.load_image(s.images[0]).size == (40, 32)
    assert ds.provenance["index_files"][0]["path"].endswith("NLMCXR_reports.tgz")


def test_train_split_and_filters(test_split_tree):
    with pytest.raises(DataError, match=r"NLMCXR_png.*image file not found"):
        _load(test_split_tree, split="train")  # the tree holds test images only
    ds = _load(test_split_tree, max_studies=3)
    assert [s.study_id for s in ds.studies] == [r.uid for r in split_reports("test")[:3]]
    assert ds.summary["studies_selected"] == 3 and ds.summary["split_studies"] == 1000
    with pytest.raises(ConfigError, match=r"studies= names CXR1, not in iu-xray split 'test'"):
        _load(test_split_tree, studies={"CXR4", "CXR1"})
    with pytest.raises(ConfigError, match="max_studies"):
        _load(test_split_tree, max_studies=0)


def test_dicom_release_in_per_study_folders(tmp_path):
    root = dicom_tree(tmp_path / "NLMCXR_dcm")
    ds = _load(root, split="all", studies=STUDIES)
    assert ds.summary["format"] == "dcm" and ds.summary["folders"] == "subfolders"
    assert [s.study_id for s in ds.studies] == list(STUDIES)
    by_id = {im.image_id: im for im in ds.images}
    assert Path(by_id["CXR1000_IM-0003-2001"].source) == root / "1000" / "1000_IM-0003-2001.dcm"
    assert Path(by_id["CXR1_1_IM-0001-3001"].source) == root / "1" / "1_IM-0001-3001.dcm"
    assert Path(by_id["CXR1000_IM-0003-1001"].source) == root / "1000" / "1000_IM-0003-1001.dcm"  # no metadata row
    assert ds.summary["images"] == 2 + 2 + 2 + 2 + 3
    im = ds.load_image(by_id["CXR1000_IM-0003-2001"])
    assert im.mode == "L" and im.size == (40, 32)
    assert [p["path"].rsplit("/", 1)[-1] for p in ds.provenance["index_files"]] == [
        "NLMCXR_reports.tgz", "nlmcxr_dicom_metadata.csv.gz"]


def test_dicom_release_flat(tmp_path):
    root = dicom_tree(tmp_path / "flat", per_study=False)
    ds = _load(root, split="all", studies="CXR4,CXR1000")
    assert ds.summary["folders"] == "flat" and ds.summary["images"] == 5


def test_png_release_one_folder_down_and_views(tmp_path):
    png_tree(tmp_path / "openi" / "NLMCXR_png")
    (tmp_path / "openi" / "reports").mkdir()  # other folders are fine
    ds = _load(tmp_path / "openi", split="all", studies=STUDIES)
    assert ds.summary["folders"] == "subfolders" and ds.summary["images"] == 11
    views = {im.image_id: im.view for im in ds.images}
    assert views["CXR37_IM-1847-0001-0001"] == "lateral" and views["CXR37_IM-1847-0001-0002"] == "frontal"
    assert views["CXR1_1_IM-0001-3001"] == "frontal" and views["CXR1_1_IM-0001-4001"] == "lateral"  # by order
    assert ds.summary["views"] == {"frontal": 7, "lateral": 4, "unknown": 0}
    frontal = _load(tmp_path / "openi", split="all", studies=STUDIES, views="frontal")
    assert {im.view for im in frontal.images} == {"frontal"} and frontal.summary["images_not_in_views"] == 4
    lateral = _load(tmp_path / "openi", split="all", studies=STUDIES, views="lateral")
    assert [s.study_id for s in lateral.studies] == ["CXR1", "CXR3", "CXR37", "CXR1000"]  # CXR4: two frontals
    assert lateral.summary["dropped_no_images"] == 1


def test_policies(tmp_path):
    root = png_tree(tmp_path / "png")
    ds = _load(root, split="all", studies=STUDIES, policy="findings")
    assert "CXR3" not in [s.study_id for s in ds.studies] and ds.summary["dropped_empty_text"] == 1
    assert ds.summary["text_available"]["findings"] == 4 and ds.summary["text_available"]["impression"] == 5
    both = _load(root, split="all", studies=["CXR4"], policy="findings+impression")
    r = _reports(["CXR4"])[0]
    assert both.texts == [f"{r.findings} {r.impression}"]


# --- detection and bad input ------------------------------------------------------------------------------------


def test_both_releases_side_by_side_need_format(tmp_path):
    root = tmp_path / "mixed"
    png_tree(root, ["CXR4"])
    dicom_tree(root, ["CXR4"], per_study=False)
    with pytest.raises(ConfigError, match=r"mixed: the folder itself holds both \.png \(2\) and \.dcm \(2\) files; "
                                          "pass format="):
        _load(root, split="all", studies=["CXR4"])
    assert _load(root, split="all", studies=["CXR4"], format="dcm").summary["format"] == "dcm"
    assert _load(root, split="all", studies=["CXR4"], format="png").summary["format"] == "png"
    with pytest.raises(ConfigError, match="format"):
        _load(root, format="jpg")


def test_no_images_and_bad_root(tmp_path):
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "notes.txt").write_text("x")
    with pytest.raises(DataError, match=r"empty: no \.png or \.dcm files in this folder or the folders one level") as exc:
        _load(tmp_path / "empty", split="all", studies=["CXR4"])
    for layout in ("OpenI", "NLMCXR_png", "Kaggle", "indiana_projections.csv", "images/images_normalized", "R2Gen",
                   "annotation.json", "'manifest' dataset"):
        assert layout in str(exc.value)
    png_tree(tmp_path / "pngs", ["CXR4"])
    with pytest.raises(DataError, match=r"pngs: no \.dcm files"):
        _load(tmp_path / "pngs", split="all", studies=["CXR4"], format="dcm")
    with pytest.raises(DataError, match=r"nowhere: IU X-ray image folder not found"):
        _load(tmp_path / "nowhere", split="all", studies=["CXR4"])
    with pytest.raises(ConfigError, match="split"):
        _load(tmp_path / "pngs", split="valid")
    with pytest.raises(ConfigError, match="on_bad_image"):
        _load(tmp_path / "pngs", on_bad_image="drop")


def test_same_file_name_in_two_subfolders(tmp_path):
    dicom_tree(tmp_path / "dcm", ["CXR4"])
    write_dicom(tmp_path / "dcm" / "copy" / "4_IM-2050-1001.dcm", 0)
    with pytest.raises(DataError, match=r"'4_IM-2050-1001\.dcm' appears twice"):
        _load(tmp_path / "dcm", split="all", studies=["CXR4"])


def test_missing_image_error_or_skip(tmp_path):
    root = png_tree(tmp_path / "png")
    (root / "CXR4_IM-2050-2001.png").unlink()
    with pytest.raises(DataError, match=r"png/CXR4_IM-2050-2001\.png \(parentImage CXR4_IM-2050-2001 of report "
                                        r".*NLMCXR_reports\.tgz:ecgen-radiology/4\.xml\): image file not found"):
        _load(root, split="all", studies=STUDIES)
    with pytest.warns(UserWarning, match=r"iu-xray: skipped 1 missing image.*CXR4_IM-2050-2001"):
        ds = _load(root, split="all", studies=STUDIES, on_bad_image="skip")
    assert ds.summary["skipped_missing_images"] == 1 and ds.summary["images"] == 10 and ds.on_bad_image == "skip"
    (root / "CXR4_IM-2050-1001.png").unlink()
    with pytest.warns(UserWarning, match="skipped 2"):
        ds = _load(root, split="all", studies=STUDIES, on_bad_image="skip")
    assert ds.summary["dropped_no_images"] == 1 and "CXR4" not in [s.study_id for s in ds.studies]
    with pytest.warns(UserWarning), pytest.raises(DataError, match="no iu-xray study left"):
        _load(root, split="all", studies=["CXR4"], on_bad_image="skip")


def test_missing_dicom_names_the_alternatives_tried(tmp_path):
    root = dicom_tree(tmp_path / "dcm", ["CXR1"])
    (root / "1" / "1_IM-0001-4001.dcm").unlink()
    with pytest.raises(DataError, match=r"\*/1_1_IM-0001-4001\.dcm \(parentImage CXR1_1_IM-0001-4001 .*also tried "
                                        r"1_IM-0001-4001\.dcm\)"):
        _load(root, split="all", studies=["CXR1"])


def test_candidate_names():
    names = iu_xray.dicom_filenames()
    assert names["CXR1000_IM-0003-2001"] == "1000_IM-0003-2001.dcm"
    assert iu_xray.candidate_names("CXR1000_IM-0003-2001", "dcm", names) == ["1000_IM-0003-2001.dcm"]
    assert iu_xray.candidate_names("CXR1_1_IM-0001-3001", "dcm", names) == ["1_1_IM-0001-3001.dcm",
                                                                            "1_IM-0001-3001.dcm"]
    assert iu_xray.candidate_names("CXR1_1_IM-0001-3001", "png") == ["CXR1_1_IM-0001-3001.png"]


# --- the Kaggle and R2Gen layouts ----------------------------------------------------------------------------------


def test_kaggle_layout_is_detected_and_loads(tmp_path):
    root = kaggle_tree(tmp_path / "kaggle")
    ds = _load(root, split="all", studies=STUDIES)
    assert ds.summary["layout"] == "kaggle" and ds.summary["format"] == "png"
    assert [s.study_id for s in ds.studies] == list(STUDIES) and ds.summary["images"] == 11
    by_id = {im.image_id: im for im in ds.images}
    assert Path(by_id["CXR1000_IM-0003-2001"].source) == root / "images/images_normalized/1000_IM-0003-2001.dcm.png"
    assert Path(by_id["CXR1_1_IM-0001-3001"].source) == root / "images/images_normalized/1_IM-0001-3001.dcm.png"
    # views from the projection column, which disagrees with the order rule for CXR1's two images
    assert by_id["CXR1_1_IM-0001-3001"].view == "lateral" and by_id["CXR1_1_IM-0001-4001"].view == "frontal"
    assert ds.summary["views_differing_from_rule"] == 2 and ds.summary["view_source"]["projections_csv"] == 11
    assert ds.summary["projection_rows_not_matched"] == 0 and ds.summary["image_files_found"] == 11
    assert [p["path"].rsplit("/", 1)[-1] for p in ds.provenance["index_files"]] == [
        "NLMCXR_reports.tgz", "indiana_projections.csv", "indiana_reports.csv"]
    assert ds.load_image(by_id["CXR4_IM-2050-1001"]).size == (40, 32)
    lateral = _load(root, split="all", studies=STUDIES, views="lateral")
    assert {im.view for im in lateral.images} == {"lateral"} and "CXR1_1_IM-0001-3001" in {
        im.image_id for im in lateral.images}


def test_kaggle_rows_and_files_that_do_not_match(tmp_path):
    root = kaggle_tree(tmp_path / "kaggle", extra_rows=[["4", "4_IM-2050-9001.dcm.png", "Lateral"]])
    assert _load(root, split="all", studies=STUDIES).summary["projection_rows_not_matched"] == 1
    (root / "images/images_normalized/4_IM-2050-2001.dcm.png").unlink()
    with pytest.raises(DataError, match=r"images_normalized/4_IM-2050-2001\.dcm\.png \(parentImage CXR4_IM-2050-2001 .*"
                                        r"indiana_projections\.csv line 7\): image file not found"):
        _load(root, split="all", studies=STUDIES)
    lines = (root / "indiana_projections.csv").read_text().splitlines(keepends=True)
    (root / "indiana_projections.csv").write_text("".join(line for line in lines if "4_IM-2050-2001" not in line))
    with pytest.raises(DataError, match=r"parentImage CXR4_IM-2050-2001 .*indiana_projections\.csv has no row for "
                                        r"4_IM-2050-2001\.dcm\.png"):
        _load(root, split="all", studies=STUDIES)


def test_kaggle_bad_csv(tmp_path):
    root = kaggle_tree(tmp_path / "kaggle")
    path = root / "indiana_projections.csv"
    original = path.read_text()
    path.write_text(original.replace("uid,filename,projection", "uid,file,projection"))
    with pytest.raises(DataError, match=r"indiana_projections\.csv: missing column\(s\) 'filename'"):
        _load(root, split="all", studies=STUDIES)
    path.write_text(original.replace(",Lateral", ",Oblique", 1))
    with pytest.raises(DataError, match=r"indiana_projections\.csv, line \d+: projection 'Oblique'"):
        _load(root, split="all", studies=STUDIES)
    path.write_text(original.replace("4,4_IM-2050-1001", "5,4_IM-2050-1001"))
    with pytest.raises(DataError, match=r"line \d+: '4_IM-2050-1001\.dcm\.png' is listed for uid '5', but it is "
                                        "parentImage CXR4_IM-2050-1001 of report CXR4"):
        _load(root, split="all", studies=STUDIES)
    with pytest.raises(ConfigError, match=r"format='dcm' chooses between the OpenI .* kaggle layout"):
        _load(root, split="all", studies=STUDIES, format="dcm")


def test_r2gen_layout_with_its_own_split(tmp_path):
    folder = r2gen_tree(tmp_path / "data")
    for root in (folder, folder.parent):  # the iu_xray folder, or the folder holding it
        ds = _load(root, split="r2gen-test")
        assert ds.split == "r2gen-test" and ds.summary["layout"] == "r2gen"
        assert [s.study_id for s in ds.studies] == ["CXR4", "CXR37"]
        assert [im.image_id for im in ds.studies[0].images] == ["CXR4_IM-2050/0.png", "CXR4_IM-2050/1.png"]
        assert Path(ds.studies[0].images[1].source) == folder / "images/CXR4_IM-2050/1.png"
        assert {im.view for im in ds.images} == {None} and ds.summary["view_source"]["unknown"] == 4
    assert ds.summary["r2gen_studies"] == {"train": 1, "val": 1, "test": 2}
    assert ds.summary["r2gen_report_differs"] == 0 and ds.summary["split_studies"] == 2
    assert ds.studies[0].findings == _reports(["CXR4"])[0].findings  # reports from the XML, R2Gen's is FINDINGS
    assert ds.provenance["index_files"][-1]["path"].endswith("annotation.json")
    val = _load(folder, split="r2gen-val")
    assert [s.study_id for s in val.studies] == ["CXR3"] and val.summary["r2gen_report_differs"] == 1
    assert [s.study_id for s in _load(folder, split="r2gen-train").studies] == ["CXR1"]


def test_r2gen_layout_with_the_iu_phantom_split_names_what_r2gen_left_out(tmp_path):
    folder = r2gen_tree(tmp_path / "data")
    with pytest.raises(DataError, match=r"study CXR1000 .* has no entry in .*annotation\.json: R2Gen keeps only part "
                                        r"of the IU studies; use split='r2gen-test'"):
        _load(folder, split="all", studies=STUDIES)
    with pytest.warns(UserWarning, match="skipped 1 missing image"):
        ds = _load(folder, split="all", studies=STUDIES, on_bad_image="skip")
    assert [s.study_id for s in ds.studies] == ["CXR1", "CXR3", "CXR4", "CXR37"]
    assert ds.summary["comparable_with"].startswith("iu-phantom split 'all'")
    with pytest.raises(ConfigError, match=r"views=\['frontal'\]: R2Gen's image files do not say which view"):
        _load(folder, split="r2gen-test", views="frontal")
    (folder / "images/CXR4_IM-2050/1.png").unlink()
    with pytest.raises(DataError, match=r"images/CXR4_IM-2050/1\.png \(annotation\.json test entry 'CXR4_IM-2050'\): "
                                        "image file not found"):
        _load(folder, split="r2gen-test")


def test_r2gen_bad_annotation(tmp_path):
    folder = r2gen_tree(tmp_path / "data")
    ann = folder / "annotation.json"
    ann.write_text("{not json")
    with pytest.raises(DataError, match=r"annotation\.json: cannot read R2Gen's annotation file"):
        _load(folder, split="r2gen-test")
    ann.write_text(json.dumps({"test": [{"id": "CXR4_IM-2050", "report": "x"}]}))
    with pytest.raises(DataError, match=r"annotation\.json: test\[0\]: an entry needs the keys id, report, image_path"):
        _load(folder, split="r2gen-test")
    ann.write_text(json.dumps({"test": [{"id": "CXR999999_IM-1", "report": "x", "image_path": ["a/0.png"]}]}))
    with pytest.raises(DataError, match=r"R2Gen's 'test' split names CXR999999, which the IU X-ray reports do not"):
        _load(folder, split="r2gen-test")
    ann.write_text(json.dumps([1, 2]))
    with pytest.raises(DataError, match="expected a JSON object with R2Gen's splits train, val, test"):
        _load(folder, split="r2gen-test")


def test_layout_option_and_misplaced_roots(tmp_path, test_split_tree):
    with pytest.raises(ConfigError, match=r"split='r2gen-test' is R2Gen's own split: it needs the R2Gen layout"):
        _load(test_split_tree, split="r2gen-test")
    with pytest.raises(DataError, match=r"no indiana_projections\.csv here \(layout='kaggle'\)"):
        _load(test_split_tree, layout="kaggle")
    with pytest.raises(ConfigError, match="layout='nlm' is not valid; choose one of 'openi', 'kaggle', 'r2gen'"):
        _load(test_split_tree, layout="nlm")
    folder = r2gen_tree(tmp_path / "data")
    with pytest.raises(DataError, match=r"images: not an OpenI image folder\. These look like R2Gen's images/"):
        _load(folder / "images", split="all", studies=["CXR4"])
    kaggle = kaggle_tree(tmp_path / "kaggle")
    with pytest.raises(DataError, match=r"images_normalized: not an OpenI image folder\. These look like the Kaggle"):
        _load(kaggle / "images" / "images_normalized", split="all", studies=["CXR4"])
    with pytest.raises(DataError, match="no .png or .dcm files"):  # layout= forces the layout
        _load(kaggle, layout="openi", split="all", studies=["CXR4"])


# --- end to end -------------------------------------------------------------------------------------------------


def test_cli_run_end_to_end(test_split_tree, tmp_path, monkeypatch, capsys):
    import cxrbench.data as data
    from cxrbench.cli import main

    monkeypatch.setitem(data._DATASETS, "iu-xray", ("cxrbench.data.iu_xray:load", "longest"))
    out = tmp_path / "out"
    assert main(["run", "--dataset", "iu-xray", "--root", str(test_split_tree), "--models", "random", "--levels",
                 "0,0.5", "--bootstrap", "0", "--max-studies", "8", "--out", str(out), "--no-progress"]) == 0
    records = [json.loads(x) for x in (out / "records.jsonl").read_text().splitlines() if x.strip()]
    assert records and {r["dataset"] for r in records} == {"iu-xray"} and {r["split"] for r in records} == {"test[:8]"}
    capsys.readouterr()
    assert main(["datasets", "describe", "iu-xray", "--root", str(test_split_tree)]) == 0
    described = json.loads(capsys.readouterr().out)
    assert described["studies"] == 1000 and described["split_version"] == SPLIT_VERSION


def _run(tmp_path, monkeypatch, *argv) -> list[dict]:
    import cxrbench.data as data
    from cxrbench.cli import main

    monkeypatch.setitem(data._DATASETS, "iu-xray", ("cxrbench.data.iu_xray:load", "longest"))
    out = tmp_path / "out"
    assert main(["run", "--dataset", "iu-xray", *argv, "--models", "random", "--levels", "0,0.5", "--bootstrap", "0",
                 "--no-cache", "--out", str(out), "--no-progress"]) == 0
    return [json.loads(x) for x in (out / "records.jsonl").read_text().splitlines() if x.strip()]


def test_cli_run_end_to_end_on_the_kaggle_layout(tmp_path, monkeypatch):
    first = [r.uid for r in split_reports("test")[:8]]
    root = kaggle_tree(tmp_path / "kaggle", uids=first)
    records = _run(tmp_path, monkeypatch, "--root", str(root), "--data-option", "max_studies=8", "--max-studies", "8")
    assert records and {r["split"] for r in records} == {"test[:8]"} and {r["level"] for r in records} == {0, 0.5}
    assert {r["dataset_counts"]["studies"] for r in records} == {8}


def test_cli_run_end_to_end_on_the_r2gen_layout(tmp_path, monkeypatch):
    root = r2gen_tree(tmp_path / "data")
    records = _run(tmp_path, monkeypatch, "--root", str(root.parent), "--split", "r2gen-test")
    assert records and {r["split"] for r in records} == {"r2gen-test"}
    assert {(r["dataset_counts"]["studies"], r["dataset_counts"]["images"]) for r in records} == {(2, 4)}
