"""The model catalog: every adapter is registered under its name, and importing cxrbench.models stays cheap."""

from __future__ import annotations

import inspect
import subprocess
import sys

import pytest

import cxrbench.models
from cxrbench.errors import ConfigError
from cxrbench.models import available, get_spec, load_model

ALL_MODELS = ["reference", "reference_occaug", "random", "clip", "cxr_repair", "chexzero", "medclip",
              "medclip_resnet", "cxr_clip", "cxr_clip_r50", "biomedclip", "biovil", "gloria", "medsiglip",
              "pubmedclip"]
ADAPTERS = {"clip": "openai_clip", "cxr_repair": "openai_clip", "chexzero": "openai_clip", "medclip": "medclip",
            "medclip_resnet": "medclip", "cxr_clip": "cxr_clip", "cxr_clip_r50": "cxr_clip",
            "biomedclip": "biomedclip", "biovil": "biovil", "gloria": "gloria"}
#: Catalogue rows that are nothing but configuration of a generic family.
CONFIGURED = {"medsiglip": "hf", "pubmedclip": "hf"}


def test_available_lists_every_model():
    assert set(ALL_MODELS) <= set(cxrbench.models.available())
    assert available()[:3] == ["reference", "reference_occaug", "random"]  # the reference rows come first


def test_unknown_model_name_lists_the_available_ones():
    with pytest.raises(ConfigError, match="unknown model 'no_such_model'") as err:
        load_model("no_such_model")
    for name in ALL_MODELS:
        assert name in str(err.value)
    with pytest.raises(ConfigError, match="available: reference, "):
        get_spec("cxr-clip-vit")


def test_hyphens_and_case_are_aliases():
    assert get_spec("CXR-CLIP").name == "cxr_clip" and get_spec("medclip-resnet").name == "medclip_resnet"


@pytest.mark.parametrize("name", list(ADAPTERS))
def test_released_model_rows(name):
    spec = get_spec(name)
    assert spec.family == ADAPTERS[name]
    assert spec.builder == f"cxrbench.models.{ADAPTERS[name]}:build"
    assert spec.description and spec.how_to_get
    params = inspect.signature(spec.resolve_builder()).parameters
    assert set(spec.keys) <= set(params), f"{name}: builder does not take {spec.keys}"
    assert "checkpoint" in spec.keys


@pytest.mark.parametrize("name", list(CONFIGURED))
def test_configuration_only_rows(name):
    spec = get_spec(name)
    assert spec.family == CONFIGURED[name] and spec.builder == f"cxrbench.models.{CONFIGURED[name]}_family:build"
    assert spec.description and spec.how_to_get and spec.keys == ("checkpoint",)
    assert set(spec.options) == {"default_checkpoint"}  # the hub id; everything else comes from the release


def test_importing_the_catalog_imports_no_adapter():
    code = ("import sys, cxrbench.models as m; m.available(); "
            "print(','.join(sorted(k for k in sys.modules if k.startswith(('cxrbench.models.', 'open_clip', "
            "'transformers', 'timm')))))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    adapters = {f"cxrbench.models.{a}" for a in {*ADAPTERS.values(), "open_clip_family", "hf_family"}}
    assert not adapters & set(loaded.strip().split(",")), loaded
    assert "open_clip" not in loaded and "transformers" not in loaded
