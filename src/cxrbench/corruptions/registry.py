"""The corruption registry: names -> corruption objects, and a description of every family and its levels."""

from __future__ import annotations

import inspect
from collections.abc import Mapping

from cxrbench.corruptions.base import SEVERITIES, Corruption, SeverityCorruption
from cxrbench.corruptions.blur import DefocusBlur, GaussianBlur, MotionBlur, ZoomBlur
from cxrbench.corruptions.digital import JPEG, Pixelate
from cxrbench.corruptions.intensity import (
    BrightnessDown,
    BrightnessUp,
    ContrastDown,
    ContrastUp,
    GammaDown,
    GammaUp,
)
from cxrbench.corruptions.noise import GaussianNoise, ImpulseNoise, ShotNoise, SpeckleNoise
from cxrbench.corruptions.occlusion import FILLS, LUNG_FIELDS, MODES, PAPER_LEVELS, Occlusion
from cxrbench.corruptions.xray import BiasField, Collimation, QuantumNoise, Rotation
from cxrbench.errors import ConfigError

SEVERITY_FAMILIES: dict[str, type[SeverityCorruption]] = {cls.family: cls for cls in (
    GaussianNoise, SpeckleNoise, ImpulseNoise, ShotNoise,
    GaussianBlur, DefocusBlur, MotionBlur, ZoomBlur,
    Pixelate, JPEG,
    BrightnessUp, BrightnessDown, ContrastUp, ContrastDown, GammaUp, GammaDown,
    QuantumNoise, BiasField, Rotation, Collimation,
)}
#: ``lungs(template)`` / ``lungs(masks)`` name ``lungs`` with its lung-field source
_LUNG_ALIASES = {f"lungs({source})": source for source in LUNG_FIELDS}
OCCLUSION_OPTIONS = ("fill", "patch_size", "lung_fields")

_MODE_TEXT = {
    "pixels": "p of the pixels, scattered at random",
    "block": "one square of area p at a random position",
    "patches": "p of a grid of patch_size squares, at random",
    "center": "one centred square of area p",
    "periphery": "everything outside a centred rectangle keeping 1-p of the area",
    "lungs": "p of the lung-field pixels, scattered (lungs(template): fixed template; lungs(masks): per-image "
             "masks)",
}


def available() -> list[str]:
    """Every corruption name: the occlusion modes, then the severity families."""
    return [*MODES, *SEVERITY_FAMILIES]


def _resolve(name: str) -> tuple[str, dict]:
    key = str(name).strip()
    if key in _LUNG_ALIASES:
        return "lungs", {"lung_fields": _LUNG_ALIASES[key]}
    if key in MODES or key in SEVERITY_FAMILIES:
        return key, {}
    raise ConfigError(f"unknown corruption {name!r}; available: {', '.join(available())} "
                      "(`cxrbench corruptions` lists them with their levels)")


def family_of(name: str) -> str:
    """``occlusion`` for the occlusion modes, else the family name itself."""
    key, _ = _resolve(name)
    return "occlusion" if key in MODES else key


def level_kind(name: str) -> str:
    """``fraction`` (occlusion) or ``severity``."""
    key, _ = _resolve(name)
    return "fraction" if key in MODES else "severity"


def accepted_options(name: str) -> tuple[str, ...]:
    """The keyword options ``get(name, ...)`` accepts."""
    key, fixed = _resolve(name)
    if key in MODES:
        return tuple(o for o in OCCLUSION_OPTIONS if o not in fixed)
    return tuple(_default_options(SEVERITY_FAMILIES[key]))


def get(name: str, **params) -> Corruption:
    """The corruption called ``name`` with ``params`` (ConfigError for an unknown name or option)."""
    key, fixed = _resolve(name)
    allowed = accepted_options(name)
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise ConfigError(f"corruption {name!r} does not take {', '.join(unknown)}; it takes "
                          f"{', '.join(allowed) if allowed else 'no options'}")
    if key in MODES:
        return Occlusion(mode=key, **fixed, **params)
    return SEVERITY_FAMILIES[key](**params)


def build(name: str, options: Mapping[str, object]) -> Corruption:
    """``get(name, ...)`` with the subset of sweep-wide ``options`` that this corruption takes.

    A sweep has one set of options (``fill``, ``patch_size``, ``lung_fields``, ``outside``, ...) for all its
    corruptions; each takes the ones it knows.
    """
    allowed = set(accepted_options(name))
    return get(name, **{k: v for k, v in options.items() if k in allowed})


def _default_options(cls: type) -> dict:
    """The constructor's keyword options and their defaults (none for a class without ``__init__``)."""
    if cls.__init__ is object.__init__:
        return {}
    sig = inspect.signature(cls.__init__)
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return {p.name: p.default for p in sig.parameters.values() if p.name != "self" and p.kind in kinds}


def describe() -> list[dict]:
    """One entry per family: occlusion (modes, fraction levels) and each severity family with its parameter per
    severity, formula, source, frame mapping and cross-device exactness."""
    out: list[dict] = [{
        "name": "occlusion",
        "family": "occlusion",
        "level_kind": "fraction",
        "modes": dict(_MODE_TEXT),
        "names": [*MODES, *_LUNG_ALIASES],
        "levels": "blocked fraction p in [0, 1); preset 'paper' = " + ", ".join(f"{p:g}" for p in PAPER_LEVELS),
        "options": {"fill": list(FILLS), "patch_size": 16, "lung_fields": list(LUNG_FIELDS)},
        "source": "arXiv 2501.09134 (random pixel occlusion); block, patches, center, periphery, lungs: cxrbench",
        "frame": "fractions of the model frame's pixels (patch_size in frame pixels)",
        "exact": "exact (integer hash and integer geometry)",
    }]
    for name, cls in SEVERITY_FAMILIES.items():
        out.append({
            "name": name,
            "family": name,
            "level_kind": "severity",
            "parameter": cls.parameter,
            "severities": {s: cls.values[s - 1] for s in SEVERITIES},
            "formula": cls.formula,
            "source": cls.source,
            "frame": cls.frame,
            "exact": cls.exact,
            "options": _default_options(cls),
        })
    return out


def format_value(value: object) -> str:
    """A severity parameter for a table: numbers as given, pairs as (a, b), long factor lists as first..last (n)."""
    if isinstance(value, tuple) and len(value) > 3:
        return f"{value[0]:.2f}..{value[-1]:.2f} ({len(value)})"
    if isinstance(value, tuple):
        return "(" + ", ".join(f"{v:g}" for v in value) + ")"
    return f"{value:g}" if isinstance(value, float) else str(value)


def describe_text() -> str:
    """``describe()`` as a plain-text table (for a ``cxrbench corruptions`` command)."""
    entries = describe()
    occ = entries[0]
    lines = [
        f"occlusion ({occ['level_kind']} levels: {occ['levels']})",
        "  names: " + ", ".join(occ["names"]),
        "  options: fill=" + "|".join(FILLS) + ", patch_size=16, lung_fields=" + "|".join(LUNG_FIELDS),
        "  in a sweep, lungs uses per-image lung masks when the dataset has them (iu-phantom; --data-option "
        "lung_masks=DIR) and the fixed template otherwise; results name which: lungs(masks) or lungs(template)",
        "",
        "severity families (levels 0..5; 0 = clean; the parameter at severities 1..5):",
    ]
    rows = [(e["name"], e["parameter"], *(format_value(e["severities"][s]) for s in SEVERITIES), _short_source(e))
            for e in entries[1:]]
    header = ("name", "parameter", "1", "2", "3", "4", "5", "source")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        lines.append("  " + "  ".join(str(c).ljust(widths[i]) for i, c in enumerate(row)).rstrip())
    lines += ["", "docs/corruptions.md gives each family's formula, source, frame mapping and exactness."]
    return "\n".join(lines)


def _short_source(entry: dict) -> str:
    src = entry["source"]
    if src.startswith("MedMNIST-C"):
        return "MedMNIST-C chestmnist"
    if src.startswith("ImageNet-C"):
        return "ImageNet-C"
    return "cxrbench physics"
