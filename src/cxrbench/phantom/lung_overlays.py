"""Overlay hooks for the lungs, pleura and hila.

Airspace opacities, atelectasis, nodules and masses, granulomas and calcified nodes, interstitial lines,
oedema and congestion, pleural thickening, hilar enlargement, scarring and cavities.

Signature ``hook(canvas, anatomy, finding, sides, rng)``; overlay hooks add density in small windows after the
density map is composed.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from cxrbench.phantom.anatomy import Anatomy, severity_factor, side_sign
from cxrbench.phantom.canvas import (
    Canvas,
    Sketch,
    bezier,
    blob,
    ellipse_r2,
    expneg,
    lowfreq,
    smooth,
    wobble,
)
from cxrbench.phantom.placement import instance_count, resolve_sides, zone_center, zone_side
from cxrbench.phantom.spec import Finding

_AIRSPACE_STYLE = {
    # kind: (blobs, blob scale, amplitude, texture lo, sharpen, streaks, bronchograms)
    "opacity": (5, 0.6, 0.42, 0.45, 0.0, 0, False),
    "airspace_disease": (7, 0.62, 0.45, 0.55, 0.0, 0, True),
    "consolidation": (5, 0.8, 0.5, 0.85, 2.2, 0, True),
    "pneumonia": (6, 0.7, 0.5, 0.6, 2.5, 0, True),
    "infiltrate": (4, 0.55, 0.3, 0.4, 0.0, 10, False),
    "density": (2, 0.5, 0.48, 0.8, 3.0, 0, False),
}


def overlay_airspace(cv: Canvas, A: Anatomy, f: Finding, sides: list[str], rng: np.random.Generator) -> None:
    blobs, scale, amp, tex_lo, sharpen, streaks, bronch = _AIRSPACE_STYLE[f.kind]
    k = severity_factor(f, 0.75)
    for s0 in sides:
        s = zone_side(f.zone, s0)
        zones = [f.zone]
        if f.multiple and f.zone is None:
            zones = [None] * int(rng.integers(2, 4))
        for zone in zones:
            u, v, ru, rv = zone_center(cv, A, s, zone, rng)
            if f.kind == "density":
                ru, rv = ru * 0.6, rv * 0.6
            if f.kind in ("consolidation", "pneumonia") and not f.multiple:
                _lobar_patch(cv, A, s, zone, u, v, rv, amp * (0.6 + 0.5 * k), rng)
                if f.kind == "consolidation":
                    continue
                amp *= 0.55
            _airspace_patch(cv, A, s, u, v, ru * (0.8 + 0.4 * k), rv * (0.8 + 0.4 * k), rng, blobs, scale,
                            amp * (0.6 + 0.5 * k), tex_lo, sharpen, streaks, bronch)


def _lobar_patch(cv: Canvas, A: Anatomy, side: str, zone: str | None, u: float, v: float, rv: float,
                 amp: float, rng: np.random.Generator) -> None:
    """Lobar consolidation: fills the zone's band of the lung; an upper lobe stops at a sharp fissure."""
    zone = zone or "lower"
    top = A.apex_v - 0.02
    bottom = max(A.dome_v("left"), A.dome_v("right")) + A.dome_depth + 0.02
    if zone in ("upper", "apex"):
        v0, v1, e0, e1 = top, v + rv * 1.6, 0.03, 0.006
    elif zone in ("lower", "base", "retrocardiac"):
        v0, v1, e0, e1 = v - rv * 1.6, bottom, 0.05, 0.03
    else:
        v0, v1, e0, e1 = v - rv * 1.3, v + rv * 1.5, 0.04, 0.01
    if cv.view == "frontal":
        sg = side_sign(side)
        u0, u1 = A.cx + sg * A.med_w * 0.5, A.cx + sg * A.thw * 1.05
        if zone in ("middle", "lingula"):
            u1 = A.cx + sg * A.thw * 0.75
    else:
        u0, u1 = cv.lat["ant"], cv.lat["post"]
        if zone in ("lower", "base", "retrocardiac"):
            u0 = cv.lat["uc"] - 0.05
        elif zone in ("middle", "lingula"):
            u1 = cv.lat["uc"] + 0.02
    w = cv.win(min(u0, u1), max(u0, u1), v0 - e0, v1 + e1)
    if w is None:
        return
    band = smooth((w.v - v0) / e0 + 0.5) * smooth((v1 - w.v) / e1 + 0.5)
    lo_u, hi_u = min(u0, u1), max(u0, u1)
    band = band * smooth((w.u - lo_u) / 0.05) * smooth((hi_u - w.u) / 0.05)
    tex = lowfreq(rng, 6, band.shape[0], band.shape[1], 0.55)
    cv.D[w.idx] += amp * band * tex * cv.gate(side)[w.idx]


def _airspace_patch(cv: Canvas, A: Anatomy, side: str, u: float, v: float, ru: float, rv: float,
                    rng: np.random.Generator, blobs: int, scale: float, amp: float, tex_lo: float,
                    sharpen: float, streaks: int, bronch: bool) -> None:
    w = cv.win(u - 1.7 * ru, u + 1.7 * ru, v - 1.7 * rv, v + 1.7 * rv)
    if w is None:
        return
    field = np.zeros((w.rows.stop - w.rows.start, w.cols.stop - w.cols.start), np.float32)
    for _ in range(blobs):
        bu = u + float(rng.normal(0, 0.45)) * ru
        bv = v + float(rng.normal(0, 0.45)) * rv
        br = scale * (0.6 + 0.6 * rng.random())
        field += expneg(2.0 * ellipse_r2(w, bu, bv, br * ru, br * rv, float(rng.uniform(-0.5, 0.5))))
    field = np.minimum(field, 1.4) / 1.4
    field *= lowfreq(rng, 7, field.shape[0], field.shape[1], tex_lo)
    if sharpen:
        field = smooth((field - 0.25) * sharpen + 0.5 * (sharpen < 3))
    gate = cv.gate(side)[w.idx]
    cv.D[w.idx] += amp * field * gate
    if streaks:
        sk = Sketch()
        for _ in range(streaks):
            a = float(rng.uniform(-0.6, 0.6)) + (0.9 if rng.random() < 0.5 else 0.0)
            cu, cvv = u + float(rng.normal(0, 0.5)) * ru, v + float(rng.normal(0, 0.5)) * rv
            ln = float(rng.uniform(0.4, 0.9)) * ru
            sk.line(wobble([(cu - ln * math.cos(a), cvv - ln * math.sin(a)), (cu, cvv),
                             (cu + ln * math.cos(a), cvv + ln * math.sin(a))], rng, 0.003), 0.0045, 1.0)
        sk.render(cv, 0.2, blur=1.2, gate=cv.gate(side))
    if bronch:
        sk = Sketch()
        for _ in range(3):
            a = float(rng.uniform(0, 2 * math.pi))
            pts = [(u + t * ru * 0.8 * math.cos(a) + float(rng.normal(0, 0.004)),
                    v + t * rv * 0.8 * math.sin(a) + float(rng.normal(0, 0.004))) for t in (-0.5, 0.0, 0.5, 0.9)]
            sk.line(pts, 0.005, 1.0)
        sk.render(cv, -0.35 * amp, blur=1.0, gate=cv.gate(side) * 1.0)


def overlay_atelectasis(cv: Canvas, A: Anatomy, f: Finding, sides: list[str], rng: np.random.Generator) -> None:
    k = severity_factor(f, 0.7)
    for s0 in sides:
        s = zone_side(f.zone, s0)
        u, v, ru, rv = zone_center(cv, A, s, f.zone or "base", rng)
        sk = Sketch()
        for i in range(instance_count(f, rng, 2, 3) + (1 if k > 0.9 else 0)):
            a = float(rng.uniform(-0.25, 0.25)) + (0.25 * side_sign(s) if cv.view == "frontal" else 0.3)
            cu, cvv = u + float(rng.normal(0, 0.2)) * ru, v + (i - 0.5) * 0.035 + float(rng.normal(0, 0.01))
            ln = ru * (0.7 + 0.4 * rng.random())
            pts = bezier((cu - ln * math.cos(a), cvv - ln * math.sin(a)), (cu, cvv + 0.012),
                          (cu + ln * math.cos(a), cvv + ln * math.sin(a)), k=8)
            sk.line(wobble(pts, rng, 0.0015), 0.008 + 0.006 * k, 1.0)
        sk.render(cv, 0.26 + 0.1 * k, blur=2.2, gate=cv.gate(s))
        blob(cv, u, v, ru * 0.9, rv * 0.6, 0.08 * k, profile="gauss", gate=cv.gate(s))


def _nodule(cv: Canvas, A: Anatomy, side: str, u: float, v: float, r: float, amp: float, calcified: bool,
            rng: np.random.Generator, lobulated: bool = False) -> None:
    gate = cv.gate(side)
    if calcified:
        blob(cv, u, v, r, r * (0.85 + 0.3 * rng.random()), amp, profile="disk", gate=np.maximum(gate, 0.6))
        return
    if lobulated:
        for _ in range(3):
            blob(cv, u + float(rng.normal(0, 0.3)) * r, v + float(rng.normal(0, 0.3)) * r,
                  r * (0.6 + 0.3 * rng.random()), None, amp * 0.55, profile="ball", gate=gate)
    blob(cv, u, v, r, r * (0.9 + 0.2 * rng.random()), amp, profile="ball", gate=gate)


def overlay_nodule(cv: Canvas, A: Anatomy, f: Finding, sides: list[str], rng: np.random.Generator) -> None:
    kind = f.kind
    size = {"nodule": 0.017, "mass": 0.05, "granuloma": 0.011}[kind]
    if kind == "granuloma" and f.calcified:
        size = 0.0095
    if f.severity in ("small", "mild"):
        size *= 0.8
    elif f.severity in ("large", "severe"):
        size *= 1.3
    amp = 0.95 if f.calcified else {"nodule": 0.34, "mass": 0.42, "granuloma": 0.42}[kind]
    for s0 in sides:
        s = zone_side(f.zone, s0)
        count = instance_count(f, rng, 3, 7)
        for i in range(count):
            zone = f.zone
            if f.multiple and f.zone is None:
                zone = str(rng.choice(["upper", "middle", "lower", "hilum"]))
            u, v, ru, rv = zone_center(cv, A, s, zone, rng)
            if i or f.multiple:
                u += float(rng.uniform(-0.9, 0.9)) * ru
                v += float(rng.uniform(-0.9, 0.9)) * rv
            rr = size * (0.8 + 0.4 * rng.random())
            _nodule(cv, A, s, u, v, rr, amp, f.calcified, rng, lobulated=kind == "mass")


def overlay_granulomatous(cv: Canvas, A: Anatomy, f: Finding, sides: list[str], rng: np.random.Generator) -> None:
    chosen = sides if f.side else ["right", "left"]
    for s in chosen:
        for _ in range(int(rng.integers(3, 7))):
            zone = str(rng.choice(["apex", "upper", "upper", "middle", "lower"]))
            u, v, ru, rv = zone_center(cv, A, zone_side(zone, s), zone, rng)
            u += float(rng.uniform(-0.8, 0.8)) * ru
            _nodule(cv, A, s, u, v, 0.006 + 0.004 * rng.random(), 0.85, True, rng)
        hu, hv = cv.anchor[f"hilum_{s}"]
        for _ in range(2):
            _nodule(cv, A, s, hu + float(rng.normal(0, 0.01)), hv + float(rng.normal(0, 0.015)),
                    0.007 + 0.004 * rng.random(), 0.8, True, rng)


def overlay_calcified_nodes(cv: Canvas, A: Anatomy, f: Finding, sides: list[str], rng: np.random.Generator
                        ) -> None:
    if f.zone == "hilum":
        spots = [cv.anchor[f"hilum_{s}"] for s in sides]
    else:
        cu, cvv = cv.anchor["carina"]
        spots = [(cu - 0.035, cvv - 0.05), (cu + 0.005, cvv + 0.04)] if cv.view == "frontal" else \
                [(cu, cvv - 0.02), (cu + 0.02, cvv + 0.03)]
        if f.side == "right":
            spots = spots[:1]
    for su, sv in spots:
        for _ in range(int(rng.integers(2, 5))):
            u, v = su + float(rng.normal(0, 0.008)), sv + float(rng.normal(0, 0.012))
            r = 0.005 + 0.005 * rng.random()
            blob(cv, u, v, r, r * (0.7 + 0.6 * rng.random()), 0.85, profile="disk",
                  angle=float(rng.uniform(0, 3)))


def overlay_reticular(cv: Canvas, A: Anatomy, f: Finding, sides: list[str], rng: np.random.Generator) -> None:
    """Interstitial lines: fine reticulation for markings, coarse peripheral honeycombing for fibrosis."""
    fibrosis = f.kind == "interstitial_fibrosis"
    k = severity_factor(f, 0.75)
    chosen = sides if f.side else ["right", "left"]
    for s0 in chosen:
        s = zone_side(f.zone, s0)
        zones = [f.zone] if f.zone else (["lower", "base", "middle"] if fibrosis else ["upper", "middle", "lower"])
        sk = Sketch()
        for zone in zones:
            u, v, ru, rv = zone_center(cv, A, s, zone, rng)
            if fibrosis and cv.view == "frontal":
                lat = float(cv.lung_rows[s][1][min(cv.n - 1, int(v * cv.n))])
                u = 0.5 * (u + lat) - side_sign(s) * 0.01
            for _ in range(int((18 if fibrosis else 24) * (0.6 + 0.6 * k))):
                cu = u + float(rng.normal(0, 0.75)) * ru
                cvv = v + float(rng.normal(0, 0.75)) * rv
                if fibrosis and rng.random() < 0.55:
                    rr = 0.006 + 0.006 * rng.random()
                    sk.ellipse(cu, cvv, rr, rr * (0.8 + 0.4 * rng.random()), 1.0, outline=0.003)
                    continue
                a = float(rng.uniform(0, math.pi))
                ln = 0.008 + 0.018 * rng.random()
                sk.line([(cu - ln * math.cos(a), cvv - ln * math.sin(a)), (cu + ln * math.cos(a),
                                                                          cvv + ln * math.sin(a))], 0.003, 1.0)
        sk.render(cv, (0.24 if fibrosis else 0.17) * (0.6 + 0.6 * k), blur=0.9, gate=cv.gate(s))
        if fibrosis:
            u, v, ru, rv = zone_center(cv, A, s, zones[0], rng)
            blob(cv, u, v, ru * 1.4, rv * 1.4, 0.06 * k, profile="gauss", gate=cv.gate(s))


def overlay_edema(cv: Canvas, A: Anatomy, f: Finding, sides: list[str], rng: np.random.Generator) -> None:
    k = severity_factor(f, 0.75)
    for s in ("right", "left"):
        hu, hv = cv.anchor[f"hilum_{s}"]
        sg = side_sign(s) if cv.view == "frontal" else 0.0
        blob(cv, hu + sg * 0.05, hv + 0.01, 0.1, 0.13, 0.22 * (0.6 + 0.6 * k), profile="gauss", gate=cv.gate(s),
              texture=lowfreq(rng, 5, 64, 64, 0.5))
        if cv.view == "frontal":
            # Kerley B lines: short horizontal lines at the lateral lung bases
            med, lat = cv.lung_rows[s]
            sk = Sketch()
            for i in range(int(rng.integers(4, 8))):
                vv = A.dome_v(s) - 0.02 - 0.016 * i - float(rng.uniform(0, 0.008))
                lu = float(lat[min(cv.n - 1, int(vv * cv.n))])
                ln = 0.012 + 0.012 * rng.random()
                sk.line([(lu - sg * 0.002, vv), (lu - sg * (0.002 + ln), vv + float(rng.normal(0, 0.002)))],
                        0.003, 1.0)
            sk.render(cv, 0.18, blur=0.7, gate=cv.gate(s))
    if cv.view == "lateral":
        overlay_reticular(cv, A, replace(f, kind="increased_markings", zone=None), ["right", "left"], rng)


def overlay_congestion(cv: Canvas, A: Anatomy, f: Finding, sides: list[str], rng: np.random.Generator) -> None:
    for s in ("right", "left"):
        hu, hv = cv.anchor[f"hilum_{s}"]
        blob(cv, hu, hv, 0.045, 0.06, 0.12 * severity_factor(f), profile="gauss", gate=cv.gate(s))


def overlay_pleural_thickening(cv: Canvas, A: Anatomy, f: Finding, sides: list[str], rng: np.random.Generator
                           ) -> None:
    k = severity_factor(f, 0.7)
    thick = 0.012 + 0.014 * k
    amp = 0.6 if f.calcified else 0.42
    chosen = sides if f.side else ["right", "left"]
    for s in chosen:
        sg = side_sign(s)
        if cv.view == "lateral":
            g = cv.lat
            pts = [(g["post"] - 0.025, A.apex_v + 0.1 + 0.05 * i) for i in range(7)]
            Sketch().line(pts, thick, 1.0).render(cv, amp, blur=1.5)
            continue
        med, lat = cv.lung_rows[s]
        if f.zone in ("apex", "upper"):
            apex_u = A.cx + sg * (A.med_w + 0.45 * A.thw * 0.4 + 0.02)
            us = np.linspace(apex_u - 0.06, apex_u + 0.06, 9)
            pts = [(float(x), A.apex_v + 9.0 * (float(x) - apex_u) ** 2 + thick * 0.6) for x in us]
            Sketch().line(pts, thick * 1.3, 1.0).render(cv, amp, blur=1.5)
        else:
            v0 = A.apex_v + (0.55 if f.zone in ("base", "lower") else 0.15) * (A.dome_v(s) - A.apex_v)
            rows = np.linspace(v0, A.dome_v(s) + 0.02, 10)
            pts = [(float(lat[min(cv.n - 1, int(r * cv.n))]) - sg * thick * 0.5, float(r)) for r in rows]
            if f.calcified:
                for i in range(0, len(pts) - 1, 2):
                    Sketch().line(pts[i:i + 2], thick, 1.0).render(cv, amp, blur=1.0)
            else:
                Sketch().line(pts, thick, 1.0).render(cv, amp, blur=1.5)


def overlay_hilar(cv: Canvas, A: Anatomy, f: Finding, sides: list[str], rng: np.random.Generator) -> None:
    k = severity_factor(f, 0.75)
    chosen = sides if f.side else ["right", "left"]
    for s in chosen:
        hu, hv = cv.anchor[f"hilum_{s}"]
        sg = side_sign(s) if cv.view == "frontal" else 0.3
        for _ in range(3):
            blob(cv, hu + sg * float(rng.uniform(0.005, 0.03)), hv + float(rng.normal(0, 0.025)),
                  0.02 + 0.012 * k, None, 0.28, profile="ball")


def overlay_scarring(cv: Canvas, A: Anatomy, f: Finding, sides: list[str], rng: np.random.Generator) -> None:
    chosen = sides if f.side else [resolve_sides(f, rng)[0]]
    for s0 in chosen:
        s = zone_side(f.zone, s0)
        u, v, ru, rv = zone_center(cv, A, s, f.zone or "upper", rng)
        sk = Sketch()
        hu, hv = cv.anchor[f"hilum_{s}"]
        toward = math.atan2(hv - v, hu - u)
        for _ in range(int(rng.integers(4, 7))):
            a = toward + float(rng.normal(0, 0.5))
            cu, cvv = u + float(rng.normal(0, 0.4)) * ru, v + float(rng.normal(0, 0.4)) * rv
            ln = 0.02 + 0.03 * rng.random()
            pts = [(cu + ln * t * math.cos(a), cvv + ln * t * math.sin(a)) for t in (-1.0, -0.3, 0.4, 1.0)]
            sk.line(wobble(pts, rng, 0.003), 0.005, 1.0)
        sk.render(cv, 0.42, blur=0.8, gate=cv.gate(s))
        blob(cv, u, v, ru * 0.7, rv * 0.6, 0.05, profile="gauss", gate=cv.gate(s))


def overlay_cavitation(cv: Canvas, A: Anatomy, f: Finding, sides: list[str], rng: np.random.Generator) -> None:
    for s0 in sides:
        s = zone_side(f.zone, s0)
        for _ in range(instance_count(f, rng, 2, 3)):
            u, v, ru, rv = zone_center(cv, A, s, f.zone or "upper", rng)
            r = 0.03 + 0.015 * rng.random()
            blob(cv, u, v, r * 1.35, r * 1.3, 0.4, profile="ball", gate=cv.gate(s))
            blob(cv, u, v, r * 0.75, r * 0.7, -0.45, profile="disk", gate=cv.gate(s))
