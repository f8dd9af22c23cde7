"""The ``mitlcp`` section parser rule by rule, on report shapes written here (expectations worked out by hand
from MIT-LCP's scripts; the stored golden in test_mimic_sections_golden.py checks the whole corpus)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cxrbench.data.mimic_sections import DEFAULT_SECTION_PARSER, SECTION_PARSERS, Sections, split_sections
from cxrbench.data.mimic_sections_mitlcp import (
    CUSTOM_INDICES,
    CUSTOM_SECTION_NAMES,
    cut_sections,
    normalise_name,
    parse_mitlcp,
    study_key,
)
from cxrbench.errors import ConfigError, DataError

TITLE = " " * 33 + "FINAL REPORT\n"


def mimic(*lines: str) -> str:
    """MIMIC-CXR's layout: a title line, every line indented by one space (a blank line is one space)."""
    return TITLE + "".join(f" {line}\n" for line in lines)


# (name, report, findings, impression, last_paragraph, comparison, conclusion, headers)
CASES = [
    ("standard", mimic("INDICATION:  Cough.", "", "COMPARISON:  ___", "", "FINDINGS: ", "",
                       "Lungs are clear.  No effusion.", "", "IMPRESSION: ", "", "Normal chest.", ""),
     "Lungs are clear.  No effusion.", "Normal chest.", "", "___", "Normal chest.",
     ("indication", "comparison", "findings", "impression")),
    ("text keeps its line breaks and indentation",
     mimic("FINDINGS:  Heart size is normal.  There is a", "small left effusion.", "", "IMPRESSION:  Effusion."),
     "Heart size is normal.  There is a\n small left effusion.", "Effusion.", "", "", "Effusion.",
     ("findings", "impression")),
    ("lower-case headers are text",
     mimic("Findings:  Clear.", "", "Impression:  Normal."),
     "", "", "Impression:  Normal.", "", "Impression:  Normal.", ()),
    ("ampersand makes a header text",
     mimic("INDICATION:  Fever.", "", "FINDINGS & IMPRESSION:  Clear."),
     "", "", "FINDINGS & IMPRESSION:  Clear.", "", "FINDINGS & IMPRESSION:  Clear.", ("indication",)),
    ("no whitespace after the colon",
     mimic("INDICATION:  Fever.", "FINDINGS:Clear.", "IMPRESSION:  Normal."),
     "", "Normal.", "", "", "Normal.", ("indication", "impression")),
    ("a header on the first line is not found",
     "FINDINGS:  Clear.\n IMPRESSION:  Normal.\n", "", "Normal.", "", "", "Normal.", ("impression",)),
    ("an unindented header is not found",
     TITLE + "FINDINGS:  Clear.\n IMPRESSION:  Normal.\n", "", "Normal.", "", "", "Normal.", ("impression",)),
    ("a header at the very end of the file is not found",
     mimic("FINDINGS:  Clear.") + " IMPRESSION:", "Clear.\n IMPRESSION:", "", "", "", "Clear.\n IMPRESSION:",
     ("findings",)),
    ("sub-headings cut the findings; an empty findings is dropped",
     mimic("FINDINGS: ", "LUNGS:  Clear.", "HEART:  Normal size.", "", "IMPRESSION:  Normal."),
     "", "Normal.", "", "", "Normal.", ("findings", "lungs", "heart", "impression")),
    ("a swallowed header: FINDINGS: with no trailing space hides the next line's header",
     mimic("FINDINGS:", "IMPRESSION:  No acute process."),
     "IMPRESSION:  No acute process.", "", "", "", "IMPRESSION:  No acute process.", ("findings",)),
    ("swallowing can lose the findings altogether",
     mimic("INDICATION:", "FINDINGS:  Clear.", "", "COMPARISON:  None."),
     "", "", "", "None.", "None.", ("indication", "comparison")),
    ("a blank line after the bare header: nothing is swallowed",
     mimic("FINDINGS:", "", "IMPRESSION:  Normal."), "", "Normal.", "", "", "Normal.", ("findings", "impression")),
    ("a section that is only ___ is kept",
     mimic("FINDINGS:  Clear.", "", "IMPRESSION:  ___"), "Clear.", "___", "", "", "___", ("findings", "impression")),
    ("'ndication' is mapped to impression",
     mimic("NDICATION:  ___ year old man with cough.", "", "COMPARISON:  None."),
     "", "___ year old man with cough.", "", "None.", "___ year old man with cough.", ("impression", "comparison")),
    ("exam titles with LATERAL written out are findings",
     mimic("PA AND LATERAL VIEWS:  Clear lungs.", "", "AP AND LATERAL:  No effusion."),
     "No effusion.", "", "", "", "No effusion.", ("findings", "findings")),
    ("SUMMARY, SUPINE AP and CONCLUSIONS are not impression or findings",
     mimic("SUPINE AP:  Clear lungs.", "", "CONCLUSIONS:  Normal.", "", "SUMMARY:  Normal chest."),
     "", "", "", "", "", ("supine ap", "conclusions", "summary")),
    ("the last paragraph: split at the first MIMIC blank line",
     mimic("CHEST RADIOGRAPH", "", "Lungs are clear.", "", "No effusion."),
     "", "", "Lungs are clear.\n \n No effusion.", "", "Lungs are clear.\n \n No effusion.", ()),
    ("an empty line is not a MIMIC blank line",
     TITLE + " CHEST RADIOGRAPH\n\n Lungs are clear.\n", "", "", "", "", "", ()),
    ("a multi-paragraph comparison is cut to its first paragraph",
     mimic("INDICATION:  Cough.", "", "COMPARISON:  ___", "", "Lungs are clear.", "", "No effusion."),
     "", "", "Lungs are clear.\n \n No effusion.", "___", "Lungs are clear.\n \n No effusion.",
     ("indication", "comparison")),
    ("an empty last paragraph still beats the comparison for the conclusion",
     mimic("INDICATION:  Cough.", "", "COMPARISON:  Prior of ___.", ""),
     "", "", "", "Prior of ___.", "", ("indication", "comparison")),
    ("the last non-empty findings and impression win",
     mimic("IMPRESSION:  First.", "", "FINDINGS:  Old.", "", "IMPRESSION:  Second.", "", "FINDINGS: ", ""),
     "Old.", "Second.", "", "", "Second.", ("impression", "findings", "impression", "findings")),
    ("combined headers are impression",
     mimic("FINDINGS AND IMPRESSION:  Clear.", "", "HISTORY/INDICATION:  Cough."),
     "", "Clear.", "", "", "Clear.", ("impression", "history")),
    ("windows and old mac line endings read as newlines",
     mimic("FINDINGS:  Clear.", "", "IMPRESSION:  Normal.").replace("\n", "\r\n"),
     "Clear.", "Normal.", "", "", "Normal.", ("findings", "impression")),
    ("empty text", "", "", "", "", "", "", ()),
]


@pytest.mark.parametrize("name,text,findings,impression,last_paragraph,comparison,conclusion,headers", CASES,
                         ids=[c[0] for c in CASES])
def test_report_shapes(name, text, findings, impression, last_paragraph, comparison, conclusion, headers):
    got = parse_mitlcp(text)
    assert (got.findings, got.impression, got.last_paragraph, got.comparison, got.conclusion, got.headers) == (
        findings, impression, last_paragraph, comparison, conclusion, headers), name
    assert got.custom_rule is None


def test_old_mac_line_endings():
    got = parse_mitlcp(mimic("FINDINGS:  Clear.", "IMPRESSION:  Normal.").replace("\n", "\r"))
    assert (got.findings, got.impression) == ("Clear.", "Normal.")


@pytest.mark.parametrize("name,canon", [
    ("FINDINGS", "findings"), ("  IMPRESSION ", "impression"), ("IMPRESSIONS", "impression"),
    ("CONCLUSION", "impression"), ("CONCLUSIONS", "conclusions"), ("SUMMARY", "summary"), ("NDICATION", "impression"),
    ("IDICATION", "indication"), ("INDICATIONS", "indications"), ("FINDINGS  AND  IMPRESSION", "impression"),
    ("COMPARISON/HISTORY", "history"), ("CHEST, TWO VIEWS", "findings"), ("CT CHEST", "findings"),
    ("PA AND LATERAL VIEWS", "findings"), ("SINGLE AP VIEW", "findings"), ("SINGLE VIEW", "single view"),
    ("UPRIGHT", "upright"), ("NOTE", "note"), ("RECOMMENDATION(S)", "recommendations"), ("REASON FOR EXAM", "indication"),
])
def test_normalise_name(name, canon):
    assert normalise_name(name) == canon


def test_cut_sections_offsets_point_into_the_report():
    text = mimic("INDICATION:  Cough.", "", "FINDINGS:  Clear.")
    sections = cut_sections(text)
    assert [s.name for s in sections] == ["preamble", "indication", "findings"]
    assert sections[0].text == TITLE + " "  # up to the header name: the newline and indent are the preamble's
    for s in sections[1:]:
        assert text[s.start:s.start + len(s.text)] == s.text


# --- per-study special cases -----------------------------------------------------------------------------------

CUSTOM_REPORT = mimic("EXAMINATION:  CHEST (PA AND LAT)", "", "INDICATION:  Fever.", "",
                      "RECOMMENDATION(S):  Follow-up radiograph in 6 weeks.", "", "IMPRESSION:  Pneumonia.", "",
                      "RECOMMENDATION(S):  Chest CT.", "", "NOTE:  Called to Dr. ___.", "",
                      "FINDINGS:  Right lower lobe opacity.")


def test_tables_have_upstreams_size_and_shape():
    assert len(CUSTOM_SECTION_NAMES) == 23 and len(CUSTOM_INDICES) == 31
    assert not set(CUSTOM_SECTION_NAMES) & set(CUSTOM_INDICES)
    assert all(k.startswith("s") and len(k) == 9 and k[1:].isdigit() for k in [*CUSTOM_SECTION_NAMES, *CUSTOM_INDICES])
    assert all(0 <= a <= b for a, b in CUSTOM_INDICES.values())
    assert sum(v == (0, 0) for v in CUSTOM_INDICES.values()) == 8


@pytest.mark.parametrize("study_id", ["s50913680", "50913680", 50913680, " S50913680 "])
def test_custom_section_name_takes_the_last_section_of_that_name(study_id):
    assert CUSTOM_SECTION_NAMES["s50913680"] == "recommendations"
    got = parse_mitlcp(CUSTOM_REPORT, study_id)
    assert (got.custom_rule, got.conclusion_source, got.conclusion) == (
        "custom_section_names", "custom_section_names", "Chest CT.")
    # upstream's sectioned table has no row for these studies
    assert (got.findings, got.impression, got.last_paragraph, got.comparison) == ("", "", "", "")


def test_custom_section_note_is_an_unmapped_name():
    assert parse_mitlcp(CUSTOM_REPORT, "s56451190").conclusion == "Called to Dr. ___."


def test_custom_section_name_missing_is_a_data_error():
    with pytest.raises(DataError, match=r"s50913680.*'recommendations'.*lenient"):
        parse_mitlcp(mimic("FINDINGS:  Clear."), "s50913680")


def test_custom_indices_slice_the_report_unstripped():
    text = (TITLE + " INDICATION:  Fever.\n \n FINDINGS:  " + "x" * 400 + "\n").replace("\n", "\r\n")
    start, end = CUSTOM_INDICES["s50525523"]
    got = parse_mitlcp(text, "s50525523")
    assert got.conclusion == text.replace("\r\n", "\n")[start:end]
    assert (got.custom_rule, got.findings, got.impression) == ("custom_indices", "", "")
    assert parse_mitlcp(text, "s58235663").conclusion == ""  # (0, 0): no text at all
    assert parse_mitlcp("short", "s56412866").conclusion == ""  # offsets past the end


def test_without_a_study_id_no_special_case_applies():
    got = parse_mitlcp(CUSTOM_REPORT)
    assert (got.custom_rule, got.findings, got.impression) == (None, "Right lower lobe opacity.", "Pneumonia.")


@pytest.mark.parametrize("bad", ["p10000032", "s", "", "s5091368x", "12.5"])
def test_bad_study_id_is_a_config_error(bad):
    with pytest.raises(ConfigError, match="study id"):
        study_key(bad)


# --- split_sections: the public entry point ----------------------------------------------------------------------

def test_parser_names():
    assert SECTION_PARSERS == ("mitlcp", "lenient")
    assert DEFAULT_SECTION_PARSER == "mitlcp"
    with pytest.raises(ConfigError, match="mitlcp, lenient"):
        split_sections("x", parser="strict")


def test_split_sections_records_the_parser_and_differs_where_documented():
    text = mimic("Findings:  Clear.", "", "SUMMARY:  Normal.")
    # mitlcp: "Findings:" is preamble text, SUMMARY an unknown one-paragraph last section, so nothing is chosen
    assert split_sections(text, "s1") == Sections("", "", ["summary"], None, "", "", "", "mitlcp", None)
    assert split_sections(text, "s1", parser="lenient") == Sections("Clear.", "Normal.", ["findings", "impression"])


def test_mitlcp_fallback_uses_upstreams_conclusion():
    text = mimic("INDICATION:  Cough.", "", "TECHNIQUE:  PA and lateral.", "", "Lungs are clear.")
    assert split_sections(text, "s1").impression == ""
    got = split_sections(text, "s1", fallback=True)
    assert (got.findings, got.impression, got.fallback) == ("", "Lungs are clear.", "last_paragraph")
    got = split_sections(mimic("INDICATION:  Cough.", "", "COMPARISON:  Clear lungs."), "s1", fallback=True)
    assert (got.impression, got.fallback) == ("Clear lungs.", "comparison")
    got = split_sections(CUSTOM_REPORT, "s50913680", fallback=True)
    assert (got.impression, got.fallback, got.custom_rule) == ("Chest CT.", "custom_section_names",
                                                               "custom_section_names")
    got = split_sections(mimic("IMPRESSION:  Normal.", "", "More."), "s1", fallback=True)
    assert (got.impression, got.fallback) == ("Normal.\n \n More.", None)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("FINDGSMPROCa _:\n\r\t.&")), max_size=300))
def test_never_fails_and_conclusion_is_one_of_the_sections(text):
    got = parse_mitlcp(text)
    parts = (got.impression, got.findings, got.last_paragraph, got.comparison)
    assert all(p == p.strip() for p in parts)
    assert got.conclusion in (*parts, "")
    if got.impression:
        assert got.conclusion == got.impression and got.conclusion_source == "impression"
    elif got.findings:
        assert got.conclusion == got.findings
    else:
        assert got.last_paragraph or got.conclusion_source != "findings"
