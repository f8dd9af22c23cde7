"""MIMIC-CXR report sections cut exactly the way MIT-LCP's own scripts cut them (the ``mitlcp`` parser).

The MIMIC-CXR maintainers publish ``txt/section_parser.py`` and ``txt/create_section_files.py`` in the
MIT-LCP/mimic-cxr repository; most public MIMIC-CXR pipelines start from the tables those scripts write
(``mimic_cxr_sectioned.csv``: impression, findings, last_paragraph, comparison per study;
``mimic_cxr_sections.csv``: one "conclusion" per study). This module is our own implementation of the same
behaviour, checked report by report against upstream's output on a synthetic corpus
(``tests/fixtures/mimic_sections/``). Every rule below, surprising ones included, is upstream's.

Reading
    Line endings ``\\r\\n`` and ``\\r`` become ``\\n`` (upstream reads the files in Python's text mode). Nothing
    else is changed: section texts keep their inner line breaks and indentation, only their ends are stripped.

Header lines
    A header is a newline, exactly one space, a name of one or more characters from ``A-Z``, space,
    ``( ) / , -``, a colon, and one whitespace character (a space, a tab or a newline) — MIMIC-CXR indents every
    line by one space. Hence: names are upper case only (``Findings:`` is text); ``&``, digits, ``.`` or ``'``
    in a name make it text (``FINDINGS & IMPRESSION:`` is not a header); ``FINDINGS:Clear`` (no whitespace after
    the colon) is text, and so is a header ending the file with nothing after its colon; a header on the first
    line of the file (no newline before it) or on a line that is not indented is not found. Extra indentation is
    fine (the spaces become part of the name and are stripped).

Cutting
    The text before the first header is the ``preamble``; a report without any header is one section named
    ``full report``. Every header found starts a new section that runs to the next header, so upper-case
    sub-headings inside FINDINGS (``LUNGS:``, ``PA AND LATERAL VIEWS:``) cut it. The search for the next header
    starts at the end of the line where the current section's text begins: when a header line ends right after
    its colon (``FINDINGS:`` + newline, no trailing space), the whitespace after the colon is that newline, the
    text begins on the next line, and a header on that next line is not seen; it is swallowed into the current
    section (``INDICATION:`` + newline + `` FINDINGS: clear`` gives one ``indication`` section ``FINDINGS:
    clear`` and no findings).

Section names
    The name is lower-cased and stripped (inner spaces are kept as written), then looked up in
    :data:`SECTION_NAME_MAP`; failing that, the first of ``impression``, ``findings``, ``history``,
    ``comparison``, ``addendum`` contained in it is the name (``FINDINGS AND IMPRESSION`` -> impression); failing
    that, a name containing one of the exam-title fragments :data:`EXAM_TITLE_FRAGMENTS` (``chest``,
    ``portable``, ``pa and lateral``...; plain substrings, so ``PA AND LATERAL VIEWS`` and ``CT CHEST`` both
    count) is ``findings``; any other name is kept as it is (``summary``, ``conclusions``, ``supine ap``). Note
    the map sends ``ndication`` (a typo of INDICATION) to **impression**, as upstream does.

Empty sections and the last paragraph
    FINDINGS and IMPRESSION sections that are empty or whitespace are dropped; other sections, and a FINDINGS or
    IMPRESSION whose only text is ``___`` (a de-identified token), are kept. When no FINDINGS and no IMPRESSION
    section is left, the last section is split at its first ``"\\n \\n"`` (a line holding exactly one space,
    MIMIC's blank line; an empty line ``"\\n\\n"`` does not count): the first part stays in that section, the
    rest (re-joined) becomes a new ``last_paragraph`` section. A section whose header is followed by a blank
    line (``TECHNIQUE: `` + blank line + text) thus becomes empty and its whole text is the last paragraph;
    one written on the header line keeps its first paragraph. When that last section is a COMPARISON, this
    also shortens the comparison to its first paragraph (or empties it).

Choosing the texts (``create_section_files.py``)
    ``findings``, ``impression``, ``last_paragraph`` and ``comparison`` are the stripped text of the *last*
    section of that name, or ``""`` when there is none (upstream's table writes ``None``, which its CSV writes
    as an empty field). The ``conclusion`` is the first of those four that exists, in that order, even if it
    is empty; ``""`` when none does.

Per-study rules (:data:`CUSTOM_SECTION_NAMES`, :data:`CUSTOM_INDICES`)
    Upstream handles 54 badly formatted reports by hand, by study id (23 + 31). For a study in
    :data:`CUSTOM_INDICES` the conclusion is the text between two character offsets of the report (not
    stripped; ``(0, 0)`` for reports with no usable text). For a study in :data:`CUSTOM_SECTION_NAMES` the
    conclusion is the stripped text of the last section with the given name (e.g. the impression was written
    under RECOMMENDATION(S)). These studies have no row in upstream's sectioned table, so their findings,
    impression, last_paragraph and comparison are ``""``; their text is in :attr:`MitlcpSections.conclusion`, and
    :attr:`MitlcpSections.custom_rule` says which rule applied (``custom_indices`` or ``custom_section_names``,
    upstream's names for the two tables). A report without the section its rule names is not the MIMIC-CXR
    report of that study: a DataError (upstream fails with a ValueError).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from cxrbench.errors import ConfigError, DataError

#: Lower-cased header name -> section name (the names upstream's ``section_parser.py`` normalises by table).
SECTION_NAME_MAP: dict[str, str] = {
    "preamble": "preamble", "impression": "impression", "comparison": "comparison", "indication": "indication",
    "findings": "findings", "examination": "examination", "technique": "technique", "history": "history",
    "comparisons": "comparison", "clinical history": "history", "reason for examination": "indication",
    "notification": "notification", "reason for exam": "indication", "clinical information": "history",
    "exam": "examination", "clinical indication": "indication", "conclusion": "impression",
    "chest, two views": "findings", "recommendation(s)": "recommendations", "type of examination": "examination",
    "reference exam": "comparison", "patient history": "history", "addendum": "addendum",
    "comparison exam": "comparison", "date": "date", "comment": "comment", "findings and impression": "impression",
    "wet read": "wet read", "comparison film": "comparison", "recommendations": "recommendations",
    "findings/impression": "impression", "pfi": "history", "recommendation": "recommendations",
    "wetread": "wet read", "ndication": "impression",
    "impresson": "impression", "imprression": "impression", "imoression": "impression", "impressoin": "impression",
    "imprssion": "impression", "impresion": "impression", "imperssion": "impression", "mpression": "impression",
    "impession": "impression", "findings/ impression": "impression",
    "finding": "findings", "findins": "findings", "findindgs": "findings", "findgings": "findings",
    "findngs": "findings", "findnings": "findings", "finidngs": "findings",
    "idication": "indication", "reference findings": "findings",
    "comparision": "comparison", "comparsion": "comparison", "comparrison": "comparison",
    "comparisions": "comparison",
}
#: Words that name the section when contained in an unlisted header name, tried in this order.
CONTAINED_SECTION_WORDS = ("impression", "findings", "history", "comparison", "addendum")
#: Fragments of exam titles ("CHEST, PA AND LATERAL:") whose section upstream treats as the findings.
EXAM_TITLE_FRAGMENTS = (
    "chest", "portable", "pa and lateral", "lateral and pa", "ap and lateral", "lateral and ap", "frontal and",
    "two views", "frontal view", "pa view", "ap view", "one view", "lateral view", "bone window",
    "frontal upright", "frontal semi-upright", "ribs", "pa and lat",
)

#: Study id -> the section whose text upstream takes as the conclusion of that study (hand-made rules).
CUSTOM_SECTION_NAMES: dict[str, str] = {
    "s50913680": "recommendations", "s59363654": "examination", "s59279892": "technique",
    "s59768032": "recommendations", "s57936451": "indication", "s50058765": "indication",
    "s53356173": "examination", "s53202765": "technique", "s50808053": "technique", "s51966317": "indication",
    "s50743547": "examination", "s56451190": "note", "s59067458": "recommendations", "s59215320": "examination",
    "s55124749": "indication", "s54365831": "indication", "s59087630": "recommendations",
    "s58157373": "recommendations", "s56482935": "recommendations", "s58375018": "recommendations",
    "s54654948": "indication", "s55157853": "examination", "s51491012": "history",
}
#: Study id -> (start, end) character offsets of the conclusion in the report (hand-made; (0, 0): no text).
CUSTOM_INDICES: dict[str, tuple[int, int]] = {
    "s50525523": (201, 349), "s57564132": (233, 554), "s59982525": (313, 717), "s53488209": (149, 475),
    "s54875119": (234, 988), "s50196495": (59, 399), "s56579911": (59, 218), "s52648681": (292, 631),
    "s59889364": (172, 453), "s53514462": (73, 377), "s59505494": (59, 450), "s53182247": (59, 412),
    "s51410602": (47, 320), "s56412866": (522, 822), "s54986978": (59, 306), "s59003148": (262, 505),
    "s57150433": (61, 394), "s56760320": (219, 457), "s59562049": (158, 348), "s52674888": (145, 296),
    "s55258338": (192, 568), "s59330497": (140, 655), "s52119491": (179, 454),
    "s58235663": (0, 0), "s50798377": (0, 0), "s54168089": (0, 0), "s53071062": (0, 0), "s56724958": (0, 0),
    "s54231141": (0, 0), "s53607029": (0, 0), "s52035334": (0, 0),
}

#: The sections whose text is reported, in upstream's order of preference for the conclusion.
CHOSEN = ("impression", "findings", "last_paragraph", "comparison")

_HEADER = re.compile(r"\n (?P<name>[A-Z ()/,-]+):\s")
_MIMIC_BLANK_LINE = "\n \n"
_STUDY_ID = re.compile(r"[sS]?(\d+)")


@dataclass(frozen=True)
class Section:
    """One cut of a report: its normalised name, its raw text and where that text starts in the report."""

    name: str
    text: str
    start: int


@dataclass(frozen=True)
class MitlcpSections:
    """What upstream's scripts produce for one report (see the module docstring).

    ``findings``, ``impression``, ``last_paragraph``, ``comparison``: the ``mimic_cxr_sectioned.csv`` columns
    ("" when absent, and for the per-study special cases); ``conclusion``: the ``mimic_cxr_sections.csv`` text;
    ``headers``: the normalised name of every header found, in report order; ``conclusion_source``: where the
    conclusion came from (one of :data:`CHOSEN`, or the custom rule; None when there is none); ``custom_rule``:
    "custom_indices" or "custom_section_names" for the hand-made special cases, else None.
    """

    findings: str
    impression: str
    last_paragraph: str
    comparison: str
    conclusion: str
    headers: tuple[str, ...]
    conclusion_source: str | None = None
    custom_rule: str | None = None


def normalise_name(name: str) -> str:
    """The section name upstream gives a header name (``"PA AND LATERAL VIEWS"`` -> ``"findings"``)."""
    key = name.lower().strip()
    if key in SECTION_NAME_MAP:
        return SECTION_NAME_MAP[key]
    for word in CONTAINED_SECTION_WORDS:
        if word in key:
            return word
    if any(fragment in key for fragment in EXAM_TITLE_FRAGMENTS):
        return "findings"
    return key


def _universal_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _cut_at_headers(text: str) -> list[Section]:
    """Every section as cut at the headers found (preamble or full report first), nothing dropped yet."""
    header = _HEADER.search(text)
    if header is None:
        return [Section("full report", text, 0)]
    sections = [Section("preamble", text[:header.start("name")], 0)]
    while header is not None:
        body_start = header.end()
        line_end = text.find("\n", body_start)
        following = _HEADER.search(text, body_start if line_end < 0 else line_end)
        body_end = len(text) if following is None else following.start()
        sections.append(Section(normalise_name(header["name"]), text[body_start:body_end], body_start))
        header = following
    return sections


def _drop_empty_and_split_last(sections: list[Section]) -> list[Section]:
    kept = [s for s in sections if not (s.name in ("impression", "findings") and not s.text.strip())]
    if not any(s.name in ("impression", "findings") for s in kept):
        last = kept[-1]
        first, sep, rest = last.text.partition(_MIMIC_BLANK_LINE)
        if sep:
            kept[-1] = Section(last.name, first, last.start)
            kept.append(Section("last_paragraph", rest, last.start + len(first) + len(sep)))
    return kept


def cut_sections(text: str) -> list[Section]:
    """Cut a report into named sections, dropping empty FINDINGS / IMPRESSION and adding ``last_paragraph``.

    ``Section.start`` indexes the report after its line endings were turned into ``\\n``.
    """
    return _drop_empty_and_split_last(_cut_at_headers(_universal_newlines(text)))


def study_key(study_id: str | int) -> str:
    """``"s"`` + the digits of a MIMIC-CXR study id given as ``50913680``, ``"50913680"`` or ``"s50913680"``."""
    m = _STUDY_ID.fullmatch(str(study_id).strip())
    if m is None:
        raise ConfigError(f"MIMIC-CXR study id {study_id!r}: expected digits, optionally prefixed by 's' "
                          "(e.g. 's50913680')")
    return "s" + m.group(1)


def _last(sections: list[Section], name: str) -> Section | None:
    return next((s for s in reversed(sections) if s.name == name), None)


def parse_mitlcp(text: str, study_id: str | int | None = None) -> MitlcpSections:
    """Split one MIMIC-CXR report as MIT-LCP's ``create_section_files.py`` does (module docstring).

    ``study_id`` selects upstream's hand-made per-study rules; with None they are not applied.
    """
    text = _universal_newlines(text)
    raw = _cut_at_headers(text)
    headers = tuple(s.name for s in raw[1:])
    sections = _drop_empty_and_split_last(raw)
    key = None if study_id is None else study_key(study_id)
    if key in CUSTOM_INDICES:
        start, end = CUSTOM_INDICES[key]
        return MitlcpSections("", "", "", "", text[start:end], headers, "custom_indices", "custom_indices")
    if key in CUSTOM_SECTION_NAMES:
        wanted = CUSTOM_SECTION_NAMES[key]
        section = _last(sections, wanted)
        if section is None:
            raise DataError(
                f"MIMIC-CXR study {key}: MIT-LCP's hand-made rule for this study takes its '{wanted}' section, but "
                f"this report has none (sections: {', '.join(s.name for s in sections)}); it is not the MIMIC-CXR "
                "report of that study. Use the 'lenient' section parser for text that is not MIMIC-CXR's.")
        return MitlcpSections("", "", "", "", section.text.strip(), headers, "custom_section_names",
                              "custom_section_names")
    chosen = {name: _last(sections, name) for name in CHOSEN}
    texts = {name: (s.text.strip() if s is not None else "") for name, s in chosen.items()}
    source = next((name for name in CHOSEN if chosen[name] is not None), None)
    return MitlcpSections(texts["findings"], texts["impression"], texts["last_paragraph"], texts["comparison"],
                          texts[source] if source else "", headers, source)
