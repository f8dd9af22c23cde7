"""The patient: anatomy drawn from the seed alone, shared by both views and changed by the anatomy hooks.

Per-patient variation (from ``seed`` only): sex (breast shadows), body size/position/wall thickness, lung
height, dome heights, cardiothoracic ratio (normal range), mediastinal width, aortic knob, rib spacing, arm
position, exposure/contrast/gamma, detector noise, blur and a rotation of a few degrees. The same seed gives
the same patient in both views. Also here: the severity scale every hook uses (``severity_factor``) and the
image direction of a patient side on the PA view (``side_sign``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from cxrbench.phantom.spec import Finding

_SEVERITY_SCALE = {"borderline": 0.35, "mild": 0.55, "small": 0.55, "moderate": 0.8, "large": 1.05,
                   "severe": 1.25}


def severity_factor(f: Finding, default: float = 0.7) -> float:
    return _SEVERITY_SCALE.get(f.severity or "", default)


def side_sign(side: str) -> float:
    """Image-u direction of the patient's ``side`` on a PA view (patient right = image left)."""
    return -1.0 if side == "right" else 1.0


@dataclass
class Spine:
    scoliosis: float = 0.0       # signed lateral amplitude (u); negative bends towards image left
    scoliosis_v: float = 0.45    # centre of the curve
    kyphosis: float = 0.0        # extra posterior bowing on the lateral view
    degenerative: float = 0.0    # endplate sclerosis + small spurs
    osteophytes: float = 0.0     # prominent spurs / bridging
    dish: bool = False
    compressed: tuple[int, ...] = ()
    fusion: tuple[float, float] | None = None   # v range of instrumented segment
    seed: int = 0


@dataclass
class Anatomy:
    female: bool
    age: float
    cx: float
    thw: float
    apex_v: float
    lung_h: float
    dome_gap: float
    dome_depth: float
    ctr: float
    heart_tilt: float
    med_w: float
    knob_r: float
    knob_bulge: float
    wall: float
    soft: float
    bone: float
    rib_n: float
    rib_a: float
    rib_p: float
    rib_phase: float
    clav_v: float
    clav_tilt: float
    arms: bool
    arm_r: float
    arm_gap: float
    breast: dict[str, float]
    stomach: tuple[float, float, float]
    ap_scale: float
    exposure: float
    gamma: float
    lo: float
    hi: float
    noise: float
    blur: float
    rotation: float
    zoom: float
    heel: float
    dome_shift: dict[str, float] = field(default_factory=lambda: {"right": 0.0, "left": 0.0})
    heart_scale: float = 1.0
    heart_shift: float = 0.0
    med_shift: float = 0.0
    med_widen: float = 0.0
    para_tracheal: float = 0.0
    desc_bulge: float = 0.0
    pa_bulge: float = 0.0
    air: float = 1.0
    vessel_gain: float = 1.0
    vessel_upper: float = 1.0
    vessel_prune: float = 0.0
    hilar_gain: float = 1.0
    shoulder: dict[str, str] = field(default_factory=dict)
    spine: Spine = field(default_factory=Spine)
    crop: float = 0.0

    def dome_v(self, side: str) -> float:
        base = self.apex_v + self.lung_h + (self.dome_gap if side == "left" else 0.0)
        return base + self.dome_shift[side]


def draw_patient(seed: int) -> Anatomy:
    """Draw one patient; the number and order of draws is fixed so the seed fully defines the anatomy."""
    r = np.random.Generator(np.random.PCG64(seed))
    x = r.random(40).tolist()
    female = bool(x[0] < 0.48)
    age = float(x[1])
    size = 0.94 + 0.1 * x[2]
    thw = (0.305 + 0.04 * x[3]) * size * (0.96 if female else 1.0)
    breast_size = (0.75 + 0.5 * x[4]) if female else 0.0
    return Anatomy(
        female=female, age=age, cx=0.5 + 0.024 * (x[5] - 0.5), thw=thw,
        apex_v=0.105 + 0.05 * x[6], lung_h=0.50 + 0.07 * x[7], dome_gap=0.012 + 0.025 * x[8],
        dome_depth=0.055 + 0.03 * x[9], ctr=0.40 + 0.07 * x[10], heart_tilt=0.42 + 0.2 * x[11],
        med_w=0.044 + 0.014 * x[12] + 0.008 * age, knob_r=0.022 + 0.01 * x[13] + 0.006 * age,
        knob_bulge=0.012 + 0.01 * x[14] + 0.006 * age, wall=0.035 + 0.05 * x[15], soft=0.93 + 0.12 * x[16],
        bone=(1.05 - 0.25 * age * x[17]), rib_n=10.2 + 0.8 * x[18], rib_a=0.16 + 0.06 * x[19],
        rib_p=0.78 + 0.1 * x[20], rib_phase=0.15 * x[21], clav_v=0.0 + 0.035 * x[22],
        clav_tilt=-0.02 + 0.05 * x[23], arms=bool(x[24] < 0.7), arm_r=0.065 + 0.03 * x[25],
        arm_gap=0.006 + 0.03 * x[26], breast={"right": breast_size, "left": breast_size},
        stomach=(0.6 + 0.8 * x[27], 0.03 + 0.02 * x[28], 0.4 + 0.6 * x[29]), ap_scale=0.92 + 0.16 * x[30],
        exposure=0.9 + 0.25 * x[31], gamma=0.9 + 0.3 * x[32], lo=0.15 + 0.08 * x[33],
        hi=0.85 + 0.08 * x[34], noise=0.010 + 0.014 * x[35], blur=0.55 + 0.75 * x[36],
        rotation=(x[37] - 0.5) * 5.0, zoom=1.0 + 0.04 * x[38], heel=(x[39] - 0.5) * 0.08,
        spine=Spine(seed=int(r.integers(0, 2**31))),
    )
