"""Finding helpers shared by both views: where a finding goes and how many copies it draws.

``zone_center`` turns a lung zone into a centre and radii in the current view, ``zone_side`` applies the
zones that imply a side (lingula is left), ``resolve_sides`` resolves a finding's side (from its stream when
it has none; ``bilateral`` gives both), and ``instance_count`` draws how many copies a ``multiple`` finding
gets.
"""

from __future__ import annotations

import numpy as np

from cxrbench.phantom.anatomy import Anatomy, side_sign
from cxrbench.phantom.canvas import Canvas
from cxrbench.phantom.spec import Finding

_ZONE_T = {"apex": 0.07, "upper": 0.22, "hilum": 0.45, "middle": 0.58, "lingula": 0.58, "lower": 0.8,
           "base": 0.88, "retrocardiac": 0.8}
_ZONE_F = {"apex": 0.45, "upper": 0.5, "hilum": 0.1, "middle": 0.45, "lingula": 0.4, "lower": 0.55,
           "base": 0.6}


def zone_side(zone: str | None, side: str) -> str:
    if zone == "lingula":
        return "left"
    if zone == "middle" and side == "bilateral":
        return "right"
    return side


def zone_center(cv: Canvas, A: Anatomy, side: str, zone: str | None, rng: np.random.Generator
                 ) -> tuple[float, float, float, float]:
    """(u, v, ru, rv) of a lung zone in this view; a missing zone picks a random height."""
    t = _ZONE_T.get(zone or "", float(rng.uniform(0.25, 0.85)))
    if cv.view == "lateral":
        g = cv.lat
        v = A.apex_v + t * (A.dome_v(side) - A.apex_v)
        if zone in ("middle", "lingula"):
            u = g["ant"] + 0.35 * g["depth"]
        elif zone in ("lower", "base", "retrocardiac"):
            u = g["post"] - 0.45 * g["depth"]
        elif zone == "hilum":
            u = g["uc"] + 0.01
        else:
            u = g["uc"] + float(rng.uniform(-0.3, 0.35)) * g["depth"]
        u += 0.01 if side == "left" else -0.01
        ru, rv = 0.065, 0.06
    else:
        L = A.dome_v(side) - A.apex_v
        v = A.apex_v + t * L
        med, lat = cv.lung_rows[side]
        row = min(cv.n - 1, max(0, int(v * cv.n)))
        um, ul = float(med[row]), float(lat[row])
        if zone == "retrocardiac":
            u = A.cx + side_sign(side) * 0.06
        else:
            u = um + _ZONE_F.get(zone or "", float(rng.uniform(0.3, 0.7))) * (ul - um)
        ru = 0.32 * abs(ul - um) + 0.01
        rv = 0.065 if zone not in ("base", "apex") else 0.05
    u += float(rng.normal(0, 0.08)) * ru
    v += float(rng.normal(0, 0.08)) * rv
    return u, v, ru, rv


def resolve_sides(f: Finding, rng: np.random.Generator, default: str | None = None) -> list[str]:
    """Resolve ``f.side`` (seeded choice when missing; ``bilateral`` -> both)."""
    pick = "right" if rng.random() < 0.55 else "left"
    side = f.side or default or pick
    if f.zone == "lingula":
        side = "left" if side != "bilateral" else side
    return ["right", "left"] if side == "bilateral" else [side]


def instance_count(f: Finding, rng: np.random.Generator, lo: int, hi: int) -> int:
    return int(rng.integers(lo, hi + 1)) if f.multiple else 1
