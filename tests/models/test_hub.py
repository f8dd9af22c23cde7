"""The shared offline hub-id resolution used by the BiomedCLIP, BioViL and MedCLIP adapters."""

from __future__ import annotations

import pytest

from cxrbench.models.hub import cached_file, split_setting

from golden_helpers import hf_cache_entry


@pytest.mark.parametrize(("setting", "expected"), [
    ("hf-hub:microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224",
     ("microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224", True)),
    ("  emilyalsentzer/Bio_ClinicalBERT ", ("emilyalsentzer/Bio_ClinicalBERT", True)),
    ("/abs/folder", ("/abs/folder", False)),
    ("./org/name", ("org/name", False)),
    ("a/b/c", ("a/b/c", False)),
])
def test_split_setting_names_ids_and_paths(setting, expected):
    assert split_setting(setting) == expected


def test_existing_folder_of_id_shape_is_a_path(tmp_path, monkeypatch):
    (tmp_path / "org" / "name").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    assert split_setting("org/name") == ("org/name", False)
    assert split_setting("hf-hub:org/name") == ("org/name", True)  # the schema forces the hub reading


def test_local_dir_schema_expands_home(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert split_setting("local-dir:~/m") == (str(tmp_path / "m"), False)


def test_cached_file_finds_only_what_is_in_the_cache(tmp_path, monkeypatch):
    commit = "0" * 40
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "config.json").write_text("{}")
    snap = hf_cache_entry(tmp_path / "cache", "org/name", [tmp_path / "src" / "config.json"], commit, "v2")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "cache"))
    assert cached_file("org/name", "config.json") is None  # no 'main' ref
    found = cached_file("org/name", "config.json", revisions=("main", "v2"))
    assert found == snap / "config.json"
    assert cached_file("org/name", "missing.json", revisions=("v2",)) is None
    assert cached_file("org/other", "config.json", revisions=("v2",)) is None
