"""The MIMIC-CXR report section parser on report shapes written here (real-looking, not real reports)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cxrbench.data.mimic_sections import Sections, canonical_header, parse_sections

TITLE = "                                 FINAL REPORT\n"


def mimic(*lines: str) -> str:
    """A report the way MIMIC-CXR writes them: title line, every line indented by one space."""
    return TITLE + "".join(f" {line}\n" for line in lines)


FULL = mimic(
    "EXAMINATION:  CHEST (PA AND LAT)", "",
    "INDICATION:  ___ year old woman with cough  // eval for pneumonia", "",
    "TECHNIQUE:  Chest PA and lateral", "",
    "COMPARISON:  ___", "",
    "FINDINGS: ", "",
    "Heart size is normal.  The mediastinal and hilar contours are unremarkable.  There is",
    "a new small left pleural effusion.  No pneumothorax.", "",
    "IMPRESSION: ", "",
    "Small left pleural effusion.",
)

CASES = [
    ("full report", FULL,
     "Heart size is normal. The mediastinal and hilar contours are unremarkable. There is a new small left "
     "pleural effusion. No pneumothorax.", "Small left pleural effusion.",
     ["examination", "indication", "technique", "comparison", "findings", "impression"]),
    ("impression only",
     mimic("INDICATION:  ___M with chest pain", "", "COMPARISON:  None.", "",
           "IMPRESSION: ", "", "No acute cardiopulmonary process."),
     "", "No acute cardiopulmonary process.", ["indication", "comparison", "impression"]),
    ("findings only",
     mimic("HISTORY:  Intubated.", "", "FINDINGS:  Endotracheal tube terminates 4 cm above the carina.",
           "Lungs are clear."),
     "Endotracheal tube terminates 4 cm above the carina. Lungs are clear.", "", ["history", "findings"]),
    ("findings and impression combined",
     mimic("INDICATION:  Fever.", "", "FINDINGS AND IMPRESSION:  Low lung volumes.  No focal consolidation."),
     "", "Low lung volumes. No focal consolidation.", ["indication", "impression"]),
    ("findings/impression combined",
     mimic("FINDINGS/IMPRESSION: ", "Mild pulmonary edema."), "", "Mild pulmonary edema.", ["impression"]),
    ("impression and findings combined",
     mimic("IMPRESSION AND FINDINGS:  Stable cardiomegaly."), "", "Stable cardiomegaly.", ["impression"]),
    ("lowercase and odd spacing",
     "Indication : cough\n\n  Findings :\tLungs   are\tclear.\n\tImpression:   Normal chest.  \n",
     "Lungs are clear.", "Normal chest.", ["indication", "findings", "impression"]),
    ("header on the same line as text",
     mimic("FINDINGS:  Right PICC tip in the SVC.", "IMPRESSION:  PICC in good position."),
     "Right PICC tip in the SVC.", "PICC in good position.", ["findings", "impression"]),
    ("header on its own line, text below after blank lines",
     mimic("FINDINGS:", "", "", "Bibasilar atelectasis.", "", "IMPRESSION:", "", "", "Atelectasis."),
     "Bibasilar atelectasis.", "Atelectasis.", ["findings", "impression"]),
    ("multiple paragraphs",
     mimic("FINDINGS: ", "", "PA and lateral views of the chest were provided.", "",
           "There is a moderate right pleural effusion.", "", "The heart is enlarged.", "",
           "IMPRESSION: ", "", "1.  Moderate right effusion.", "2.  Cardiomegaly."),
     "PA and lateral views of the chest were provided. There is a moderate right pleural effusion. The heart is "
     "enlarged.", "1. Moderate right effusion. 2. Cardiomegaly.", ["findings", "impression"]),
    ("impression in the middle, then recommendations",
     mimic("FINDINGS:  8 mm nodule in the right upper lobe.", "", "IMPRESSION:  Right upper lobe nodule.", "",
           "RECOMMENDATION(S):  Chest CT is recommended for further evaluation."),
     "8 mm nodule in the right upper lobe.", "Right upper lobe nodule.",
     ["findings", "impression", "recommendations"]),
    ("notification after impression",
     mimic("IMPRESSION: ", "", "Right pneumothorax, new since ___.", "",
           "NOTIFICATION:  The findings were discussed with Dr. ___ by Dr. ___ on the", "telephone on ___ at 10:15 AM."),
     "", "Right pneumothorax, new since ___.", ["impression", "notification"]),
    ("trailing de-identified signature lines",
     mimic("FINDINGS:  No effusion.", "", "IMPRESSION:  Normal study.", "", "___", "", "______"),
     "No effusion.", "Normal study.", ["findings", "impression"]),
    ("windows line endings",
     FULL.replace("\n", "\r\n"),
     "Heart size is normal. The mediastinal and hilar contours are unremarkable. There is a new small left "
     "pleural effusion. No pneumothorax.", "Small left pleural effusion.",
     ["examination", "indication", "technique", "comparison", "findings", "impression"]),
    ("old mac line endings",
     "FINDINGS: Clear lungs.\rIMPRESSION: Normal.\r", "Clear lungs.", "Normal.", ["findings", "impression"]),
    ("no sections at all",
     mimic("CHEST RADIOGRAPH PERFORMED ON ___", "", "Lungs are clear.  No effusion."), "", "", []),
    ("empty findings section",
     mimic("FINDINGS: ", "", "IMPRESSION:  No acute process."), "", "No acute process.", ["findings", "impression"]),
    ("both sections empty",
     mimic("INDICATION:  Line placement.", "", "FINDINGS: ", "", "IMPRESSION: ", ""), "", "",
     ["indication", "findings", "impression"]),
    ("impression before findings",
     mimic("IMPRESSION:  Pneumonia in the left lower lobe.", "", "INDICATION:  Fever.", "",
           "FINDINGS:  Left lower lobe consolidation."),
     "Left lower lobe consolidation.", "Pneumonia in the left lower lobe.", ["impression", "indication", "findings"]),
    ("conclusion is the impression",
     mimic("FINDINGS:  Unchanged.", "CONCLUSION:  No change."), "Unchanged.", "No change.",
     ["findings", "impression"]),
    ("summary is the impression",
     mimic("SUMMARY:  Stable appearance of the chest."), "", "Stable appearance of the chest.", ["impression"]),
    ("plural and singular variants",
     mimic("FINDING:  Small effusion.", "IMPRESSIONS:  Effusion."), "Small effusion.", "Effusion.",
     ["findings", "impression"]),
    ("addendum first, original report last",
     TITLE + " ADDENDUM:  Comparison with the CT of ___ shows the nodule is stable.\n \n"
     " IMPRESSION:  Stable nodule.\n"
     " ______________________________________________________________________________\n"
     "                                 FINAL REPORT\n"
     " FINDINGS:  Right upper lobe nodule.\n \n IMPRESSION:  Nodule, compare with prior CT.\n",
     "Right upper lobe nodule.", "Nodule, compare with prior CT.",
     ["addendum", "impression", "findings", "impression"]),
    ("uppercase sub-headings inside findings",
     mimic("FINDINGS: ", "LUNGS:  Clear.", "HEART:  Normal size.", "PLEURA:  No effusion.", "",
           "IMPRESSION:  Normal."),
     "LUNGS: Clear. HEART: Normal size. PLEURA: No effusion.", "Normal.", ["findings", "impression"]),
    ("exam title header holds the findings",
     mimic("INDICATION:  SOB.", "", "PORTABLE AP CHEST:  Mild vascular congestion.  No effusion."),
     "Mild vascular congestion. No effusion.", "", ["indication", "findings"]),
    ("mixed-case sentences with a colon are not headers",
     mimic("FINDINGS:  Lines and tubes as follows:", "Note: the right IJ line tip is in the SVC.",
           "Heart size: normal.", "IMPRESSION:  Lines in place."),
     "Lines and tubes as follows: Note: the right IJ line tip is in the SVC. Heart size: normal.",
     "Lines in place.", ["findings", "impression"]),
    ("wet read with times",
     "WET READ: ___ ___ 10:30 PM\n  No pneumothorax.\n" + mimic("FINDINGS:  No pneumothorax.",
                                                               "IMPRESSION:  No pneumothorax after drain removal."),
     "No pneumothorax.", "No pneumothorax after drain removal.", ["wet read", "findings", "impression"]),
    ("no space after the colon",
     mimic("FINDINGS:Clear.", "IMPRESSION:No acute disease."), "Clear.", "No acute disease.",
     ["findings", "impression"]),
    ("typos in headers",
     mimic("FINDNGS:  Clear.", "IMPRESSON:  Normal."), "Clear.", "Normal.", ["findings", "impression"]),
    ("several findings sections: the last non-empty one",
     mimic("FINDINGS:  First read.", "", "COMPARISON:  ___", "", "FINDINGS:  Second read.", "FINDINGS: "),
     "Second read.", "", ["findings", "comparison", "findings", "findings"]),
]


@pytest.mark.parametrize("name,text,findings,impression,headers", CASES, ids=[c[0] for c in CASES])
def test_report_shapes(name, text, findings, impression, headers):
    got = parse_sections(text)
    assert got == Sections(findings, impression, headers), name


def test_deidentification_tokens_are_kept_verbatim():
    got = parse_sections(mimic("FINDINGS:  Compared to ___, the ___ catheter is unchanged.",
                               "IMPRESSION:  Dr. ___ was paged at ___."))
    assert got.findings == "Compared to ___, the ___ catheter is unchanged."
    assert got.impression == "Dr. ___ was paged at ___."


def test_fallback_last_paragraph():
    text = mimic("CHEST RADIOGRAPH PERFORMED ON ___", "", "Lungs are clear.", "No effusion.", "",
                 "No pneumothorax.", "", "___")
    assert parse_sections(text) == Sections("", "", [])
    got = parse_sections(text, fallback=True)
    assert got == Sections("", "Lungs are clear. No effusion. No pneumothorax.", [], "last_paragraph")


def test_fallback_uses_the_last_section():
    text = mimic("INDICATION:  Cough.", "", "Per the clinical team.", "", "TECHNIQUE:  AP portable.", "",
                 "Heart is normal.  Lungs are clear.")
    got = parse_sections(text, fallback=True)
    assert (got.impression, got.fallback) == ("Heart is normal. Lungs are clear.", "last_paragraph")


def test_fallback_comparison_when_no_second_paragraph():
    text = mimic("INDICATION:  Cough.", "COMPARISON:  Since ___ the effusion has resolved.", "TECHNIQUE:  PA.")
    got = parse_sections(text, fallback=True)
    assert (got.findings, got.impression, got.fallback) == ("", "Since ___ the effusion has resolved.", "comparison")


def test_fallback_not_used_when_a_section_exists():
    got = parse_sections(mimic("IMPRESSION:  Normal.", "", "Second paragraph."), fallback=True)
    assert got == Sections("", "Normal. Second paragraph.", ["impression"])


def test_fallback_single_paragraph_without_comparison_stays_empty():
    assert parse_sections("Lungs are clear.", fallback=True) == Sections("", "", [])


def test_empty_text():
    assert parse_sections("") == Sections("", "", [])
    assert parse_sections(" \n \r\n") == Sections("", "", [])


@pytest.mark.parametrize("header,canon", [
    ("FINDINGS", "findings"), ("Findings", "findings"), ("IMPRESSION", "impression"), ("impression", "impression"),
    ("FINDINGS AND IMPRESSION", "impression"), ("CONCLUSION", "impression"), ("SUMMARY", "impression"),
    ("Summary", None), ("Note", None), ("NOTE", "note"), ("CLINICAL HISTORY", "history"),
    ("REASON FOR EXAM", "indication"), ("RECOMMENDATION(S)", "recommendations"), ("CHEST, TWO VIEWS", "findings"),
    ("FINDINGS, PA VIEW", "findings"), ("LUNGS", "unknown"), ("Heart size", None), ("  ", None),
])
def test_canonical_header(header, canon):
    assert canonical_header(header) == canon


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("FINDGSMPROabc _:\n\r\t.")), max_size=200), st.booleans())
def test_never_fails_and_normalises_whitespace(text, fallback):
    got = parse_sections(text, fallback=fallback)
    for part in (got.findings, got.impression):
        assert part == " ".join(part.split())


# Regression: the exam-title pattern had "\bpa and lat\b", which cannot match "PA AND LATERAL" (no word boundary
# between "lat" and "eral"), so these documented exam-title headers came out "unknown" and their text was lost.
@pytest.mark.parametrize("header", ["PA AND LATERAL", "AP AND LATERAL", "PA AND LATERAL VIEWS", "LATERAL AND PA",
                                    "PA AND LAT", "PA VIEWS", "FRONTAL VIEWS", "CHEST, PA AND LATERAL"])
def test_exam_title_headers_with_lateral_written_out_are_findings(header):
    assert canonical_header(header) == "findings"
    got = parse_sections(mimic("INDICATION:  Cough.", "", f"{header}:  Lungs are clear.  No effusion.", "",
                               "IMPRESSION:  Normal chest."))
    assert got == Sections("Lungs are clear. No effusion.", "Normal chest.", ["indication", "findings", "impression"])


def test_exam_title_inside_findings_stays_a_sub_heading():
    got = parse_sections(mimic("FINDINGS: ", "PA AND LATERAL VIEWS:  Lungs are clear.", "",
                               "IMPRESSION:  Normal."))
    assert got == Sections("PA AND LATERAL VIEWS: Lungs are clear.", "Normal.", ["findings", "impression"])


@pytest.mark.parametrize("header", ["LATERAL", "LATERALITY", "PAST", "AP"])
def test_words_near_exam_titles_stay_unknown(header):
    assert canonical_header(header) == "unknown"
