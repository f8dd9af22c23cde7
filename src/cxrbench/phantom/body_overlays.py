"""Overlay hooks outside the lung fields: mediastinum, heart, diaphragm, chest wall and bones.

Aortic calcification, hiatal hernia, free air under the diaphragm, subcutaneous emphysema, epicardial fat, the
azygos fissure, nipples, breast implants, rib and clavicle fractures, pectus, and the lateral signs of an
enlarged pulmonary artery and of a wide mediastinum.

Signature ``hook(canvas, anatomy, finding, sides, rng)``; overlay hooks add density in small windows after the
density map is composed.
"""

from __future__ import annotations

import math

import numpy as np

from cxrbench.phantom.anatomy import Anatomy, severity_factor, side_sign
from cxrbench.phantom.canvas import Canvas, Sketch, bezier, blob, ellipse_r2, ramp
from cxrbench.phantom.frontal import dome_curve
from cxrbench.phantom.placement import instance_count
from cxrbench.phantom.spec import Finding


def overlay_aortic_calcification(cv: Canvas, A: Anatomy, f: Finding, sides: list[str], rng: np.random.Generator
                             ) -> None:
    ku, kv = cv.anchor["knob"]
    r = A.knob_r * 1.05 + 0.004
    k = severity_factor(f, 0.7)
    sk = Sketch()
    if cv.view == "frontal":
        arc = [(ku + r * math.cos(t), kv + r * math.sin(t)) for t in np.linspace(-2.3, 0.4, 10)]
        sk.line(arc, 0.0045 + 0.002 * k, 1.0)
        for _ in range(int(2 + 3 * k)):
            vv = kv + float(rng.uniform(0.05, 0.25))
            sk.ellipse(ku + r * 0.6 + float(rng.normal(0, 0.004)), vv, 0.003, 0.006, 1.0)
    else:
        arc = [(ku + 0.05 * math.cos(t), kv + 0.05 * math.sin(t)) for t in np.linspace(-2.8, -0.4, 10)]
        sk.line(arc, 0.005, 1.0)
    sk.render(cv, 0.55 + 0.3 * k, blur=0.6)


def overlay_hiatal_hernia(cv: Canvas, A: Anatomy, f: Finding, sides: list[str], rng: np.random.Generator) -> None:
    k = severity_factor(f, 0.75)
    r = 0.03 + 0.035 * k
    if cv.view == "frontal":
        u, v = A.cx + 0.015, 0.5 * (A.dome_v("right") + A.dome_v("left")) - 0.01 - r * 0.6
    else:
        g = cv.lat
        u, v = g["uc"] + 0.1 * g["depth"], A.dome_v("left") - r * 0.7
    blob(cv, u, v, r * 1.15, r, 0.1, profile="ball")
    level = v - 0.1 * r
    w = cv.win(u - r, u + r, v - r, level)
    if w is not None:
        gas = np.sqrt(np.clip(1.0 - ellipse_r2(w, u, v, r * 1.05, r * 0.92), 0.0, 1.0))
        gas *= ramp(level - w.v, 1.5 * cv.px)
        cv.D[w.idx] -= 0.45 * gas


def overlay_pneumoperitoneum(cv: Canvas, A: Anatomy, f: Finding, sides: list[str], rng: np.random.Generator
                         ) -> None:
    k = severity_factor(f, 0.75)
    chosen = sides if f.side else ["right", "left"]
    for s in chosen:
        if cv.view == "lateral":
            g = cv.lat
            blob(cv, g["ant"] + 0.2 * g["depth"], A.dome_v(s) + 0.02, 0.08, 0.015, -0.3)
            continue
        sg = side_sign(s)
        u0, u1 = A.cx + sg * 0.05, A.cx + sg * A.thw * 0.95
        w = cv.win(min(u0, u1), max(u0, u1), A.dome_v(s) - 0.02, A.dome_v(s) + A.dome_depth + 0.06)
        if w is None:
            continue
        dome = dome_curve(A, s, w.u) + 0.009
        rel = np.clip(sg * (w.u - A.cx) / A.thw, 0.0, 1.0)
        x = np.clip((rel - 0.1) / 0.85, 0.0, 1.0)
        thick = (0.012 + 0.02 * k) * 4.0 * x * (1.0 - x)
        crescent = ramp(w.v - dome, 1.5 * cv.px) * ramp(dome + thick - w.v, 1.5 * cv.px)
        cv.D[w.idx] -= 0.55 * crescent


def overlay_subcutaneous(cv: Canvas, A: Anatomy, f: Finding, sides: list[str], rng: np.random.Generator) -> None:
    chosen = sides if f.side else ["right", "left"]
    for s in chosen:
        sk = Sketch()
        for _ in range(int(18 + 14 * severity_factor(f))):
            if cv.view == "frontal":
                sg = side_sign(s)
                u = A.cx + sg * (A.thw + float(rng.uniform(0.0, A.wall * 0.9 + 0.01)))
                v = float(rng.uniform(A.apex_v - 0.05, A.dome_v(s)))
            else:
                g = cv.lat
                u = g["ant"] - float(rng.uniform(0.0, 0.03))
                v = float(rng.uniform(A.apex_v, 0.7))
            a = float(rng.uniform(1.2, 1.9))
            ln = 0.006 + 0.02 * rng.random()
            sk.line([(u, v), (u + ln * math.cos(a), v + ln * math.sin(a))], 0.004, 1.0)
        sk.render(cv, -0.35, blur=0.6)


def overlay_epicardial_fat(cv: Canvas, A: Anatomy, f: Finding, sides: list[str], rng: np.random.Generator) -> None:
    chosen = sides if f.side in ("right", "left") else ["left"] if f.side is None else ["right", "left"]
    for s in chosen:
        if cv.view == "lateral":
            hu, hv = cv.anchor["heart"]
            blob(cv, hu - 0.08, 0.5 * (A.dome_v("left") + A.dome_v("right")) - 0.02, 0.05, 0.04, 0.12,
                  profile="ball")
            continue
        sg = side_sign(s)
        h = cv.anchor["lv_border"] if s == "left" else cv.anchor["ra"]
        u = h[0] + sg * 0.03 if s == "left" else cv.anchor["ra"][0] - 0.04
        v = 0.5 * (A.dome_v(s) + h[1]) + 0.02
        blob(cv, u, v, 0.06, 0.05, 0.2, profile="ball", gate=cv.gate(s))


def overlay_azygos(cv: Canvas, A: Anatomy, f: Finding, sides: list[str], rng: np.random.Generator) -> None:
    if cv.view != "frontal":
        return
    cu, cvv = cv.anchor["carina"]
    start = (A.cx - A.thw * 0.45, A.apex_v + 0.01)
    end = (cu - A.med_w - 0.012, cvv - 0.03)
    Sketch().line(bezier(start, (start[0] + 0.02, cvv - 0.09), end), 0.0035, 1.0).render(cv, 0.24, blur=0.7)
    blob(cv, end[0], end[1], 0.011, 0.016, 0.3, profile="ball")


def overlay_nipples(cv: Canvas, A: Anatomy, f: Finding, sides: list[str], rng: np.random.Generator) -> None:
    chosen = sides if f.side else ["right", "left"]
    for s in chosen:
        if cv.view == "lateral":
            continue
        u = A.cx + side_sign(s) * (0.55 * A.thw + float(rng.uniform(-0.02, 0.02)))
        v = A.dome_v(s) - 0.07 + float(rng.uniform(-0.02, 0.02))
        blob(cv, u, v, 0.015, 0.014, 0.32, profile="ball")


def overlay_breast_implants(cv: Canvas, A: Anatomy, f: Finding, sides: list[str], rng: np.random.Generator
                        ) -> None:
    chosen = sides if f.side else ["right", "left"]
    for s in chosen:
        if cv.view == "lateral":
            g = cv.lat
            blob(cv, g["ant"] - 0.03, A.dome_v(s) - 0.1, 0.045, 0.08, 0.3, profile="ball")
            continue
        u, v = A.cx + side_sign(s) * 0.6 * A.thw, A.dome_v(s) - 0.1
        blob(cv, u, v, 0.11, 0.095, 0.34, profile="ball")
        Sketch().ellipse(u, v, 0.11, 0.095, 1.0, outline=0.003).render(
            cv, 0.35 if f.calcified else 0.12, blur=0.8)


def overlay_rib_fracture(cv: Canvas, A: Anatomy, f: Finding, sides: list[str], rng: np.random.Generator) -> None:
    if cv.view != "frontal":
        return
    for s in sides:
        sg = side_sign(s)
        for _ in range(instance_count(f, rng, 2, 4)):
            t = float(rng.uniform(0.62, 0.92))
            u = A.cx + sg * t * A.thw
            v = A.apex_v + float(rng.uniform(0.2, 0.75)) * (A.dome_v(s) - A.apex_v)
            # find the rib centre near (u, v): the column of the rib layer with the largest value
            w = cv.win(u - 0.003, u + 0.003, v - 0.06, v + 0.06)
            if w is None:
                continue
            col = cv.ribs[w.idx].mean(axis=1)
            if col.max() <= 0:
                continue
            v = float(cv.c[w.rows][int(np.argmax(col))])
            gap = cv.win(u - 0.006, u + 0.006, v - 0.03, v + 0.03)
            if gap is None:
                continue
            cut = np.clip(1.0 - np.abs(gap.u - u) / 0.0045, 0.0, 1.0)
            cv.D[gap.idx] -= cv.ribs[gap.idx] * cut * 0.95
            blob(cv, u + sg * 0.005, v + 0.004, 0.018, 0.02, 0.22, profile="gauss")


def overlay_clavicle_fracture(cv: Canvas, A: Anatomy, f: Finding, sides: list[str], rng: np.random.Generator
                          ) -> None:
    if cv.view != "frontal":
        return
    for s in sides:
        u, v = cv.anchor[f"clavicle_{s}"]
        w = cv.win(u - 0.007, u + 0.007, v - 0.03, v + 0.03)
        if w is None:
            continue
        cut = np.clip(1.0 - np.abs(w.u - u) / 0.005, 0.0, 1.0)
        cv.D[w.idx] -= cv.bones[w.idx] * cut * 0.9
        # displaced lateral fragment overlapping the medial one, with callus
        frag = Sketch().line([(u - side_sign(s) * 0.006, v + 0.016), (u + side_sign(s) * 0.05, v + 0.008)],
                             0.016, 1.0)
        frag.render(cv, 0.28, blur=0.8)
        blob(cv, u + side_sign(s) * 0.006, v + 0.008, 0.022, 0.018, 0.14, profile="gauss")


def overlay_pectus(cv: Canvas, A: Anatomy, f: Finding, sides: list[str], rng: np.random.Generator) -> None:
    if cv.view == "frontal":
        ru, rv = cv.anchor["ra"]
        blob(cv, ru - 0.02, rv + 0.02, 0.05, 0.06, 0.12, profile="gauss", gate=cv.gate("right"))
    else:
        u1, v1 = cv.anchor["sternum_bottom"]
        blob(cv, u1 + 0.02, v1 - 0.06, 0.035, 0.09, 0.2, profile="ball")


def overlay_pulmonary_artery_lateral(cv: Canvas, A: Anatomy, f: Finding, sides: list[str],
                                 rng: np.random.Generator) -> None:
    """Lateral view: an enlarged pulmonary trunk/right pulmonary artery anterior to the hilum."""
    if cv.view == "lateral":
        hu, hv = cv.anchor["hilum_right"]
        blob(cv, hu - 0.025, hv - 0.015, 0.035 + 0.01 * severity_factor(f), 0.04, 0.22, profile="ball")


def overlay_mediastinum_lateral(cv: Canvas, A: Anatomy, f: Finding, sides: list[str], rng: np.random.Generator
                            ) -> None:
    """Lateral view: soft tissue filling the retrosternal space (the frontal view widens the mediastinum)."""
    if cv.view == "lateral":
        g = cv.lat
        blob(cv, g["ant"] + 0.11, A.apex_v + 0.2, 0.08, 0.11, 0.2 * severity_factor(f), profile="gauss",
             gate=cv.gate(None))
