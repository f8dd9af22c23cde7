"""The fixed test/train split of the IU X-ray reports ("iu-phantom-split-v1"), shared by ``iu-phantom`` and
``iu-xray`` so that the two datasets hold the same studies.

The eligible reports (at least one image, FINDINGS or IMPRESSION non-empty) are ordered by SHA-256 of
``"iu-phantom-split-v1:" + uid``; the first 1,000 form ``test``, the rest ``train``; ``all`` is every eligible
report. Each split is returned in uid-number order. The split does not depend on the report-text policy.
"""

from __future__ import annotations

import hashlib

from cxrbench.data.iu_reports import IUReport, load_reports
from cxrbench.errors import ConfigError

SPLIT_VERSION = "iu-phantom-split-v1"
SPLITS = ("test", "train", "all")
TEST_STUDIES = 1000


def _split_key(uid: str) -> str:
    return hashlib.sha256(f"{SPLIT_VERSION}:{uid}".encode()).hexdigest()


def eligible_reports() -> list[IUReport]:
    """The reports a split may hold: at least one image, and FINDINGS or IMPRESSION text."""
    return [r for r in load_reports() if r.image_ids and (r.findings or r.impression)]


def split_reports(split: str) -> list[IUReport]:
    """The eligible reports of ``split`` ("test", "train" or "all"), in uid-number order."""
    if split not in SPLITS:
        raise ConfigError(f"the IU X-ray split {SPLIT_VERSION!r} has splits 'test', 'train' and 'all', "
                          f"not {split!r}")
    ordered = sorted(eligible_reports(), key=lambda r: _split_key(r.uid))
    chosen = {"test": ordered[:TEST_STUDIES], "train": ordered[TEST_STUDIES:], "all": ordered}[split]
    return sorted(chosen, key=lambda r: int(r.uid[3:]) if r.uid[3:].isdigit() else r.uid)
