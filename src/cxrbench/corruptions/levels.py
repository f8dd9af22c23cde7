"""Level lists per level kind, and one ``--levels`` spec for a sweep that mixes kinds.

Occlusion levels are blocked fractions in [0, 1) (kind ``fraction``); the other families have severities 0..5
(kind ``severity``, 0 = clean). One sweep may mix both, so a spec gives levels per kind:

* a preset: ``paper`` (the default) or its synonym ``all``: fractions -> the paper's 8 levels 0..0.81,
  severities -> 0, 1, 2, 3, 4, 5 (the standard levels of each kind).
* a plain list (``0,0.25,0.5`` or ``1,3,5``): used for every selected corruption, so it must be valid for each
  kind present; ``0`` alone is valid for both, a list mixing fractions and severities is not.
* per kind: ``fraction=0,0.25,0.5;severity=0,3,5`` (quote it in a shell); a part may be a preset
  (``severity=all``); a kind without a part gets ``paper``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from cxrbench.corruptions.base import LEVEL_KINDS, SEVERITIES, check_severity
from cxrbench.corruptions.occlusion import PAPER_LEVELS, parse_levels
from cxrbench.errors import ConfigError

SEVERITY_LEVELS = (0, *SEVERITIES)
PRESETS = {
    "fraction": {"paper": PAPER_LEVELS, "all": PAPER_LEVELS},
    "severity": {"paper": SEVERITY_LEVELS, "all": SEVERITY_LEVELS},
}


def parse_severities(spec: str | Iterable) -> tuple[int, ...]:
    """Severities from ``paper`` / ``all`` (0..5), a comma-separated string, or an iterable; no duplicates."""
    if isinstance(spec, str):
        name = spec.strip()
        if name in PRESETS["severity"]:
            return PRESETS["severity"][name]
        items: Sequence = [x for x in name.replace(" ", "").split(",") if x]
        if not items:
            raise ConfigError(f"no severities in {spec!r}; use 'all' or e.g. '1,2,3,4,5'")
    else:
        items = list(spec)
    levels = tuple(check_severity(x) for x in items)
    if len(set(levels)) != len(levels):
        raise ConfigError(f"severities {list(levels)} contain duplicates")
    return levels


def parse_kind_levels(kind: str, spec: str | Iterable) -> tuple:
    """Levels of one kind from a preset, a list string or an iterable."""
    if kind == "severity":
        return parse_severities(spec)
    if kind == "fraction":
        if isinstance(spec, str) and spec.strip() in PRESETS["fraction"]:
            return PRESETS["fraction"][spec.strip()]
        return parse_levels(spec)
    raise ConfigError(f"unknown level kind {kind!r}; kinds are {', '.join(LEVEL_KINDS)}")


def parse_level_spec(spec: str | Iterable, kinds: Iterable[str]) -> dict[str, tuple]:
    """Levels for each kind in ``kinds`` (the kinds of the selected corruptions) from one ``--levels`` spec."""
    kinds = list(dict.fromkeys(kinds))
    for kind in kinds:
        if kind not in LEVEL_KINDS:
            raise ConfigError(f"unknown level kind {kind!r}; kinds are {', '.join(LEVEL_KINDS)}")
    if not isinstance(spec, str):
        items = list(spec)
        return {kind: _for_kind(kind, items, kinds, spec) for kind in kinds}
    text = spec.strip()
    if "=" not in text:
        return {kind: _for_kind(kind, text, kinds, spec) for kind in kinds}
    parts: dict[str, str] = {}
    for part in (p.strip() for p in text.split(";")):
        if not part:
            continue
        kind, sep, levels = part.partition("=")
        kind = kind.strip()
        if not sep or kind not in LEVEL_KINDS:
            raise ConfigError(f"levels part {part!r} in {spec!r}: write kind=levels with kind one of "
                              f"{', '.join(LEVEL_KINDS)}, e.g. 'fraction=0,0.25,0.5;severity=0,3,5'")
        if kind in parts:
            raise ConfigError(f"levels for {kind} are given twice in {spec!r}")
        parts[kind] = levels
    return {kind: parse_kind_levels(kind, parts.get(kind, "paper")) for kind in kinds}


def _for_kind(kind: str, spec, kinds: list[str], original) -> tuple:
    try:
        return parse_kind_levels(kind, spec)
    except ConfigError as err:
        if len(kinds) < 2:
            raise
        raise ConfigError(f"{err}. The selected corruptions mix occlusion (fraction levels in [0, 1)) and severity "
                          f"families (0..5), so the levels {original!r} cannot apply to both: give them per kind, "
                          "e.g. 'fraction=0,0.25,0.5;severity=0,3,5', or use 'paper'") from None
