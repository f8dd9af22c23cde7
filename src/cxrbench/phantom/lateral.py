"""Lateral base anatomy, drawn before any finding's air or overlay hook.

The two lungs superimposed between the anterior chest wall (sternum) and the posterior ribs, a rounded apex,
two hemidiaphragms falling to the posterior costophrenic sulcus (each bounds half the air, so both contours
show), the heart antero-inferiorly on the diaphragm, trachea, aortic arch, hilum, vertebral bodies with
posterior elements, faint oblique ribs and a gastric bubble. Findings are drawn approximately there:
effusion fills the posterior sulcus, cardiomegaly enlarges the heart, hyperinflation deepens the chest and
flattens the domes, kyphosis bows the spine and back, devices and calcifications keep their shapes. Kinds
with no lateral sign (azygos lobe, rib/clavicle fracture, shoulder arthritis, nipple shadow, scoliosis) draw
nothing there.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from cxrbench.phantom.anatomy import Anatomy
from cxrbench.phantom.canvas import (
    Canvas,
    Sketch,
    bell,
    bezier,
    blob,
    ellipse_r2,
    ramp,
    rect_pts,
    smooth,
)


def _lat_geometry(A: Anatomy) -> dict[str, float]:
    """Lateral view: anterior (image left) and posterior inner chest wall, AP half-depth, centre, apex."""
    depth = 0.29 * A.ap_scale * (A.thw / 0.33)
    uc = 0.5 + (A.cx - 0.5) * 0.5
    return {"uc": uc, "ant": uc - 0.95 * depth, "post": uc + 1.05 * depth, "depth": depth, "apex_u": uc - 0.01}


def _lat_walls(A: Anatomy, g: dict[str, float], v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Anterior and posterior lung boundary u for rows ``v``; both converge on a rounded apex."""
    r = np.clip((v - A.apex_v) / 0.3, 0.0, 1.0)
    cap = np.sqrt(1.0 - (1.0 - r) ** 2)
    kyph = A.spine.kyphosis * bell((v - 0.42) / 0.22)
    lean = 0.035 * (1.0 - np.clip((v - A.apex_v) / 0.45, 0.0, 1.0))
    ant_l = g["apex_u"] - (g["apex_u"] - g["ant"] - 0.012 - lean) * cap
    post_l = g["apex_u"] + (g["post"] - 0.015 + kyph - g["apex_u"]) * cap
    return ant_l.astype(np.float32), post_l.astype(np.float32)


def lat_spine_u(A: Anatomy, g: dict[str, float], v: float) -> float:
    """Anterior margin of the vertebral bodies at row ``v`` (thoracic kyphosis, lumbar lordosis)."""
    kyph = A.spine.kyphosis * math.exp(-(((v - 0.42) / 0.22) ** 2))
    curve = 0.035 * math.sin(math.pi * min(max(v + 0.05, 0.0), 1.0))
    return g["post"] - 0.2 + curve + kyph


def _lat_dome(A: Anatomy, g: dict[str, float], side: str, u: np.ndarray) -> np.ndarray:
    """Hemidiaphragm on the lateral view: high anteriorly, falling to the posterior costophrenic sulcus."""
    peak = g["ant"] + 0.4 * (g["post"] - g["ant"])
    flat = A.dome_depth / 0.07
    post = np.clip((u - peak) / (g["post"] - peak), 0.0, None)
    ant = np.clip((peak - u) / (peak - g["ant"]), 0.0, None)
    return (A.dome_v(side) - 0.01 + flat * (0.13 * post * post * post + 0.035 * ant * ant)).astype(np.float32)


def _lateral_body(A: Anatomy, cv: Canvas, g: dict[str, float]) -> np.ndarray:
    v = cv.c
    neck = smooth((v - (A.apex_v - 0.12)) / 0.14)
    belly = 0.025 * smooth((v - 0.7) / 0.3)
    breast = max(A.breast["right"], A.breast["left"])
    skin_a = g["ant"] - A.wall * 0.7 - 0.02 - belly
    skin_a = skin_a - 0.045 * breast * bell((v - A.dome_v("left") + 0.09) / 0.07)
    skin_p = g["post"] + A.wall * 0.6 + 0.035 + A.spine.kyphosis * bell((v - 0.42) / 0.22)
    neck_a, neck_p = g["uc"] - 0.06, g["post"] - 0.02
    front = neck_a + (skin_a - neck_a) * neck
    back = neck_p + (skin_p - neck_p) * neck
    mid, half = 0.5 * (front + back), 0.5 * (back - front)
    x = (cv.c[None, :] - mid[:, None]) * (1.0 / half)[:, None]
    T = np.sqrt(np.clip(1.0 - x * x, 0.0, 1.0))
    # shoulders and raised arms superimposed on the upper chest
    blob(cv, g["uc"] - 0.02, A.apex_v - 0.02, 0.2, 0.12, 0.22, profile="gauss", target=T)
    blob(cv, g["ant"] + 0.05, A.apex_v + 0.02, 0.1, 0.18, 0.12, profile="gauss", target=T)
    return T


def lateral_base(A: Anatomy, cv: Canvas, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Draw the lateral base anatomy into ``cv``; return the soft-tissue thickness and the vessel tree."""
    n = cv.n
    g = _lat_geometry(A)
    cv.lat = g
    T = _lateral_body(A, cv, g)
    ant, post = _lat_walls(A, g, cv.c)
    cv.lat_walls = (ant, post)
    dome = 0.5 * (A.dome_v("left") + A.dome_v("right"))
    # lungs (both superimposed; each hemidiaphragm bounds its own lung)
    e = 1.3 / n
    w = cv.win(g["ant"] - 0.01, g["post"] + 0.05, A.apex_v - 0.01, max(A.dome_v("left"), A.dome_v("right")) + 0.2)
    assert w is not None
    a_w, p_w = ant[w.rows, None], post[w.rows, None]
    base = ramp(w.u - a_w, e) * ramp(p_w - w.u, e) * ramp(w.v - A.apex_v, e)
    both = np.zeros((n, n), np.float32)
    air = np.zeros_like(base)
    for side in ("right", "left"):
        m = base * ramp(_lat_dome(A, g, side, w.u) - w.v, e)
        air += 0.5 * m
    both[w.idx] = air
    spine_front = np.array([lat_spine_u(A, g, float(vv)) for vv in cv.c[w.rows]], np.float32)[:, None]
    bevel = (0.6 + 0.4 * ramp(w.v - A.apex_v, 0.16)) * (1.0 - 0.3 * ramp(w.u - spine_front, 0.06))
    bevel *= 0.8 + 0.2 * ramp(w.u - a_w, 0.05)
    cv.air[w.idx] += air * bevel
    cv.hemi["both"] = np.clip(both * 2.0, 0.0, 1.0)
    cv.hemi["right"] = cv.hemi["left"] = cv.hemi["both"]
    # heart: antero-inferior, resting on the diaphragm, touching the lower sternum
    s = A.heart_scale
    hu = g["ant"] + 0.3 * (g["post"] - g["ant"]) + 0.03 * (s - 1.0) + 0.3 * A.heart_shift
    hv = dome - 0.035 - 0.03 * (s - 1.0)
    ha, hb = 0.16 * s * (A.ctr / 0.44) ** 0.5, 0.11 * (1.0 + 0.6 * (s - 1.0))
    hw = cv.win(hu - ha - 0.02, hu + ha + 0.02, hv - ha - 0.02, hv + ha + 0.02)
    if hw is not None:
        r2 = ellipse_r2(hw, hu, hv, ha, hb, -0.55)
        hm = np.clip((1.0 - np.sqrt(r2)) / (1.5 * cv.px / hb), 0.0, 1.0)
        cv.air[hw.idx] *= 1.0 - 0.72 * hm
        cv.heart[hw.idx] = hm
    cv.anchor.update({"heart": (hu, hv), "ra": (hu + 0.02, hv + 0.02), "rv_apex": (hu - 0.08 * s, hv + 0.06),
                      "svc": (g["uc"] - 0.045, A.apex_v + 0.28), "carina": (g["uc"] + 0.01, A.apex_v + 0.24),
                      "stomach": (g["ant"] + 0.45 * g["depth"], A.dome_v("left") + 0.05),
                      "knob": (g["uc"] + 0.02, A.apex_v + 0.14), "lv_border": (hu + 0.1, hv + 0.05)})
    # aorta: ascending, arch over the trachea, descending along the spine
    ecta = 2.0 * A.desc_bulge          # tortuous/ectatic aorta: higher arch, descending part bowing back
    arch = bezier((g["uc"] - 0.07 - ecta, A.apex_v + 0.34), (g["uc"] - 0.07 - ecta, A.apex_v + 0.1 - 2 * ecta),
                   (g["uc"] + 0.1 + ecta, A.apex_v + 0.1 - 2 * ecta),
                   (lat_spine_u(A, g, A.apex_v + 0.3) - 0.015, A.apex_v + 0.3))
    arch += [(lat_spine_u(A, g, float(vv)) - 0.015 - ecta * 4 * t * (1 - t), float(vv))
             for t, vv in zip(np.linspace(0, 1, 6), np.linspace(A.apex_v + 0.34, dome, 6))]
    Sketch().line(arch, 0.03 + 0.5 * ecta, 1.0).render(cv, 0.1 + 2.0 * ecta, blur=3.0, target=cv.air,
                                                        gate=-cv.hemi["both"])
    hil = cv.anchor["hilum_right"] = cv.anchor["hilum_left"] = (g["uc"] + 0.02, A.apex_v + 0.3)
    blob(cv, hil[0], hil[1], 0.045 * A.hilar_gain, 0.05 * A.hilar_gain, -0.25, profile="gauss", target=cv.air,
          gate=cv.hemi["both"])
    tr = Sketch().line([(g["uc"] - 0.045, -0.02), (g["uc"] - 0.03, A.apex_v), (g["uc"] + 0.01, A.apex_v + 0.24)],
                        0.028, 1.0)
    tr.render(cv, -0.12, blur=2.0)
    cv.anchor["trachea_top"] = (g["uc"] - 0.045, 0.0)
    # ribs: faint oblique bands across the posterior lung (two slightly offset sets, one per side)
    rw = cv.win(g["uc"] - 0.05, g["post"] + 0.01, A.apex_v, dome + 0.14)
    if rw is not None:
        for off, amp in ((0.0, 0.035), (0.014, 0.03)):
            ph = A.rib_n * 1.05 * (rw.v - 0.5 * (rw.u - g["post"]) - A.apex_v + off) / (dome + 0.15 - A.apex_v)
            f = ph - np.floor(ph)
            band = np.where(f < 0.36, 0.6 + 0.4 * (f * (1.0 / 0.18) - 1.0) ** 4, 0.0)
            band *= ramp(rw.u - (g["uc"] - 0.02), 0.1) * ramp(ph - 0.3, 0.3)
            cv.ribs[rw.idx] += amp * A.bone * band
    _lateral_bones(A, cv, g, dome)
    su, sv, sr = A.stomach
    gu, gv = cv.anchor["stomach"]
    blob(cv, gu + 0.02 * su, gv + 0.01 * sv, 0.035 * (0.7 + sr), 0.022 * (0.7 + sr), -0.24)
    vessels = _lateral_vessels(A, cv, rng) * 0.6
    return T, vessels


def _lateral_bones(A: Anatomy, cv: Canvas, g: dict[str, float], dome: float) -> None:
    s = A.spine
    rng = np.random.Generator(np.random.PCG64([s.seed, 12]))
    sk = Sketch()
    post_el = Sketch()
    v = -0.02
    idx = 0
    while v < 1.05:
        hgt = 0.030 + 0.024 * min(max(v, 0.0), 1.0)
        dep = 0.055 + 0.025 * min(max(v, 0.0), 1.0)
        u0 = lat_spine_u(A, g, v + hgt / 2)
        ang = math.atan2(lat_spine_u(A, g, v + hgt) - lat_spine_u(A, g, v), hgt)
        ca, sa = math.cos(ang), math.sin(ang)
        wedge = 0.55 if idx in s.compressed else 0.0
        if s.kyphosis > 0.025 and 8 <= idx <= 11:
            wedge = max(wedge, 0.25)
        # vertebral body: quadrilateral whose anterior height is reduced by the wedge
        hh, ha = hgt / 2, hgt / 2 * (1.0 - wedge)
        corners = [(0.0, -ha), (dep, -hh), (dep, hh), (0.0, ha)]
        pts = [(u0 + x * ca + y * sa, v + hgt / 2 - x * sa + y * ca) for x, y in corners]
        sk.poly(pts, 0.32 + (0.25 if wedge > 0.5 else 0.0))
        sk.line(pts + [pts[0]], 0.003, 0.6)
        post_el.poly(rect_pts(u0 + dep + 0.035, v + hgt / 2, 0.028, hgt * 0.28, angle=0.3), 0.7)
        spur = 0.006 * s.degenerative + 0.014 * s.osteophytes
        if spur > 0 and rng.random() < 0.5 + 0.4 * (s.degenerative + s.osteophytes):
            for k in (0, 3):
                x0, y0 = pts[k]
                dv = -1 if k == 0 else 1
                sk.poly([(x0 + 0.001, y0 - dv * 0.006), (x0 - spur, y0 + dv * spur * 0.5), (x0 + 0.004, y0)], 0.9)
        if s.dish:
            sk.line([pts[0], pts[3], (pts[3][0], pts[3][1] + hgt * 0.3)], 0.008, 0.9)
        v += hgt * (1.0 - 0.5 * wedge) + hgt * (0.27 - 0.12 * min(1.0, s.degenerative + s.osteophytes))
        idx += 1
    # sternum (manubrium + body) just inside the anterior chest wall
    rows = [A.apex_v + 0.1 + k * 0.045 for k in range(9)]
    ant = cv.lat_walls[0] if cv.lat_walls is not None else np.full(cv.n, g["ant"], np.float32)
    pts = [(float(ant[min(cv.n - 1, int(r * cv.n))]) - 0.014, r) for r in rows]
    sk.line(pts[:2], 0.022, 0.45)
    sk.line(pts[1:], 0.014, 0.42)
    cv.anchor["sternum_top"], cv.anchor["sternum_bottom"] = pts[0], pts[-1]
    post_el.render(cv, 0.14 * A.bone, blur=2.0, target=cv.bones, ss=1)
    sk.render(cv, 0.3 * A.bone, blur=1.0, target=cv.bones, ss=1)
    # scapula edge
    sc = Sketch().line([(g["post"] - 0.07, A.apex_v + 0.02), (g["post"] - 0.04, A.apex_v + 0.2),
                         (g["post"] - 0.06, A.apex_v + 0.33)], 0.01, 1.0)
    sc.render(cv, 0.06 * A.bone, blur=2.5, target=cv.bones, ss=1)


def _lateral_vessels(A: Anatomy, cv: Canvas, rng: np.random.Generator) -> np.ndarray:
    n = cv.n
    img = Image.new("L", (n, n), 0)
    draw = ImageDraw.Draw(img)
    hu, hv = cv.anchor["hilum_right"]
    for k in range(22):
        ang = 2 * math.pi * (k + rng.random() * 0.7) / 22
        u, v, width = hu, hv, 0.007
        for _ in range(4):
            length = 0.035 + 0.03 * rng.random()
            ang += rng.normal(0, 0.3)
            u2, v2 = u + math.cos(ang) * length, v + math.sin(ang) * length
            draw.line([(u * n, v * n), (u2 * n, v2 * n)], fill=int(90 + 160 * width / 0.007),
                      width=max(1, int(round(width * n))))
            u, v, width = u2, v2, width * 0.65
    img = img.filter(ImageFilter.GaussianBlur(max(0.6, 0.0025 * n)))
    return np.asarray(img, dtype=np.float32) * (1.0 / 255.0)
