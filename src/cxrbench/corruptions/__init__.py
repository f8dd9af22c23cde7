"""Image corruptions: pure, seeded tensor functions on model-frame batches, and their registry.

``get(name, **params)`` / ``build(name, options)`` make one; ``available()`` lists the names; ``describe()`` /
``describe_text()`` give every family with its parameter per severity. Every corruption implements the
interface of :mod:`cxrbench.corruptions.base` (``prepare`` once per batch, ``apply`` per level). Occlusion
levels are fractions in [0, 1); the other families' levels are severities 0..5 (``levels.parse_level_spec``
parses one ``--levels`` spec for a sweep that mixes both).
"""

from cxrbench.corruptions.base import LEVEL_KINDS, SEVERITIES, Corruption, SeverityCorruption, check_severity
from cxrbench.corruptions.hashing import image_key, image_keys
from cxrbench.corruptions.levels import (
    SEVERITY_LEVELS,
    parse_kind_levels,
    parse_level_spec,
    parse_severities,
)
from cxrbench.corruptions.lung_template import lung_template
from cxrbench.corruptions.occlusion import (
    FILLS,
    LEVEL_PRESETS,
    LUNG_FIELDS,
    MODES,
    PAPER_LEVELS,
    Occlusion,
    check_level,
    parse_levels,
)
from cxrbench.corruptions.registry import (
    SEVERITY_FAMILIES,
    accepted_options,
    available,
    build,
    describe,
    describe_text,
    family_of,
    get,
    level_kind,
)

__all__ = [
    "FILLS", "LEVEL_KINDS", "LEVEL_PRESETS", "LUNG_FIELDS", "MODES", "PAPER_LEVELS", "SEVERITIES",
    "SEVERITY_FAMILIES", "SEVERITY_LEVELS", "Corruption", "Occlusion", "SeverityCorruption", "accepted_options",
    "available", "build", "check_level", "check_severity", "describe", "describe_text", "family_of", "get",
    "image_key", "image_keys", "level_kind", "lung_template", "parse_kind_levels", "parse_level_spec",
    "parse_levels", "parse_severities",
]
