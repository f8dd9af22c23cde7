"""The paper protocol of MIMIC-CXR (arXiv 2501.09134): its counts, the section requirements a study may have to
meet, the tally of every report's sections under each requirement, and the comparison of a loaded set with the
paper's 994 studies / 1,770 images (facts only; docs/datasets.md, "The paper protocol"). Used by the mimic-cxr
loader (:mod:`cxrbench.data.mimic_cxr`), which re-exports these names."""

from __future__ import annotations

from dataclasses import dataclass, field

from cxrbench.data.mimic_sections import DEFAULT_SECTION_PARSER, Sections

#: The paper's evaluation set (arXiv 2501.09134): studies and images.
PAPER_STUDIES = 994
PAPER_IMAGES = 1770
#: MIT-LCP's published counts for the whole validate split (mimic-cxr repository,
#: notebooks/generate-stats-from-paper.ipynb): studies and images.
MITLCP_VALIDATE_STUDIES = 1808
MITLCP_VALIDATE_IMAGES = 2991
#: ``require=``: which sections a study must have (name -> in words).
REQUIREMENTS = {"any": "FINDINGS or IMPRESSION", "both": "FINDINGS and IMPRESSION", "findings": "FINDINGS",
                "impression": "IMPRESSION"}
DEFAULT_REQUIREMENT = "any"
#: The requirement of the paper protocol: 994 of MIT-LCP's 1,808 validate studies is 55%, which fits neither
#: "any" (about 95% of MIMIC-CXR reports have FINDINGS or IMPRESSION) nor "impression" (83.2%); see
#: docs/datasets.md, "The paper protocol".
PAPER_REQUIREMENT = "both"
#: The loader options of the paper protocol (``views``: every view).
PAPER_PROTOCOL = {"split": "validate", "views": "all", "sections": DEFAULT_SECTION_PARSER,
                  "require": PAPER_REQUIREMENT, "fallback": False}


def meets(require: str, has_findings: bool, has_impression: bool) -> bool:
    """Whether a report with (or without) FINDINGS and IMPRESSION meets the requirement ``require``."""
    return {"any": has_findings or has_impression, "both": has_findings and has_impression,
            "findings": has_findings, "impression": has_impression}[require]


@dataclass
class SectionTally:
    """Every sectioned report's sections, for the counts under each requirement (``section_requirements``)."""

    reports: list[tuple[bool, bool, int]] = field(default_factory=list)  # has findings, has impression, images
    special_cases: int = 0
    deidentified_only: dict[str, int] = field(default_factory=lambda: {"findings": 0, "impression": 0})

    def add(self, sections: Sections, has_findings: bool, has_impression: bool, images: int) -> None:
        self.reports.append((has_findings, has_impression, images))
        self.special_cases += sections.custom_rule is not None
        for name, present in (("findings", has_findings), ("impression", has_impression)):
            if present and not getattr(sections, name).replace("_", "").strip():
                self.deidentified_only[name] += 1

    def counts(self) -> dict[str, dict[str, int]]:
        out = {}
        for require in REQUIREMENTS:
            chosen = [n for f, i, n in self.reports if meets(require, f, i)]
            out[require] = {"studies": len(chosen), "images": sum(chosen)}
        return out


def differences(split: str, views: frozenset[str] | None, sections: str, require: str, fallback: bool) -> list[str]:
    """The options that differ from the paper protocol (:data:`PAPER_PROTOCOL`), in words."""
    paper = PAPER_PROTOCOL
    out = []
    if split != paper["split"]:
        out.append(f"split={split!r} (paper protocol: {paper['split']!r})")
    if views is not None:
        out.append(f"views={sorted(views)} (paper protocol: every view)")
    if sections != paper["sections"]:
        out.append(f"sections={sections!r} (paper protocol: {paper['sections']!r})")
    if require != paper["require"]:
        out.append(f"require={require!r} (paper protocol: {paper['require']!r})")
    if fallback != paper["fallback"]:
        out.append(f"fallback={fallback} (paper protocol: {paper['fallback']})")
    return out


def _n(counts: dict) -> str:
    return f"{counts['studies']:,} / {counts['images']:,}"


def paper_comparison(summary: dict, differences: list[str], by_requirement: dict[str, dict[str, int]],
                     skipped: int) -> dict:
    """The loaded counts beside the paper's, MIT-LCP's validate split and this split csv; the counts under every
    requirement; the options that differ from the paper protocol. Facts only: no cause is guessed at."""
    loaded = {"studies": summary["studies"], "images": summary["images"]}
    split_csv = {"split": summary["split"], "studies": summary["split_studies"], "images": summary["split_images"]}
    matches = (loaded["studies"], loaded["images"]) == (PAPER_STUDIES, PAPER_IMAGES)
    facts = [("the same counts as the paper: " if matches else "")
             + f"loaded {loaded['studies']:,} studies / {loaded['images']:,} images",
             f"the paper reports {_n({'studies': PAPER_STUDIES, 'images': PAPER_IMAGES})} (studies / images)",
             f"MIT-LCP's validate split has {_n({'studies': MITLCP_VALIDATE_STUDIES, 'images': MITLCP_VALIDATE_IMAGES})}",
             f"this {split_csv['split']!r} split csv has {_n(split_csv)}",
             "by section requirement here: " + ", ".join(f"{r} {_n(c)}" for r, c in by_requirement.items())]
    if differences:
        facts.append("options that differ from the paper protocol: " + "; ".join(differences))
    if summary.get("dropped_empty_text"):
        facts.append(f"the text policy dropped {summary['dropped_empty_text']} studies with empty text")
    if skipped:
        facts.append(f"{skipped} missing or unreadable files were skipped")
    return {"paper_studies": PAPER_STUDIES, "paper_images": PAPER_IMAGES,
            "mitlcp_validate_split": {"studies": MITLCP_VALIDATE_STUDIES, "images": MITLCP_VALIDATE_IMAGES},
            "split_csv": split_csv, "studies": loaded["studies"], "images": loaded["images"], "matches": matches,
            "by_requirement": by_requirement, "paper_protocol": dict(PAPER_PROTOCOL),
            "differs_from_paper_protocol": differences, "note": "; ".join(facts)}


__all__ = ["DEFAULT_REQUIREMENT", "MITLCP_VALIDATE_IMAGES", "MITLCP_VALIDATE_STUDIES", "PAPER_IMAGES", "PAPER_PROTOCOL",
           "PAPER_REQUIREMENT", "PAPER_STUDIES", "REQUIREMENTS", "SectionTally", "differences", "meets",
           "paper_comparison"]
