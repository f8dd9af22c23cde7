"""Tests for the ``chexpert-plus`` loader (cxrbench.data.chexpert_plus) on a fake CheXpert Plus tree: a
``df_chexpert_plus_240401.csv`` with the real column set and tiny JPEG/PNG images under train/ and valid/."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cxrbench.data import chexpert_plus
from cxrbench.errors import ConfigError, DataError

CSV_NAME = "df_chexpert_plus_240401.csv"
COLUMNS = ["path_to_image", "path_to_dcm", "frontal_lateral", "ap_pa", "deid_patient_id",
           "patient_report_date_order", "report", "section_narrative", "section_clinical_history", "section_history",
           "section_comparison", "section_technique", "section_procedure_comments", "section_findings",
           "section_impression", "section_end_of_impression", "section_summary", "section_accession_number", "age",
           "sex", "race", "ethnicity", "interpreter_needed", "insurance_type", "recent_bmi", "deceased", "split"]

F1 = "Single portable view of the chest. Lungs are clear. Cardiomediastinal silhouette is within normal limits."
I1 = "1. No acute cardiopulmonary process."
I2 = "1. Interval placement of right internal jugular central venous catheter with tip in the SVC.\n" \
     "2. Persistent small bilateral pleural effusions."
F4 = "Heart size is normal. There is a left lower lobe opacity."
I4 = "Left lower lobe pneumonia."


def _row(path: str, fl: str, ap_pa: str, pid: str, order: str, findings: str, impression: str, split: str) -> dict:
    report = "\n".join(x for x in (f"FINDINGS: {findings}" if findings else "",
                                   f"IMPRESSION: {impression}" if impression else "") if x)
    return {c: "" for c in COLUMNS} | {
        "path_to_image": path, "path_to_dcm": path.replace(".jpg", ".dcm"), "frontal_lateral": fl, "ap_pa": ap_pa,
        "deid_patient_id": pid, "patient_report_date_order": order, "report": report,
        "section_findings": findings, "section_impression": impression, "split": split, "age": "61", "sex": "Male"}


ROWS = [
    _row("valid/patient64541/study1/view1_frontal.jpg", "Frontal", "AP", "patient64541", "1", F1, I1, "valid"),
    _row("valid/patient64542/study1/view1_frontal.jpg", "Frontal", "PA", "patient64542", "1", "", I2, "valid"),
    _row("valid/patient64542/study1/view2_lateral.jpg", "Lateral", "", "patient64542", "1", "", I2, "valid"),
    _row("valid/patient64543/study1/view1_frontal.jpg", "Frontal", "AP", "patient64543", "1", "", "", "valid"),
    _row("train/patient00001/study1/view1_frontal.jpg", "Frontal", "AP", "patient00001", "1", F4, I4, "train"),
    _row("train/patient00002/study2/view1_frontal.jpg", "", "", "patient00002", "2", F1, I1, "train"),
    _row("train/patient00002/study2/view2_lateral.jpg", "", "", "patient00002", "2", F1, I1, "train"),
]


def _write_csv(path: Path, rows: list[dict], columns: list[str] = COLUMNS) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    return path


def _image(path: Path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.random.default_rng(seed).integers(0, 256, (32, 40), dtype=np.uint8)
    Image.fromarray(arr).save(path)  # format from the suffix: JPEG for .jpg, PNG for .png


def _tree(root: Path, suffix: str = ".jpg", rows: list[dict] = ROWS, image_folder: str = "") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    _write_csv(root / CSV_NAME, rows)
    for i, r in enumerate(rows):
        _image(root / image_folder / Path(r["path_to_image"]).with_suffix(suffix), i)
    return root


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return _tree(tmp_path / "chexpertplus")


def _load(root, **kw):
    kw.setdefault("progress", False)
    return chexpert_plus.load(root, **kw)


# --- reading ----------------------------------------------------------------------------------------------------


def test_default_split_is_valid_with_studies_sections_and_views(tree):
    ds = _load(tree)
    assert ds.name == "chexpert-plus" and ds.split == "valid"
    assert [s.study_id for s in ds.studies] == ["patient64541/study1", "patient64542/study1"]
    s1, s2 = ds.studies
    assert (s1.findings, s1.impression) == (F1, I1)
    assert s2.findings == "" and s2.impression == " ".join(I2.split())
    assert [im.image_id for im in s2.images] == ["valid/patient64542/study1/view1_frontal.jpg",
                                                 "valid/patient64542/study1/view2_lateral.jpg"]
    assert [im.view for im in ds.images] == ["frontal", "frontal", "lateral"]
    assert s2.meta["patient_id"] == "patient64542" and s2.meta["lines"] == [4, 7]  # multi-line cells: rows start on physical lines
    assert s2.meta["ap_pa"] == {"valid/patient64542/study1/view1_frontal.jpg": "PA",
                                "valid/patient64542/study1/view2_lateral.jpg": None}
    summary = ds.summary
    assert summary["studies"] == 2 and summary["images"] == 3 and summary["dropped_empty_text"] == 1
    assert summary["studies_per_split_in_csv"] == {"train": 2, "valid": 3}
    assert summary["csv_rows"] == 7 and summary["image_suffix_swapped"] == 0
    assert summary["text_available"] == {"findings": 1, "impression": 2, "findings+impression": 2, "longest": 2}
    assert ds.texts == [F1, " ".join(I2.split())]
    assert all(ds.load_image(im).size == (40, 32) for im in ds.images)
    assert ds.provenance["index_files"][0]["path"].endswith(CSV_NAME)


def test_splits_and_policies(tree):
    train = _load(tree, split="train")
    assert [s.study_id for s in train.studies] == ["patient00001/study1", "patient00002/study2"]
    assert [im.view for im in train.images] == ["frontal", "frontal", "lateral"]  # from the file names
    assert _load(tree, split="all").summary["studies"] == 4
    findings = _load(tree, policy="findings")
    assert [s.study_id for s in findings.studies] == ["patient64541/study1"]
    assert findings.summary["dropped_empty_text"] == 2
    with pytest.raises(DataError, match=rf"{CSV_NAME}: no studies in split 'test'.*'train' \(2 studies\), "
                                        r"'valid' \(3 studies\)"):
        _load(tree, split="test")


def test_views_filter(tree):
    ds = _load(tree, views="lateral")
    assert [s.study_id for s in ds.studies] == ["patient64542/study1"]
    assert ds.summary["images_not_in_views"] == 3 and ds.summary["dropped_no_images"] == 2


def test_nan_cells_are_empty_sections(tmp_path):
    rows = [dict(ROWS[0], section_findings="nan"), dict(ROWS[1], section_impression="NaN"),
            dict(ROWS[2], section_impression="NaN")]
    ds = _load(_tree(tmp_path / "t", rows=rows))
    assert [(s.findings, s.impression) for s in ds.studies] == [("", I1)]
    assert ds.summary["dropped_empty_text"] == 1


# --- JPEG vs PNG release -----------------------------------------------------------------------------------------


def test_png_release_is_found_when_the_csv_says_jpg(tmp_path):
    root = _tree(tmp_path / "t", suffix=".png")
    ds = _load(root)
    assert ds.summary["image_suffix_swapped"] == 4 and ds.summary["images"] == 3  # 4 checked, 1 study w/o text
    assert all(str(im.source).endswith(".png") for im in ds.images)
    assert ds.images[0].image_id == "valid/patient64541/study1/view1_frontal.jpg"  # the CSV's name, kept as id
    forced = _load(root, image_suffix="png")
    assert forced.summary["image_suffix_swapped"] == 0
    assert [im.source for im in forced.images] == [im.source for im in ds.images]
    with pytest.raises(DataError, match=rf"view1_frontal\.jpg \(study 'patient64541/study1', .*{CSV_NAME} line 2\)"):
        _load(root, image_suffix=".jpg")  # forced: no fallback
    with pytest.raises(ConfigError, match="image_suffix"):
        _load(root, image_suffix=".tif")


def test_png_folder_is_the_default_image_root(tmp_path):
    root = _tree(tmp_path / "t", suffix=".png", image_folder="PNG")
    assert _load(root).summary["images"] == 3
    other = tmp_path / "t2"
    other.mkdir()
    _write_csv(other / CSV_NAME, ROWS)
    assert _load(other, image_root=root / "PNG").summary["images"] == 3
    with pytest.raises(DataError, match="image root folder not found"):
        _load(other, image_root=tmp_path / "nowhere")


def _chunked_tree(root: Path, chunk_of: dict[int, int], under: str = "", inner: str = "PNG") -> Path:
    """The PNG release as downloaded: png_chexpert_plus_chunk_<k>.zip, each extracted to its own folder
    png_chexpert_plus_chunk_<k>/, whose members are PNG/train/... and PNG/valid/... (``inner``). Row i of ROWS goes
    to chunk chunk_of[i]."""
    root.mkdir(parents=True, exist_ok=True)
    _write_csv(root / CSV_NAME, ROWS)
    for i, r in enumerate(ROWS):
        folder = root / under / f"png_chexpert_plus_chunk_{chunk_of[i]}" / inner
        _image(folder / Path(r["path_to_image"]).with_suffix(".png"), i)
    return root


# the two images of patient64542/study1 sit in different chunks; chunk 10 sorts after chunk 2
CHUNK_OF = {0: 0, 1: 0, 2: 1, 3: 2, 4: 10, 5: 10, 6: 2}


@pytest.mark.parametrize("under", ["", "PNG"])
def test_chunk_folders_are_found_under_the_root(tmp_path, under):
    root = _chunked_tree(tmp_path / "t", CHUNK_OF, under=under)
    ds = _load(root)
    assert [s.study_id for s in ds.studies] == ["patient64541/study1", "patient64542/study1"]
    assert ds.summary["images"] == 3 and ds.summary["image_suffix_swapped"] == 4
    chunks = [root / under / f"png_chexpert_plus_chunk_{k}" / "PNG" for k in (0, 1, 2, 10)]
    assert ds.summary["image_roots"] == [str(c) for c in chunks]
    assert ds.provenance["image_roots"] == [str(c.resolve()) for c in chunks]
    by_id = {im.image_id: Path(im.source) for im in ds.images}
    assert by_id["valid/patient64542/study1/view2_lateral.jpg"] == (
        chunks[1] / "valid/patient64542/study1/view2_lateral.png").resolve()
    assert ds.summary["images_per_root"] == {str(chunks[0]): 2, str(chunks[1]): 1, str(chunks[2]): 0,
                                             str(chunks[3]): 0}
    train = _load(root, split="train")
    assert train.summary["images"] == 3 and train.summary["images_per_root"][str(chunks[3])] == 2


def test_nested_png_png_is_found(tmp_path):
    root = _tree(tmp_path / "t", suffix=".png", image_folder="PNG/PNG")
    ds = _load(root)
    assert ds.summary["images"] == 3 and ds.summary["image_roots"] == [str(root / "PNG" / "PNG")]
    one_chunk = _chunked_tree(tmp_path / "c", dict.fromkeys(range(len(ROWS)), 3), inner="PNG/PNG")
    assert _load(one_chunk).summary["image_roots"] == [str(one_chunk / "png_chexpert_plus_chunk_3" / "PNG" / "PNG")]


def test_image_root_may_be_a_list(tmp_path):
    chunked = _chunked_tree(tmp_path / "t", CHUNK_OF)
    other = tmp_path / "csv-only"
    other.mkdir()
    _write_csv(other / CSV_NAME, ROWS)
    chunk = chunked / "png_chexpert_plus_chunk_{}"
    ds = _load(other, image_root=[str(chunk).format(1), chunk.parent / "png_chexpert_plus_chunk_0", str(chunk).format(2)])
    # each given folder descends to the PNG/ folder that holds train/ or valid/; order as given
    assert ds.summary["image_roots"] == [str(chunk).format(k) + "/PNG" for k in (1, 0, 2)]
    assert ds.summary["images"] == 3
    with pytest.raises(DataError, match=r"chunk_0/PNG/valid/patient64542/study1/view2_lateral\.jpg \(nor with \.png\) "
                                        r"\(study 'patient64542/study1', .*line 7; also looked under 1 other image "
                                        r"root: .*chunk_2/PNG\)"):
        _load(other, image_root=[chunk.parent / "png_chexpert_plus_chunk_0", chunk.parent / "png_chexpert_plus_chunk_2"])
    with pytest.raises(DataError, match="nowhere: image root folder not found"):
        _load(other, image_root=[str(chunk).format(0), tmp_path / "nowhere"])
    with pytest.raises(ConfigError, match="image_root= is empty"):
        _load(other, image_root=[])


def test_csv_file_option_and_csv_discovery(tree, tmp_path):
    moved = tmp_path / "elsewhere.csv"
    (tree / CSV_NAME).rename(moved)
    with pytest.raises(DataError, match=r"chexpertplus: no df_chexpert_plus\*\.csv here"):
        _load(tree)
    assert _load(tree, csv_file=moved).summary["studies"] == 2
    with pytest.raises(DataError, match=r"missing\.csv: CheXpert Plus CSV not found"):
        _load(tree, csv_file="missing.csv")
    _write_csv(tree / "df_chexpert_plus_240401.csv", ROWS)
    _write_csv(tree / "df_chexpert_plus_230101.csv", ROWS)
    with pytest.raises(DataError, match=r"several CheXpert Plus CSVs \(df_chexpert_plus_230101\.csv, "):
        _load(tree)


# --- bad input ----------------------------------------------------------------------------------------------------


def test_missing_columns_are_named(tmp_path):
    root = tmp_path / "t"
    root.mkdir()
    _write_csv(root / CSV_NAME, ROWS, columns=[c for c in COLUMNS if c not in ("split", "section_impression")])
    with pytest.raises(DataError, match=rf"{CSV_NAME}: missing column\(s\) 'section_impression', 'split'"):
        _load(root)


def test_duplicate_image_rows_name_both_lines(tmp_path):
    root = _tree(tmp_path / "t", rows=[*ROWS, ROWS[0]])
    with pytest.raises(DataError, match=rf"{CSV_NAME}: lines 2 and 17 both list image "
                                        r"'valid/patient64541/study1/view1_frontal\.jpg'"):
        _load(root)


def test_rows_of_a_study_must_agree(tmp_path):
    rows = [*ROWS]
    rows[2] = dict(ROWS[2], section_impression="Different impression.")
    with pytest.raises(DataError, match=rf"{CSV_NAME}: lines 4 and 7 give study 'patient64542/study1' different"):
        _load(_tree(tmp_path / "a", rows=rows))
    rows[2] = dict(ROWS[2], split="train")
    with pytest.raises(DataError, match=rf"{CSV_NAME}: lines 4 and 7 put study 'patient64542/study1' in "
                                        "different splits"):
        _load(_tree(tmp_path / "b", rows=rows))


def test_paths_outside_the_image_root(tmp_path):
    root = _tree(tmp_path / "t")
    _image(tmp_path / "patient9/study1/view1_frontal.jpg", 0)
    escaping = dict(ROWS[0], path_to_image="valid/../../patient9/study1/view1_frontal.jpg")
    _write_csv(root / CSV_NAME, [escaping, *ROWS[1:]])
    with pytest.raises(DataError, match=rf"{CSV_NAME}, line 2: image path .* leads outside the image root"):
        _load(root)
    assert _load(root, allow_outside=True).summary["images"] == 3
    absolute = dict(ROWS[0], path_to_image=str(tmp_path / "patient9/study1/view1_frontal.jpg"))
    _write_csv(root / CSV_NAME, [absolute, *ROWS[1:]])
    with pytest.raises(DataError, match=rf"{CSV_NAME}, line 2: absolute image path"):
        _load(root)


def test_bad_rows(tmp_path):
    short = dict(ROWS[0], path_to_image="view1_frontal.jpg")
    with pytest.raises(DataError, match=rf"{CSV_NAME}, line 2: path_to_image 'view1_frontal\.jpg' is not"):
        _load(_tree(tmp_path / "a", rows=[short]))
    odd = dict(ROWS[0], frontal_lateral="Oblique")
    with pytest.raises(DataError, match=rf"{CSV_NAME}, line 2: frontal_lateral 'Oblique'"):
        _load(_tree(tmp_path / "b", rows=[odd]))
    root = tmp_path / "c"
    root.mkdir()
    _write_csv(root / CSV_NAME, [])
    with pytest.raises(DataError, match=rf"{CSV_NAME}: no data rows"):
        _load(root)


def test_missing_image_error_or_skip(tree):
    (tree / "valid/patient64542/study1/view2_lateral.jpg").unlink()
    with pytest.raises(DataError, match=r"view2_lateral\.jpg \(nor with \.png\) \(study 'patient64542/study1', "
                                        rf".*{CSV_NAME} line 7\): image file not found"):
        _load(tree)
    with pytest.warns(UserWarning, match=r"chexpert-plus: skipped 1 missing image.*view2_lateral"):
        ds = _load(tree, on_bad_image="skip")
    assert ds.summary["skipped_missing_images"] == 1 and ds.summary["images"] == 2
    (tree / "valid/patient64542/study1/view1_frontal.jpg").unlink()
    with pytest.warns(UserWarning, match="skipped 2"):
        ds = _load(tree, on_bad_image="skip")
    assert ds.summary["dropped_no_images"] == 1 and ds.summary["studies"] == 1


def test_bad_root_and_options(tmp_path, tree):
    with pytest.raises(DataError, match=r"nowhere: CheXpert Plus root folder not found"):
        _load(tmp_path / "nowhere")
    with pytest.raises(ConfigError, match="on_bad_image"):
        _load(tree, on_bad_image="warn")
    with pytest.raises(ConfigError, match="policy"):
        _load(tree, policy="report")
    with pytest.raises(DataError, match=rf"{CSV_NAME}: no chexpert-plus study left"):
        _load(tree, split="valid", views="lateral", policy="findings")


def test_study_id_of():
    assert chexpert_plus.study_id_of("train/patient00001/study1/view1_frontal.jpg") == "patient00001/study1"
    assert chexpert_plus.study_id_of("CheXpert-v1.0/valid/patient64541/study1/view1_frontal.jpg") == \
        "patient64541/study1"
    assert chexpert_plus.study_id_of("a/b.jpg") is None


# --- end to end -------------------------------------------------------------------------------------------------


def test_cli_run_end_to_end(tree, tmp_path, monkeypatch, capsys):
    import cxrbench.data as data
    from cxrbench.cli import main

    monkeypatch.setitem(data._DATASETS, "chexpert-plus", ("cxrbench.data.chexpert_plus:load", "longest"))
    out = tmp_path / "out"
    assert main(["run", "--dataset", "chexpert-plus", "--root", str(tree), "--models", "random", "--levels",
                 "0,0.5", "--bootstrap", "0", "--out", str(out), "--no-progress"]) == 0
    records = [json.loads(x) for x in (out / "records.jsonl").read_text().splitlines() if x.strip()]
    assert records and {r["dataset"] for r in records} == {"chexpert-plus"}
    assert {r["split"] for r in records} == {"valid"}
    capsys.readouterr()
    assert main(["datasets", "describe", "chexpert-plus", "--root", str(tree), "--split", "train"]) == 0
    described = json.loads(capsys.readouterr().out)
    assert described["split"] == "train" and described["studies"] == 2 and described["images"] == 3


def test_cli_run_end_to_end_on_the_chunked_png_release(tmp_path, monkeypatch, capsys):
    import cxrbench.data as data
    from cxrbench.cli import main

    monkeypatch.setitem(data._DATASETS, "chexpert-plus", ("cxrbench.data.chexpert_plus:load", "longest"))
    root = _chunked_tree(tmp_path / "t", CHUNK_OF, under="PNG")
    out = tmp_path / "out"
    assert main(["run", "--dataset", "chexpert-plus", "--root", str(root), "--models", "random", "--levels", "0,0.5",
                 "--bootstrap", "0", "--no-cache", "--max-studies", "2", "--out", str(out), "--no-progress"]) == 0
    records = [json.loads(x) for x in (out / "records.jsonl").read_text().splitlines() if x.strip()]
    assert records and {(r["dataset_counts"]["studies"], r["dataset_counts"]["images"]) for r in records} == {(2, 3)}
    # a list of image roots on the command line (YAML)
    chunks = [str(root / "PNG" / f"png_chexpert_plus_chunk_{k}") for k in (0, 1, 2)]
    capsys.readouterr()
    assert main(["datasets", "describe", "chexpert-plus", "--root", str(root), "--data-option",
                 f"image_root=[{', '.join(chunks)}]"]) == 0
    described = json.loads(capsys.readouterr().out)
    assert described["images"] == 3 and described["image_roots"] == [c + "/PNG" for c in chunks]
