"""How levels and corruptions are named in tables, figures and the report, for every corruption family.

Occlusion levels (family ``occlusion``) are blocked fractions, shown as percentages; every other family's levels
are severities 0..5 (0 = clean). The kind is read from the record's ``corruption_params["family"]``, so the
report needs no corruption code.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def level_kind(params: Mapping | None) -> str:
    """``fraction`` for occlusion (and records without params, from before the families), else ``severity``."""
    family = (params or {}).get("family", "occlusion")
    return "fraction" if family == "occlusion" else "severity"


def level_label(level: float, params: Mapping | None) -> str:
    """``49%`` for an occlusion fraction, ``severity 3`` (``clean`` for 0) for the other families."""
    if level_kind(params) == "fraction":
        return f"{level * 100:g}%"
    return "clean" if level == 0 else f"severity {level:g}"


def axis_label(corruption: str, params: Mapping | None) -> str:
    if level_kind(params) == "fraction":
        return f"{corruption}: blocked pixels (%)"
    return f"{corruption}: severity"


def axis_value(level: float, params: Mapping | None) -> float:
    """The level on a plot's x axis: percent for fractions, the severity itself otherwise."""
    return level * 100 if level_kind(params) == "fraction" else level


def panel_axes(recs: Sequence[Mapping], ks: Sequence[int]) -> tuple[list[str], list[str], list[int]]:
    """(models, directions, ks) one corruption's records span, in record order (``ks`` cut to those recorded):
    the rows, columns and curves of its recall figures."""
    models = list(dict.fromkeys(r["model"] for r in recs))
    dirs = list(dict.fromkeys(r["direction"] for r in recs))
    return models, dirs, [k for k in ks if any(r["k"] == k for r in recs)]
