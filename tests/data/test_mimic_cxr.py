"""The mimic-cxr loader on fake MIMIC-CXR-JPG trees (tiny JPEGs, real-looking report text) written per test."""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import os
import time
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image

from cxrbench.data import load_dataset, mimic_paper
from cxrbench.data.mimic_cxr import load
from cxrbench.data.mimic_sections import split_sections
from cxrbench.errors import ConfigError, DataError

TITLE = "                                 FINAL REPORT\n"


def report(*lines: str) -> str:
    return TITLE + "".join(f" {line}\n" for line in lines)


FULL_1 = report(
    "EXAMINATION:  CHEST (PA AND LAT)", "", "INDICATION:  ___ year old woman with cough  // ?pneumonia", "",
    "TECHNIQUE:  Chest PA and lateral", "", "COMPARISON:  ___", "",
    "FINDINGS: ", "", "Heart size is normal.  Lungs are clear.  No pleural effusion or pneumothorax.", "",
    "IMPRESSION: ", "", "No acute cardiopulmonary process.")
IMPRESSION_ONLY = report("EXAMINATION:  CHEST (PORTABLE AP)", "", "INDICATION:  ___M intubated", "",
                         "IMPRESSION: ", "", "Endotracheal tube 4 cm above the carina.")
FINDINGS_ONLY = report("INDICATION:  Dyspnea.", "", "FINDINGS:  Moderate cardiomegaly with mild pulmonary edema.",
                       "Small bilateral pleural effusions.")
NO_SECTIONS = report("CHEST RADIOGRAPH PERFORMED ON ___", "", "Comparison is made to the prior study.", "",
                     "The right PICC line terminates in the mid SVC.")
COMBINED = report("INDICATION:  Fever.", "", "FINDINGS AND IMPRESSION:  Left lower lobe opacity, likely pneumonia.")
FULL_2 = report("FINDINGS:  Stable postoperative mediastinum.", "", "IMPRESSION:  No change.", "",
                "NOTIFICATION:  Discussed with Dr. ___ at 9:00 AM.")


@dataclass(frozen=True)
class S:
    """One fake study: subject, study, split, ViewPositions of its images, report text (None: no file)."""

    subject: str
    study: str
    split: str
    views: tuple[str, ...]
    text: str | None


STUDIES = (
    S("10000032", "50414267", "validate", ("PA", "LATERAL"), FULL_1),
    S("10000032", "53189527", "validate", ("AP",), IMPRESSION_ONLY),
    S("10000764", "57375967", "validate", ("PA", "LL"), FINDINGS_ONLY),
    S("11000011", "51029426", "validate", ("AP",), NO_SECTIONS),
    S("13000033", "59999999", "validate", ("",), COMBINED),
    S("12000022", "56699142", "train", ("PA", "LATERAL"), FULL_2),
    S("19999987", "58971208", "test", ("AP", "AP"), FULL_1),
)
# validate under policy "longest": 4 studies, 6 images kept (51029426 has no sections)

# Reports on which MIT-LCP's sectioning (sections="mitlcp", the default) and the lenient parser disagree.
LOWER_CASE = report("INDICATION:  Cough.", "", "Findings:  Mild cardiomegaly.", "", "Impression:  Cardiomegaly.")
SUMMARY_ONLY = report("INDICATION:  Chest pain.", "", "SUMMARY:  No acute cardiopulmonary process.")
DEID_IMPRESSION = report("FINDINGS:  Lungs are clear.", "", "IMPRESSION:  ___")
SUB_HEADINGS = report("FINDINGS: ", "", "LUNGS:  Clear.", "", "HEART:  Normal size.", "", "IMPRESSION:  Normal chest.")
CUSTOM_STUDY = "50525523"  # one of MIT-LCP's hand-made per-study rules (custom_indices): no sections upstream
EXTRA = (
    S("14000044", "52000001", "validate", ("PA",), LOWER_CASE),
    S("14000044", "52000002", "validate", ("PA", "LATERAL"), SUMMARY_ONLY),
    S("15000055", "52000003", "validate", ("AP",), DEID_IMPRESSION),
    S("15000055", "52000004", "validate", ("PA",), SUB_HEADINGS),
    S("16000066", CUSTOM_STUDY, "validate", ("PA",), FULL_1),
)
# Worked out by hand from each parser's documented rules (docs/datasets.md; mimic_sections docstrings):
#              FULL_1 IMP FIND NONE COMB | LOWER SUMMARY DEID SUB CUSTOM        (images: 2 1 2 1 1 | 1 2 1 1 1)
#  mitlcp       F+I    I   F    -    I   |  -     -      F+I  I   - (rule)
#  lenient      F+I    I   F    -    I   |  F+I   I      F    F+I F+I
BY_REQUIREMENT = {
    "mitlcp": {"any": (6, 8), "both": (2, 3), "findings": (3, 5), "impression": (5, 6)},
    "lenient": {"any": (9, 12), "both": (4, 5), "findings": (6, 8), "impression": (7, 9)},
}


def dicom_id(study: str, k: int) -> str:
    h = hashlib.sha1(f"{study}-{k}".encode()).hexdigest()
    return "-".join(h[i:i + 8] for i in range(0, 40, 8))


def write_csv(path: Path, header: list[str], rows: list[list[str]], gz: bool) -> Path:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    if gz:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(buf.getvalue().encode()))
    else:
        path.write_text(buf.getvalue())
    return path


SPLIT_HEADER = ["dicom_id", "study_id", "subject_id", "split"]
META_HEADER = ["dicom_id", "subject_id", "study_id", "PerformedProcedureStepDescription", "ViewPosition", "Rows",
               "Columns", "StudyDate", "StudyTime", "ProcedureCodeSequence_CodeMeaning",
               "ViewCodeSequence_CodeMeaning", "PatientOrientationCodeSequence_CodeMeaning"]


def make_tree(base: Path, layout: str = "folder", gz: bool = False, studies=STUDIES) -> Path:
    """A MIMIC-CXR-JPG tree. layout: folder (mimic-cxr-reports/), alongside (txt next to image folders),
    zip (mimic-cxr-reports.zip, files/ at the top), zip-top (zip with a top folder), none (no reports)."""
    root = base / "mimic-cxr-jpg"
    split_rows, meta_rows, reports = [], [], {}
    for s in studies:
        folder = root / "files" / f"p{s.subject[:2]}" / f"p{s.subject}" / f"s{s.study}"
        folder.mkdir(parents=True, exist_ok=True)
        for k, vp in enumerate(s.views):
            d = dicom_id(s.study, k)
            Image.new("L", (40, 32), 60 + 20 * k).save(folder / f"{d}.jpg", quality=90)
            split_rows.append([d, s.study, s.subject, s.split])
            meta_rows.append([d, s.subject, s.study, "CHEST (PA AND LAT)", vp, "32", "40", "21800506", "213014.531",
                              "CHEST (PA AND LAT)", "postero-anterior", "Erect"])
        if s.text is not None:
            reports[f"files/p{s.subject[:2]}/p{s.subject}/s{s.study}.txt"] = s.text
    write_csv(root / "mimic-cxr-2.0.0-split.csv", SPLIT_HEADER, split_rows, gz)
    write_csv(root / "mimic-cxr-2.0.0-metadata.csv", META_HEADER, meta_rows, gz)
    if layout in ("folder", "alongside"):
        top = root / "mimic-cxr-reports" if layout == "folder" else root
        for rel, text in reports.items():
            (top / rel).parent.mkdir(parents=True, exist_ok=True)
            (top / rel).write_text(text)
    elif layout in ("zip", "zip-top"):
        prefix = "mimic-cxr-reports/" if layout == "zip-top" else ""
        with zipfile.ZipFile(root / "mimic-cxr-reports.zip", "w", zipfile.ZIP_DEFLATED) as zf:
            for rel, text in sorted(reports.items()):
                zf.writestr(prefix + rel, text)
    return root


def image_path(root: Path, s: S, k: int = 0) -> Path:
    return root / "files" / f"p{s.subject[:2]}" / f"p{s.subject}" / f"s{s.study}" / f"{dicom_id(s.study, k)}.jpg"


@pytest.fixture
def tree(tmp_path) -> Path:
    return make_tree(tmp_path)


# ---------------------------------------------------------------------------------------------- layouts, counts


@pytest.mark.parametrize("layout,gz", [("folder", False), ("alongside", False), ("zip", False), ("zip-top", True),
                                       ("folder", True)])
def test_layouts_give_the_same_dataset(tmp_path, layout, gz):
    root = make_tree(tmp_path, layout=layout, gz=gz)
    ds = load(root, progress=False)
    assert ds.name == "mimic-cxr" and ds.split == "validate" and ds.policy == "longest"
    assert [s.study_id for s in ds.studies] == ["s50414267", "s53189527", "s57375967", "s59999999"]
    assert ds.summary["studies"] == 4 and ds.summary["images"] == 6
    assert ds.summary["images_per_study"] == {"1": 2, "2": 2}
    assert ds.summary["dropped_no_sections"] == 1 and ds.summary["dropped_empty_text"] == 0
    assert ds.summary["dropped_by_view"] == 0 and ds.summary["missing_reports"] == 0
    assert ds.summary["split_studies"] == 5 and ds.summary["split_images"] == 7 and ds.summary["split_csv_rows"] == 11
    assert ds.summary["reports_source"]["kind"] == ("zip" if layout.startswith("zip") else "folder")
    first = ds.studies[0]
    assert first.findings == "Heart size is normal. Lungs are clear. No pleural effusion or pneumothorax."
    assert first.impression == "No acute cardiopulmonary process."
    assert first.meta["subject_id"] == "p10000032" and first.meta["view_positions"] == ("PA", "LATERAL")
    assert [im.view for im in first.images] == ["frontal", "lateral"]
    assert first.images[0].image_id == dicom_id("50414267", 0)
    assert ds.studies[3].findings == "" and ds.studies[3].impression.startswith("Left lower lobe opacity")
    assert ds.studies[3].images[0].view is None
    assert ds.texts[1] == "Endotracheal tube 4 cm above the carina."
    im = ds.load_image(first.images[0])
    assert im.size == (40, 32) and im.mode == "L"
    prov = ds.provenance
    assert prov["split_csv"]["sha256"] == hashlib.sha256(Path(prov["split_csv"]["path"]).read_bytes()).hexdigest()
    assert prov["options"]["split"] == "validate" and prov["root"] == os.path.realpath(root)


def test_reports_option_folder_files_and_zip(tmp_path):
    root = make_tree(tmp_path / "a", layout="zip")
    moved = tmp_path / "elsewhere.zip"
    (root / "mimic-cxr-reports.zip").rename(moved)
    with pytest.raises(DataError, match="report not found"):
        load(root, progress=False)
    assert load(root, reports=moved, progress=False).summary["studies"] == 4
    other = make_tree(tmp_path / "b", layout="folder")
    assert load(root, reports=other / "mimic-cxr-reports", progress=False).summary["studies"] == 4
    assert load(root, reports=other / "mimic-cxr-reports" / "files", progress=False).summary["studies"] == 4
    with pytest.raises(DataError, match="not a zip"):
        load(root, reports=root / "mimic-cxr-2.0.0-split.csv", progress=False)
    with pytest.raises(DataError, match="nowhere"):
        load(root, reports=tmp_path / "nowhere", progress=False)


@pytest.mark.parametrize("split,studies,images", [("train", 1, 2), ("test", 1, 2), ("all", 6, 10),
                                                  ("validate", 4, 6), ("val", 4, 6)])
def test_split_filter(tree, split, studies, images):
    ds = load(tree, split=split, progress=False)
    assert (ds.summary["studies"], ds.summary["images"]) == (studies, images)


def test_view_filter(tree):
    ds = load(tree, views={"PA", "AP"}, progress=False)
    assert [s.study_id for s in ds.studies] == ["s50414267", "s53189527", "s57375967"]
    assert ds.summary["images"] == 3 and ds.summary["dropped_by_view"] == 3
    assert ds.summary["dropped_studies_no_view"] == 1 and ds.provenance["options"]["views"] == ["AP", "PA"]
    assert ds.summary["views"] == {"frontal": 3, "lateral": 0, "unknown": 0}  # kept images per view, as elsewhere
    assert all(im.view == "frontal" for im in ds.images)
    assert load(tree, views="frontal", progress=False).summary["images"] == 3
    lat = load(tree, views="lateral", progress=False)
    assert lat.summary["images"] == 2 and {im.view for im in lat.images} == {"lateral"}
    assert load(tree, views="unknown", progress=False).summary["images"] == 1
    assert load(tree, views="all", progress=False).summary["images"] == 6
    with pytest.raises(ConfigError, match="names no view"):
        load(tree, views=",", progress=False)


@pytest.mark.parametrize("policy,studies,dropped", [("findings", 2, 2), ("impression", 3, 1),
                                                    ("findings+impression", 4, 0), ("longest", 4, 0)])
def test_policies(tree, policy, studies, dropped):
    ds = load(tree, policy=policy, progress=False)
    assert ds.summary["studies"] == studies and ds.summary["dropped_empty_text"] == dropped


def test_fallback_keeps_reports_without_sections(tree):
    ds = load(tree, fallback=True, progress=False)
    assert ds.summary["studies"] == 5 and ds.summary["dropped_no_sections"] == 0
    assert ds.summary["fallback_sections"] == 1
    study = next(s for s in ds.studies if s.study_id == "s51029426")
    assert study.impression == ("Comparison is made to the prior study. The right PICC line terminates in the mid "
                                "SVC.")
    assert study.meta["fallback"] == "last_paragraph"


# ---------------------------------------------------------------------------------------------- sections, requirement


@pytest.fixture
def extra_tree(tmp_path) -> Path:
    return make_tree(tmp_path / "extra", studies=STUDIES + EXTRA)


def _counts(ds) -> dict:
    return {k: (v["studies"], v["images"]) for k, v in ds.summary["section_requirements"]["counts"].items()}


@pytest.mark.parametrize("sections", ["mitlcp", "lenient"])
def test_counts_under_every_requirement_follow_the_parser(extra_tree, sections):
    ds = load(extra_tree, sections=sections, progress=False)
    assert _counts(ds) == BY_REQUIREMENT[sections]
    req = ds.summary["section_requirements"]
    assert req["parser"] == sections and req["required"] == "any" and req["paper_protocol"] == "both"
    assert ds.summary["sections"] == sections and ds.summary["require"] == "any"
    assert ds.provenance["options"]["sections"] == sections and ds.provenance["options"]["require"] == "any"
    assert ds.provenance["section_parser"] == sections
    assert (ds.summary["studies"], ds.summary["images"]) == BY_REQUIREMENT[sections]["any"]


@pytest.mark.parametrize("sections", ["mitlcp", "lenient"])
@pytest.mark.parametrize("require", ["any", "both", "findings", "impression"])
def test_require_keeps_exactly_the_studies_with_the_required_sections(extra_tree, sections, require):
    ds = load(extra_tree, sections=sections, require=require, progress=False)
    assert (ds.summary["studies"], ds.summary["images"]) == BY_REQUIREMENT[sections][require]
    assert _counts(ds) == BY_REQUIREMENT[sections]  # counted before the requirement: the same for every choice
    for st in ds.studies:
        assert {"any": bool(st.findings or st.impression), "both": bool(st.findings and st.impression),
                "findings": bool(st.findings), "impression": bool(st.impression)}[require]
    left_out = BY_REQUIREMENT[sections]["any"][0] - ds.summary["studies"]
    assert ds.summary["dropped_by_requirement"] == left_out
    assert ds.summary["dropped_empty_text"] == 0  # policy longest: a kept study always has text


def test_default_parser_is_mitlcp_and_differs_from_lenient_where_upstream_does(extra_tree):
    mit = {s.study_id: s for s in load(extra_tree, progress=False).studies}
    len_ = {s.study_id: s for s in load(extra_tree, sections="lenient", progress=False).studies}
    # lower-case headers and SUMMARY: are text for MIT-LCP
    assert "s52000001" not in mit and (len_["s52000001"].findings, len_["s52000001"].impression) == (
        "Mild cardiomegaly.", "Cardiomegaly.")
    assert "s52000002" not in mit and len_["s52000002"].impression == "No acute cardiopulmonary process."
    # an IMPRESSION that is only ___ counts as present for MIT-LCP (its statistics count it), not for lenient
    assert (mit["s52000003"].findings, mit["s52000003"].impression) == ("Lungs are clear.", "___")
    assert (len_["s52000003"].findings, len_["s52000003"].impression) == ("Lungs are clear.", "")
    # an upper-case sub-heading cuts FINDINGS upstream (left empty, so dropped); lenient keeps it as text
    assert (mit["s52000004"].findings, mit["s52000004"].impression) == ("", "Normal chest.")
    assert len_["s52000004"].findings == "LUNGS: Clear. HEART: Normal size."
    # a study with one of MIT-LCP's per-study rules has no sections upstream, whatever its report says
    assert f"s{CUSTOM_STUDY}" not in mit and len_[f"s{CUSTOM_STUDY}"].impression == "No acute cardiopulmonary process."


def test_special_case_studies_are_counted_and_fallback_gives_their_conclusion(extra_tree):
    ds = load(extra_tree, progress=False)
    assert ds.summary["section_requirements"]["special_case_studies"] == 1
    assert ds.summary["dropped_no_sections"] == 4  # NO_SECTIONS, LOWER_CASE, SUMMARY_ONLY, the special case
    assert ds.summary["section_requirements"]["deidentified_only"] == {"findings": 0, "impression": 1}
    with_fallback = {s.study_id: s for s in load(extra_tree, fallback=True, progress=False).studies}
    custom = with_fallback[f"s{CUSTOM_STUDY}"]
    start, end = 201, 349  # MIT-LCP's custom_indices entry for this study: a slice of the report
    assert custom.meta["fallback"] == "custom_indices" and custom.meta["custom_rule"] == "custom_indices"
    assert custom.impression == " ".join(FULL_1[start:end].split())


def test_special_case_report_without_its_section_names_the_file(tmp_path):
    # s50913680's MIT-LCP rule takes its RECOMMENDATION(S) section: a report without one is not that study's
    root = make_tree(tmp_path, studies=(S("10000001", "50913680", "validate", ("PA",), FULL_1),))
    with pytest.raises(DataError, match=r"s50913680\.txt: study s50913680, .*line 2: MIMIC-CXR study s50913680: "
                                        r"MIT-LCP's hand-made rule .* 'recommendations' section.*'lenient'"):
        load(root, progress=False)
    assert load(root, sections="lenient", progress=False).summary["studies"] == 1


def test_fallback_needs_require_any(tree):
    with pytest.raises(ConfigError, match=r"fallback=True .* require='any'.*not 'both'"):
        load(tree, fallback=True, require="both", progress=False)


def test_unknown_sections_or_require_are_refused_before_reading(tmp_path):
    with pytest.raises(ConfigError, match=r"sections='mit' is not valid; choose one of 'mitlcp', 'lenient'"):
        load(tmp_path / "nowhere", sections="mit", progress=False)
    with pytest.raises(ConfigError, match=r"require='either' is not valid; choose one of 'any', 'both', 'findings', "
                                          "'impression'"):
        load(tmp_path / "nowhere", require="either", progress=False)


def test_longest_compares_whitespace_collapsed_text(tmp_path):
    """mitlcp keeps upstream's line breaks and one-space indents; the policy compares the collapsed texts."""
    findings_lines = ["ab."] * 10  # raw 48 characters with its line breaks and indents, collapsed 39
    impression = "x" * 43 + "."  # 44 characters on one line
    text = report("FINDINGS:", *findings_lines, "", "IMPRESSION:  " + impression)
    raw = split_sections(text, "s50000001", parser="mitlcp")
    assert len(raw.findings) > len(raw.impression) > len(" ".join(raw.findings.split()))
    root = make_tree(tmp_path, studies=(S("10000001", "50000001", "validate", ("PA",), text),))
    ds = load(root, progress=False)
    assert ds.texts == [impression]
    assert ds.studies[0].findings == " ".join(findings_lines)  # stored collapsed, as by every loader


def test_paper_comparison_states_facts(tree, monkeypatch):
    pc = load(tree, progress=False).summary["paper_comparison"]
    assert pc["paper_studies"] == 994 and pc["paper_images"] == 1770
    assert pc["mitlcp_validate_split"] == {"studies": 1808, "images": 2991}
    assert pc["split_csv"] == {"split": "validate", "studies": 5, "images": 7}
    assert (pc["studies"], pc["images"], pc["matches"]) == (4, 6, False)
    assert pc["by_requirement"] == {"any": {"studies": 4, "images": 6}, "both": {"studies": 1, "images": 2},
                                    "findings": {"studies": 2, "images": 4}, "impression": {"studies": 3, "images": 4}}
    assert pc["paper_protocol"] == {"split": "validate", "views": "all", "sections": "mitlcp", "require": "both",
                                    "fallback": False}
    assert pc["differs_from_paper_protocol"] == ["require='any' (paper protocol: 'both')"]
    note = pc["note"]
    for fact in ("4 studies / 6 images", "994 / 1,770", "1,808 / 2,991", "5 / 7", "both 1 / 2", "any 4 / 6"):
        assert fact in note, (fact, note)
    for guess in ("release", "parser", "may differ", "incomplete"):
        assert guess not in note  # no cause is guessed at
    pc = load(tree, views="PA", policy="findings", require="both", progress=False).summary["paper_comparison"]
    assert pc["differs_from_paper_protocol"] == ["views=['PA'] (paper protocol: every view)"]
    assert "views=['PA']" in pc["note"]
    pc = load(tree, sections="lenient", split="test", progress=False).summary["paper_comparison"]
    assert pc["differs_from_paper_protocol"] == ["split='test' (paper protocol: 'validate')",
                                                 "sections='lenient' (paper protocol: 'mitlcp')",
                                                 "require='any' (paper protocol: 'both')"]
    monkeypatch.setattr(mimic_paper, "PAPER_STUDIES", 1)
    monkeypatch.setattr(mimic_paper, "PAPER_IMAGES", 2)
    pc = load(tree, require="both", progress=False).summary["paper_comparison"]
    assert pc["matches"] and pc["differs_from_paper_protocol"] == []
    assert pc["note"].startswith("the same counts as the paper")


def test_describe_dataset_gives_every_requirement_and_the_paper_choice(tree, capsys):
    from cxrbench import cli
    from cxrbench.data import describe_dataset

    out = describe_dataset("mimic-cxr", root=tree, progress=False)
    assert out["dataset"] == "mimic-cxr" and out["split"] == "validate" and out["policy"] == "longest"
    assert out["section_requirements"]["paper_protocol"] == "both"
    assert set(out["section_requirements"]["counts"]) == {"any", "both", "findings", "impression"}
    both = describe_dataset("mimic-cxr", root=tree, require="both", progress=False)
    assert both["studies"] == 1 and both["section_requirements"]["counts"] == out["section_requirements"]["counts"]
    # the CLI's describe prints the same (it already prints the summary)
    assert cli.main(["datasets", "describe", "mimic-cxr", "--root", str(tree), "--data-option", "require=both"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["section_requirements"] == both["section_requirements"] and printed["studies"] == 1


# ---------------------------------------------------------------------------------------------- bad input


def test_missing_image_error_and_skip(tree):
    gone = image_path(tree, STUDIES[2], 1)
    gone.unlink()
    with pytest.raises(DataError, match=r"split\.csv line 6, dicom_id .*\): image file not found; check root") as exc:
        load(tree, progress=False)
    assert str(gone) in str(exc.value)
    with pytest.warns(UserWarning, match=r"mimic-cxr: skipped 1 missing image file\(s\) .*split\.csv line 6"):
        ds = load(tree, on_bad_image="skip", progress=False)
    assert ds.summary["skipped_missing_images"] == 1 and ds.summary["images"] == 5
    assert "skipped" in ds.summary["paper_comparison"]["note"]


def test_study_with_all_images_missing_is_counted(tree):
    image_path(tree, STUDIES[1]).unlink()
    with pytest.warns(UserWarning):
        ds = load(tree, on_bad_image="skip", progress=False)
    assert ds.summary["dropped_studies_no_images"] == 1 and ds.summary["studies"] == 3


def test_missing_report_error_and_skip(tree):
    gone = tree / "mimic-cxr-reports" / "files" / "p10" / "p10000764" / "s57375967.txt"
    gone.unlink()
    with pytest.raises(DataError, match="report not found") as exc:
        load(tree, progress=False)
    assert str(gone) in str(exc.value) and "line 5" in str(exc.value)
    with pytest.warns(UserWarning, match="s57375967"):
        ds = load(tree, on_bad_image="skip", progress=False)
    assert ds.summary["missing_reports"] == 1 and ds.summary["studies"] == 3


def test_missing_report_in_zip_names_the_member(tmp_path):
    studies = tuple(S(s.subject, s.study, s.split, s.views, None if s.study == "53189527" else s.text)
                    for s in STUDIES)
    root = make_tree(tmp_path, layout="zip-top", studies=studies)
    with pytest.raises(DataError, match=r"mimic-cxr-reports\.zip:mimic-cxr-reports/files/p10/p10000032/s53189527"):
        load(root, progress=False)


def test_no_reports_anywhere_says_where_it_looked(tmp_path):
    root = make_tree(tmp_path, layout="none")
    with pytest.raises(DataError, match="looked for .*mimic-cxr-reports/.*mimic-cxr-reports.zip"):
        load(root, progress=False)


@pytest.mark.parametrize("layout", ["folder", "zip"])
def test_report_not_utf8(tmp_path, layout):
    bad = report("FINDINGS:  Caf\xe9 au lait.").encode("latin-1")
    studies = tuple(S(s.subject, s.study, s.split, s.views, "X" if s.study == "57375967" else s.text)
                    for s in STUDIES)
    root = make_tree(tmp_path, layout=layout, studies=studies)
    rel = "files/p10/p10000764/s57375967.txt"
    if layout == "folder":
        (root / "mimic-cxr-reports" / rel).write_bytes(bad)
    else:
        zpath = root / "mimic-cxr-reports.zip"
        with zipfile.ZipFile(zpath) as zf:
            members = {n: zf.read(n) for n in zf.namelist()}
        members[rel] = bad
        with zipfile.ZipFile(zpath, "w") as zf:
            for n, b in members.items():
                zf.writestr(n, b)
    with pytest.raises(DataError, match=r"s57375967\.txt: not UTF-8 text \(byte \d+"):
        load(root, progress=False)
    with pytest.warns(UserWarning, match="not UTF-8"):
        assert load(root, on_bad_image="skip", progress=False).summary["unreadable_reports"] == 1


def test_binary_report(tree):
    (tree / "mimic-cxr-reports/files/p10/p10000764/s57375967.txt").write_bytes(b"FINDINGS:\x00\x01\x02")
    with pytest.raises(DataError, match=r"s57375967\.txt: not UTF-8 text .*NUL byte"):
        load(tree, progress=False)


@pytest.mark.parametrize("which", ["split", "metadata"])
def test_unreadable_csv(tmp_path, which):
    root = make_tree(tmp_path, gz=True)
    path = root / f"mimic-cxr-2.0.0-{which}.csv.gz"
    path.write_bytes(b"this is not gzip data")
    with pytest.raises(DataError, match=rf"mimic-cxr-2\.0\.0-{which}\.csv\.gz: cannot read the csv"):
        load(root, progress=False)


def test_truncated_gzip_csv(tmp_path):
    root = make_tree(tmp_path, gz=True)
    path = root / "mimic-cxr-2.0.0-split.csv.gz"
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(DataError, match=r"split\.csv\.gz: .*cannot read the csv"):
        load(root, progress=False)


def test_csv_not_utf8(tree):
    path = tree / "mimic-cxr-2.0.0-split.csv"
    path.write_bytes(path.read_bytes() + b"\xff\xfe,1,2,validate\n")
    with pytest.raises(DataError, match=r"split\.csv: line 13: not UTF-8 text \(byte 0"):
        load(tree, progress=False)


@pytest.mark.parametrize("which,column", [("split", "split"), ("split", "subject_id"),
                                          ("metadata", "ViewPosition"), ("metadata", "dicom_id")])
def test_missing_column(tree, which, column):
    path = tree / f"mimic-cxr-2.0.0-{which}.csv"
    rows = list(csv.reader(path.open()))
    i = rows[0].index(column)
    path.write_text("\n".join(",".join(r[:i] + r[i + 1:]) for r in rows) + "\n")
    with pytest.raises(DataError, match=rf"{which}\.csv: line 1: required column '{column}' is missing"):
        load(tree, progress=False)


def test_missing_index_files(tree):
    (tree / "mimic-cxr-2.0.0-metadata.csv").unlink()
    with pytest.raises(DataError, match=r"no metadata csv; expected .*metadata\.csv or .*metadata\.csv\.gz"):
        load(tree, progress=False)
    (tree / "mimic-cxr-2.0.0-split.csv").unlink()
    with pytest.raises(DataError, match="no split csv"):
        load(tree, progress=False)


def test_empty_csv_and_short_row(tree):
    path = tree / "mimic-cxr-2.0.0-split.csv"
    original = path.read_text()
    path.write_text(original + "abc,50414267\n")
    with pytest.raises(DataError, match=r"split\.csv: line 13: 2 fields"):
        load(tree, progress=False)
    path.write_text("")
    with pytest.raises(DataError, match=r"split\.csv: empty file"):
        load(tree, progress=False)


def test_bad_split_value_and_ids(tree):
    path = tree / "mimic-cxr-2.0.0-split.csv"
    original = path.read_text()
    path.write_text(original.replace("validate", "valid", 1))
    with pytest.raises(DataError, match=r"split\.csv: line 2: split 'valid' is not one of"):
        load(tree, progress=False)
    path.write_text(original.replace("50414267", "s5041x267", 1))
    with pytest.raises(DataError, match=r"split\.csv: line 2: study_id 's5041x267' is not a MIMIC-CXR id"):
        load(tree, progress=False)
    # prefixed ids are accepted
    path.write_text(original.replace(",50414267,10000032,", ",s50414267,p10000032,"))
    assert load(tree, progress=False).summary["studies"] == 4


def test_duplicate_dicom_id(tree):
    for name, line in (("split", 3), ("metadata", 3)):
        path = tree / f"mimic-cxr-2.0.0-{name}.csv"
        original = path.read_text()
        lines = original.splitlines(keepends=True)
        path.write_text(lines[0] + lines[1] + lines[1] + "".join(lines[2:]))
        with pytest.raises(DataError, match=rf"{name}\.csv: line {line}: duplicate dicom_id .*first on line 2"):
            load(tree, progress=False)
        path.write_text(original)


def test_inconsistent_subject_and_metadata(tree):
    path = tree / "mimic-cxr-2.0.0-split.csv"
    original = path.read_text()
    lines = original.splitlines(keepends=True)
    lines[2] = lines[2].replace("10000032", "10000099")
    path.write_text("".join(lines))
    with pytest.raises(DataError, match=r"split\.csv: line 3: study s50414267 has subject_id 10000099"):
        load(tree, progress=False)
    path.write_text(original)
    meta = tree / "mimic-cxr-2.0.0-metadata.csv"
    lines = meta.read_text().splitlines(keepends=True)
    lines[1] = lines[1].replace("50414267", "50000000")
    meta.write_text("".join(lines))
    with pytest.raises(DataError, match=r"metadata\.csv: line 2: dicom_id .* belongs to study s50000000"):
        load(tree, progress=False)


def test_image_missing_from_metadata_has_no_view(tree):
    meta = tree / "mimic-cxr-2.0.0-metadata.csv"
    lines = meta.read_text().splitlines(keepends=True)
    meta.write_text("".join(lines[:2] + lines[3:]))
    ds = load(tree, progress=False)
    assert ds.summary["images_without_metadata"] == 1 and ds.studies[0].images[1].view is None


def test_path_escaping_the_root_by_symlink(tree, tmp_path):
    outside = tmp_path / "outside"
    study_dir = image_path(tree, STUDIES[0]).parent
    study_dir.rename(outside)
    os.symlink(outside, study_dir)
    with pytest.raises(DataError, match=r"split\.csv line 2: resolves to .*/outside/.*\.jpg, outside .*files") as exc:
        load(tree, progress=False)
    assert str(image_path(tree, STUDIES[0])) in str(exc.value)


def test_path_escaping_the_root_by_dotdot(tree, tmp_path):
    (tmp_path / "evil.jpg").write_bytes(image_path(tree, STUDIES[0]).read_bytes())
    path = tree / "mimic-cxr-2.0.0-split.csv"
    first = dicom_id("50414267", 0)
    path.write_text(path.read_text().replace(first, "../../../../../evil", 1))
    meta = tree / "mimic-cxr-2.0.0-metadata.csv"
    meta.write_text(meta.read_text().replace(first, "../../../../../evil", 1))
    with pytest.raises(DataError, match=r"evil\.jpg: mimic-cxr-2\.0\.0-split\.csv line 2: resolves to .*evil\.jpg, outside"):
        load(tree, progress=False)


def test_report_symlink_outside_is_refused(tree, tmp_path):
    rel = tree / "mimic-cxr-reports/files/p10/p10000764/s57375967.txt"
    (tmp_path / "other.txt").write_text(FULL_1)
    rel.unlink()
    os.symlink(tmp_path / "other.txt", rel)
    with pytest.raises(DataError, match=r"s57375967\.txt: study s57375967, .* resolves to .*other\.txt, outside"):
        load(tree, progress=False)


def test_symlinked_files_folder_is_allowed(tmp_path):
    root = make_tree(tmp_path, layout="folder")
    store = tmp_path / "bigdisk"
    (root / "files").rename(store)
    os.symlink(store, root / "files")
    assert load(root, progress=False).summary["images"] == 6


def test_zero_studies_after_filtering_names_the_filters(tree):
    with pytest.raises(DataError, match=r"split\.csv: no mimic-cxr study left \(split 'validate', policy 'longest', "
                                        r"views \['SWIMMERS'\]: 5 studies selected, 0 with empty text, 7 images not in "
                                        r"the chosen views, 5 studies without an image of the chosen views\)"):
        load(tree, views="SWIMMERS", progress=False)
    with pytest.raises(DataError, match=r"no mimic-cxr study left \(split 'train', policy 'impression': 1 studies "
                                        r"selected, 1 with empty text\)"):
        load(make_tree(tree.parent / "t2", studies=(S("12000022", "56699142", "train", ("PA",), FINDINGS_ONLY),
                                                    S("12000023", "56699143", "validate", ("PA",), FULL_1))),
             split="train", policy="impression", progress=False)


def test_option_errors(tree):
    with pytest.raises(ConfigError, match="splits train, validate, test"):
        load(tree, split="dev", progress=False)
    with pytest.raises(TypeError):  # the loader itself has no catch-all: load_dataset checks every option
        load(tree, view="PA", progress=False)
    with pytest.raises(ConfigError, match=r"dataset 'mimic-cxr': unknown option\(s\) 'view'; it accepts root, split, "
                                          "policy, on_bad_image, reports, views, sections, require, fallback"):
        load_dataset("mimic-cxr", root=tree, view="PA", progress=False)
    with pytest.raises(ConfigError, match="on_bad_image"):
        load(tree, on_bad_image="ignore", progress=False)
    with pytest.raises(ConfigError, match="policy"):
        load(tree, policy="both", progress=False)
    with pytest.raises(ConfigError, match="--root"):
        load(None, progress=False)
    with pytest.raises(DataError, match="root folder not found"):
        load(tree / "nope", progress=False)


def test_missing_files_folder(tree):
    import shutil

    shutil.rmtree(tree / "files")
    with pytest.raises(DataError, match=r"files: image folder not found"):
        load(tree, progress=False)


# ---------------------------------------------------------------------------------------------- scale, end to end


def test_streams_a_full_size_metadata_csv_quickly(tmp_path):
    """377k split/metadata rows, of which only the 7 fake validate images are chosen."""
    root = make_tree(tmp_path)
    n = 377_000
    for name in ("split", "metadata"):
        path = root / f"mimic-cxr-2.0.0-{name}.csv"
        with path.open("a") as fh:
            for i in range(n):
                d = f"{i:08x}-0000000a-0000000b-0000000c-0000000d"
                subject, study = str(10_000_000 + i // 3), str(50_000_000 + i)
                fh.write(f"{d},{study},{subject},train\n" if name == "split" else
                         f"{d},{subject},{study},CHEST (PA AND LAT),PA,3056,2544,21800506,213014.531,"
                         "CHEST (PA AND LAT),postero-anterior,Erect\n")
    start = time.perf_counter()
    ds = load(root, progress=False)
    elapsed = time.perf_counter() - start
    assert ds.summary["studies"] == 4 and ds.summary["split_csv_rows"] == n + 11
    assert elapsed < 5.0, f"loading the validate split took {elapsed:.1f} s"


def test_cli_run_end_to_end(tree, tmp_path, monkeypatch):
    from cxrbench import cli, data

    monkeypatch.setitem(data._DATASETS, "mimic-cxr", ("cxrbench.data.mimic_cxr:load", "longest"))
    out = tmp_path / "out"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rc = cli.main(["run", "--dataset", "mimic-cxr", "--root", str(tree), "--models", "random", "--levels",
                       "0,0.5", "--bootstrap", "0", "--out", str(out), "--no-progress"])
    assert rc == 0
    records = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines() if line.strip()]
    assert records


def test_cli_run_with_sections_and_require_records_them(extra_tree, tmp_path, monkeypatch):
    from cxrbench import cli, data

    monkeypatch.setitem(data._DATASETS, "mimic-cxr", ("cxrbench.data.mimic_cxr:load", "longest"))
    out = tmp_path / "out"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rc = cli.main(["run", "--dataset", "mimic-cxr", "--root", str(extra_tree), "--data-option", "require=both",
                       "--data-option", "sections=lenient", "--models", "random", "--levels", "0,0.5", "--bootstrap",
                       "0", "--no-cache", "--max-studies", "3", "--out", str(out), "--no-progress"])
    assert rc == 0
    run = json.loads((out / "run.json").read_text())
    assert run["dataset"]["sections"] == "lenient" and run["dataset"]["require"] == "both"
    assert run["dataset"]["provenance"]["options"]["require"] == "both"
    assert run["dataset"]["subset_of_studies"] == BY_REQUIREMENT["lenient"]["both"][0]
    records = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines() if line.strip()]
    assert {r["dataset_counts"]["studies"] for r in records} == {3}
