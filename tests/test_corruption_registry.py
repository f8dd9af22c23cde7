"""The corruption registry (names, options, description) and level parsing per level kind."""

from __future__ import annotations

import json

import pytest

from cxrbench import corruptions
from cxrbench.corruptions import (
    MODES,
    PAPER_LEVELS,
    SEVERITY_FAMILIES,
    parse_level_spec,
    parse_severities,
)
from cxrbench.errors import ConfigError

#: MedMNIST-C's chest X-ray parameters, read from francescodisalvo05/medmnistc-api
#: medmnistc/corruptions/registry.py at commit 8acfd2710c6e0e8b2745be8b1fa1c17b94b8f8a7, CORRUPTIONS_DS['chestmnist']
#: (severities 1..5; gaussian_blur lists a sixth value, 13, that the 5-severity loop never reaches).
MEDMNIST_C_CHEST = {
    "pixelate": (0.30, 0.25, 0.20, 0.15, 0.10),
    "jpeg": (50, 30, 15, 10, 7),
    "gaussian_noise": (0.04, 0.08, 0.12, 0.18, 0.26),
    "speckle_noise": (0.05, 0.15, 0.2, 0.35, 0.45),
    "impulse_noise": (0.01, 0.03, 0.06, 0.09, 0.17),
    "shot_noise": (60, 25, 18, 10, 5),
    "gaussian_blur": (3, 5, 7, 9, 11),
    "brightness_up": (1.1, 1.2, 1.3, 1.4, 1.5),
    "brightness_down": (0.9, 0.8, 0.7, 0.6, 0.5),
    "contrast_up": (1.1, 1.2, 1.3, 1.4, 1.6),
    "contrast_down": (0.9, 0.8, 0.7, 0.6, 0.4),
    "gamma_up": (1.1, 1.2, 1.3, 1.4, 1.6),
    "gamma_down": (0.9, 0.8, 0.7, 0.6, 0.4),
}
#: ImageNet-C's 224-px blur parameters (hendrycks/robustness ImageNet-C/create_c/make_imagenet_c.py at commit
#: 8190fe329f5f072a06e3a2aea02bb5dda69aed9f); the chest set has no defocus, motion or zoom blur.
IMAGENET_C_BLURS = {
    "defocus_blur": ((3, 0.1), (4, 0.5), (6, 0.5), (8, 0.5), (10, 0.5)),
    "motion_blur": ((10, 3), (15, 5), (15, 8), (15, 12), (20, 15)),
}


def test_the_published_parameters_are_the_ones_in_use():
    for name, values in {**MEDMNIST_C_CHEST, **IMAGENET_C_BLURS}.items():
        assert corruptions.get(name).values == values, name
    zoom = corruptions.get("zoom_blur").values  # np.arange(1, 1.11, .01) etc. as numpy evaluates them
    assert [len(z) for z in zoom] == [12, 16, 11, 13, 11]
    assert [z[-1] for z in zoom] == [1.11, 1.15, 1.2, 1.24, 1.3] and all(z[0] == 1.0 for z in zoom)


def test_available_lists_occlusion_modes_and_at_least_fifteen_families():
    names = corruptions.available()
    assert names[: len(MODES)] == list(MODES)
    assert len(names) - len(MODES) >= 15
    assert {"center", "periphery", "lungs"} <= set(names)


def test_describe_lists_every_family_with_its_parameter_per_severity():
    entries = corruptions.describe()
    assert entries[0]["family"] == "occlusion" and entries[0]["level_kind"] == "fraction"
    assert "lungs(template)" in entries[0]["names"] and "lungs(masks)" in entries[0]["names"]
    families = entries[1:]
    assert len(families) >= 15 and [e["name"] for e in families] == list(SEVERITY_FAMILIES)
    for e in families:
        cls = SEVERITY_FAMILIES[e["name"]]
        assert e["level_kind"] == "severity"
        assert list(e["severities"]) == [1, 2, 3, 4, 5]
        assert tuple(e["severities"].values()) == cls.values
        for field in ("parameter", "formula", "source", "frame", "exact"):
            assert isinstance(e[field], str) and e[field], (e["name"], field)
    text = corruptions.describe_text()
    for e in families:
        assert e["name"] in text
    assert "1.00..1.11 (12)" in text and "(10, 3)" in text


def test_params_are_json_and_name_the_family():
    for name in corruptions.available():
        corr = corruptions.get(name)
        assert isinstance(corr, corruptions.Corruption)
        params = corr.params()
        json.dumps(params)
        assert params["family"] == corruptions.family_of(name)
        assert corr.level_kind == corruptions.level_kind(name)


def test_unknown_names_and_options_are_config_errors():
    with pytest.raises(ConfigError, match="unknown corruption 'fog'"):
        corruptions.get("fog")
    with pytest.raises(ConfigError, match="does not take fill; it takes no options"):
        corruptions.get("jpeg", fill="zero")
    with pytest.raises(ConfigError, match="photons, transmission_range"):
        corruptions.get("quantum_noise", dose=3)
    with pytest.raises(ConfigError, match="lung_fields"):
        corruptions.get("lungs(masks)", lung_fields="template")
    with pytest.raises(ConfigError, match="outside"):
        corruptions.get("collimation", outside="grey")
    with pytest.raises(ConfigError, match="photons"):
        corruptions.get("quantum_noise", photons=-5)


def test_build_takes_the_sweep_options_each_corruption_knows():
    options = {"fill": "mean", "patch_size": 8, "lung_fields": "masks", "outside": "black"}
    assert corruptions.build("patches", options).params() == {"family": "occlusion", "mode": "patches",
                                                              "fill": "mean", "patch_size": 8}
    assert corruptions.build("lungs", options).name == "lungs(masks)"
    assert corruptions.build("collimation", options).params()["outside"] == "black"
    assert corruptions.build("motion_blur", options) == corruptions.get("motion_blur")


# -- levels ----------------------------------------------------------------------------------------------------

def test_severity_lists_and_presets():
    assert parse_severities("1,2,3,4,5") == (1, 2, 3, 4, 5)
    assert parse_severities("all") == parse_severities("paper") == (0, 1, 2, 3, 4, 5)
    assert parse_severities([0, 3.0, "5"]) == (0, 3, 5)


@pytest.mark.parametrize("bad", ["2.5", "6", "-1", "x", "", "1,1", "1,,nan"])
def test_bad_severities_are_config_errors(bad):
    with pytest.raises(ConfigError, match="severit"):
        parse_severities(bad)


def test_level_spec_per_kind():
    both = ["fraction", "severity"]
    assert parse_level_spec("paper", both) == {"fraction": PAPER_LEVELS, "severity": (0, 1, 2, 3, 4, 5)}
    assert parse_level_spec("all", ["severity"]) == {"severity": (0, 1, 2, 3, 4, 5)}
    assert parse_level_spec("1,3,5", ["severity"]) == {"severity": (1, 3, 5)}
    assert parse_level_spec("0,0.25", ["fraction"]) == {"fraction": (0.0, 0.25)}
    assert parse_level_spec("0", both) == {"fraction": (0.0,), "severity": (0,)}
    assert parse_level_spec("fraction=0,0.5;severity=0,3,5", both) == {"fraction": (0.0, 0.5), "severity": (0, 3, 5)}
    assert parse_level_spec("severity=all", both) == {"fraction": PAPER_LEVELS, "severity": (0, 1, 2, 3, 4, 5)}
    assert parse_level_spec([0, 0.5], ["fraction"]) == {"fraction": (0.0, 0.5)}


def test_level_spec_errors_say_what_to_write():
    both = ["fraction", "severity"]
    with pytest.raises(ConfigError, match="give them per kind"):
        parse_level_spec("0,1,2,3,4,5", both)
    with pytest.raises(ConfigError, match="give them per kind"):
        parse_level_spec("0,0.25,0.5", both)
    with pytest.raises(ConfigError, match="outside 0..5"):
        parse_level_spec("1,7", ["severity"])
    with pytest.raises(ConfigError, match="kind=levels"):
        parse_level_spec("fractions=0,0.5", both)
    with pytest.raises(ConfigError, match="twice"):
        parse_level_spec("severity=1;severity=2", both)
    with pytest.raises(ConfigError, match="unknown level kind"):
        parse_level_spec("paper", ["percent"])
