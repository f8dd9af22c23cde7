"""Study records, report-text policies and the dataset container every loader returns.

A *study* is one radiology exam: an id, one or more images, and the report's FINDINGS and IMPRESSION sections.
Retrieval pairs each image with its study's report text, chosen by a *report-text policy*:

* ``findings``              the FINDINGS section
* ``impression``            the IMPRESSION section
* ``findings+impression``   both, FINDINGS first, separated by a space
* ``longest``               the longer of the two by character count (CXR-CLIP's evaluation text). CXR-CLIP's
                            ``datasets/README.md`` writes ``max(finding, impression)`` in its OpenI recipe;
                            Python's ``max`` on strings returns the alphabetically later string, but its
                            authors meant the longer text (cxr-clip issue 10), so this policy compares lengths.
                            Ties go to FINDINGS.

Every policy works on whitespace-collapsed text (:func:`collapse_whitespace`), so line breaks and indentation
kept by a section parser never count in ``longest``'s comparison. Studies whose chosen text is empty are dropped
and counted in the dataset summary.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cxrbench.errors import ConfigError


@dataclass(frozen=True)
class ImageRecord:
    """One image of a study. ``source`` says where the pixels come from (a file, or a renderer key)."""

    image_id: str
    source: str | Path
    view: str | None = None  # "frontal" | "lateral" | None (unknown)


@dataclass(frozen=True)
class Study:
    study_id: str
    images: tuple[ImageRecord, ...]
    findings: str = ""
    impression: str = ""
    tags: tuple[str, ...] = ()  # e.g. MeSH major terms (IU), labels (MIMIC); informational
    meta: dict = field(default_factory=dict, compare=False, hash=False)


def collapse_whitespace(text: str | None) -> str:
    """Report text with runs of whitespace (newlines included) folded to single spaces; None -> ""."""
    return " ".join((text or "").split())


def _findings(s: Study) -> str:
    return collapse_whitespace(s.findings)


def _impression(s: Study) -> str:
    return collapse_whitespace(s.impression)


def _both(s: Study) -> str:
    return " ".join(t for t in (collapse_whitespace(s.findings), collapse_whitespace(s.impression)) if t)


def _longest(s: Study) -> str:
    f, i = collapse_whitespace(s.findings), collapse_whitespace(s.impression)
    return f if len(f) >= len(i) else i


TEXT_POLICIES: dict[str, Callable[[Study], str]] = {
    "findings": _findings,
    "impression": _impression,
    "findings+impression": _both,
    "longest": _longest,
}


def report_text(study: Study, policy: str) -> str:
    """The report text ``policy`` selects for ``study`` (whitespace-normalised; may be empty)."""
    try:
        return TEXT_POLICIES[policy](study)
    except KeyError:
        raise ConfigError(f"unknown report-text policy {policy!r}; choose one of {sorted(TEXT_POLICIES)}") from None


@dataclass
class Dataset:
    """An evaluation set: studies with non-empty text under ``policy``, flattened to images and texts.

    ``images[i]`` belongs to study ``image_study[i]``; ``texts[j]`` is the chosen report text of
    ``studies[j]``. ``summary`` records the counts a results record needs (including drops).
    """

    name: str
    split: str
    policy: str
    studies: list[Study]
    summary: dict = field(default_factory=dict)
    #: Loads the pixels of an ImageRecord as a PIL image (datasets decide: file decode, phantom render...).
    image_loader: Callable | None = None
    #: Extra provenance for results records (renderer version, split seed, source paths...).
    provenance: dict = field(default_factory=dict)
    #: What the runner does with an image that fails to decode: "error" (stop, naming the file) or "skip"
    #: (warn, leave the image out, count it in the results).
    on_bad_image: str = "error"
    #: Per-image lung-field masks, if the dataset has them (iu-phantom renders them; ``lung_masks=DIR`` reads a
    #: folder): called with an ImageRecord, returns an 8-bit ``L`` PIL image at the image's size, nonzero = lung.
    #: Its ``source`` attribute says where the masks come from (part of their cache key).
    lung_masks: Callable | None = None

    @property
    def texts(self) -> list[str]:
        return [report_text(s, self.policy) for s in self.studies]

    @property
    def images(self) -> list[ImageRecord]:
        return [im for s in self.studies for im in s.images]

    @property
    def image_study(self) -> list[int]:
        return [j for j, s in enumerate(self.studies) for _ in s.images]

    def load_image(self, record: ImageRecord, draft=None):
        """The record's pixels as a PIL image. ``draft`` (``--decode fast``, see
        :func:`cxrbench.data.images.decode_image`) reaches loaders that take it (:attr:`loader_takes_draft`)."""
        if self.image_loader is None:
            raise ConfigError(f"dataset {self.name} has no image loader")
        if draft is not None and self.loader_takes_draft:
            return self.image_loader(record, draft=draft)
        return self.image_loader(record)

    def load_lung_mask(self, record: ImageRecord):
        """The lung-field mask of ``record`` (see ``lung_masks``); DataError naming the file when it is missing
        or undecodable."""
        if self.lung_masks is None:
            raise ConfigError(f"dataset {self.name} has no lung masks; pass --data-option lung_masks=DIR")
        return self.lung_masks(record)

    @property
    def loader_takes_draft(self) -> bool:
        """Whether the image loader decodes files and can decode JPEGs reduced (a ``draft`` parameter)."""
        import inspect

        try:
            return "draft" in inspect.signature(self.image_loader).parameters
        except (TypeError, ValueError):
            return False

    def subset(self, n_studies: int) -> Dataset:
        """The first ``n_studies`` studies (for smoke runs); the summary says it is a subset."""
        if isinstance(n_studies, bool) or not isinstance(n_studies, int) or n_studies < 1:
            raise ConfigError(f"max_studies={n_studies!r}: give a positive whole number of studies")
        sub = self.studies[:n_studies]
        # the split label says it is a subset, so thresholds stored for the whole split never apply to it
        split = f"{self.split}[:{n_studies}]"
        summary = dict(self.summary, split=split, subset_of_studies=len(self.studies))
        summary.update(count_summary(sub))
        return Dataset(self.name, split, self.policy, sub, summary, self.image_loader, dict(self.provenance),
                       self.on_bad_image, self.lung_masks)


def count_summary(studies: Sequence[Study]) -> dict:
    n_images = sum(len(s.images) for s in studies)
    per_study: dict[int, int] = {}
    for s in studies:
        per_study[len(s.images)] = per_study.get(len(s.images), 0) + 1
    return {
        "studies": len(studies),
        "images": n_images,
        "images_per_study": {str(k): v for k, v in sorted(per_study.items())},
    }


def apply_policy(studies: Iterable[Study], policy: str) -> tuple[list[Study], int]:
    """Keep studies whose ``policy`` text is non-empty and that have images; return (kept, dropped_empty)."""
    if policy not in TEXT_POLICIES:
        report_text(Study("x", ()), policy)  # raises the ConfigError with the list of policies
    kept, dropped = [], 0
    for s in studies:
        if report_text(s, policy):
            kept.append(s)
        else:
            dropped += 1
    return kept, dropped
