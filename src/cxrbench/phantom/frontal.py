"""Frontal (PA) base anatomy, drawn before any finding's air or overlay hook.

``D`` is built from

* soft tissue: an elliptic thickness profile of the torso (plus neck, shoulders and arms), density ~1;
* lungs: the soft tissue of each hemithorax is multiplied by ``1 - 0.78 * air``, where ``air`` is the lung
  mask (soft 1-2 px edges) times a bevel that makes the apices and periphery slightly less lucent; the
  heart, mediastinum and fluid remove air, so they are bright;
* bones: posterior ribs as a phase field (convex-upward bands with bright cortical margins, spacing growing
  downwards), fainter anterior ribs sloping down medially, clavicles, spine (vertebral bodies, pedicles,
  spinous processes), scapulae and humeral heads drawn as vector shapes with Pillow;
* vessels: a random branching tree from each hilum (tapering lines, blurred), visible only where there is
  lung air; the trachea and main bronchi as darker air columns; a gastric air bubble under the left dome.

The functions also record named anchor points on the canvas (hila, carina, clavicles, heart borders, ...)
that the finding hooks draw at.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

from cxrbench.phantom.anatomy import Anatomy, side_sign
from cxrbench.phantom.canvas import Canvas, Sketch, bell, ellipse_r2, ramp, rect_pts, smooth


def _heart_geometry(A: Anatomy) -> dict[str, float]:
    w0 = A.ctr * 2.0 * A.thw
    s = A.heart_scale
    width = w0 * s
    dome = 0.3 * A.dome_v("right") + 0.7 * A.dome_v("left")
    a = 0.52 * width
    b = 0.36 * w0 * (1.0 + 0.55 * (s - 1.0))
    hu = A.cx + A.med_shift + A.heart_shift + 0.2 * w0 + 0.22 * (width - w0)
    hv = dome - 0.02 - 0.25 * (s - 1.0) * b
    return {"u": hu, "v": hv, "a": a, "b": b, "angle": A.heart_tilt, "width": width,
            "right": A.cx + A.med_shift + A.heart_shift - 0.3 * width}


def _lung_bounds(A: Anatomy, side: str, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Medial and lateral image-u boundary of one lung for rows ``v`` (1-D)."""
    sg = side_sign(side)
    L = A.dome_v(side) - A.apex_v
    t = np.clip((v - A.apex_v) / (0.5 * L), 0.0, 1.0)
    lat_w = A.thw * (0.40 + 0.60 * np.sqrt(t)) * (1.0 + 0.035 * np.clip((v - A.apex_v) / L, 0, 1.2))
    lat = A.cx + sg * lat_w
    cxm = A.cx + A.med_shift
    upper = bell((v - A.apex_v) / 0.12)
    med = A.med_w * (1.0 + A.med_widen) + 0.012 * upper
    if side == "left":
        knob_v = A.apex_v + 0.21
        med = med + A.knob_bulge * bell((v - knob_v) / A.knob_r)
        med = med + A.desc_bulge * bell((v - knob_v - 0.09) / 0.06)
        med = med + A.pa_bulge * bell((v - knob_v - 0.075) / 0.03)
    else:
        med = med + A.para_tracheal * bell((v - A.apex_v - 0.14) / 0.08)
    return (cxm + sg * med).astype(np.float32), lat.astype(np.float32)


def dome_curve(A: Anatomy, side: str, u: np.ndarray) -> np.ndarray:
    sg = side_sign(side)
    peak = A.cx + sg * 0.47 * A.thw
    return (A.dome_v(side) + A.dome_depth * ((u - peak) / (0.55 * A.thw)) ** 2).astype(np.float32)


def _frontal_body(A: Anatomy, cv: Canvas) -> np.ndarray:
    """Soft-tissue thickness T in [0, 1]: torso (neck, shoulders, chest, abdomen) plus arms."""
    v = cv.c
    neck, chest = 0.085 + 0.01 * A.soft, A.thw + A.wall
    sh_v = A.apex_v - 0.02 + A.clav_v
    shoulder = chest + 0.1
    up = smooth((v - (sh_v - 0.1)) / 0.11)
    down = smooth((v - (sh_v + 0.02)) / 0.2)
    bw = neck + (shoulder - neck) * up
    bw = bw + (chest - shoulder) * down
    bw = bw * (1.0 - 0.03 * smooth((v - A.dome_v("left") - 0.05) / 0.2))
    x = (cv.c[None, :] - A.cx) * (1.0 / bw)[:, None]
    T = np.clip(1.0 - x * x, 0.0, 1.0)
    np.sqrt(T, out=T)
    if A.arms:
        for side in ("right", "left"):
            sg = side_sign(side)
            ua = A.cx + sg * (chest + A.arm_gap + A.arm_r)
            w = cv.win(ua - A.arm_r, ua + A.arm_r, sh_v, 1.0)
            if w is None:
                continue
            xa = (w.u - ua) / A.arm_r
            arm = np.sqrt(np.clip(1.0 - xa * xa, 0.0, 1.0)) * smooth((w.v - sh_v) / 0.06)
            np.maximum(T[w.idx], 0.5 * arm, out=T[w.idx])
    return T


def _frontal_lungs(A: Anatomy, cv: Canvas) -> None:
    """Per-side lung masks (cv.hemi) and the lung air map (cv.air), heart and mediastinum excluded."""
    n = cv.n
    e = 1.3 / n
    both = np.zeros((n, n), np.float32)
    for side in ("right", "left"):
        sg = side_sign(side)
        med_all, lat_all = _lung_bounds(A, side, cv.c)
        cv.lung_rows[side] = (med_all, lat_all)
        v_bot = A.dome_v(side) + A.dome_depth * 1.25 + 0.01
        u_in, u_out = A.cx + A.med_shift + sg * A.med_w * 0.8, A.cx + sg * (A.thw * 1.06)
        w = cv.win(min(u_in, u_out), max(u_in, u_out), A.apex_v - 0.01, v_bot)
        if w is None:
            continue
        med, lat = med_all[w.rows, None], lat_all[w.rows, None]
        apex_u = A.cx + sg * (A.med_w + 0.45 * A.thw * 0.4 + 0.02)
        top = A.apex_v + 9.0 * (w.u - apex_u) ** 2
        bot = dome_curve(A, side, w.u)
        d_lat = sg * (lat - w.u)
        d_med = sg * (w.u - med)
        d_top = w.v - top
        d_bot = bot - w.v
        m = ramp(d_lat, e) * ramp(d_med, e) * ramp(d_top, e) * ramp(d_bot, e)
        cv.hemi[side] = np.zeros((n, n), np.float32)
        cv.hemi[side][w.idx] = m
        both[w.idx] += m
        bevel = (0.72 + 0.28 * ramp(d_lat, 0.07)) * (0.55 + 0.45 * ramp(d_top, 0.14))
        bevel *= 0.86 + 0.14 * ramp(d_bot, 0.1)
        cv.air[w.idx] += m * bevel
        cv.anchor[f"cp_{side}"] = (float(A.cx + sg * A.thw * 1.0), float(dome_curve(
            A, side, np.array([A.cx + sg * A.thw]))[0]))
    cv.hemi["both"] = np.minimum(both, 1.0)


def _frontal_heart(A: Anatomy, cv: Canvas) -> dict[str, float]:
    h = _heart_geometry(A)
    reach = max(h["a"], h["b"]) + 0.03
    w = cv.win(h["u"] - reach - 0.05, h["u"] + reach, h["v"] - reach, h["v"] + reach)
    if w is not None:
        r2 = ellipse_r2(w, h["u"], h["v"], h["a"], h["b"], h["angle"])
        edge = 1.5 * cv.px / min(h["a"], h["b"])
        hm = np.clip((1.0 - np.sqrt(r2)) / edge, 0.0, 1.0)
        ra_u, ra_v, ra_r = h["right"] + 0.17 * h["width"], h["v"] + 0.05, 0.17 * h["width"]
        ra = np.clip((1.0 - np.sqrt(ellipse_r2(w, ra_u, ra_v, ra_r, ra_r * 1.05))) / (1.5 * cv.px / ra_r), 0, 1)
        hm = np.maximum(hm, ra)
        cv.air[w.idx] *= 1.0 - 0.88 * hm
        cv.heart[w.idx] = hm
    ca, sa = math.cos(h["angle"]), math.sin(h["angle"])
    cv.anchor["heart"] = (h["u"], h["v"])
    cv.anchor["ra"] = (h["right"] + 0.12 * h["width"], h["v"] + 0.01)
    cv.anchor["rv_apex"] = (h["u"] + 0.75 * h["a"] * ca, h["v"] + 0.75 * h["a"] * sa)
    cv.anchor["lv_border"] = (h["u"] + 0.95 * h["a"] * ca - 0.3 * h["b"] * sa, h["v"] + 0.5 * h["a"] * sa)
    return h


def _frontal_airways(A: Anatomy, cv: Canvas) -> None:
    cxm = A.cx + A.med_shift
    car_v = A.apex_v + 0.23
    knob_v = A.apex_v + 0.21
    cv.anchor["carina"] = (cxm, car_v)
    cv.anchor["svc"] = (cxm - A.med_w * 0.55, car_v + 0.045)
    cv.anchor["knob"] = (cxm + A.med_w + A.knob_bulge - A.knob_r * 0.7, knob_v)
    cv.anchor["trachea_top"] = (A.cx + 0.004, 0.0)
    sk = Sketch()
    trachea = [(A.cx + 0.004, -0.02), (A.cx, A.apex_v), (cxm - 0.004 - 0.2 * A.knob_bulge, knob_v - 0.02),
               (cxm, car_v)]
    sk.line(trachea, 0.034, 1.0)
    sk.line([(cxm, car_v - 0.01), (cxm - 0.035, car_v + 0.03), (cxm - 0.055, car_v + 0.06)], 0.018, 0.7)
    sk.line([(cxm, car_v - 0.01), (cxm + 0.045, car_v + 0.035), (cxm + 0.07, car_v + 0.055)], 0.016, 0.7)
    sk.render(cv, -0.18, blur=2.0, ss=1)


def _rib_field(A: Anatomy, cv: Canvas) -> None:
    """Posterior ribs as a phase field: convex-upward bands with bright cortical margins; anterior ribs fainter."""
    v0 = A.apex_v - 0.045 + A.clav_v * 0.3
    v1 = max(A.dome_v("right"), A.dome_v("left")) + 0.12
    span = 1.0 / (v1 - v0)
    bone = A.bone
    for side in ("right", "left"):
        sg = side_sign(side)
        w = cv.win(min(A.cx, A.cx + sg * A.thw * 1.05), max(A.cx, A.cx + sg * A.thw * 1.05), v0 - 0.06, v1)
        if w is None:
            continue
        t = np.abs(w.u - A.cx) * (1.0 / A.thw)
        t2 = t * t
        rel = np.clip((w.v - v0) * span, 0.0, 1.0)
        a = A.rib_a * (1.6 - 0.5 * rel)
        # centre line of a posterior rib: rises from the spine, peaks near mid-lung, falls along the lateral wall
        g = a * (-t + 0.85 * t2) + 0.11 * t2 * t2 * t2
        s = np.maximum((w.v - g - v0) * span, 0.0)
        phase = A.rib_n * s * (1.32 - 0.64 * np.minimum(s, 1.0)) + A.rib_phase
        f = phase - np.floor(phase)
        x = f * (1.0 / (0.40 + 0.12 * t))
        x2 = (2.0 * x - 1.0) ** 2
        prof = np.where(x < 1.0, 0.5 + 0.5 * x2 * x2, 0.0)
        fade = ramp(t - 0.06, 0.07) * ramp(1.04 - t, 0.03) * ramp(phase - 0.6, 0.3)
        fade *= 1.0 - 0.6 * ramp(w.v - (A.dome_v(side) + 0.03), 0.08)
        # anterior ribs: descend medially and end before the costal cartilage
        pa = (A.rib_n * 0.62) * (w.v + 0.13 * (t - 1.0) - v0 - 0.1) * span + 0.3
        fa = pa - np.floor(pa)
        ant = np.where(fa < 0.38, 1.0 - (fa * (1.0 / 0.19) - 1.0) ** 2, 0.0)
        ant *= ramp(t - 0.32, 0.18) * ramp(1.02 - t, 0.03) * ramp(pa - 0.5, 0.2)
        ant *= 1.0 - ramp(w.v - A.dome_v(side), 0.05)
        cv.ribs[w.idx] += bone * (0.095 * prof * fade + 0.035 * ant)


def spine_u(A: Anatomy, v: float) -> float:
    s = A.spine
    off = s.scoliosis * math.exp(-(((v - s.scoliosis_v) / 0.2) ** 2))
    off -= 0.45 * s.scoliosis * math.exp(-(((v - s.scoliosis_v - 0.38) / 0.14) ** 2))
    return A.cx + off


def _frontal_bones(A: Anatomy, cv: Canvas) -> None:
    """Spine, clavicles, scapulae and humeral heads as vector shapes into ``cv.bones``."""
    s = A.spine
    rng = np.random.Generator(np.random.PCG64([s.seed, 11]))
    low = Sketch()   # faint: scapulae
    sk = Sketch()
    for side in ("right", "left"):
        sg = side_sign(side)
        edge = A.cx + sg * (A.thw * 0.93)
        low.poly([(A.cx + sg * (A.thw + 0.06), A.apex_v + 0.01), (edge, A.apex_v + 0.04),
                  (A.cx + sg * A.thw * 0.8, A.apex_v + 0.26), (A.cx + sg * (A.thw + 0.02), A.apex_v + 0.12)], 0.5)
    # vertebrae from C6 to L3
    v = -0.03
    idx = 0
    while v < 1.05:
        hgt = 0.030 + 0.022 * min(max(v, 0.0), 1.0)
        wid = 0.055 + 0.025 * min(max(v, 0.0), 1.0)
        if idx in s.compressed:
            hgt *= 0.6
            wid *= 1.12
        uc = spine_u(A, v + hgt / 2)
        tilt = (spine_u(A, v + hgt) - spine_u(A, v)) / hgt
        val = 0.42 + (0.5 if idx in s.compressed else 0.0) + 0.12 * s.degenerative
        sk.poly(rect_pts(uc, v + hgt / 2, wid / 2, hgt / 2, angle=-0.6 * tilt), val)
        # pedicles (bright ovals) and spinous process
        for side in (-1, 1):
            sk.ellipse(uc + side * wid * 0.33, v + hgt * 0.35, wid * 0.09, hgt * 0.22, 0.75, outline=0.0035)
        sk.ellipse(uc, v + hgt * 0.8, wid * 0.07, hgt * 0.3, 0.6)
        if s.degenerative > 0 or s.osteophytes > 0:
            sclerosis = min(1.0, 0.7 + 0.3 * s.degenerative)
            for end in (v, v + hgt):
                sk.line([(uc - wid / 2, end), (uc + wid / 2, end)], 0.005 + 0.004 * s.degenerative, sclerosis)
            spur = 0.01 * s.degenerative + 0.016 * s.osteophytes
            if spur > 0 and rng.random() < 0.45 + 0.4 * (s.degenerative + s.osteophytes):
                for side in (-1, 1):
                    for end, dirv in ((v, -1), (v + hgt, 1)):
                        if rng.random() < 0.7:
                            x0 = uc + side * wid / 2
                            sk.poly([(x0, end - dirv * 0.008), (x0 + side * spur, end + dirv * spur * 0.6),
                                     (x0, end + dirv * 0.002)], 0.9)
        if s.dish:
            sk.line([(uc - wid / 2 - 0.006, v), (uc - wid / 2 - 0.012, v + hgt / 2),
                     (uc - wid / 2 - 0.006, v + hgt + 0.01)], 0.008, 0.9)
        gap = hgt * (0.28 - 0.12 * min(1.0, s.degenerative + s.osteophytes))
        v += hgt + gap
        idx += 1
    # clavicles
    for side in ("right", "left"):
        sg = side_sign(side)
        cvv = A.apex_v + 0.035 + A.clav_v
        lat_u = A.cx + sg * (A.thw + 0.035)
        pts = [(A.cx + sg * 0.03, cvv + 0.018), (A.cx + sg * 0.08, cvv + 0.002 + A.clav_tilt * 0.2),
               (A.cx + sg * 0.15, cvv - 0.004 + A.clav_tilt * 0.5), (A.cx + sg * 0.22, cvv - 0.014 + A.clav_tilt),
               (lat_u - sg * 0.03, cvv - 0.032 + A.clav_tilt), (lat_u, cvv - 0.03 + A.clav_tilt)]
        sk.line(pts[:3], 0.028, 0.5)
        sk.line(pts[2:], 0.022, 0.5)
        sk.ellipse(pts[0][0], pts[0][1] + 0.002, 0.018, 0.018, 0.5)
        cv.anchor[f"clavicle_{side}"] = pts[2]
        cv.anchor[f"clavicle_lat_{side}"] = pts[3]
        if A.arms:
            hu, hv, hr = A.cx + sg * (A.thw + A.wall + 0.035), A.apex_v + 0.02, 0.052
            sk.ellipse(hu, hv, hr, hr * 1.1, 0.7)
            sk.poly(rect_pts(hu + sg * 0.012, hv + 0.25, 0.022, 0.22), 0.55)
            sk.ellipse(hu - sg * (hr + 0.006), hv, 0.012, 0.035, 0.6)   # glenoid
            cv.anchor[f"humerus_{side}"] = (hu, hv)
            state = A.shoulder.get(side)
            if state == "arthritis":
                sk.ellipse(hu, hv, hr, hr * 1.1, 1.0, outline=0.006)
                sk.poly([(hu - sg * 0.7 * hr, hv + 0.9 * hr), (hu - sg * 1.25 * hr, hv + 1.25 * hr),
                         (hu - sg * 0.4 * hr, hv + 1.1 * hr)], 1.0)
    low.render(cv, 0.08 * A.bone, blur=1.5, target=cv.bones, ss=1)
    sk.render(cv, 0.26 * A.bone, blur=1.0, target=cv.bones, ss=1)


def _vessel_tree(A: Anatomy, cv: Canvas, rng: np.random.Generator) -> np.ndarray:
    """Branching pulmonary vessels from each hilum, drawn at half resolution and upsampled; density (n, n)."""
    n = cv.n
    m = max(32, n // 2)
    img = Image.new("L", (m, m), 0)
    draw = ImageDraw.Draw(img)

    def grow(u: float, v: float, ang: float, length: float, width: float, depth: int, sg: float) -> None:
        bend = float(rng.normal(0.0, 0.2))
        mu, mv = u + sg * math.cos(ang) * length * 0.5, v + math.sin(ang) * length * 0.5
        eu, ev = mu + sg * math.cos(ang + bend) * length * 0.5, mv + math.sin(ang + bend) * length * 0.5
        val = int(min(255, 90 + 165 * width / 0.0085))
        draw.line([(u * m, v * m), (mu * m, mv * m), (eu * m, ev * m)], fill=val,
                  width=max(1, int(round(width * m))), joint="curve")
        if depth <= 0:
            return
        spread, shrink = 0.3 + 0.25 * float(rng.random()), 0.66 + 0.14 * float(rng.random())
        for k in (-1, 1):
            grow(eu, ev, ang + bend + k * spread, length * shrink, width * 0.62, depth - 1, sg)

    for side in ("right", "left"):
        sg = side_sign(side)
        med, _lat = cv.lung_rows[side]
        L = A.dome_v(side) - A.apex_v
        hv = A.apex_v + (0.46 if side == "right" else 0.41) * L
        hu = float(med[min(n - 1, int(hv * n))]) + sg * 0.012
        cv.anchor[f"hilum_{side}"] = (hu, hv)
        for k in range(13):
            ang = -1.4 + 2.75 * (k + float(rng.random()) * 0.7) / 13.0
            width = 0.0085 * (1.15 if ang > 0.2 else 0.85) * A.hilar_gain
            length = (0.06 + 0.035 * float(rng.random())) * (1.3 if abs(ang) > 1.0 else 1.0)
            grow(hu, hv, ang, length, width, 3, sg)
    if m != n:
        img = img.resize((n, n), Image.BILINEAR)
    return np.asarray(img, dtype=np.float32) * (1.0 / 255.0)


def _frontal_extras(A: Anatomy, cv: Canvas) -> None:
    """Breast shadows and gastric air."""
    for side in ("right", "left"):
        size = A.breast[side]
        if size <= 0:
            continue
        sg = side_sign(side)
        u, v = A.cx + sg * 0.62 * A.thw, A.dome_v(side) - 0.02
        ru, rv = 0.17 * size, 0.13 * size
        w = cv.win(u - ru, u + ru, v - rv * 1.6, v + rv)
        if w is None:
            continue
        r2 = ellipse_r2(w, u, v - 0.2 * rv, ru, rv)
        shape = np.sqrt(np.clip(1.0 - r2, 0.0, 1.0)) * smooth((w.v - (v - 1.3 * rv)) / (1.2 * rv))
        cv.D[w.idx] += 0.2 * A.soft * shape
        cv.anchor[f"breast_{side}"] = (u, v)
    su, sv, sr = A.stomach
    gu, gv = A.cx + 0.12 + 0.05 * su, A.dome_v("left") + 0.035 + sv
    cv.anchor["stomach"] = (gu, gv)
    rad = 0.032 * (0.7 + sr)
    w = cv.win(gu - rad, gu + rad, gv - rad, gv + rad)
    if w is not None:   # gastric bubble with a flat fluid level
        bubble = np.sqrt(np.clip(1.0 - ellipse_r2(w, gu, gv, rad * 1.2, rad * 0.9), 0.0, 1.0))
        cv.D[w.idx] -= 0.3 * bubble * ramp(gv + 0.25 * rad - w.v, 1.5 * cv.px)


def frontal_base(A: Anatomy, cv: Canvas, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Draw the PA base anatomy into ``cv``; return the soft-tissue thickness and the vessel tree.

    ``rng`` is the view's stream; only the vessel tree draws from it.
    """
    T = _frontal_body(A, cv)
    _frontal_lungs(A, cv)
    _frontal_heart(A, cv)
    _frontal_airways(A, cv)
    _rib_field(A, cv)
    _frontal_bones(A, cv)
    vessels = _vessel_tree(A, cv, rng)
    _frontal_extras(A, cv)
    return T, vessels
