"""The dataset fingerprint: one short hash that identifies an evaluation set, wherever it is stored.

Two results can only be compared, and a stored threshold can only gate a result, when both were measured on the
same evaluation set: the same studies, with the same images and the same report texts, from the same data. The
dataset name and split label do not say that: a MIMIC-CXR loader option (``require=both``, ``sections=lenient``),
``--protocol paper``, ``--policy``, ``--on-bad-image skip`` or a new release of the data changes the set without
changing the split label.

``dataset_fingerprint`` hashes (SHA-256, first 16 hex digits)

* the dataset name, split label and text policy,
* its provenance (the loader options, index files' sizes and SHA-256, renderer and split versions) without what
  is only true of one machine (absolute paths, file modification times), so the same data read from another
  folder or another machine has the same fingerprint,
* every study in order: its id, its image ids and the report text the policy chose.

Pixels are not hashed (reading every image would cost as much as a run); they are covered by the provenance (the
phantom renderer version, the index files' checksums) and the image ids. The sweep records the fingerprint in
``run.json`` (``dataset.fingerprint``) and in every record (``dataset_fingerprint``).
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

from cxrbench.data import Dataset

#: bump when what goes into the hash changes (then every stored fingerprint changes, deliberately)
FINGERPRINT_VERSION = 1
#: provenance keys that are true of one machine only
_MACHINE_KEYS = frozenset({"mtime"})


def portable(value: Any) -> Any:
    """``value`` without machine-specific parts: dict keys in :data:`_MACHINE_KEYS` and absolute paths (strings,
    anywhere in dicts and lists) are left out."""
    if isinstance(value, dict):
        return {str(k): portable(v) for k, v in value.items()
                if k not in _MACHINE_KEYS and not _is_path(v)}
    if isinstance(value, (list, tuple)):
        return [portable(v) for v in value if not _is_path(v)]
    return value


def _is_path(value: Any) -> bool:
    return isinstance(value, str) and os.path.isabs(value)


def dataset_fingerprint(dataset: Dataset) -> str:
    """The fingerprint of ``dataset`` as evaluated (after ``--max-studies`` and skipped images): see the module
    docstring."""
    digest = hashlib.sha256()
    head = {"version": FINGERPRINT_VERSION, "dataset": dataset.name, "split": dataset.split,
            "policy": dataset.policy, "provenance": portable(dataset.provenance)}
    digest.update(json.dumps(head, sort_keys=True, default=str).encode())
    for study, text in zip(dataset.studies, dataset.texts):
        line = [study.study_id, [im.image_id for im in study.images], text]
        digest.update(b"\n" + json.dumps(line, default=str).encode())
    return digest.hexdigest()[:16]
