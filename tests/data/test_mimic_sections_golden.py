"""The ``mitlcp`` section parser against MIT-LCP's own ``create_section_files.py`` output (stored golden).

``tests/fixtures/mimic_sections/`` holds a synthetic report corpus (``corpus.jsonl``, written by
``make_corpus.py``) and the two tables upstream's script wrote for it (``mimic_cxr_sectioned.csv``: impression,
findings, last_paragraph, comparison per study; ``mimic_cxr_sections.csv``: one conclusion per study). The README
there says how they were produced.
"""

from __future__ import annotations

import csv
import importlib.util
import json
from collections import Counter
from pathlib import Path

import pytest

from cxrbench.data.mimic_sections import split_sections
from cxrbench.data.mimic_sections_mitlcp import CUSTOM_INDICES, CUSTOM_SECTION_NAMES

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "mimic_sections"


def _corpus() -> list[dict[str, str]]:
    with open(FIXTURES / "corpus.jsonl", encoding="ascii") as fh:
        return [json.loads(line) for line in fh]


def _rows(name: str) -> list[list[str]]:
    with open(FIXTURES / name, encoding="utf-8", newline="") as fh:
        return list(csv.reader(fh))


CORPUS = _corpus()
SECTIONED_ROWS = _rows("mimic_cxr_sectioned.csv")
SECTIONED = {row[0]: row[1:] for row in SECTIONED_ROWS[1:]}
CONCLUSIONS = {row[0]: row[1] for row in _rows("mimic_cxr_sections.csv")}
CUSTOM = set(CUSTOM_INDICES) | set(CUSTOM_SECTION_NAMES)


def test_golden_files_cover_the_corpus():
    assert SECTIONED_ROWS[0] == ["study", "impression", "findings", "last_paragraph", "comparison"]
    ids = [r["study_id"] for r in CORPUS]
    assert len(ids) == len(set(ids)) >= 200
    assert set(CONCLUSIONS) == set(ids)  # upstream wrote a conclusion for every report
    # upstream leaves the hand-made special cases out of its sectioned table, and only those
    assert set(SECTIONED) == set(ids) - CUSTOM
    assert set(ids) >= CUSTOM  # every per-study rule is exercised


@pytest.mark.parametrize("report", CORPUS, ids=[f"{r['study_id']}-{r['shape']}" for r in CORPUS])
def test_mitlcp_matches_upstream(report):
    sid = report["study_id"]
    got = split_sections(report["text"], sid, parser="mitlcp")
    assert got.parser == "mitlcp"
    assert got.conclusion == CONCLUSIONS[sid]
    if sid in CUSTOM:
        assert got.custom_rule == ("custom_indices" if sid in CUSTOM_INDICES else "custom_section_names")
        assert (got.findings, got.impression, got.last_paragraph, got.comparison) == ("", "", "", "")
    else:
        assert got.custom_rule is None
        assert [got.impression, got.findings, got.last_paragraph, got.comparison] == SECTIONED[sid]


def test_golden_is_not_trivial():
    """The corpus exercises every outcome: both sections, one of them, neither, last paragraphs, empty."""
    outcome = Counter()
    for sid, (impression, findings, last_paragraph, comparison) in SECTIONED.items():
        outcome["comparison"] += bool(comparison)
        outcome["impression"] += bool(impression)
        outcome["findings"] += bool(findings)
        outcome["both"] += bool(impression and findings)
        outcome["neither"] += not (impression or findings)
        outcome["last_paragraph"] += bool(last_paragraph)
        outcome["underscores"] += "___" in (impression, findings)
        outcome["multiline"] += "\n" in impression + findings
        outcome["empty_conclusion"] += not CONCLUSIONS[sid]
    assert all(outcome[k] >= 10 for k in ("impression", "findings", "both", "neither", "last_paragraph",
                                         "comparison", "multiline", "empty_conclusion")), outcome
    assert outcome["underscores"] >= 3, outcome


def test_the_two_parsers_disagree_on_the_corpus():
    """The corpus was written to tell the parsers apart: many reports change FINDINGS / IMPRESSION presence."""
    moved = 0
    for report in CORPUS:
        strict = split_sections(report["text"], report["study_id"], parser="mitlcp")
        lenient = split_sections(report["text"], report["study_id"], parser="lenient")
        moved += (bool(strict.findings), bool(strict.impression)) != (bool(lenient.findings), bool(lenient.impression))
    assert moved >= 30


def test_corpus_is_what_the_generator_writes():
    spec = importlib.util.spec_from_file_location("make_corpus", FIXTURES / "make_corpus.py")
    make_corpus = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_corpus)
    assert make_corpus.serialise(make_corpus.build()) == (FIXTURES / "corpus.jsonl").read_text(encoding="ascii")
