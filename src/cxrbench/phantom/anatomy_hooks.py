"""Anatomy hooks: change the patient before either view is drawn.

Signature ``hook(anatomy, finding, sides, rng)``; they run once per render, in finding order, before any
drawing, so both views of a study show the same changed patient (cardiomegaly scales the heart,
hyperinflation lowers and flattens the domes, scoliosis bends the spine, ...).
"""

from __future__ import annotations

import math

import numpy as np

from cxrbench.phantom.anatomy import Anatomy, severity_factor, side_sign
from cxrbench.phantom.placement import instance_count
from cxrbench.phantom.spec import Finding


def anatomy_cardiomegaly(A: Anatomy, f: Finding, sides: list[str], rng: np.random.Generator) -> None:
    # target cardiothoracic ratio by severity (normal patients have 0.40-0.47)
    ctr = {"borderline": 0.52, "mild": 0.56, "small": 0.56, "moderate": 0.62, "large": 0.68, "severe": 0.7}
    A.heart_scale = max(A.heart_scale, ctr.get(f.severity or "", 0.6) / A.ctr)


def anatomy_hyperinflation(A: Anatomy, f: Finding, sides: list[str], rng: np.random.Generator) -> None:
    k = severity_factor(f)
    emph = f.kind == "emphysema"
    for s in ("right", "left"):
        A.dome_shift[s] += (0.055 if emph else 0.045) * k
    A.dome_depth *= 1.0 - (0.55 if emph else 0.45) * min(k, 1.0)
    A.air = max(A.air, 1.0 + (0.16 if emph else 0.07) * k)
    A.ap_scale *= 1.0 + 0.15 * k
    A.rib_n *= 1.0 - 0.08 * k
    if emph:
        A.vessel_prune = max(A.vessel_prune, 0.5 * k)
        A.ctr *= 0.88
        A.heart_tilt += 0.25


def anatomy_hypoinflation(A: Anatomy, f: Finding, sides: list[str], rng: np.random.Generator) -> None:
    k = severity_factor(f)
    for s in ("right", "left"):
        A.dome_shift[s] -= 0.075 * k
    A.vessel_gain *= 1.0 + 0.45 * k
    A.air *= 1.0 - 0.08 * k
    A.heart_tilt -= 0.12 * k


def anatomy_elevated(A: Anatomy, f: Finding, sides: list[str], rng: np.random.Generator) -> None:
    for s in sides:
        A.dome_shift[s] -= 0.075 * severity_factor(f) + 0.01


def anatomy_flattened(A: Anatomy, f: Finding, sides: list[str], rng: np.random.Generator) -> None:
    A.dome_depth *= 0.3
    for s in ("right", "left"):
        A.dome_shift[s] += 0.035 * severity_factor(f)


def anatomy_volume_loss(A: Anatomy, f: Finding, sides: list[str], rng: np.random.Generator) -> None:
    for s in sides:
        A.dome_shift[s] -= 0.04 * severity_factor(f)
        A.med_shift += side_sign(s) * 0.012
        A.heart_shift += side_sign(s) * 0.01


def anatomy_atelectasis(A: Anatomy, f: Finding, sides: list[str], rng: np.random.Generator) -> None:
    if f.zone in (None, "base", "lower"):
        for s in sides:
            A.dome_shift[s] -= 0.012 * severity_factor(f)


def anatomy_shift(A: Anatomy, f: Finding, sides: list[str], rng: np.random.Generator) -> None:
    s = sides[0] if len(sides) == 1 else "right"
    A.med_shift += side_sign(s) * 0.03 * severity_factor(f)
    A.heart_shift += side_sign(s) * 0.02 * severity_factor(f)


def anatomy_pneumonectomy(A: Anatomy, f: Finding, sides: list[str], rng: np.random.Generator) -> None:
    s = sides[0]
    full = f.zone is None
    A.med_shift += side_sign(s) * (0.05 if full else 0.015)
    A.heart_shift += side_sign(s) * (0.04 if full else 0.01)
    A.dome_shift[s] -= 0.06 if full else 0.025


def anatomy_mediastinum(A: Anatomy, f: Finding, sides: list[str], rng: np.random.Generator) -> None:
    k = severity_factor(f)
    if f.side == "right":
        A.para_tracheal += 0.03 * k + 0.008
    else:
        A.med_widen = max(A.med_widen, 0.9 * k + 0.2)


def anatomy_tortuous_aorta(A: Anatomy, f: Finding, sides: list[str], rng: np.random.Generator) -> None:
    k = severity_factor(f)
    A.knob_bulge += 0.02 * k + 0.006
    A.knob_r += 0.008 * k
    A.desc_bulge = max(A.desc_bulge, 0.02 * k + 0.008)


def anatomy_pulmonary_artery(A: Anatomy, f: Finding, sides: list[str], rng: np.random.Generator) -> None:
    k = severity_factor(f)
    A.pa_bulge = max(A.pa_bulge, 0.02 * k + 0.008)
    A.hilar_gain = max(A.hilar_gain, 1.0 + 0.5 * k)
    A.vessel_prune = max(A.vessel_prune, 0.25 * k)


def anatomy_congestion(A: Anatomy, f: Finding, sides: list[str], rng: np.random.Generator) -> None:
    k = severity_factor(f)
    A.vessel_gain *= 1.0 + 0.45 * k
    A.vessel_upper = max(A.vessel_upper, 1.0 + 1.2 * k)
    A.hilar_gain = max(A.hilar_gain, 1.0 + 0.35 * k)


def anatomy_markings(A: Anatomy, f: Finding, sides: list[str], rng: np.random.Generator) -> None:
    A.vessel_gain *= 1.0 + 0.35 * severity_factor(f)


def anatomy_scoliosis(A: Anatomy, f: Finding, sides: list[str], rng: np.random.Generator) -> None:
    side = sides[0] if len(sides) == 1 else "right"
    A.spine.scoliosis = side_sign(side) * (0.02 + 0.036 * severity_factor(f))
    A.spine.scoliosis_v = 0.75 if f.zone == "lower" else 0.42


def anatomy_kyphosis(A: Anatomy, f: Finding, sides: list[str], rng: np.random.Generator) -> None:
    A.spine.kyphosis = 0.015 + 0.025 * severity_factor(f)
    A.ap_scale *= 1.04
    A.clav_v -= 0.015 * severity_factor(f)
    A.dome_shift["right"] -= 0.01
    A.dome_shift["left"] -= 0.01


def anatomy_degenerative(A: Anatomy, f: Finding, sides: list[str], rng: np.random.Generator) -> None:
    A.spine.degenerative = max(A.spine.degenerative, 0.5 + 0.5 * severity_factor(f))


def anatomy_osteophytes(A: Anatomy, f: Finding, sides: list[str], rng: np.random.Generator) -> None:
    A.spine.osteophytes = max(A.spine.osteophytes, 0.6 + 0.5 * severity_factor(f))


def anatomy_dish(A: Anatomy, f: Finding, sides: list[str], rng: np.random.Generator) -> None:
    A.spine.dish = True
    A.spine.osteophytes = max(A.spine.osteophytes, 0.5)


def anatomy_compression(A: Anatomy, f: Finding, sides: list[str], rng: np.random.Generator) -> None:
    lo, hi = (18, 21) if f.zone == "lower" else (8, 15)
    k = instance_count(f, rng, 2, 3)
    picks = sorted({int(rng.integers(lo, hi + 1)) for _ in range(k)})
    A.spine.compressed = tuple(sorted(set(A.spine.compressed) | set(picks)))


def anatomy_osteopenia(A: Anatomy, f: Finding, sides: list[str], rng: np.random.Generator) -> None:
    A.bone *= 0.55


def anatomy_breast(A: Anatomy, f: Finding, sides: list[str], rng: np.random.Generator) -> None:
    size = max(A.breast["right"], A.breast["left"], 0.9)
    A.female = True
    if f.kind == "mastectomy":
        other = "left" if sides[0] == "right" else "right"
        A.breast[other] = size
        A.breast[sides[0]] = 0.0
    else:
        A.breast = {"right": max(A.breast["right"], 0.5), "left": max(A.breast["left"], 0.5)}


def anatomy_shoulder(A: Anatomy, f: Finding, sides: list[str], rng: np.random.Generator) -> None:
    A.arms = True
    for s in sides:
        A.shoulder[s] = "prosthesis" if f.kind == "shoulder_prosthesis" else "arthritis"


def anatomy_pectus(A: Anatomy, f: Finding, sides: list[str], rng: np.random.Generator) -> None:
    A.heart_shift += 0.035
    A.ap_scale *= 0.85
    A.heart_tilt -= 0.1


def anatomy_technique(A: Anatomy, f: Finding, sides: list[str], rng: np.random.Generator) -> None:
    mode = int(rng.integers(0, 3))
    if mode == 0:      # under-exposed: washed out, low contrast, noisy
        A.exposure *= 0.55
        A.lo -= 0.02
        A.hi *= 0.72
        A.noise *= 2.4
        A.gamma *= 1.25
    elif mode == 1:    # rotated
        A.rotation = math.copysign(6.5 + 2.0 * rng.random(), A.rotation or 1.0)
        A.med_shift += 0.02 * math.copysign(1.0, A.rotation)
    else:              # clipped: costophrenic angles cut off
        A.crop = 0.18 + 0.06 * rng.random()
