"""Air hooks: change the lung air map (and the vessel gate) before the density map is composed.

Signature ``hook(canvas, anatomy, finding, sides, rng)``. Effusion fills the costophrenic recess up to a
meniscus, pneumothorax adds a marking-free dark rim inside a thin visceral pleural line, bullae and lucencies
punch round holes, a pneumonectomy removes a lung's air.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from cxrbench.phantom.anatomy import Anatomy, severity_factor, side_sign
from cxrbench.phantom.canvas import Canvas, Sketch, blob, ramp, smooth, staples
from cxrbench.phantom.placement import instance_count, zone_center, zone_side
from cxrbench.phantom.spec import Finding


def _effusion(cv: Canvas, A: Anatomy, side: str, height: float, lateral_only: bool) -> None:
    """Fill the costophrenic recess with fluid up to a meniscus that rises along the lateral wall."""
    if cv.view == "lateral":
        g = cv.lat
        bottom = A.dome_v(side) + 0.13 * A.dome_depth / 0.07
        level = bottom - 1.5 * height
        w = cv.win(g["uc"] - 0.12, g["post"] + 0.02, level - 0.1, bottom + 0.03)
        if w is None:
            return
        rel = np.clip((w.u - g["uc"] + 0.12) / (g["post"] - g["uc"] + 0.12), 0.0, 1.0)
        surf = level + 0.09 * (1.0 - rel) ** 2 - 0.05 * rel ** 3
        if lateral_only:
            surf = surf + 0.1 * (1.0 - rel)
        fill = smooth((w.v - surf) / 0.03)
        cv.air[w.idx] *= 1.0 - 0.62 * fill
        cv.vgate[w.idx] *= 1.0 - 0.5 * fill
        return
    sg = side_sign(side)
    med, lat = cv.lung_rows[side]
    cp_v = cv.anchor[f"cp_{side}"][1]
    level = cp_v - height
    u_in, u_out = A.cx + sg * A.med_w * 0.5, A.cx + sg * A.thw * 1.08
    w = cv.win(min(u_in, u_out), max(u_in, u_out), level - 0.1, cp_v + 0.02)
    if w is None:
        return
    rel = np.clip(sg * (w.u - A.cx) / A.thw, 0.0, 1.05)
    inner = np.clip(1.0 - rel, 0.0, 1.0)
    surf = level + 0.05 * inner * np.sqrt(inner) - 0.055 * (rel * rel) ** 2
    if lateral_only:
        surf = surf + 0.1 * ramp(0.75 - rel, 0.25)
    fill = smooth((w.v - surf) / (0.018 + 0.08 * height))
    fill = 0.35 * smooth((w.v - surf + 0.02) / 0.04) + 0.65 * fill
    cv.air[w.idx] *= 1.0 - 0.97 * fill
    cv.vgate[w.idx] *= 1.0 - fill


def air_effusion(cv: Canvas, A: Anatomy, f: Finding, sides: list[str], rng: np.random.Generator) -> None:
    heights = {"borderline": 0.035, "mild": 0.06, "small": 0.06, "moderate": 0.13, "large": 0.22, "severe": 0.3}
    h = heights.get(f.severity or "", 0.08)
    for s in sides:
        _effusion(cv, A, s, h * (0.9 + 0.2 * rng.random()), False)


def air_blunting(cv: Canvas, A: Anatomy, f: Finding, sides: list[str], rng: np.random.Generator) -> None:
    for s in sides:
        _effusion(cv, A, s, 0.03 + 0.01 * rng.random(), True)


def air_pneumothorax(cv: Canvas, A: Anatomy, f: Finding, sides: list[str], rng: np.random.Generator) -> None:
    rims = {"borderline": 0.018, "mild": 0.025, "small": 0.025, "moderate": 0.05, "large": 0.085, "severe": 0.11}
    r = rims.get(f.severity or "", 0.04)
    for s in sides:
        if cv.view == "lateral":
            g = cv.lat
            w = cv.win(g["ant"], g["post"], A.apex_v - 0.02, A.apex_v + 0.3)
            if w is None:
                continue
            top = A.apex_v + 4.0 * (w.u - g["uc"] - 0.02) ** 2
            rim = cv.hemi["both"][w.idx] * (1.0 - ramp(w.v - top - 1.6 * r, 2 * cv.px))
            cv.air[w.idx] += 0.25 * rim
            cv.vgate[w.idx] *= 1.0 - rim
            continue
        sg = side_sign(s)
        med, lat = cv.lung_rows[s]
        apical = f.zone in ("apex", "upper")
        r_top, r_lat = (r * 1.3, r * 0.45) if apical else (r, r)
        v_end = A.dome_v(s)
        u_in, u_out = A.cx + sg * A.med_w * 0.8, A.cx + sg * A.thw * 1.06
        w = cv.win(min(u_in, u_out), max(u_in, u_out), A.apex_v - 0.01, v_end + 0.06)
        if w is None:
            continue
        hemi = cv.hemi[s][w.idx]
        taper = np.sqrt(np.clip((v_end - w.v) / (v_end - A.apex_v), 0.15, 1.0))
        lat_w = lat[w.rows, None]
        apex_u = A.cx + sg * (A.med_w + 0.45 * A.thw * 0.4 + 0.02)
        top = A.apex_v + 9.0 * (w.u - apex_u) ** 2
        d = np.minimum(sg * (lat_w - w.u) - r_lat * taper, (w.v - top) - r_top)
        inner = ramp(d, 1.5 * cv.px)
        rim = hemi * (1.0 - inner)
        line = hemi * np.clip(1.0 - np.abs(d) / (1.2 * cv.px + 0.0015), 0.0, 1.0)
        cv.air[w.idx] = cv.air[w.idx] * (1.0 - rim) + rim * 1.12 + hemi * inner * -0.06 * cv.air[w.idx]
        cv.vgate[w.idx] *= 1.0 - rim
        cv.D[w.idx] += 0.22 * line


def air_lucency(cv: Canvas, A: Anatomy, f: Finding, sides: list[str], rng: np.random.Generator,
                 radius: float = 0.03, walls: float = 0.1) -> None:
    for s in sides:
        for _ in range(instance_count(f, rng, 2, 4)):
            zone = f.zone or ("upper" if rng.random() < 0.7 else None)
            u, v, ru, rv = zone_center(cv, A, zone_side(zone, s), zone, rng)
            u += float(rng.uniform(-0.5, 0.5)) * ru
            rad = radius * (0.8 + 0.6 * rng.random()) * (0.7 + 0.5 * severity_factor(f))
            gate = cv.gate(zone_side(zone, s))
            blob(cv, u, v, rad, rad, 0.32, profile="disk", target=cv.air, gate=gate)
            blob(cv, u, v, rad, rad, -1.0, profile="disk", target=cv.vgate)
            ring = Sketch().ellipse(u, v, rad, rad, 1.0, outline=0.0035)
            ring.render(cv, walls, blur=0.6, gate=gate)
    np.clip(cv.vgate, 0.0, 1.0, out=cv.vgate)


def air_bullae(cv: Canvas, A: Anatomy, f: Finding, sides: list[str], rng: np.random.Generator) -> None:
    if f.multiple:
        air_lucency(cv, A, replace(f, zone="upper"), ["right", "left"], rng, radius=0.04, walls=0.08)


def air_hyperlucent(cv: Canvas, A: Anatomy, f: Finding, sides: list[str], rng: np.random.Generator) -> None:
    for s in sides:
        if f.zone:
            u, v, ru, rv = zone_center(cv, A, s, f.zone, rng)
            blob(cv, u, v, ru * 1.6, rv * 1.6, 0.3, profile="gauss", target=cv.air, gate=cv.gate(s))
            blob(cv, u, v, ru * 1.6, rv * 1.6, -0.7, profile="gauss", target=cv.vgate)
        else:
            cv.air += 0.2 * cv.hemi[s] * (cv.air > 0.3)
            cv.vgate *= 1.0 - 0.6 * cv.hemi[s]
    np.clip(cv.vgate, 0.0, 1.0, out=cv.vgate)


def air_pneumonectomy(cv: Canvas, A: Anatomy, f: Finding, sides: list[str], rng: np.random.Generator) -> None:
    s = sides[0]
    if f.zone is None:
        if cv.view == "lateral":
            cv.air *= 0.55
        else:
            cv.air *= 1.0 - 0.96 * cv.hemi[s]
            cv.vgate *= 1.0 - cv.hemi[s]
        return
    u, v, ru, rv = zone_center(cv, A, s, f.zone, rng)
    blob(cv, u, v, ru * 1.8, rv * 1.6, -0.75, profile="gauss", target=cv.air, gate=cv.gate(s))
    np.clip(cv.air, 0.0, None, out=cv.air)
    staple = [(u - ru, v + rv * 0.6), (u, v + rv * 0.9), (u + ru, v + rv * 0.5)]
    staples(cv, staple, rng)


def air_emphysema_prune(cv: Canvas, A: Anatomy, f: Finding, sides: list[str], rng: np.random.Generator
                         ) -> None:
    if cv.view == "frontal":
        for s in ("right", "left"):
            hu, hv = cv.anchor[f"hilum_{s}"]
            r = 0.12
            w = cv.win(0.0, 1.0, 0.0, 1.0)
            assert w is not None
            dist = np.sqrt((w.u - hu) ** 2 + (w.v - hv) ** 2)
            cv.vgate *= 1.0 - A.vessel_prune * cv.hemi[s] * ramp(dist - r, 0.12)
