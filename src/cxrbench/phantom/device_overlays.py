"""Overlay hooks for devices and surgery (metal-bright shapes).

Shoulder prostheses, spinal fusion, lung sutures and surgical clips, sternotomy wires, valves, pacemakers,
catheters, tubes, stents, monitoring electrodes and leads, and foreign bodies.

Signature ``hook(canvas, anatomy, finding, sides, rng)``; overlay hooks add density in small windows after the
density map is composed.
"""

from __future__ import annotations

import math

import numpy as np

from cxrbench.phantom.anatomy import Anatomy, side_sign
from cxrbench.phantom.canvas import Canvas, Sketch, bezier, blob, rect_pts, staples
from cxrbench.phantom.frontal import spine_u
from cxrbench.phantom.lateral import lat_spine_u
from cxrbench.phantom.placement import instance_count, zone_center, zone_side
from cxrbench.phantom.spec import Finding


def overlay_shoulder_prosthesis(cv: Canvas, A: Anatomy, f: Finding, sides: list[str], rng: np.random.Generator
                            ) -> None:
    for s in sides:
        if cv.view == "lateral":
            g = cv.lat
            hu, hv = g["uc"] + 0.05, A.apex_v + 0.05
        else:
            hu, hv = cv.anchor.get(f"humerus_{s}",
                                   (A.cx + side_sign(s) * (A.thw + A.wall + 0.035), A.apex_v + 0.02))
        sk = Sketch().ellipse(hu, hv, 0.046, 0.05, 1.0)
        sk.poly(rect_pts(hu + side_sign(s) * 0.008, hv + 0.15, 0.011, 0.12), 1.0)
        sk.render(cv, 1.4, blur=0.6)


def overlay_spinal_fusion(cv: Canvas, A: Anatomy, f: Finding, sides: list[str], rng: np.random.Generator) -> None:
    v0 = {"upper": -0.02, "lower": 0.72}.get(f.zone or "", 0.3 + 0.2 * float(rng.random()))
    v1 = v0 + 0.2 + 0.1 * float(rng.random())
    sk = Sketch()
    if cv.view == "frontal":
        for side in (-1, 1):
            pts = [(spine_u(A, vv) + side * 0.024, vv) for vv in np.linspace(v0, v1, 6)]
            sk.line(pts, 0.006, 1.0)
            for vv in np.linspace(v0 + 0.01, v1 - 0.01, 4):
                sk.line([(spine_u(A, vv) + side * 0.03, vv), (spine_u(A, vv) + side * 0.012, vv)], 0.008, 1.0)
    else:
        g = cv.lat
        pts = [(lat_spine_u(A, g, vv) + 0.11, vv) for vv in np.linspace(v0, v1, 6)]
        sk.line(pts, 0.007, 1.0)
        for vv in np.linspace(v0 + 0.01, v1 - 0.01, 4):
            sk.line([(lat_spine_u(A, g, vv) + 0.11, vv), (lat_spine_u(A, g, vv) + 0.03, vv + 0.004)], 0.006, 1.0)
    sk.render(cv, 1.3, blur=0.6)


def overlay_lung_sutures(cv: Canvas, A: Anatomy, f: Finding, sides: list[str], rng: np.random.Generator) -> None:
    for s0 in sides:
        s = zone_side(f.zone, s0)
        u, v, ru, rv = zone_center(cv, A, s, f.zone or "upper", rng)
        a = float(rng.uniform(-0.6, 0.6))
        ln = 0.05 + 0.03 * rng.random()
        path = [(u - ln * math.cos(a), v - ln * math.sin(a)), (u, v + 0.015),
                (u + ln * math.cos(a), v + ln * math.sin(a))]
        staples(cv, path, rng)
        blob(cv, u, v, ru * 0.7, rv * 0.5, 0.06, profile="gauss", gate=cv.gate(s))


def _clip_shape(sk: Sketch, u: float, v: float, size: float, angle: float) -> None:
    ca, sa = math.cos(angle), math.sin(angle)
    a = (u - size * ca, v - size * sa)
    b = (u + size * ca, v + size * sa)
    tip = (u + size * 0.3 * sa + size * ca, v - size * 0.3 * ca + size * sa)
    sk.line([a, b], 0.0035, 1.0)
    sk.line([a, tip], 0.0035, 1.0)


def overlay_surgical_clips(cv: Canvas, A: Anatomy, f: Finding, sides: list[str], rng: np.random.Generator) -> None:
    for s0 in sides:
        s = zone_side(f.zone, s0)
        if f.zone == "apex" and cv.view == "frontal":
            u, v = A.cx + side_sign(s) * 0.06, A.apex_v - 0.02
            ru, rv = 0.025, 0.03
        else:
            u, v, ru, rv = zone_center(cv, A, s, f.zone or str(rng.choice(["hilum", "upper", "middle"])), rng)
        sk = Sketch()
        for _ in range(int(rng.integers(3, 8))):
            _clip_shape(sk, u + float(rng.normal(0, 0.5)) * ru, v + float(rng.normal(0, 0.5)) * rv,
                        0.007 + 0.003 * rng.random(), float(rng.uniform(0, math.pi)))
        sk.render(cv, 1.2, blur=0.5)


def overlay_abdominal_clips(cv: Canvas, A: Anatomy, f: Finding, sides: list[str], rng: np.random.Generator) -> None:
    s = sides[0] if f.side in ("right", "left") else "right"
    if cv.view == "frontal":
        u, v = A.cx + side_sign(s) * 0.45 * A.thw, A.dome_v(s) + A.dome_depth + 0.08
    else:
        g = cv.lat
        u, v = g["ant"] + 0.35 * g["depth"], A.dome_v(s) + 0.1
    sk = Sketch()
    for _ in range(int(rng.integers(3, 7))):
        _clip_shape(sk, u + float(rng.normal(0, 0.02)), v + float(rng.normal(0, 0.015)),
                    0.008 + 0.003 * rng.random(), float(rng.uniform(0, math.pi)))
    sk.render(cv, 1.2, blur=0.5)


def overlay_sternotomy(cv: Canvas, A: Anatomy, f: Finding, sides: list[str], rng: np.random.Generator,
                   clips: bool = True) -> None:
    sk = Sketch()
    if cv.view == "frontal":
        cxm = A.cx + A.med_shift
        v0, v1 = A.apex_v + 0.1, cv.anchor["heart"][1] - 0.02
        for vv in np.linspace(v0, v1, int(rng.integers(5, 8))):
            uu = cxm + float(rng.normal(0, 0.004))
            sk.ellipse(uu, float(vv), 0.013, 0.006, 1.0, angle=float(rng.normal(0, 0.1)), outline=0.0035)
            sk.line([(uu - 0.003, float(vv) - 0.007), (uu + 0.003, float(vv) + 0.007)], 0.0035, 1.0)
        if clips:
            lu, lv = cv.anchor["lv_border"]
            for i in range(int(rng.integers(2, 6))):
                _clip_shape(sk, lu - 0.03 + float(rng.normal(0, 0.015)), lv - 0.12 + 0.035 * i,
                            0.006, float(rng.uniform(0, math.pi)))
    else:
        (u0, v0), (u1, v1) = cv.anchor["sternum_top"], cv.anchor["sternum_bottom"]
        for t in np.linspace(0.1, 0.85, int(rng.integers(5, 8))):
            uu, vv = u0 + t * (u1 - u0), v0 + t * (v1 - v0)
            sk.ellipse(uu + 0.003, vv, 0.009, 0.004, 1.0, outline=0.0035)
    sk.render(cv, 1.3, blur=0.5)


def overlay_valve(cv: Canvas, A: Anatomy, f: Finding, sides: list[str], rng: np.random.Generator) -> None:
    hu, hv = cv.anchor["heart"]
    u, v = (hu - 0.03, hv - 0.05) if cv.view == "frontal" else (hu + 0.03, hv - 0.06)
    sk = Sketch().ellipse(u, v, 0.022, 0.012, 1.0, angle=0.6, outline=0.006)
    for t in (0.0, 2.1, 4.2):
        sk.line([(u + 0.02 * math.cos(t), v + 0.011 * math.sin(t)), (u + 0.02 * math.cos(t), v - 0.02)], 0.003, 1.0)
    sk.render(cv, 1.2, blur=0.5)
    overlay_sternotomy(cv, A, f, sides, rng, clips=False)


def _lead_path(cv: Canvas, start: tuple[float, float], end: tuple[float, float], rng: np.random.Generator
               ) -> list[tuple[float, float]]:
    su, sv = cv.anchor["svc"]
    ra = cv.anchor["ra"]
    mid = (su + float(rng.normal(0, 0.005)), sv - 0.02)
    first = bezier(start, (start[0] * 0.5 + su * 0.5, start[1] - 0.05), mid, k=12)
    second = bezier(mid, (ra[0] - 0.01, ra[1] + 0.02), end, k=12)
    return first + second[1:]


def overlay_pacemaker(cv: Canvas, A: Anatomy, f: Finding, sides: list[str], rng: np.random.Generator) -> None:
    s = sides[0]
    if cv.view == "frontal":
        cu, cvv = cv.anchor[f"clavicle_lat_{s}"]
        gu, gv = cu - side_sign(s) * 0.02, cvv + 0.065
        box = rect_pts(gu, gv, 0.04, 0.028, angle=float(rng.normal(0, 0.2)))
    else:
        g = cv.lat
        gu, gv = g["ant"] + 0.02, A.apex_v + 0.1
        box = rect_pts(gu, gv, 0.012, 0.03, angle=0.2)
    sk = Sketch().poly(box, 1.0)
    leads = Sketch()
    targets = [cv.anchor["rv_apex"], cv.anchor["ra"]][: int(rng.integers(1, 3))]
    for i, end in enumerate(targets):
        end = (end[0] + float(rng.normal(0, 0.006)), end[1] + float(rng.normal(0, 0.006)))
        leads.line(_lead_path(cv, (gu + 0.006 * i, gv - 0.01), end, rng), 0.0045, 1.0)
        leads.ellipse(end[0], end[1], 0.005, 0.005, 1.0)
    leads.render(cv, 1.0, blur=0.5)
    sk.render(cv, 1.8, blur=0.6)


def overlay_catheter(cv: Canvas, A: Anatomy, f: Finding, sides: list[str], rng: np.random.Generator) -> None:
    s = sides[0]
    sg = side_sign(s)
    su, sv = cv.anchor["svc"]
    tip = (su + float(rng.normal(0, 0.004)), sv + 0.01 + float(rng.uniform(0, 0.05)))
    sk = Sketch()
    if cv.view == "lateral":
        g = cv.lat
        path = bezier((g["uc"] - 0.06, -0.01), (g["uc"] - 0.06, A.apex_v + 0.05), tip, k=16)
        sk.line(path, 0.005, 1.0)
        sk.render(cv, 0.8, blur=0.5)
        return
    route = int(rng.integers(0, 4))
    if route == 0:     # internal jugular
        start = (A.cx + sg * 0.06, -0.01)
        path = bezier(start, (A.cx + sg * 0.05, A.apex_v + 0.05), tip, k=16)
    elif route == 1:   # subclavian
        cu, cvv = cv.anchor[f"clavicle_lat_{s}"]
        start = (cu + sg * 0.05, cvv + 0.02)
        path = bezier(start, (A.cx + sg * 0.08, cvv + 0.03), (su + sg * 0.01, sv - 0.06), tip, k=18)
    elif route == 2:   # PICC from the arm
        start = (A.cx + sg * (A.thw + A.wall + 0.08), A.apex_v + 0.12)
        path = bezier(start, (A.cx + sg * (A.thw * 0.7), A.apex_v + 0.03), (su + sg * 0.02, sv - 0.07), tip, k=20)
    else:              # chest port
        cu, cvv = cv.anchor[f"clavicle_{s}"]
        port = (cu, cvv + 0.075)
        sk.ellipse(port[0], port[1], 0.016, 0.014, 1.0, outline=0.005)
        sk.ellipse(port[0], port[1], 0.006, 0.005, 0.8)
        path = bezier(port, (A.cx + sg * 0.07, cvv - 0.05), (su, sv - 0.08), tip, k=18)
    sk.line(path, 0.0055, 1.0)
    sk.render(cv, 0.85, blur=0.5)


def overlay_tube(cv: Canvas, A: Anatomy, f: Finding, sides: list[str], rng: np.random.Generator) -> None:
    tu, tv = cv.anchor["trachea_top"]
    cu, cvv = cv.anchor["carina"]
    end = (cu + 0.002, cvv - 0.045 - 0.02 * float(rng.random()))
    sk = Sketch()
    ett = bezier((tu, -0.01), ((tu + end[0]) / 2, A.apex_v), end, k=10)
    sk.line(ett, 0.0035, 1.0)
    # enteric tube: down the oesophagus behind the heart into the stomach
    gu, gv = cv.anchor["stomach"]
    if cv.view == "frontal":
        eso = [(A.cx - 0.012, -0.01), (A.cx - 0.005, A.apex_v + 0.2), (A.cx + 0.015, A.dome_v("left") - 0.03),
               (gu - 0.03, gv + 0.01), (gu + 0.01, gv + 0.03)]
    else:
        g = cv.lat
        eso = [(tu + 0.03, -0.01), (g["uc"] + 0.04, A.apex_v + 0.25), (g["uc"] + 0.03, A.dome_v("left") - 0.04),
               (gu, gv + 0.02)]
    sk.line(eso, 0.0045, 0.85)
    sk.render(cv, 0.95, blur=0.5)


def overlay_stent(cv: Canvas, A: Anatomy, f: Finding, sides: list[str], rng: np.random.Generator) -> None:
    if f.zone == "retrocardiac":
        if cv.view == "frontal":
            ku, kv = cv.anchor["knob"]
            center, length, radius, angle = (ku - 0.005, kv + 0.12), 0.09, 0.014, math.pi / 2
        else:
            g = cv.lat
            center, length, radius, angle = (lat_spine_u(A, g, 0.5) - 0.02, 0.5), 0.1, 0.014, math.pi / 2
    else:
        hu, hv = cv.anchor["heart"]
        center, length, radius, angle = (hu + float(rng.normal(0, 0.02)), hv - 0.04), 0.03, 0.005, \
            float(rng.uniform(0.3, 1.2))
    ca, sa = math.cos(angle), math.sin(angle)
    sk = Sketch()
    zig = []
    for i in range(13):
        t = -length / 2 + length * i / 12
        side = radius * (1 if i % 2 else -1)
        zig.append((center[0] + t * ca - side * sa, center[1] + t * sa + side * ca))
    sk.line(zig, 0.0025, 1.0)
    for side in (-1, 1):
        sk.line([(center[0] - length / 2 * ca - side * radius * sa, center[1] - length / 2 * sa + side * radius * ca),
                 (center[0] + length / 2 * ca - side * radius * sa, center[1] + length / 2 * sa + side * radius * ca)],
                0.0022, 0.8)
    sk.render(cv, 1.0, blur=0.5)


def overlay_medical_device(cv: Canvas, A: Anatomy, f: Finding, sides: list[str], rng: np.random.Generator) -> None:
    sk = Sketch()
    for _ in range(int(rng.integers(3, 6))):
        if cv.view == "frontal":
            u = A.cx + float(rng.uniform(-1.0, 1.0)) * A.thw * 0.9
            v = float(rng.uniform(A.apex_v, A.dome_v("left") + 0.05))
        else:
            g = cv.lat
            u, v = g["ant"] + float(rng.uniform(-0.02, 0.1)), float(rng.uniform(A.apex_v + 0.05, 0.75))
        sk.ellipse(u, v, 0.009, 0.009, 1.0, outline=0.0025)
        sk.ellipse(u, v, 0.003, 0.003, 1.0)
        end = (float(rng.choice([-0.02, 1.02])), v + float(rng.uniform(-0.2, 0.2)))
        sk.line(bezier((u, v), ((u + end[0]) / 2, v + float(rng.uniform(-0.1, 0.1))), end, k=10), 0.0025, 0.6)
    sk.render(cv, 0.7, blur=0.5)


def overlay_foreign_body(cv: Canvas, A: Anatomy, f: Finding, sides: list[str], rng: np.random.Generator) -> None:
    for s0 in sides:
        s = zone_side(f.zone, s0)
        u, v, ru, rv = zone_center(cv, A, s, f.zone, rng)
        sk = Sketch()
        for _ in range(instance_count(f, rng, 2, 5)):
            cu, cvv = u + float(rng.normal(0, 0.4)) * ru, v + float(rng.normal(0, 0.4)) * rv
            r = 0.006 + 0.009 * rng.random()
            pts = [(cu + r * (0.6 + 0.6 * rng.random()) * math.cos(t), cvv + r * (0.6 + 0.6 * rng.random()) * math.sin(t))
                   for t in np.linspace(0, 2 * math.pi, 7)[:-1]]
            sk.poly(pts, 1.0)
        sk.render(cv, 1.6, blur=0.4)
