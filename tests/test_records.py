"""Study records, report-text policies and the IU report parser."""

from __future__ import annotations

import pytest

from cxrbench.data.iu_reports import image_views, load_reports, parse_report_xml
from cxrbench.data.records import Dataset, ImageRecord, Study, apply_policy, count_summary, report_text
from cxrbench.errors import ConfigError, DataError


def study(findings="", impression="", n_images=1):
    return Study("s", tuple(ImageRecord(f"i{k}", f"i{k}.png") for k in range(n_images)), findings, impression)


def test_policies_select_sections():
    s = study("Heart normal.  Lungs clear.", "No acute disease.")
    assert report_text(s, "findings") == "Heart normal. Lungs clear."
    assert report_text(s, "impression") == "No acute disease."
    assert report_text(s, "findings+impression") == "Heart normal. Lungs clear. No acute disease."
    assert report_text(s, "longest") == "Heart normal. Lungs clear."


def test_longest_compares_length_not_alphabetical_order():
    """CXR-CLIP's README says max(findings, impression); Python's max on strings would pick 'Z...'."""
    s = study(findings="A long findings section that is clearly longer.", impression="Z short.")
    assert max(s.findings, s.impression) == "Z short."  # the trap
    assert report_text(s, "longest") == s.findings
    assert report_text(study("", "Only impression."), "longest") == "Only impression."


def test_empty_text_studies_are_dropped_and_counted():
    kept, dropped = apply_policy([study("F.", ""), study("", "I."), study("", "")], "findings")
    assert [s.findings for s in kept] == ["F."] and dropped == 2


def test_unknown_policy_is_an_error_listing_choices():
    with pytest.raises(ConfigError, match="longest"):
        report_text(study("x"), "conclusion")
    with pytest.raises(ConfigError):
        apply_policy([study("x")], "conclusion")


def test_count_summary():
    s = count_summary([study("a", n_images=2), study("b", n_images=1), study("c", n_images=2)])
    assert s == {"studies": 3, "images": 5, "images_per_study": {"1": 1, "2": 2}}



def test_subset_keeps_the_first_studies_and_says_so():
    ds = Dataset("d", "test", "longest", [study("a", n_images=2), study("b"), study("c")], {"studies": 3})
    sub = ds.subset(2)
    assert [s.findings for s in sub.studies] == ["a", "b"] and len(sub.images) == 3
    assert sub.split == sub.summary["split"] == "test[:2]"  # so thresholds stored for the whole split never gate it
    assert sub.summary["subset_of_studies"] == 3 and sub.summary["studies"] == 2


@pytest.mark.parametrize("bad", [0, -1, 2.5, True, None])
def test_subset_refuses_a_count_that_is_not_positive(bad):
    with pytest.raises(ConfigError, match=rf"max_studies={bad!r}: give a positive whole number"):
        Dataset("d", "test", "longest", [study("a")]).subset(bad)


XML = b"""<?xml version="1.0"?><eCitation><uId id="CXR42"/><MedlineCitation><Article><Abstract>
<AbstractText Label="FINDINGS">Heart   size normal.</AbstractText>
<AbstractText Label="IMPRESSION">No acute disease.</AbstractText></Abstract></Article></MedlineCitation>
<MeSH><major>Cardiomegaly/mild </major><major>normal</major></MeSH>
<parentImage id="CXR42_IM-1-1001"/><parentImage id="CXR42_IM-1-2001"/></eCitation>"""


def test_parse_report_xml():
    r = parse_report_xml(XML, "x.xml")
    assert r.uid == "CXR42" and r.findings == "Heart size normal." and r.impression == "No acute disease."
    assert r.majors == ("Cardiomegaly/mild", "normal")
    assert r.image_ids == ("CXR42_IM-1-1001", "CXR42_IM-1-2001")


def test_malformed_xml_names_the_file():
    with pytest.raises(DataError, match="bad.xml"):
        parse_report_xml(b"<eCitation><uId", "bad.xml")
    with pytest.raises(DataError, match="nouid.xml"):
        parse_report_xml(b"<eCitation></eCitation>", "nouid.xml")


def test_iu_archive_counts_match_the_documented_ones():
    """3,955 reports; 3,927 with FINDINGS or IMPRESSION; of those 101 have no image (DESIGN.md counts)."""
    reports = load_reports()
    assert len(reports) == 3955
    with_text = [r for r in reports if r.findings or r.impression]
    assert len(with_text) == 3927
    assert sum(1 for r in with_text if not r.image_ids) == 101
    assert sum(len(r.image_ids) for r in with_text) == 7430
    per_study = [len(r.image_ids) for r in with_text]
    assert (per_study.count(1), per_study.count(2), sum(n >= 3 for n in per_study)) == (435, 3195, 196)

    def longest(r):
        return report_text(Study(r.uid, (), r.findings, r.impression), "longest")

    assert len({longest(r) for r in with_text}) == 3074
    assert len({longest(r) for r in with_text if r.image_ids}) == 2981


def test_views_from_metadata_else_order():
    known = {"a": "lateral"}
    assert image_views(("a", "b"), known) == ("lateral", "frontal")
    assert image_views(("x", "y"), {}) == ("frontal", "lateral")
    assert image_views(("x", "y"), {"y": "frontal"}) == ("lateral", "frontal")
