"""The dataset fingerprint identifies an evaluation set: it changes with the studies, images, texts, policy and
data provenance, and not with where the data sits on a machine."""

from __future__ import annotations

from dataclasses import replace

from cxrbench.data import load_dataset
from cxrbench.fingerprint import dataset_fingerprint, portable


def test_same_set_same_fingerprint_anything_else_another(tiny_dataset):
    fp = dataset_fingerprint(tiny_dataset)
    assert len(fp) == 16 and int(fp, 16) >= 0
    assert dataset_fingerprint(replace(tiny_dataset)) == fp
    other_text = list(tiny_dataset.studies)
    other_text[3] = replace(other_text[3], findings="Left upper lobe opacity.")
    other_image = list(tiny_dataset.studies)
    other_image[0] = replace(other_image[0], images=(replace(other_image[0].images[0], image_id="s0_other"),))
    variants = {
        "subset": tiny_dataset.subset(5),
        "policy": replace(tiny_dataset, policy="impression"),
        "text": replace(tiny_dataset, studies=other_text),
        "image id": replace(tiny_dataset, studies=other_image),
        "order": replace(tiny_dataset, studies=tiny_dataset.studies[::-1]),
        "provenance": replace(tiny_dataset, provenance={"kind": "in-memory test fixture", "renderer_version": "2"}),
        "split": replace(tiny_dataset, split="validate"),
    }
    fingerprints = {name: dataset_fingerprint(ds) for name, ds in variants.items()}
    assert fp not in fingerprints.values(), fingerprints
    assert len(set(fingerprints.values())) == len(fingerprints)


def test_machine_specific_provenance_is_left_out(tiny_dataset):
    here = {"root": "/data/mimic", "split_csv": {"path": "/data/mimic/split.csv.gz", "bytes": 10, "sha256": "ab"},
            "reports": {"kind": "zip", "path": "/data/r.zip", "size": 5, "mtime": 1700000000},
            "options": {"require": "both"}, "image_roots": ["/data/a", "/data/b"]}
    there = {"root": "/mnt/other", "split_csv": {"path": "/mnt/other/split.csv.gz", "bytes": 10, "sha256": "ab"},
             "reports": {"kind": "zip", "path": "/mnt/r.zip", "size": 5, "mtime": 1800000000},
             "options": {"require": "both"}, "image_roots": ["/mnt/x"]}
    assert portable(here) == portable(there) == {"split_csv": {"bytes": 10, "sha256": "ab"},
                                                 "reports": {"kind": "zip", "size": 5},
                                                 "options": {"require": "both"}, "image_roots": []}
    moved = [dataset_fingerprint(replace(tiny_dataset, provenance=p)) for p in (here, there)]
    assert moved[0] == moved[1]
    changed = dict(here, options={"require": "any"})  # a loader option changes the evaluation set
    assert dataset_fingerprint(replace(tiny_dataset, provenance=changed)) != moved[0]


def test_iu_phantom_fingerprint_is_stable():
    """Loading the embedded default twice gives one fingerprint; its first 300 studies another."""
    a, b = load_dataset("iu-phantom", progress=False), load_dataset("iu-phantom", progress=False)
    assert dataset_fingerprint(a) == dataset_fingerprint(b) != dataset_fingerprint(a.subset(300))
