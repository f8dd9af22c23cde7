"""Tests for the ``manifest`` loader (cxrbench.data.manifest) on small fake trees: CSV and JSONL manifests, report
text and policies, splits, views, path rules, and every bad input naming the file and line."""

from __future__ import annotations

import csv
import json
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cxrbench.data import manifest
from cxrbench.data.records import TEXT_POLICIES
from cxrbench.errors import ConfigError, DataError

from dicom_writer import write_dicom

F1 = "The heart size and pulmonary vascularity appear within normal limits. The lungs are free of focal airspace disease."
I1 = "No acute cardiopulmonary abnormality."
F2 = "Mild cardiomegaly. Small left pleural effusion with adjacent atelectasis."
I2 = "Cardiomegaly with small left effusion."
I3 = "Stable calcified granuloma in the right upper lobe."
R4 = "FINDINGS: Lungs are clear. No pneumothorax. IMPRESSION: Normal chest."

HEADER = ["study_id", "image_path", "findings", "impression", "view", "split"]
ROWS = [
    ["s1", "images/s1_pa.png", F1, I1, "frontal", "test"],
    ["s1", "images/s1_lat.png", F1, I1, "lateral", "test"],
    ["s2", "images/s2.jpg", F2, I2, "PA", "test"],
    ["s3", "images/s3.dcm", "", I3, "", "train"],
]


def _png(path: Path, seed: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (32, 40), dtype=np.uint8)).save(path)


def _jpg(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((32, 40, 3), 90, np.uint8)).save(path)


def _dcm(path: Path) -> None:
    write_dicom(path, np.arange(32 * 40).reshape(32, 40), photometric="MONOCHROME1", bits_stored=12)


def _write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


def _write_jsonl(path: Path, objs: list[dict]) -> Path:
    path.write_text("".join(json.dumps(o) + "\n" for o in objs))
    return path


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A folder with four images of three studies and manifest.csv describing them."""
    root = tmp_path / "ds"
    _png(root / "images/s1_pa.png", 1)
    _png(root / "images/s1_lat.png", 2)
    _jpg(root / "images/s2.jpg")
    _dcm(root / "images/s3.dcm")
    _write_csv(root / "manifest.csv", HEADER, ROWS)
    return root


def _load(root, **kw):
    kw.setdefault("progress", False)
    return manifest.load(root, **kw)


# --- reading ----------------------------------------------------------------------------------------------------


def test_csv_manifest_counts_texts_views_and_images(tree):
    ds = _load(tree / "manifest.csv")
    assert ds.name == "manifest" and ds.split == "all" and ds.policy == "longest"
    assert [s.study_id for s in ds.studies] == ["s1", "s2", "s3"]
    s1 = ds.studies[0]
    assert (s1.findings, s1.impression) == (F1, I1)
    assert [im.image_id for im in s1.images] == ["images/s1_pa.png", "images/s1_lat.png"]
    assert [im.view for im in ds.images] == ["frontal", "lateral", "frontal", None]
    assert ds.texts == [F1, F2, I3]  # longest; s3 has only an impression
    assert ds.summary["studies"] == 3 and ds.summary["images"] == 4
    assert ds.summary["images_per_study"] == {"1": 2, "2": 1}
    assert ds.summary["views"] == {"frontal": 2, "lateral": 1, "unknown": 1}
    assert ds.summary["text_available"] == {"findings": 2, "impression": 3, "findings+impression": 3, "longest": 3}
    assert ds.summary["splits_in_manifest"] == ["test", "train"] and ds.summary["rows"] == 4
    assert all(Path(im.source).is_absolute() and Path(im.source).is_file() for im in ds.images)
    for im in ds.images:
        pil = ds.load_image(im)
        assert pil.mode in ("L", "RGB") and pil.size == (40, 32)
    fp = ds.provenance["index_files"][0]
    assert fp["path"].endswith("manifest.csv") and len(fp["sha256"]) == 64


def test_root_may_be_the_folder_and_jsonl_reads_the_same(tree):
    a = _load(tree)
    (tree / "manifest.csv").unlink()
    objs = [dict(zip(HEADER, r)) for r in ROWS]
    objs[3]["findings"] = None  # null is empty
    _write_jsonl(tree / "manifest.jsonl", objs)
    b = _load(tree)
    assert [(s.study_id, s.findings, s.impression, [(i.image_id, i.view) for i in s.images]) for s in a.studies] == \
        [(s.study_id, s.findings, s.impression, [(i.image_id, i.view) for i in s.images]) for s in b.studies]
    assert b.provenance["index_files"][0]["path"].endswith("manifest.jsonl")


def test_policies_apply_to_sections(tree):
    ds = _load(tree, policy="findings")
    assert [s.study_id for s in ds.studies] == ["s1", "s2"] and ds.summary["dropped_empty_text"] == 1
    assert _load(tree, policy="impression").texts == [I1, I2, I3]
    assert _load(tree, policy="findings+impression").texts == [f"{F1} {I1}", f"{F2} {I2}", I3]


@pytest.mark.parametrize("policy", sorted(TEXT_POLICIES))
def test_report_column_is_the_text_under_every_policy(tmp_path, policy):
    _png(tmp_path / "a.png")
    _png(tmp_path / "b.png")
    _write_csv(tmp_path / "m.csv", ["study_id", "image_path", "report", "findings", "impression"],
               [["r4", "a.png", R4, "", ""], ["s5", "b.png", "", F2, I2]])
    ds = _load(tmp_path / "m.csv", policy=policy)
    texts = dict(zip([s.study_id for s in ds.studies], ds.texts))
    assert texts["r4"] == R4  # never dropped, never doubled
    assert ds.summary["text_source"] == {"sections": 1, "report": 1}
    assert ds.studies[0].meta["text_source"] == "report"


def test_split_filter(tree):
    ds = _load(tree, split="test")
    assert [s.study_id for s in ds.studies] == ["s1", "s2"] and ds.split == "test"
    assert _load(tree, split="all").summary["studies"] == 3
    with pytest.raises(DataError, match=r"manifest\.csv: no rows with split 'valid'.*'test', 'train'"):
        _load(tree, split="valid")


def test_split_without_split_column_is_a_config_error(tmp_path):
    _png(tmp_path / "a.png")
    _write_csv(tmp_path / "m.csv", ["study_id", "image_path", "impression"], [["s", "a.png", I1]])
    with pytest.raises(ConfigError, match=r"m\.csv.*no 'split' column"):
        _load(tmp_path / "m.csv", split="test")
    assert _load(tmp_path / "m.csv").summary["studies"] == 1


def test_views_filter(tree):
    ds = _load(tree, views="frontal")
    assert [im.image_id for im in ds.images] == ["images/s1_pa.png", "images/s2.jpg"]
    assert ds.summary["images_not_in_views"] == 2 and ds.summary["dropped_no_images"] == 1
    assert _load(tree, views=["lateral"]).summary["images"] == 1
    with pytest.raises(ConfigError, match="views"):
        _load(tree, views="oblique")


def test_multiline_report_and_blank_lines_keep_line_numbers(tmp_path):
    _png(tmp_path / "a.png")
    (tmp_path / "m.csv").write_text('study_id,image_path,findings\n\ns1,a.png,"Heart normal.\nLungs clear."\n'
                                    's2,a2.png\n')
    with pytest.raises(DataError, match=r"m\.csv, line 5: 2 fields, but the header has 3"):
        _load(tmp_path / "m.csv")


# --- bad input: each message names the file and line --------------------------------------------------------------


def test_unknown_column_is_named_with_the_known_ones(tree):
    _write_csv(tree / "m.csv", [*HEADER, "patient_age"], [[*r, "60"] for r in ROWS])
    with pytest.raises(DataError, match=r"m\.csv: unknown column\(s\) 'patient_age'; known columns: study_id, "
                                        r"image_path, findings, impression, report, view, split"):
        _load(tree / "m.csv")
    assert _load(tree / "m.csv", extra_columns="ignore").summary["studies"] == 3
    with pytest.raises(ConfigError, match="extra_columns"):
        _load(tree / "m.csv", extra_columns="drop")


def test_missing_columns(tmp_path):
    _write_csv(tmp_path / "a.csv", ["study_id", "findings"], [["s", F1]])
    with pytest.raises(DataError, match=r"a\.csv: missing column\(s\) 'image_path'"):
        _load(tmp_path / "a.csv")
    _write_csv(tmp_path / "b.csv", ["study_id", "image_path", "view"], [["s", "x.png", ""]])
    with pytest.raises(DataError, match=r"b\.csv: no report text column"):
        _load(tmp_path / "b.csv")
    _write_csv(tmp_path / "c.csv", ["study_id", "image_path", "findings", "findings"], [["s", "x.png", F1, F1]])
    with pytest.raises(DataError, match=r"c\.csv: column\(s\) 'findings' appear more than once"):
        _load(tmp_path / "c.csv")


def test_jsonl_unknown_key_is_named(tree):
    _write_jsonl(tree / "m.jsonl", [dict(zip(HEADER, r)) for r in ROWS[:2]] + [{**dict(zip(HEADER, ROWS[2])),
                                                                                "Findings": "x"}])
    with pytest.raises(DataError, match=r"m\.jsonl: unknown column\(s\) 'Findings'"):
        _load(tree / "m.jsonl")


def test_duplicate_rows_name_both_lines(tree):
    _write_csv(tree / "m.csv", HEADER, [*ROWS, ROWS[1]])
    with pytest.raises(DataError, match=r"m\.csv: lines 3 and 6 both list image 'images/s1_lat.png' for study 's1'"):
        _load(tree / "m.csv")
    dup = [ROWS[0], ["s1", "./images/../images/s1_pa.png", F1, I1, "frontal", "test"]]  # same file, other spelling
    _write_csv(tree / "n.csv", HEADER, dup)
    with pytest.raises(DataError, match=r"n\.csv: lines 2 and 3 both list image"):
        _load(tree / "n.csv")


def test_one_image_in_two_studies_names_both_lines(tree):
    _write_csv(tree / "m.csv", HEADER, [*ROWS, ["s9", "images/s2.jpg", F1, I1, "", "test"]])
    with pytest.raises(DataError, match=r"m\.csv: lines 4 and 6 list the same image file .* 's2' and 's9'"):
        _load(tree / "m.csv")


def test_rows_of_a_study_must_agree_on_text_and_split(tree):
    bad = [*ROWS]
    bad[1] = ["s1", "images/s1_lat.png", F1, "Different impression.", "lateral", "test"]
    _write_csv(tree / "m.csv", HEADER, bad)
    with pytest.raises(DataError, match=r"m\.csv: lines 2 and 3 give study 's1' different report texts"):
        _load(tree / "m.csv")
    spaced = [*ROWS]
    spaced[1] = ["s1", "images/s1_lat.png", F1.replace(" ", "  \n"), I1, "lateral", "test"]  # whitespace only
    _write_csv(tree / "ok.csv", HEADER, spaced)
    assert _load(tree / "ok.csv").summary["images"] == 4
    split = [*ROWS]
    split[1] = ["s1", "images/s1_lat.png", F1, I1, "lateral", "train"]
    _write_csv(tree / "n.csv", HEADER, split)
    with pytest.raises(DataError, match=r"n\.csv: lines 2 and 3 put study 's1' in different splits"):
        _load(tree / "n.csv")


def test_report_and_sections_in_one_row_is_an_error(tmp_path):
    _write_csv(tmp_path / "m.csv", ["study_id", "image_path", "report", "impression"], [["s", "a.png", R4, I1]])
    with pytest.raises(DataError, match=r"m\.csv, line 2: study 's' gives both 'report' and"):
        _load(tmp_path / "m.csv")


def test_paths_outside_the_manifest_folder(tmp_path):
    root = tmp_path / "ds"
    _png(tmp_path / "outside.png")
    _png(root / "in.png")
    _write_csv(root / "up.csv", ["study_id", "image_path", "findings"], [["s", "in.png", F1], ["t", "../outside.png", F2]])
    with pytest.raises(DataError, match=r"up\.csv, line 3: image path '\.\./outside\.png' leads outside"):
        _load(root / "up.csv")
    ds = _load(root / "up.csv", allow_outside=True)
    assert ds.summary["images"] == 2 and ds.images[1].image_id == "../outside.png"

    absolute = str(tmp_path / "outside.png")
    _write_csv(root / "abs.csv", ["study_id", "image_path", "findings"], [["s", absolute, F1]])
    with pytest.raises(DataError, match=r"abs\.csv, line 2: absolute image path"):
        _load(root / "abs.csv")
    assert _load(root / "abs.csv", allow_outside=True).summary["images"] == 1
    inside_abs = str(root / "in.png")  # absolute even when inside: needs the option too
    _write_csv(root / "abs2.csv", ["study_id", "image_path", "findings"], [["s", inside_abs, F1]])
    with pytest.raises(DataError, match=r"abs2\.csv, line 2: absolute image path"):
        _load(root / "abs2.csv")


def test_symlink_leading_outside_is_refused(tmp_path):
    root = tmp_path / "ds"
    _png(tmp_path / "elsewhere/x.png")
    root.mkdir()
    try:
        os.symlink(tmp_path / "elsewhere", root / "link")
    except OSError:
        pytest.skip("symlinks not available")
    _write_csv(root / "m.csv", ["study_id", "image_path", "findings"], [["s", "link/x.png", F1]])
    with pytest.raises(DataError, match=r"m\.csv, line 2: image path 'link/x\.png' leads outside"):
        _load(root / "m.csv")
    assert _load(root / "m.csv", allow_outside=True).summary["images"] == 1


def test_missing_image_error_or_skip(tree):
    (tree / "images/s1_lat.png").unlink()
    with pytest.raises(DataError, match=r"s1_lat\.png \(image of study 's1', .*manifest\.csv line 3\): image file "
                                        "not found"):
        _load(tree)
    with pytest.warns(UserWarning, match=r"skipped 1 missing image.*s1_lat\.png"):
        ds = _load(tree, on_bad_image="skip")
    assert ds.summary["skipped_missing_images"] == 1 and ds.summary["images"] == 3
    assert ds.on_bad_image == "skip"
    (tree / "images/s2.jpg").unlink()
    with pytest.warns(UserWarning, match="skipped 2"):
        ds = _load(tree, on_bad_image="skip")
    assert ds.summary["dropped_no_images"] == 1 and [s.study_id for s in ds.studies] == ["s1", "s3"]


def test_malformed_rows(tmp_path):
    _write_csv(tmp_path / "a.csv", ["study_id", "image_path", "findings"], [["s", "a.png", F1], ["", "b.png", F2]])
    with pytest.raises(DataError, match=r"a\.csv, line 3: empty or missing 'study_id'"):
        _load(tmp_path / "a.csv")
    _write_csv(tmp_path / "b.csv", ["study_id", "image_path", "findings", "view"], [["s", "a.png", F1, "oblique"]])
    with pytest.raises(DataError, match=r"b\.csv, line 2: view 'oblique'"):
        _load(tmp_path / "b.csv")
    (tmp_path / "c.jsonl").write_text(json.dumps({"study_id": "s", "image_path": "a.png", "findings": F1})
                                      + "\n\n{not json\n")
    with pytest.raises(DataError, match=r"c\.jsonl, line 3: not valid JSON"):
        _load(tmp_path / "c.jsonl")
    (tmp_path / "d.jsonl").write_text('["s", "a.png"]\n')
    with pytest.raises(DataError, match=r"d\.jsonl, line 1: each line must be a JSON object"):
        _load(tmp_path / "d.jsonl")
    (tmp_path / "e.jsonl").write_text(json.dumps({"study_id": "s", "image_path": "a.png", "findings": ["x"]}))
    with pytest.raises(DataError, match=r"e\.jsonl, line 1: 'findings' must be a string"):
        _load(tmp_path / "e.jsonl")
    (tmp_path / "f.csv").write_bytes(b"study_id,image_path,findings\ns,a.png,ok\nt,b.png,\xff\xfe bad\n")
    with pytest.raises(DataError, match=r"f\.csv, line 3: not UTF-8 text"):
        _load(tmp_path / "f.csv")
    (tmp_path / "g.jsonl").write_bytes(b'{"study_id": "s", "image_path": "a.png", "findings": "\xe9"}\n')
    with pytest.raises(DataError, match=r"g\.jsonl, line 1: not UTF-8 text"):
        _load(tmp_path / "g.jsonl")
    (tmp_path / "h.csv").write_text('study_id,image_path,findings\ns,a.png,"never closed\n')
    with pytest.raises(DataError, match=r"h\.csv, line 2: malformed CSV"):
        _load(tmp_path / "h.csv")


def test_integer_study_ids_in_jsonl_are_read_as_text(tmp_path):
    _png(tmp_path / "a.png")
    _write_jsonl(tmp_path / "m.jsonl", [{"study_id": 50414267, "image_path": "a.png", "impression": I1}])
    assert _load(tmp_path / "m.jsonl").studies[0].study_id == "50414267"


def test_empty_inputs(tmp_path):
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataError, match=r"empty\.csv: empty file"):
        _load(tmp_path / "empty.csv")
    _write_csv(tmp_path / "header.csv", ["study_id", "image_path", "findings"], [])
    with pytest.raises(DataError, match=r"header\.csv: no rows"):
        _load(tmp_path / "header.csv")
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(DataError, match=r"empty\.jsonl: no rows"):
        _load(tmp_path / "empty.jsonl")
    _png(tmp_path / "a.png")
    _write_csv(tmp_path / "notext.csv", ["study_id", "image_path", "findings", "impression"], [["s", "a.png", "", I1]])
    with pytest.raises(DataError, match=r"notext\.csv: no manifest study left .*1 with empty text"):
        _load(tmp_path / "notext.csv", policy="findings")


def test_bad_root_and_options(tmp_path, tree):
    with pytest.raises(DataError, match=r"nothere\.csv: manifest not found"):
        _load(tmp_path / "nothere.csv")
    (tmp_path / "m.tsv").write_text("study_id\timage_path\n")
    with pytest.raises(ConfigError, match=r"m\.tsv: a manifest must end in \.csv or \.jsonl"):
        _load(tmp_path / "m.tsv")
    (tmp_path / "folder").mkdir()
    with pytest.raises(DataError, match=r"folder: folder has no manifest\.csv or manifest\.jsonl"):
        _load(tmp_path / "folder")
    (tree / "manifest.jsonl").write_text("")
    with pytest.raises(DataError, match=r"ds: folder has both manifest\.csv and manifest\.jsonl"):
        _load(tree)
    with pytest.raises(ConfigError, match="on_bad_image"):
        _load(tree / "manifest.csv", on_bad_image="ignore")
    with pytest.raises(ConfigError, match="policy"):
        _load(tree / "manifest.csv", policy="summary")


def test_loader_only_reads(tree):
    before = sorted(p.relative_to(tree) for p in tree.rglob("*"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _load(tree)
    assert sorted(p.relative_to(tree) for p in tree.rglob("*")) == before


# --- end to end -------------------------------------------------------------------------------------------------


def test_cli_run_end_to_end(tree, tmp_path, monkeypatch, capsys):
    import cxrbench.data as data
    from cxrbench.cli import main

    monkeypatch.setitem(data._DATASETS, "manifest", ("cxrbench.data.manifest:load", "longest"))
    out = tmp_path / "out"
    assert main(["run", "--dataset", "manifest", "--root", str(tree / "manifest.csv"), "--models", "random",
                 "--levels", "0,0.5", "--bootstrap", "0", "--out", str(out), "--no-progress"]) == 0
    records = [json.loads(x) for x in (out / "records.jsonl").read_text().splitlines() if x.strip()]
    assert records and {r["dataset"] for r in records} == {"manifest"}
    capsys.readouterr()
    assert main(["datasets", "describe", "manifest", "--root", str(tree)]) == 0
    described = json.loads(capsys.readouterr().out)
    assert described["dataset"] == "manifest" and described["studies"] == 3 and described["images"] == 4
