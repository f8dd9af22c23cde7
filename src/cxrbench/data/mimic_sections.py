"""Split a MIMIC-CXR free-text radiology report into its sections, with one of two parsers chosen by name.

:func:`split_sections` is the entry point (``split_sections(text, study_id, parser="mitlcp")``);
:data:`SECTION_PARSERS` lists the parsers and :data:`DEFAULT_SECTION_PARSER` is ``mitlcp``. Both return a
:class:`Sections` whose ``parser`` field records which one ran.

``mitlcp`` (the default)
    MIT-LCP's own ``txt/section_parser.py`` and ``txt/create_section_files.py`` (github.com/MIT-LCP/mimic-cxr),
    reproduced exactly, per-study special cases included; the rules are in
    :mod:`cxrbench.data.mimic_sections_mitlcp`. Checked report by report against upstream's own output on a
    synthetic corpus (``tests/fixtures/mimic_sections/``). It fills ``findings``, ``impression``,
    ``last_paragraph``, ``comparison`` (upstream's ``mimic_cxr_sectioned.csv`` columns) and ``conclusion``
    (upstream's ``mimic_cxr_sections.csv``), with the text as upstream cuts it: ends stripped, inner line
    breaks and indentation kept. This is what most public MIMIC-CXR pipelines start from.
``lenient``
    A tolerant parser written for this project (rules below) that recognises more header forms, so it finds
    FINDINGS / IMPRESSION in more reports. It fills ``findings`` and ``impression`` only, whitespace-normalised.

How ``lenient`` differs from ``mitlcp`` (each changes which studies have a FINDINGS / IMPRESSION or its text)
    * Header form. mitlcp: a newline, exactly one space, a name of ``A-Z``, space and ``( ) / , -``, a colon,
      then one whitespace character. lenient also accepts known names in lower or mixed case (``Findings:``),
      ``&`` (``FINDINGS & IMPRESSION:``), no whitespace after the colon (``FINDINGS:Clear``), any indentation or
      none, a header on the first line of the file, and a header at the very end of the file.
    * Names. lenient counts ``SUMMARY``, ``CONCLUSIONS`` and ``FINDINGS & IMPRESSION`` as impression and
      ``SUPINE``, ``UPRIGHT``, ``SEMI-UPRIGHT``, ``SINGLE VIEW`` exam titles as findings; mitlcp leaves them as
      unknown sections (exam titles count for it only when they contain one of its fragments, e.g. ``SINGLE AP
      VIEW`` through ``ap view``). mitlcp maps ``NDICATION`` (a typo of INDICATION) to impression; lenient
      treats it as an unknown header. mitlcp's exam-title fragments are plain substrings (``CT CHEST`` and
      ``CHEST PAIN`` are findings), lenient's are whole words. lenient collapses inner spaces before looking a
      name up (``FINDINGS  AND  IMPRESSION``); mitlcp gets there too but through its substring rule.
    * Sub-headings. mitlcp ends a section at every header line, so ``LUNGS:`` or ``PA AND LATERAL VIEWS:``
      inside FINDINGS starts a new section (FINDINGS keeps only the text before it, or is dropped when that is
      empty). lenient keeps upper-case unknown and exam-title headers inside FINDINGS / IMPRESSION as part of the
      text.
    * Swallowed headers. In mitlcp a header line that ends right after its colon (no trailing space) hides a
      header on the next line, whose text joins the first section; lenient sees both headers.
    * ``___``. A FINDINGS / IMPRESSION whose only text is ``___`` (de-identified) is kept by mitlcp and empty
      for lenient, which drops trailing underscore-only lines.
    * Separators. lenient ends a section at a line of ten or more underscores (addendum / original report);
      mitlcp does not treat it specially.
    * Whitespace. lenient collapses every run of whitespace to one space; mitlcp strips the ends only.
    * Reports without FINDINGS or IMPRESSION. mitlcp always splits the last section at its first MIMIC blank
      line (``"\\n \\n"``: a line holding one space) into ``last_paragraph``, and its ``conclusion`` is the
      last impression, else findings, else last_paragraph (even when empty), else comparison; with
      ``fallback=True`` that conclusion becomes the impression. lenient does something similar only with
      ``fallback=True``, splits at any blank line (empty lines too), skips a trailing ``___`` and falls back to
      the comparison when the last section has a single paragraph.
    * Per-study special cases. mitlcp applies upstream's hand-made rules for 54 badly formatted MIMIC-CXR
      reports (by study id: the conclusion is a given section, or given character offsets); those studies have
      no findings / impression, as in upstream's sectioned table. lenient parses them by its general rules.
    * ``headers``. lenient lists canonical names with ``unknown`` for unrecognised headers; mitlcp lists
      upstream's normalised names, an unrecognised header keeping its own lower-cased name.

The ``lenient`` parser
----------------------

MIMIC-CXR reports are semi-structured text: a ``FINAL REPORT`` title, then sections introduced by an uppercase
header ending in a colon at the start of a line (``EXAMINATION:``, ``INDICATION:``, ``TECHNIQUE:``,
``COMPARISON:``, ``FINDINGS:``, ``IMPRESSION:``...), with the text on the same line or on the lines below. The
lenient parser follows the approach of the MIMIC-CXR maintainers' scripts with the rules below.

Header recognition
    A line is a header line when, after optional leading whitespace, it starts with a name made of letters,
    spaces and ``( ) / , & -`` followed (after optional spaces) by a colon. The name must be all uppercase
    (``FINDINGS:``, ``RECOMMENDATION(S):``), or, in any letter case, one of the known names below
    (``Impression:``, ``findings :``), so that ordinary sentences such as ``Heart size: normal`` are not headers.
    Text after the colon on the same line belongs to the section. Line endings ``\\r\\n`` and ``\\r`` are
    treated as ``\\n``.

Header names (case-insensitive, inner whitespace collapsed) map to canonical names:
    * findings: ``FINDINGS``, ``FINDING``, common misspellings (``FINDNGS``...), ``REFERENCE FINDINGS``, and
      exam-title headers that describe the whole study (``CHEST, TWO VIEWS``, ``PORTABLE AP CHEST``,
      ``PA AND LATERAL``, ``AP AND LATERAL``, ``PA AND LATERAL VIEWS``, ``FRONTAL VIEW``...), as the community
      parser does, and also position titles the community parser does not list (``SUPINE AP``, ``UPRIGHT``,
      ``SEMI-UPRIGHT``, ``SINGLE VIEW``).
    * impression: ``IMPRESSION``, ``IMPRESSIONS``, misspellings (``IMPRESSON``...), ``CONCLUSION(S)``,
      ``SUMMARY`` (our choice: the radiologist's summary is the conclusion of the report; the community parser
      leaves it unnamed), and the combined headers ``FINDINGS AND IMPRESSION``, ``FINDINGS/IMPRESSION``,
      ``IMPRESSION AND FINDINGS``. A combined section is the radiologist's conclusion, so, as in the community
      parser, its text becomes the IMPRESSION only (FINDINGS stays empty unless a separate FINDINGS section
      exists). Giving it to both would make the ``findings+impression`` policy repeat the text; under the
      default ``longest`` policy the result is the same either way.
    * other known sections (these end a FINDINGS or IMPRESSION section): examination, indication, history,
      technique, comparison, notification, recommendations, addendum, wet read, date, comment, note, procedure,
      clinical information...
    * any other uppercase header is *unknown*.

    Inside a FINDINGS or IMPRESSION section, an unknown header or an exam-title header is a sub-heading
    (``LUNGS: Clear.``, ``PA AND LATERAL VIEWS:``) and is kept, verbatim, in that section's text; the community
    parser would cut the section there and usually lose its text. Elsewhere an unknown header starts a section
    of its own, which is ignored. Lowercase or mixed-case headers count only for the core names (findings,
    impression and their variants, conclusion, examination, indication, history, technique, comparison,
    recommendation(s), notification, addendum, wet read), never for words such as ``Note:`` or ``Prior:`` that
    also start ordinary sentences.

Section text
    * A line of ten or more underscores (the separator between an addendum and the original report) ends the
      current section.
    * Lines consisting only of underscores (de-identified signatures such as ``___``) at the end of a section
      are removed. De-identification tokens inside the text (``Dr. ___ was paged``) are kept verbatim.
    * Whitespace is normalised: every run of spaces, tabs and newlines becomes one space; the ends are stripped.
    * When a report has several sections with the same canonical name, the last non-empty one is used (as in
      ``create_section_files.py``; in MIMIC-CXR addenda come first and the original report last). The
      IMPRESSION may appear anywhere (before FINDINGS, at the end, between other sections).

Reports with neither a FINDINGS nor an IMPRESSION section (``fallback``)
    By default both stay empty. With ``fallback=True`` the community's rule for its "conclusion" is applied and the text goes to
    IMPRESSION: the last section of the report (the whole report when it has no header) is split into
    paragraphs at blank lines; everything after its first paragraph (the title or exam line) is the conclusion
    (``Sections.fallback == "last_paragraph"``). If the last section has a single paragraph, the last non-empty
    COMPARISON section is used instead (``"comparison"``; radiologists sometimes write the whole report there).
    The community script also carries hand-made rules for 54 badly formatted MIMIC-CXR reports; the lenient
    parser does not apply them (the ``mitlcp`` parser does), those reports are parsed by the general rules.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from cxrbench.data.mimic_sections_mitlcp import parse_mitlcp
from cxrbench.errors import ConfigError

#: The section parsers :func:`split_sections` knows, by name (module docstring).
SECTION_PARSERS = ("mitlcp", "lenient")
#: The parser used when none is named: MIT-LCP's own sectioning, reproduced exactly.
DEFAULT_SECTION_PARSER = "mitlcp"

#: Known header names (lowercase, single spaces) -> canonical section name.
KNOWN_HEADERS: dict[str, str] = {
    # findings
    "findings": "findings", "finding": "findings", "findngs": "findings", "findins": "findings",
    "findinds": "findings", "findigns": "findings", "finidngs": "findings", "findnings": "findings",
    "findgings": "findings", "findindgs": "findings", "reference findings": "findings",
    # impression
    "impression": "impression", "impressions": "impression", "impresson": "impression",
    "impresion": "impression", "imprssion": "impression", "impession": "impression", "imression": "impression",
    "mpression": "impression", "imperssion": "impression", "impressoin": "impression", "imoression": "impression",
    "imprression": "impression", "conclusion": "impression", "conclusions": "impression",
    "summary": "impression",
    "findings and impression": "impression", "findings/impression": "impression",
    "findings / impression": "impression", "findings/ impression": "impression",
    "impression and findings": "impression", "impression/findings": "impression",
    "findings and impressions": "impression", "findings & impression": "impression",
    # everything else that may follow FINDINGS or IMPRESSION
    "examination": "examination", "exam": "examination", "type of examination": "examination",
    "indication": "indication", "indications": "indication", "clinical indication": "indication",
    "reason for examination": "indication", "reason for exam": "indication", "reason for study": "indication",
    "idication": "indication", "history": "history", "clinical history": "history",
    "patient history": "history", "clinical information": "history", "clinical info": "history",
    "pfi": "history", "technique": "technique", "procedure": "technique",
    "comparison": "comparison", "comparisons": "comparison", "comparison exam": "comparison",
    "comparison film": "comparison", "comparison study": "comparison", "reference exam": "comparison",
    "comparision": "comparison", "comparsion": "comparison", "comparrison": "comparison",
    "comparisions": "comparison", "prior": "comparison", "priors": "comparison",
    "notification": "notification", "notifications": "notification",
    "recommendation": "recommendations", "recommendations": "recommendations",
    "recommendation(s)": "recommendations", "addendum": "addendum", "wet read": "wet read",
    "wetread": "wet read", "date": "date", "comment": "comment", "comments": "comment", "note": "note",
}
# Names that are headers only when written in uppercase (they also start ordinary sentences).
_UPPERCASE_ONLY = frozenset({"summary", "exam", "pfi", "procedure", "prior", "priors", "date", "comment",
                             "comments", "note", "reason for study", "clinical info"})

#: Canonical names whose text this module returns.
MAIN = ("findings", "impression")

# Substrings that name a main section inside an unlisted header ("FINDINGS, PA VIEW" -> findings), in order.
_CONTAINS = (("impression", "impression"), ("findings", "findings"), ("history", "history"),
             ("comparison", "comparison"), ("indication", "indication"), ("technique", "technique"),
             ("addendum", "addendum"), ("recommendation", "recommendations"), ("notification", "notification"))
# Exam-title headers that describe the whole study: their text is the findings (community convention).
# "lat" may be written out ("PA AND LATERAL") and "view" may be plural ("PA AND LATERAL VIEWS", "PA VIEWS").
_EXAM_TITLE = re.compile(
    r"\b(chest|portable|(?:pa|ap) and lat(?:eral)?|lateral and (?:pa|ap)|frontal and|two views|"
    r"(?:frontal|pa|ap|one|single|lateral) views?|bone window|frontal upright|"
    r"frontal semi-upright|semi-upright|upright|supine|ribs)\b")
_HEADER = re.compile(r"^[ \t]*([A-Za-z][A-Za-z ()/,&-]{0,79}?)[ \t]*:(.*)$")
_SEPARATOR = re.compile(r"^[ \t]*_{10,}[ \t]*$")
_UNDERSCORES = re.compile(r"^[\s_]*$")
_BLANK_LINE = re.compile(r"\n[ \t]*\n")


@dataclass(frozen=True)
class Sections:
    """The sections of one report ("" when absent); ``parser`` names the parser that produced them.

    ``findings``, ``impression``: the FINDINGS and IMPRESSION text (lenient: whitespace-normalised; mitlcp: as
    upstream cuts it, ends stripped). ``headers``: the name of every header found, in report order (lenient:
    canonical names, "unknown" for unrecognised uppercase headers that start a section of their own; mitlcp:
    upstream's normalised names). ``fallback``: the rule that filled ``impression`` for a report without
    FINDINGS / IMPRESSION when ``fallback=True`` ("last_paragraph" or "comparison", and for mitlcp also
    "custom_indices" / "custom_section_names"), or None.

    Filled by mitlcp only ("" / None for lenient): ``last_paragraph`` and ``comparison`` (upstream's sectioned
    table), ``conclusion`` (upstream's one text per study) and ``custom_rule`` (the per-study special case
    applied, "custom_indices" or "custom_section_names").
    """

    findings: str
    impression: str
    headers: list[str] = field(default_factory=list)
    fallback: str | None = None
    last_paragraph: str = ""
    comparison: str = ""
    conclusion: str = ""
    parser: str = "lenient"
    custom_rule: str | None = None


def _classify(name: str) -> tuple[str, str] | None:
    """(canonical name, how it was recognised: known | contains | title | unknown), or None if no header."""
    key = " ".join(name.split()).lower()
    if not key:
        return None
    lower = any(c.islower() for c in name)
    if key in KNOWN_HEADERS and not (lower and key in _UPPERCASE_ONLY):
        return KNOWN_HEADERS[key], "known"
    if lower:
        return None
    for word, canon in _CONTAINS:
        if word in key:
            return canon, "contains"
    if _EXAM_TITLE.search(key):
        return "findings", "title"
    return "unknown", "unknown"


def canonical_header(name: str) -> str | None:
    """The canonical section name of a header name, or None when it is not a recognised header.

    Lowercase or mixed-case names count only when listed in :data:`KNOWN_HEADERS` (and not uppercase-only);
    uppercase names that are not listed are mapped by substring ("FINDINGS, PA VIEW" -> findings), exam-title
    words ("CHEST, TWO VIEWS" -> findings), or else to "unknown".
    """
    found = _classify(name)
    return found[0] if found else None


def _join(lines: list[str]) -> str:
    while lines and _UNDERSCORES.match(lines[-1]):
        lines = lines[:-1]
    return " ".join(" ".join(lines).split())


def _split_raw(text: str) -> list[tuple[str, list[str]]]:
    """Cut ``text`` into (canonical name, raw lines) segments; the first is "preamble"."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    segments: list[tuple[str, list[str]]] = [("preamble", [])]
    for line in text.split("\n"):
        if _SEPARATOR.match(line):
            segments.append(("separator", []))
            continue
        m = _HEADER.match(line)
        found = _classify(m.group(1)) if m else None
        if found is None:
            segments[-1][1].append(line)
        elif found[1] in ("unknown", "title") and segments[-1][0] in MAIN:
            segments[-1][1].append(line)  # a sub-heading inside FINDINGS / IMPRESSION: keep it verbatim
        else:
            segments.append((found[0], [m.group(2)]))
    return segments


def parse_sections(text: str, fallback: bool = False) -> Sections:
    """Split a MIMIC-CXR report into FINDINGS and IMPRESSION (see the module docstring for the exact rules)."""
    segments = _split_raw(text)
    headers = [name for name, _ in segments[1:] if name != "separator"]
    found: dict[str, str] = {}
    for name, lines in segments:
        if name in MAIN:
            body = _join(lines)
            if body:
                found[name] = body  # the last non-empty section of each name wins
    if found or not fallback:
        return Sections(found.get("findings", ""), found.get("impression", ""), headers)
    last = next((lines for name, lines in reversed(segments) if name != "separator" and _join(lines)), [])
    paragraphs = [p for p in _BLANK_LINE.split("\n".join(last)) if p.strip()]
    if len(paragraphs) > 1:
        rest = _join("\n".join(paragraphs[1:]).split("\n"))
        if rest:
            return Sections("", rest, headers, "last_paragraph")
    comparison = [_join(lines) for name, lines in segments if name == "comparison" and _join(lines)]
    if comparison:
        return Sections("", comparison[-1], headers, "comparison")
    return Sections("", "", headers)


def split_sections(text: str, study_id: str | int | None = None, parser: str = DEFAULT_SECTION_PARSER, *,
                   fallback: bool = False) -> Sections:
    """Split a MIMIC-CXR report with the named parser (:data:`SECTION_PARSERS`; module docstring).

    ``study_id`` (``"s50913680"``, ``"50913680"`` or ``50913680``) selects the mitlcp parser's per-study special
    cases (None: not applied); the lenient parser ignores it. ``fallback=True``: for a report without FINDINGS
    and IMPRESSION, the impression is the lenient last-paragraph rule's text, or for mitlcp upstream's
    conclusion (``Sections.fallback`` says which).
    """
    if parser == "lenient":
        return parse_sections(text, fallback=fallback)
    if parser != "mitlcp":
        raise ConfigError(f"unknown MIMIC-CXR section parser {parser!r}: choose one of {', '.join(SECTION_PARSERS)}")
    cut = parse_mitlcp(text, study_id)
    impression, used = cut.impression, None
    if fallback and not (cut.findings or cut.impression) and cut.conclusion.strip():
        impression, used = cut.conclusion, cut.conclusion_source
    return Sections(cut.findings, impression, list(cut.headers), used, cut.last_paragraph, cut.comparison,
                    cut.conclusion, "mitlcp", cut.custom_rule)
