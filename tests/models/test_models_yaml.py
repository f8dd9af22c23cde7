"""models.yaml: entries with ``family:`` define models; entries without it configure registered ones."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from cxrbench.errors import ConfigError
from cxrbench.models import available, families, get_spec, trust_remote_code_allowed
from cxrbench.models.registry import resolve_paths


def _yaml(tmp_path: Path, entries) -> Path:
    path = tmp_path / "models.yaml"
    path.write_text(yaml.safe_dump(entries, sort_keys=False))
    return path


def test_family_entries_are_listed_after_the_registered_models(tmp_path):
    config = _yaml(tmp_path, {
        "mymodel": {"family": "open_clip", "arch": "ViT-B-16", "checkpoint": "/ckpt/epoch_30.pt"},
        "Med-SigLIP-Local": {"family": "hf", "path": "weights/medsiglip-448", "description": "my copy"},
        "cxr_clip": {"checkpoint": "ckpt/swint_mcc.tar"},  # configures a built-in, defines nothing
    })
    names = available(config)
    assert names[-2:] == ["mymodel", "med_siglip_local"] and names.count("cxr_clip") == 1
    spec = get_spec("mymodel", config)
    assert spec.family == "open_clip" and spec.options == {"arch": "ViT-B-16"} and spec.keys == ("checkpoint",)
    assert "arch=ViT-B-16" in spec.description and spec.origin == f"models.yaml {config}"
    assert str(config) in spec.how_to_get
    local = get_spec("med-siglip-local", config)
    assert local.description == "my copy" and local.options == {}
    # `path` is the hf family's alias of `checkpoint`; relative paths are relative to the YAML's folder
    assert resolve_paths(local, config) == {"checkpoint": str(tmp_path / "weights/medsiglip-448")}
    assert resolve_paths(get_spec("cxr_clip"), config)["checkpoint"] == str(tmp_path / "ckpt/swint_mcc.tar")


def test_the_environment_names_the_yaml_and_overrides_its_paths(tmp_path, monkeypatch):
    config = _yaml(tmp_path, {"mine": {"family": "open_clip", "checkpoint": "local-dir:tiny"}})
    monkeypatch.setenv("CXRBENCH_MODELS", str(config))
    assert "mine" in available() and get_spec("MINE").family == "open_clip"
    assert resolve_paths(get_spec("mine"))["checkpoint"] == f"local-dir:{tmp_path / 'tiny'}"
    monkeypatch.setenv("CXRBENCH_MINE_CHECKPOINT", "hf-hub:org/name")
    assert resolve_paths(get_spec("mine"))["checkpoint"] == "hf-hub:org/name"


@pytest.mark.parametrize(("entries", "message"), [
    ({"m": {"family": "timm", "checkpoint": "x"}}, r"family 'timm'.*\['open_clip', 'hf'\]"),
    ({"clip": {"family": "open_clip", "arch": "ViT-B-32"}}, "would redefine the cxrbench model"),
    ({"m": {"family": "open_clip", "arch": "RN50", "tokenizer": "x"}}, r"unknown setting\(s\) \['tokenizer'\]"),
    ({"m": ["family", "open_clip"]}, "entry 'm' must be a mapping"),
    (["m"], "must map model names to settings"),
])
def test_bad_entries_are_named(tmp_path, entries, message):
    with pytest.raises(ConfigError, match=message):
        available(_yaml(tmp_path, entries))


def test_unknown_settings_of_registered_models_are_named(tmp_path):
    config = _yaml(tmp_path, {"cxr_clip": {"checkpoint": "a.tar", "tokenizer": "b"}})
    with pytest.raises(ConfigError, match=r"'cxr_clip' takes the settings \['checkpoint', 'text_encoder'\], not "
                                          r"\['tokenizer'\]"):
        resolve_paths(get_spec("cxr_clip"), config)


def test_unknown_model_names_point_at_the_ways_to_add_one(tmp_path):
    with pytest.raises(ConfigError, match="docs/your-model.md"):
        get_spec("nobody", _yaml(tmp_path, {}))


def test_families_and_remote_code_switch(monkeypatch):
    assert families() == ["open_clip", "hf"]
    assert not trust_remote_code_allowed()
    monkeypatch.setenv("CXRBENCH_TRUST_REMOTE_CODE", "1")
    assert trust_remote_code_allowed()
