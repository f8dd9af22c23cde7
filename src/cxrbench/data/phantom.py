"""Deterministic phantom chest radiographs rendered from a study's MeSH tags.

The IU chest X-ray reports are real; their images are replaced by these synthetic ("phantom") radiographs so
that a model has to read the findings named in the report off the pixels. Everything here is plain numpy and
Pillow, single-threaded, and deterministic: the output depends only on ``(spec, seed, view, size)``.

Public API
----------
``parse_mesh(majors) -> PhantomSpec``  maps the ``<major>`` strings of one study to :class:`Finding` objects.
``render(spec, seed=..., view=..., size=...) -> uint8 (size, size)``  draws one radiograph.
``describe(spec) -> str``  one line such as ``"cardiomegaly(mild); pleural_effusion(right, small)"``.
``RENDERER_VERSION``  is part of the on-disk cache key: bump it whenever the pixels of any render change.

Coordinates
-----------
Everything is laid out in normalised image coordinates ``u`` (column, 0 = image left .. 1 = image right) and
``v`` (row, 0 = top .. 1 = bottom), so the same geometry renders at any ``size``. Frontal (PA) view: the
patient faces the viewer, so the patient's RIGHT side is the image LEFT (``sg = -1`` in the code) and the
patient's left is the image right (``sg = +1``). Lateral view: the patient faces image left, so anterior is
image left and the spine is at the image right.

Intensity model
---------------
The renderer accumulates an attenuation ("density") map ``D`` and maps it to brightness like film:
``I = 1 - exp(-k * D)`` then a per-patient window and gamma, so bright = dense (bone, fluid, metal) and
dark = air. ``D`` is built from

* soft tissue: an elliptic thickness profile of the torso (plus neck, shoulders and arms), density ~1;
* lungs: the soft tissue of each hemithorax is multiplied by ``1 - 0.78 * air``, where ``air`` is the lung
  mask (soft 1-2 px edges) times a bevel that makes the apices and periphery slightly less lucent; the
  heart, mediastinum and fluid remove air, so they are bright;
* bones: posterior ribs as a phase field (convex-upward bands with bright cortical margins, spacing growing
  downwards), fainter anterior ribs sloping down medially, clavicles, spine (vertebral bodies, pedicles,
  spinous processes), scapulae and humeral heads drawn as vector shapes with Pillow;
* vessels: a random branching tree from each hilum (tapering lines, blurred), visible only where there is
  lung air; the trachea and main bronchi as darker air columns; a gastric air bubble under the left dome.

Per-patient variation (from ``seed`` only): sex (breast shadows), body size/position/wall thickness, lung
height, dome heights, cardiothoracic ratio (normal range), mediastinal width, aortic knob, rib spacing, arm
position, exposure/contrast/gamma, detector noise, blur and a rotation of a few degrees. The same seed gives
the same patient in both views.

Findings
--------
Each :class:`Finding` kind has up to three hooks (see ``_HANDLERS``): *anatomy* hooks change the patient
before drawing (cardiomegaly scales the heart, hyperinflation lowers and flattens the domes, scoliosis bends
the spine, ...); *air* hooks change the lung air map (effusion fills the costophrenic recess up to a
meniscus, pneumothorax adds a marking-free dark rim inside a thin visceral pleural line, bullae, ...);
*overlay* hooks add density in small windows (opacities, nodules, devices, calcifications, ...). Location:
``zone`` gives the height in the lung (apex/upper = top third, middle/lingula/hilum = middle, lower/base =
bottom third, hilum = medial, retrocardiac = behind the heart), ``side`` the lung; findings without a side
pick one from the seed (some kinds have a natural default, e.g. a pacemaker sits in the left chest);
``bilateral`` draws both. Severity scales size/height/intensity (borderline < mild = small < moderate <
large < severe), ``multiple`` draws several, ``calcified`` draws bright sharp calcium.

Lateral view: the two lungs superimposed between the anterior chest wall (sternum) and the posterior ribs,
a rounded apex, two hemidiaphragms falling to the posterior costophrenic sulcus (each bounds half the air, so
both contours show), the heart antero-inferiorly on the diaphragm, trachea, aortic arch, hilum, vertebral
bodies with posterior elements, faint oblique ribs and a gastric bubble. Findings are drawn approximately:
effusion fills the posterior sulcus, cardiomegaly enlarges the heart, hyperinflation deepens the chest and
flattens the domes, kyphosis bows the spine and back, devices and calcifications keep their shapes. Kinds
with no lateral sign (azygos lobe, rib/clavicle fracture, shoulder arthritis, nipple shadow, scoliosis) draw
nothing there.

Randomness and determinism: the patient is drawn from ``Generator(PCG64(seed))``; each finding gets its own
stream seeded by ``(seed, index, crc32(kind))`` and the view-specific parts (noise, vessel tree, texture)
their own stream, so adding a finding never changes the rest of the image. No global RNG, clock or threads.
Array maths uses only IEEE-exact operations (+, -, *, /, sqrt, comparisons) plus Pillow; transcendental
functions are evaluated with :mod:`math` on scalars (``_expneg`` replaces ``np.exp``), because numpy's SIMD
``exp``/``sin``/``pow`` can differ in the last bit between CPUs and would break bit-identical caches.

Speed: ~21-23 ms per 512 x 512 image on one core (numpy + Pillow, no per-pixel Python): full-frame work is a
handful of broadcast operations on (rows x 1) and (1 x cols) profiles; everything else is drawn in small
windows, vector shapes are rasterised by Pillow, and the film curve is a lookup table.

Adding a kind: add it to ``FINDING_DOC`` (which defines ``FINDING_KINDS``), map MeSH terms to it in
``_RULES``, give it hooks in ``_HANDLERS``, extend ``tests/test_phantom.py``, and bump ``RENDERER_VERSION``.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

RENDERER_VERSION = "1"

SIDES = ("left", "right", "bilateral")
ZONES = ("upper", "middle", "lower", "base", "apex", "hilum", "lingula", "retrocardiac")
SEVERITIES = ("borderline", "mild", "small", "moderate", "large", "severe")
VIEWS = ("frontal", "lateral")

#: Every kind the renderer draws, with the MeSH top-level terms (and qualifiers) that produce it.
FINDING_DOC: dict[str, str] = {
    "cardiomegaly": "Cardiomegaly; Cardiac Shadow/enlarged; Heart, Heart Atria, Heart Ventricles (enlarged); "
                    "Pericardial Effusion; Heart Failure (+ congestion)",
    "pleural_effusion": "Pleural Effusion; Hemothorax; Hydro-/Hemopneumothorax (+ pneumothorax)",
    "blunted_costophrenic_angle": "Costophrenic Angle; Sulcus; Pleura/blunted",
    "pneumothorax": "Pneumothorax; Hydropneumothorax; Hemopneumothorax",
    "opacity": "Opacity; '.../obscured' of Lung, Heart, Diaphragm",
    "airspace_disease": "Airspace Disease",
    "consolidation": "Consolidation",
    "infiltrate": "Infiltrate",
    "pneumonia": "Pneumonia",
    "density": "Density",
    "atelectasis": "Pulmonary Atelectasis",
    "nodule": "Nodule",
    "mass": "Mass",
    "granuloma": "Granuloma; Calcified Granuloma (calcified); Calcinosis/lung... (calcified)",
    "granulomatous_disease": "Granulomatous Disease; Tuberculosis; bare Calcinosis (scattered)",
    "calcified_lymph_nodes": "Calcinosis/lymph nodes, mediastinum, paratracheal, hilum",
    "emphysema": "Emphysema; Pulmonary Emphysema; Pulmonary Disease, Chronic Obstructive; Bullous Emphysema",
    "hyperinflation": "Lung/hyperdistention",
    "hypoinflation": "Lung/hypoinflation",
    "hyperlucent_lung": "Lung, Hyperlucent",
    "lucency": "Lucency; Cysts; Blister",
    "cavitation": "Cavitation",
    "scarring": "Cicatrix (lung)",
    "increased_markings": "Markings; Lung/interstitial; Thickening/bronchi; Bronchiectasis; Bronchitis; "
                          "Bronchiolitis; Cystic Fibrosis",
    "interstitial_fibrosis": "Pulmonary Fibrosis; Lung Diseases, Interstitial; Fibrosis",
    "pulmonary_congestion": "Pulmonary Congestion; Lung/blood vessels; Blood Vessels",
    "pulmonary_edema": "Pulmonary Edema",
    "pleural_thickening": "Thickening/pleura; Cicatrix/pleura; Pleura; Calcinosis/pleura (calcified)",
    "hilar_enlargement": "Lung/hilum (enlarged, prominent, lymph nodes); Lymph Nodes; Sarcoidosis",
    "mediastinal_widening": "Mediastinum (prominent, enlarged); paratracheal Thickening",
    "pulmonary_artery_enlargement": "Pulmonary Artery; Hypertension, Pulmonary",
    "tortuous_aorta": "Aorta; Aorta, Thoracic; Aortic Aneurysm",
    "aortic_calcification": "Atherosclerosis; Calcinosis/aorta, blood vessels, coronary vessels",
    "elevated_diaphragm": "Diaphragm/elevated; Diaphragmatic Eventration",
    "flattened_diaphragm": "Diaphragm/flattened",
    "hiatal_hernia": "Hernia, Hiatal; Hernia, Diaphragmatic",
    "pneumoperitoneum": "Pneumoperitoneum",
    "subcutaneous_emphysema": "Subcutaneous Emphysema; Mediastinal Emphysema",
    "volume_loss": "Volume Loss; Thorax/small",
    "mediastinal_shift": "Shift",
    "pneumonectomy": "Pneumonectomy (lobectomy when a lobe is named)",
    "epicardial_fat": "Epicardial Fat; Adipose Tissue",
    "azygos_lobe": "Lung/azygos lobe",
    "scoliosis": "Scoliosis",
    "kyphosis": "Kyphosis",
    "degenerative_spine": "Thoracic Vertebrae, Spine, Lumbar/Cervical Vertebrae (degenerative); Arthritis",
    "osteophytes": "Osteophyte; Spondylosis",
    "spinal_hyperostosis": "Hyperostosis, Diffuse Idiopathic Skeletal",
    "vertebral_compression": "Fractures, Bone/vertebrae; Deformity/vertebrae, spine",
    "osteopenia": "Bone Diseases, Metabolic; Osteoporosis",
    "rib_fracture": "Fractures, Bone (ribs or unspecified); Deformity/ribs; Ribs",
    "clavicle_fracture": "Fractures, Bone/clavicle; Deformity/clavicle",
    "shoulder_arthritis": "Shoulder/degenerative; Arthritis/shoulder, humerus; Osteophyte/shoulder",
    "spinal_fusion": "Spinal Fusion; Implanted Medical Device/vertebrae",
    "catheter": "Catheters, Indwelling",
    "tube": "Tube, Inserted (endotracheal + enteric tube)",
    "pacemaker": "Implanted Medical Device (chest, left/right, unspecified)",
    "valve_prosthesis": "Implanted Medical Device/aortic valve, mitral valve, heart",
    "shoulder_prosthesis": "Implanted Medical Device/humerus, shoulder",
    "sternotomy": "Sutures/sternum, mediastinum; Surgical Instruments/mediastinum, heart",
    "surgical_clips": "Surgical Instruments (thorax, neck, breast, hilum, unspecified)",
    "abdominal_clips": "Surgical Instruments/abdomen",
    "lung_sutures": "Sutures/lung",
    "stent": "Stents",
    "medical_device": "Medical Device (overlying monitoring electrodes and leads)",
    "foreign_body": "Foreign Bodies",
    "mastectomy": "Mastectomy",
    "breast_implants": "Breast Implants",
    "nipple_shadow": "Nipple Shadow",
    "pectus_excavatum": "Funnel Chest",
    "poor_technique": "Technical Quality of Image Unsatisfactory (under-exposed, rotated or clipped)",
}
FINDING_KINDS: tuple[str, ...] = tuple(FINDING_DOC)


@dataclass(frozen=True)
class Finding:
    """One drawable finding. ``side`` is the patient's side (patient right = image left on a PA view)."""

    kind: str
    side: str | None = None
    zone: str | None = None
    severity: str | None = None
    calcified: bool = False
    multiple: bool = False


@dataclass(frozen=True)
class PhantomSpec:
    """What to draw for one study: findings plus the top-level MeSH terms that render nothing."""

    findings: tuple[Finding, ...]
    unknown_terms: tuple[str, ...]


# ----------------------------------------------------------------------------------------------------------
# MeSH parsing
# ----------------------------------------------------------------------------------------------------------

_NOTHING_TERMS = frozenset({"normal", "no indexing"})
_ZONE_WORDS = {
    "upper lobe": "upper", "middle lobe": "middle", "lower lobe": "lower", "base": "base", "apex": "apex",
    "hilum": "hilum", "lingula": "lingula", "retrocardiac": "retrocardiac", "costophrenic angle": "base",
    "sulcus": "base", "cardiophrenic angle": "base",
}
_MULTIPLE_WORDS = frozenset({"multiple", "scattered", "multilobar", "diffuse"})


@dataclass(frozen=True)
class _Quals:
    words: frozenset[str]
    side: str | None
    zone: str | None
    severity: str | None
    multiple: bool

    def has(self, *words: str) -> bool:
        return any(w in self.words for w in words)


def _qualifiers(parts: Sequence[str]) -> _Quals:
    words = [" ".join(p.split()).lower() for p in parts]
    words = [w for w in words if w]
    sides = {w for w in words if w in SIDES}
    side = "bilateral" if "bilateral" in sides or {"left", "right"} <= sides else next(iter(sides), None)
    zone = next((_ZONE_WORDS[w] for w in words if w in _ZONE_WORDS), None)
    severity = next((w for w in words if w in SEVERITIES), None)
    return _Quals(frozenset(words), side, zone, severity, any(w in _MULTIPLE_WORDS for w in words))


def _mk(kind: str, q: _Quals, **over: object) -> Finding:
    base = {"side": q.side, "zone": q.zone, "severity": q.severity, "calcified": q.has("calcified"),
            "multiple": q.multiple}
    base.update(over)
    return Finding(kind, **base)  # type: ignore[arg-type]


def _spine_zone(q: _Quals) -> str | None:
    if q.has("cervical vertebrae"):
        return "upper"
    if q.has("lumbar vertebrae"):
        return "lower"
    return None


def _obscured(q: _Quals, default_zone: str = "base") -> list[Finding]:
    return [_mk("opacity", q, zone=q.zone or default_zone)]


def _rule_lung(q: _Quals) -> list[Finding]:
    if q.has("hypoinflation"):
        return [_mk("hypoinflation", q, zone=None)]
    if q.has("hyperdistention"):
        return [_mk("hyperinflation", q, zone=None)]
    if q.has("azygos lobe"):
        return [_mk("azygos_lobe", q, side="right", zone="apex")]
    if q.has("lymph nodes") or (q.zone == "hilum" and q.has("enlarged", "prominent")):
        return [_mk("hilar_enlargement", q, zone="hilum")]
    if q.has("blood vessels"):
        return [_mk("pulmonary_congestion", q)]
    if q.has("interstitial") or q.has("prominent"):
        return [_mk("increased_markings", q)]
    if q.has("obscured"):
        return _obscured(q)
    return []


def _rule_calcinosis(q: _Quals) -> list[Finding]:
    if q.has("aorta", "aorta, thoracic", "blood vessels", "coronary vessels"):
        return [_mk("aortic_calcification", q, calcified=True, zone=None)]
    if q.has("lymph nodes", "mediastinum", "paratracheal", "trachea, carina", "pulmonary artery"):
        return [_mk("calcified_lymph_nodes", q, calcified=True, zone="hilum" if q.zone == "hilum" else None)]
    if q.has("pleura"):
        return [_mk("pleural_thickening", q, calcified=True)]
    if q.has("breast implants"):
        return [_mk("breast_implants", q, calcified=True)]
    if q.has("lung") or q.zone is not None or q.has("round"):
        return [_mk("granuloma", q, calcified=True)]
    if q.has("mitral valve", "abdomen", "ribs", "spine", "bronchi"):
        return []
    return [_mk("granulomatous_disease", q, calcified=True)]


def _rule_fracture(q: _Quals) -> list[Finding]:
    if q.has("clavicle"):
        return [_mk("clavicle_fracture", q)]
    if q.has("thoracic vertebrae", "lumbar vertebrae", "spine"):
        return [_mk("vertebral_compression", q, zone=_spine_zone(q))]
    if q.has("humerus", "shoulder", "sternum"):
        return []
    return [_mk("rib_fracture", q)]


def _rule_deformity(q: _Quals) -> list[Finding]:
    if q.has("ribs"):
        return [_mk("rib_fracture", q)]
    if q.has("clavicle"):
        return [_mk("clavicle_fracture", q)]
    if q.has("thoracic vertebrae", "lumbar vertebrae", "spine"):
        return [_mk("vertebral_compression", q, zone=_spine_zone(q))]
    if q.has("sternum", "thorax"):
        return [_mk("pectus_excavatum", q)]
    return []


def _rule_device(q: _Quals) -> list[Finding]:
    if q.has("aortic valve", "mitral valve", "heart", "heart atria", "pulmonary artery"):
        return [_mk("valve_prosthesis", q, zone=None)]
    if q.has("humerus", "shoulder"):
        return [_mk("shoulder_prosthesis", q, zone=None)]
    if q.has("thoracic vertebrae", "cervical vertebrae", "lumbar vertebrae", "spine"):
        return [_mk("spinal_fusion", q, zone=_spine_zone(q))]
    if q.has("abdomen"):
        return [_mk("abdominal_clips", q)]
    return [_mk("pacemaker", q, zone=None)]


def _rule_instruments(q: _Quals) -> list[Finding]:
    if q.has("mediastinum", "heart"):
        return [_mk("sternotomy", q, side=None, zone=None)]
    if q.has("abdomen"):
        return [_mk("abdominal_clips", q)]
    if q.has("neck", "cervical vertebrae"):
        return [_mk("surgical_clips", q, zone="apex")]
    return [_mk("surgical_clips", q)]


def _rule_spine(q: _Quals) -> list[Finding]:
    if q.has("degenerative"):
        return [_mk("degenerative_spine", q, zone=_spine_zone(q) or q.zone)]
    return []


def _rule_heart(q: _Quals) -> list[Finding]:
    if q.has("obscured"):
        return _obscured(q, "lingula" if q.side == "left" else "middle" if q.side == "right" else "base")
    if q.has("enlarged", "prominent"):
        return [_mk("cardiomegaly", q, side=None, zone=None)]
    return []


def _rule_diaphragm(q: _Quals) -> list[Finding]:
    if q.has("elevated"):
        return [_mk("elevated_diaphragm", q, zone=None)]
    if q.has("flattened"):
        return [_mk("flattened_diaphragm", q, zone=None)]
    if q.has("obscured"):
        return _obscured(q)
    return []


def _rule_thickening(q: _Quals) -> list[Finding]:
    if q.has("pleura"):
        return [_mk("pleural_thickening", q)]
    if q.has("bronchi", "bronchovascular", "interstitial"):
        return [_mk("increased_markings", q)]
    if q.has("heart ventricles"):
        return [_mk("cardiomegaly", q, side=None)]
    if q.has("paratracheal"):
        return [_mk("mediastinal_widening", q)]
    return [_mk("pleural_thickening", q)]


def _simple(kind: str, **over: object) -> Callable[[_Quals], list[Finding]]:
    return lambda q: [_mk(kind, q, **over)]


def _pair(*kinds: str) -> Callable[[_Quals], list[Finding]]:
    return lambda q: [_mk(k, q) for k in kinds]


def _unless(words: tuple[str, ...], kind: str, **over: object) -> Callable[[_Quals], list[Finding]]:
    return lambda q: [] if q.has(*words) else [_mk(kind, q, **over)]


_RULES: dict[str, Callable[[_Quals], list[Finding]]] = {
    "cardiomegaly": _simple("cardiomegaly", side=None, zone=None),
    "cardiac shadow": _simple("cardiomegaly", side=None, zone=None),
    "heart": _rule_heart,
    "heart atria": _rule_heart,
    "heart ventricles": _rule_heart,
    "heart failure": lambda q: [_mk("cardiomegaly", q, side=None, zone=None),
                                _mk("pulmonary_congestion", q, severity=None)],
    "pericardial effusion": _simple("cardiomegaly", side=None, zone=None, severity="moderate"),
    "pleural effusion": _simple("pleural_effusion"),
    "hemothorax": _simple("pleural_effusion"),
    "hydropneumothorax": _pair("pneumothorax", "pleural_effusion"),
    "hemopneumothorax": _pair("pneumothorax", "pleural_effusion"),
    "costophrenic angle": _simple("blunted_costophrenic_angle", zone="base"),
    "sulcus": _simple("blunted_costophrenic_angle", zone="base"),
    "pleura": lambda q: [_mk("blunted_costophrenic_angle" if q.has("blunted") else "pleural_thickening", q)],
    "pneumothorax": _simple("pneumothorax"),
    "opacity": _simple("opacity"),
    "airspace disease": _simple("airspace_disease"),
    "consolidation": _simple("consolidation"),
    "infiltrate": _simple("infiltrate"),
    "pneumonia": _simple("pneumonia"),
    "density": _simple("density"),
    "pulmonary atelectasis": _simple("atelectasis"),
    "atelectasis": _simple("atelectasis"),
    "volume loss": _simple("volume_loss"),
    "thorax": _simple("volume_loss"),
    "nodule": _simple("nodule"),
    "mass": _simple("mass"),
    "granuloma": _simple("granuloma"),
    "calcified granuloma": _simple("granuloma", calcified=True),
    "granulomatous disease": _simple("granulomatous_disease", calcified=True),
    "tuberculosis": _simple("granulomatous_disease", calcified=True),
    "calcinosis": _rule_calcinosis,
    "emphysema": _simple("emphysema"),
    "pulmonary emphysema": _simple("emphysema"),
    "pulmonary disease, chronic obstructive": _simple("emphysema"),
    "bullous emphysema": _simple("emphysema", multiple=True),
    "lung": _rule_lung,
    "lung, hyperlucent": _simple("hyperlucent_lung"),
    "lucency": _simple("lucency"),
    "cysts": _simple("lucency"),
    "blister": _simple("lucency"),
    "cavitation": _simple("cavitation"),
    "cicatrix": lambda q: [_mk("pleural_thickening" if q.has("pleura") else "scarring", q)],
    "markings": _simple("increased_markings"),
    "bronchiectasis": _simple("increased_markings"),
    "bronchitis": _simple("increased_markings"),
    "bronchiolitis": _simple("increased_markings"),
    "cystic fibrosis": _simple("increased_markings", zone="upper"),
    "pulmonary fibrosis": _simple("interstitial_fibrosis"),
    "fibrosis": _simple("interstitial_fibrosis"),
    "lung diseases, interstitial": _simple("interstitial_fibrosis"),
    "pulmonary congestion": _simple("pulmonary_congestion"),
    "blood vessels": _simple("pulmonary_congestion"),
    "pulmonary edema": _simple("pulmonary_edema"),
    "thickening": _rule_thickening,
    "lymph nodes": _simple("hilar_enlargement", zone="hilum"),
    "sarcoidosis": _simple("hilar_enlargement", zone="hilum", side="bilateral"),
    "mediastinum": _unless(("obscured",), "mediastinal_widening"),
    "pulmonary artery": _simple("pulmonary_artery_enlargement"),
    "hypertension, pulmonary": _simple("pulmonary_artery_enlargement"),
    "aorta": _unless(("obscured",), "tortuous_aorta", zone=None),
    "aorta, thoracic": _unless(("obscured",), "tortuous_aorta", zone=None),
    "aortic aneurysm": _simple("tortuous_aorta", severity="large", zone=None),
    "atherosclerosis": _simple("aortic_calcification", calcified=True, zone=None),
    "diaphragm": _rule_diaphragm,
    "diaphragmatic eventration": _simple("elevated_diaphragm", zone=None),
    "hernia, hiatal": _simple("hiatal_hernia", side=None),
    "hernia, diaphragmatic": _simple("hiatal_hernia", side=None),
    "pneumoperitoneum": _simple("pneumoperitoneum"),
    "subcutaneous emphysema": _simple("subcutaneous_emphysema"),
    "mediastinal emphysema": _simple("subcutaneous_emphysema", side="bilateral"),
    "shift": _simple("mediastinal_shift"),
    "pneumonectomy": _simple("pneumonectomy"),
    "epicardial fat": _simple("epicardial_fat"),
    "adipose tissue": _simple("epicardial_fat"),
    "scoliosis": lambda q: [_mk("scoliosis", q, zone=_spine_zone(q))],
    "kyphosis": lambda q: [_mk("kyphosis", q, zone=_spine_zone(q))],
    "thoracic vertebrae": _rule_spine,
    "spine": _rule_spine,
    "lumbar vertebrae": _rule_spine,
    "cervical vertebrae": _rule_spine,
    "arthritis": lambda q: [_mk("shoulder_arthritis", q) if q.has("shoulder", "humerus")
                            else _mk("degenerative_spine", q, zone=_spine_zone(q))],
    "osteophyte": lambda q: [_mk("shoulder_arthritis", q) if q.has("shoulder")
                             else _mk("osteophytes", q, zone=_spine_zone(q))],
    "spondylosis": lambda q: [_mk("osteophytes", q, zone=_spine_zone(q))],
    "hyperostosis, diffuse idiopathic skeletal": _simple("spinal_hyperostosis", zone=None),
    "shoulder": _unless(("obscured",), "shoulder_arthritis"),
    "bone diseases, metabolic": _simple("osteopenia", zone=None),
    "osteoporosis": _simple("osteopenia", zone=None),
    "fractures, bone": _rule_fracture,
    "deformity": _rule_deformity,
    "ribs": _simple("rib_fracture"),
    "spinal fusion": lambda q: [_mk("spinal_fusion", q, zone=_spine_zone(q))],
    "catheters, indwelling": _simple("catheter", zone=None),
    "tube, inserted": _simple("tube", zone=None),
    "implanted medical device": _rule_device,
    "medical device": _simple("medical_device", zone=None),
    "surgical instruments": _rule_instruments,
    "sutures": lambda q: [_mk("sternotomy", q, side=None, zone=None) if q.has("sternum", "mediastinum")
                          else _mk("lung_sutures", q)],
    "stents": lambda q: [_mk("stent", q, zone="retrocardiac" if q.has("aorta") else None)],
    "foreign bodies": _simple("foreign_body"),
    "mastectomy": _simple("mastectomy", zone=None),
    "breast implants": _simple("breast_implants", zone=None),
    "nipple shadow": _simple("nipple_shadow", zone=None),
    "funnel chest": _simple("pectus_excavatum", zone=None),
    "technical quality of image unsatisfactory": _simple("poor_technique", side=None, zone=None),
}


def parse_mesh(majors: Sequence[str]) -> PhantomSpec:
    """Map the raw ``<major>`` MeSH strings of one study to a :class:`PhantomSpec`.

    ``"normal"`` and ``"No Indexing"`` are known and draw nothing. Qualifiers after ``/`` set side, zone,
    severity, ``calcified`` and ``multiple`` (``multiple``/``scattered``/``multilobar``/``diffuse``); unknown
    qualifiers are ignored. A term whose (term, qualifiers) combination the renderer cannot draw lands in
    ``unknown_terms`` (whitespace-normalised, deduplicated, sorted).
    """
    findings: list[Finding] = []
    unknown: set[str] = set()
    for raw in majors:
        parts = str(raw).split("/")
        term = " ".join(parts[0].split())
        key = term.lower()
        if not key or key in _NOTHING_TERMS:
            continue
        rule = _RULES.get(key)
        made = rule(_qualifiers(parts[1:])) if rule else []
        if made:
            findings.extend(made)
        else:
            unknown.add(term)
    return PhantomSpec(tuple(findings), tuple(sorted(unknown)))


def describe(spec: PhantomSpec) -> str:
    """One short human-readable line, e.g. ``"cardiomegaly(mild); pleural_effusion(right, small)"``."""
    parts = []
    for f in spec.findings:
        quals = [x for x in (f.side, f.zone, f.severity) if x]
        quals += [name for name, on in (("calcified", f.calcified), ("multiple", f.multiple)) if on]
        parts.append(f"{f.kind}({', '.join(quals)})" if quals else f.kind)
    text = "; ".join(parts) if parts else "normal"
    if spec.unknown_terms:
        text += f" [not drawn: {', '.join(spec.unknown_terms)}]"
    return text


# ----------------------------------------------------------------------------------------------------------
# Patient anatomy (view independent)
# ----------------------------------------------------------------------------------------------------------

_SEVERITY_SCALE = {"borderline": 0.35, "mild": 0.55, "small": 0.55, "moderate": 0.8, "large": 1.05,
                   "severe": 1.25}


def _sev(f: Finding, default: float = 0.7) -> float:
    return _SEVERITY_SCALE.get(f.severity or "", default)


def _sgn(side: str) -> float:
    """Image-u direction of the patient's ``side`` on a PA view (patient right = image left)."""
    return -1.0 if side == "right" else 1.0


@dataclass
class _Spine:
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
class _Anatomy:
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
    spine: _Spine = field(default_factory=_Spine)
    crop: float = 0.0

    def dome_v(self, side: str) -> float:
        base = self.apex_v + self.lung_h + (self.dome_gap if side == "left" else 0.0)
        return base + self.dome_shift[side]


def _patient(seed: int) -> _Anatomy:
    """Draw one patient; the number and order of draws is fixed so the seed fully defines the anatomy."""
    r = np.random.Generator(np.random.PCG64(seed))
    x = r.random(40).tolist()
    female = bool(x[0] < 0.48)
    age = float(x[1])
    size = 0.94 + 0.1 * x[2]
    thw = (0.305 + 0.04 * x[3]) * size * (0.96 if female else 1.0)
    breast_size = (0.75 + 0.5 * x[4]) if female else 0.0
    return _Anatomy(
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
        spine=_Spine(seed=int(r.integers(0, 2**31))),
    )


# ----------------------------------------------------------------------------------------------------------
# Canvas and drawing primitives
# ----------------------------------------------------------------------------------------------------------


@dataclass
class _Win:
    rows: slice
    cols: slice
    u: np.ndarray   # (1, w) column coordinates
    v: np.ndarray   # (h, 1) row coordinates

    @property
    def idx(self) -> tuple[slice, slice]:
        return self.rows, self.cols


class _Canvas:
    """Arrays of one render: density ``D``, lung ``air``, vessel gate, per-side lung masks and geometry."""

    def __init__(self, n: int, view: str) -> None:
        self.n = n
        self.view = view
        self.c = ((np.arange(n, dtype=np.float32) + 0.5) / n).astype(np.float32)
        self.D = np.zeros((n, n), np.float32)
        self.air = np.zeros((n, n), np.float32)
        self.vgate = np.ones((n, n), np.float32)
        self.hemi: dict[str, np.ndarray] = {}
        self.ribs = np.zeros((n, n), np.float32)
        self.bones = np.zeros((n, n), np.float32)
        self.anchor: dict[str, tuple[float, float]] = {}
        self.lung_rows: dict[str, tuple[np.ndarray, np.ndarray]] = {}   # side -> (medial u, lateral u) per row
        self.px = 1.0 / n
        self.lat: dict[str, float] = {}          # lateral view geometry (see _lat_geometry)
        self.lat_walls: tuple[np.ndarray, np.ndarray] | None = None

    def win(self, u0: float, u1: float, v0: float, v1: float) -> _Win | None:
        n = self.n
        c0, c1 = max(0, int(math.floor(u0 * n))), min(n, int(math.ceil(u1 * n)))
        r0, r1 = max(0, int(math.floor(v0 * n))), min(n, int(math.ceil(v1 * n)))
        if c1 <= c0 or r1 <= r0:
            return None
        return _Win(slice(r0, r1), slice(c0, c1), self.c[None, c0:c1], self.c[r0:r1, None])

    def gate(self, side: str | None) -> np.ndarray:
        """Where a lung finding may show: one hemithorax, or both for ``None``."""
        if side in self.hemi:
            return self.hemi[side]  # type: ignore[index]
        return self.hemi["both"]


def _expneg(x2: np.ndarray) -> np.ndarray:
    """``exp(-x2)`` for ``x2 >= 0`` as ``(1 + x2/16)^-16``: only IEEE-exact + * / so every CPU agrees bit for bit
    (numpy's SIMD ``exp`` may differ in the last bit between machines)."""
    y = 1.0 / (1.0 + x2 * (1.0 / 16.0))
    y = y * y
    y = y * y
    y = y * y
    return y * y


def _bell(x: np.ndarray) -> np.ndarray:
    """Gaussian bump ``exp(-x^2)`` (see :func:`_expneg`)."""
    return _expneg(x * x)


def _ramp(x: np.ndarray, width: float) -> np.ndarray:
    return np.clip(x * (1.0 / width), 0.0, 1.0)


def _smooth(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def _ellipse_r2(w: _Win, u: float, v: float, ru: float, rv: float, angle: float = 0.0) -> np.ndarray:
    du, dv = w.u - u, w.v - v
    if angle:
        ca, sa = math.cos(angle), math.sin(angle)
        du, dv = du * ca + dv * sa, dv * ca - du * sa
    return (du * (1.0 / ru)) ** 2 + (dv * (1.0 / rv)) ** 2


def _blob(cv: _Canvas, u: float, v: float, ru: float, rv: float | None = None, amp: float = 0.3, *,
          profile: str = "ball", angle: float = 0.0, gate: np.ndarray | None = None,
          target: np.ndarray | None = None, texture: np.ndarray | None = None) -> None:
    """Add an elliptical density. Profiles: ``ball`` (sphere thickness), ``gauss``, ``disk`` (sharp edge)."""
    rv = ru if rv is None else rv
    reach = 1.0 if profile != "gauss" else 1.9
    r = max(ru, rv) * reach + 2 * cv.px
    w = cv.win(u - r, u + r, v - r, v + r)
    if w is None:
        return
    r2 = _ellipse_r2(w, u, v, ru, rv, angle)
    if profile == "gauss":
        shape = _expneg(2.2 * r2)
    elif profile == "disk":
        edge = max(1.2 * cv.px / min(ru, rv), 0.04)
        shape = np.clip((1.0 - np.sqrt(r2)) / edge, 0.0, 1.0)
    else:
        shape = np.sqrt(np.clip(1.0 - r2, 0.0, 1.0))
    if texture is not None:
        shape = shape * _fit(texture, shape.shape)
    if gate is not None:
        shape = shape * gate[w.idx]
    (cv.D if target is None else target)[w.idx] += amp * shape


def _fit(tex: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    if tex.shape == shape:
        return tex
    img = Image.fromarray(tex.astype(np.float32), mode="F").resize((shape[1], shape[0]), Image.BILINEAR)
    return np.asarray(img, dtype=np.float32)


def _lowfreq(rng: np.random.Generator, cells: int, h: int, w: int, lo: float = 0.0) -> np.ndarray:
    """Smooth random texture in [lo, 1] of shape (h, w), built from a (cells x cells) random grid."""
    g = rng.random((cells, cells)).astype(np.float32)
    img = Image.fromarray(g, mode="F").resize((max(w, 1), max(h, 1)), Image.BICUBIC)
    t = np.clip(np.asarray(img, dtype=np.float32), 0.0, 1.0)
    return lo + (1.0 - lo) * t


class _Sketch:
    """Vector primitives in normalised coordinates, rasterised (2x supersampled) into a window of ``D``."""

    def __init__(self) -> None:
        self.ops: list[tuple[str, list[tuple[float, float]], float, float]] = []

    def line(self, pts: Sequence[tuple[float, float]], width: float, value: float = 1.0) -> _Sketch:
        if len(pts) >= 2:
            self.ops.append(("line", [tuple(p) for p in pts], width, value))  # type: ignore[misc]
        return self

    def poly(self, pts: Sequence[tuple[float, float]], value: float = 1.0) -> _Sketch:
        if len(pts) >= 3:
            self.ops.append(("poly", [tuple(p) for p in pts], 0.0, value))  # type: ignore[misc]
        return self

    def ellipse(self, u: float, v: float, ru: float, rv: float, value: float = 1.0, angle: float = 0.0,
                outline: float = 0.0) -> _Sketch:
        pts = _ellipse_pts(u, v, ru, rv, angle)
        if outline > 0:
            return self.line(pts + [pts[0]], outline, value)
        return self.poly(pts, value)

    def render(self, cv: _Canvas, amp: float, *, blur: float = 0.5, target: np.ndarray | None = None,
               gate: np.ndarray | None = None, ss: int = 2) -> None:
        if not self.ops:
            return
        us = [p[0] for op in self.ops for p in op[1]]
        vs = [p[1] for op in self.ops for p in op[1]]
        pad = max(op[2] for op in self.ops) + (blur * 3 + 3) * cv.px
        w = cv.win(min(us) - pad, max(us) + pad, min(vs) - pad, max(vs) + pad)
        if w is None:
            return
        n = cv.n
        c0, r0 = w.cols.start, w.rows.start
        width_px, height_px = w.cols.stop - c0, w.rows.stop - r0
        img = Image.new("L", (width_px * ss, height_px * ss), 0)
        draw = ImageDraw.Draw(img)
        for kind, pts, width, value in self.ops:
            xy = [((p[0] * n - c0) * ss, (p[1] * n - r0) * ss) for p in pts]
            fill = int(round(255 * min(max(value, 0.0), 1.0)))
            if kind == "line":
                draw.line(xy, fill=fill, width=max(1, int(round(width * n * ss))), joint="curve")
            else:
                draw.polygon(xy, fill=fill)
        if ss > 1:
            img = img.reduce(ss)
        if blur > 0:
            img = img.filter(ImageFilter.GaussianBlur(blur * n / 512.0))
        arr = np.asarray(img, dtype=np.float32) * (amp / 255.0)
        if gate is not None:
            arr *= gate[w.idx]
        (cv.D if target is None else target)[w.idx] += arr


_UNIT = {k: (np.array([math.cos(2 * math.pi * i / k) for i in range(k)]),
             np.array([math.sin(2 * math.pi * i / k) for i in range(k)])) for k in (12, 28)}


def _ellipse_pts(u: float, v: float, ru: float, rv: float, angle: float = 0.0, k: int = 28
                 ) -> list[tuple[float, float]]:
    cos_t, sin_t = _UNIT[k] if k in _UNIT else _UNIT[28]
    ca, sa = math.cos(angle), math.sin(angle)
    x, y = ru * cos_t, rv * sin_t
    return list(zip((u + x * ca - y * sa).tolist(), (v + x * sa + y * ca).tolist()))


def _rect_pts(u: float, v: float, hw: float, hh: float, angle: float = 0.0) -> list[tuple[float, float]]:
    ca, sa = math.cos(angle), math.sin(angle)
    return [(u + x * ca - y * sa, v + x * sa + y * ca) for x, y in ((-hw, -hh), (hw, -hh), (hw, hh), (-hw, hh))]


def _bezier(p0: tuple[float, float], p1: tuple[float, float], p2: tuple[float, float],
            p3: tuple[float, float] | None = None, k: int = 16) -> list[tuple[float, float]]:
    """Quadratic (3 points) or cubic (4 points) Bezier curve sampled at ``k + 1`` points."""
    out = []
    for i in range(k + 1):
        t = i / k
        if p3 is None:
            a, b, c = (1 - t) ** 2, 2 * t * (1 - t), t * t
            out.append((a * p0[0] + b * p1[0] + c * p2[0], a * p0[1] + b * p1[1] + c * p2[1]))
        else:
            a, b, c, d = (1 - t) ** 3, 3 * t * (1 - t) ** 2, 3 * t * t * (1 - t), t ** 3
            out.append((a * p0[0] + b * p1[0] + c * p2[0] + d * p3[0],
                        a * p0[1] + b * p1[1] + c * p2[1] + d * p3[1]))
    return out


def _wobble(pts: list[tuple[float, float]], rng: np.random.Generator, amount: float
            ) -> list[tuple[float, float]]:
    jit = rng.normal(0.0, amount, (len(pts), 2))
    return [(p[0] + float(j[0]), p[1] + float(j[1])) for p, j in zip(pts, jit)]


# ----------------------------------------------------------------------------------------------------------
# Frontal (PA) base anatomy
# ----------------------------------------------------------------------------------------------------------


def _heart_geometry(A: _Anatomy) -> dict[str, float]:
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


def _lung_bounds(A: _Anatomy, side: str, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Medial and lateral image-u boundary of one lung for rows ``v`` (1-D)."""
    sg = _sgn(side)
    L = A.dome_v(side) - A.apex_v
    t = np.clip((v - A.apex_v) / (0.5 * L), 0.0, 1.0)
    lat_w = A.thw * (0.40 + 0.60 * np.sqrt(t)) * (1.0 + 0.035 * np.clip((v - A.apex_v) / L, 0, 1.2))
    lat = A.cx + sg * lat_w
    cxm = A.cx + A.med_shift
    upper = _bell((v - A.apex_v) / 0.12)
    med = A.med_w * (1.0 + A.med_widen) + 0.012 * upper
    if side == "left":
        knob_v = A.apex_v + 0.21
        med = med + A.knob_bulge * _bell((v - knob_v) / A.knob_r)
        med = med + A.desc_bulge * _bell((v - knob_v - 0.09) / 0.06)
        med = med + A.pa_bulge * _bell((v - knob_v - 0.075) / 0.03)
    else:
        med = med + A.para_tracheal * _bell((v - A.apex_v - 0.14) / 0.08)
    return (cxm + sg * med).astype(np.float32), lat.astype(np.float32)


def _dome_curve(A: _Anatomy, side: str, u: np.ndarray) -> np.ndarray:
    sg = _sgn(side)
    peak = A.cx + sg * 0.47 * A.thw
    return (A.dome_v(side) + A.dome_depth * ((u - peak) / (0.55 * A.thw)) ** 2).astype(np.float32)


def _frontal_body(A: _Anatomy, cv: _Canvas) -> np.ndarray:
    """Soft-tissue thickness T in [0, 1]: torso (neck, shoulders, chest, abdomen) plus arms."""
    v = cv.c
    neck, chest = 0.085 + 0.01 * A.soft, A.thw + A.wall
    sh_v = A.apex_v - 0.02 + A.clav_v
    shoulder = chest + 0.1
    up = _smooth((v - (sh_v - 0.1)) / 0.11)
    down = _smooth((v - (sh_v + 0.02)) / 0.2)
    bw = neck + (shoulder - neck) * up
    bw = bw + (chest - shoulder) * down
    bw = bw * (1.0 - 0.03 * _smooth((v - A.dome_v("left") - 0.05) / 0.2))
    x = (cv.c[None, :] - A.cx) * (1.0 / bw)[:, None]
    T = np.clip(1.0 - x * x, 0.0, 1.0)
    np.sqrt(T, out=T)
    if A.arms:
        for side in ("right", "left"):
            sg = _sgn(side)
            ua = A.cx + sg * (chest + A.arm_gap + A.arm_r)
            w = cv.win(ua - A.arm_r, ua + A.arm_r, sh_v, 1.0)
            if w is None:
                continue
            xa = (w.u - ua) / A.arm_r
            arm = np.sqrt(np.clip(1.0 - xa * xa, 0.0, 1.0)) * _smooth((w.v - sh_v) / 0.06)
            np.maximum(T[w.idx], 0.5 * arm, out=T[w.idx])
    return T


def _frontal_lungs(A: _Anatomy, cv: _Canvas) -> None:
    """Per-side lung masks (cv.hemi) and the lung air map (cv.air), heart and mediastinum excluded."""
    n = cv.n
    e = 1.3 / n
    both = np.zeros((n, n), np.float32)
    for side in ("right", "left"):
        sg = _sgn(side)
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
        bot = _dome_curve(A, side, w.u)
        d_lat = sg * (lat - w.u)
        d_med = sg * (w.u - med)
        d_top = w.v - top
        d_bot = bot - w.v
        m = _ramp(d_lat, e) * _ramp(d_med, e) * _ramp(d_top, e) * _ramp(d_bot, e)
        cv.hemi[side] = np.zeros((n, n), np.float32)
        cv.hemi[side][w.idx] = m
        both[w.idx] += m
        bevel = (0.72 + 0.28 * _ramp(d_lat, 0.07)) * (0.55 + 0.45 * _ramp(d_top, 0.14))
        bevel *= 0.86 + 0.14 * _ramp(d_bot, 0.1)
        cv.air[w.idx] += m * bevel
        cv.anchor[f"cp_{side}"] = (float(A.cx + sg * A.thw * 1.0), float(_dome_curve(
            A, side, np.array([A.cx + sg * A.thw]))[0]))
    cv.hemi["both"] = np.minimum(both, 1.0)


def _frontal_heart(A: _Anatomy, cv: _Canvas) -> dict[str, float]:
    h = _heart_geometry(A)
    reach = max(h["a"], h["b"]) + 0.03
    w = cv.win(h["u"] - reach - 0.05, h["u"] + reach, h["v"] - reach, h["v"] + reach)
    if w is not None:
        r2 = _ellipse_r2(w, h["u"], h["v"], h["a"], h["b"], h["angle"])
        edge = 1.5 * cv.px / min(h["a"], h["b"])
        hm = np.clip((1.0 - np.sqrt(r2)) / edge, 0.0, 1.0)
        ra_u, ra_v, ra_r = h["right"] + 0.17 * h["width"], h["v"] + 0.05, 0.17 * h["width"]
        ra = np.clip((1.0 - np.sqrt(_ellipse_r2(w, ra_u, ra_v, ra_r, ra_r * 1.05))) / (1.5 * cv.px / ra_r), 0, 1)
        hm = np.maximum(hm, ra)
        cv.air[w.idx] *= 1.0 - 0.88 * hm
    ca, sa = math.cos(h["angle"]), math.sin(h["angle"])
    cv.anchor["heart"] = (h["u"], h["v"])
    cv.anchor["ra"] = (h["right"] + 0.12 * h["width"], h["v"] + 0.01)
    cv.anchor["rv_apex"] = (h["u"] + 0.75 * h["a"] * ca, h["v"] + 0.75 * h["a"] * sa)
    cv.anchor["lv_border"] = (h["u"] + 0.95 * h["a"] * ca - 0.3 * h["b"] * sa, h["v"] + 0.5 * h["a"] * sa)
    return h


def _frontal_airways(A: _Anatomy, cv: _Canvas) -> None:
    cxm = A.cx + A.med_shift
    car_v = A.apex_v + 0.23
    knob_v = A.apex_v + 0.21
    cv.anchor["carina"] = (cxm, car_v)
    cv.anchor["svc"] = (cxm - A.med_w * 0.55, car_v + 0.045)
    cv.anchor["knob"] = (cxm + A.med_w + A.knob_bulge - A.knob_r * 0.7, knob_v)
    cv.anchor["trachea_top"] = (A.cx + 0.004, 0.0)
    sk = _Sketch()
    trachea = [(A.cx + 0.004, -0.02), (A.cx, A.apex_v), (cxm - 0.004 - 0.2 * A.knob_bulge, knob_v - 0.02),
               (cxm, car_v)]
    sk.line(trachea, 0.034, 1.0)
    sk.line([(cxm, car_v - 0.01), (cxm - 0.035, car_v + 0.03), (cxm - 0.055, car_v + 0.06)], 0.018, 0.7)
    sk.line([(cxm, car_v - 0.01), (cxm + 0.045, car_v + 0.035), (cxm + 0.07, car_v + 0.055)], 0.016, 0.7)
    sk.render(cv, -0.18, blur=2.0, ss=1)


def _rib_field(A: _Anatomy, cv: _Canvas) -> None:
    """Posterior ribs as a phase field: convex-upward bands with bright cortical margins; anterior ribs fainter."""
    v0 = A.apex_v - 0.045 + A.clav_v * 0.3
    v1 = max(A.dome_v("right"), A.dome_v("left")) + 0.12
    span = 1.0 / (v1 - v0)
    bone = A.bone
    for side in ("right", "left"):
        sg = _sgn(side)
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
        fade = _ramp(t - 0.06, 0.07) * _ramp(1.04 - t, 0.03) * _ramp(phase - 0.6, 0.3)
        fade *= 1.0 - 0.6 * _ramp(w.v - (A.dome_v(side) + 0.03), 0.08)
        # anterior ribs: descend medially and end before the costal cartilage
        pa = (A.rib_n * 0.62) * (w.v + 0.13 * (t - 1.0) - v0 - 0.1) * span + 0.3
        fa = pa - np.floor(pa)
        ant = np.where(fa < 0.38, 1.0 - (fa * (1.0 / 0.19) - 1.0) ** 2, 0.0)
        ant *= _ramp(t - 0.32, 0.18) * _ramp(1.02 - t, 0.03) * _ramp(pa - 0.5, 0.2)
        ant *= 1.0 - _ramp(w.v - A.dome_v(side), 0.05)
        cv.ribs[w.idx] += bone * (0.095 * prof * fade + 0.035 * ant)


def _spine_u(A: _Anatomy, v: float) -> float:
    s = A.spine
    off = s.scoliosis * math.exp(-(((v - s.scoliosis_v) / 0.2) ** 2))
    off -= 0.45 * s.scoliosis * math.exp(-(((v - s.scoliosis_v - 0.38) / 0.14) ** 2))
    return A.cx + off


def _frontal_bones(A: _Anatomy, cv: _Canvas) -> None:
    """Spine, clavicles, scapulae and humeral heads as vector shapes into ``cv.bones``."""
    s = A.spine
    rng = np.random.Generator(np.random.PCG64([s.seed, 11]))
    low = _Sketch()   # faint: scapulae
    sk = _Sketch()
    for side in ("right", "left"):
        sg = _sgn(side)
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
        uc = _spine_u(A, v + hgt / 2)
        tilt = (_spine_u(A, v + hgt) - _spine_u(A, v)) / hgt
        val = 0.42 + (0.5 if idx in s.compressed else 0.0) + 0.12 * s.degenerative
        sk.poly(_rect_pts(uc, v + hgt / 2, wid / 2, hgt / 2, angle=-0.6 * tilt), val)
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
        sg = _sgn(side)
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
            sk.poly(_rect_pts(hu + sg * 0.012, hv + 0.25, 0.022, 0.22), 0.55)
            sk.ellipse(hu - sg * (hr + 0.006), hv, 0.012, 0.035, 0.6)   # glenoid
            cv.anchor[f"humerus_{side}"] = (hu, hv)
            state = A.shoulder.get(side)
            if state == "arthritis":
                sk.ellipse(hu, hv, hr, hr * 1.1, 1.0, outline=0.006)
                sk.poly([(hu - sg * 0.7 * hr, hv + 0.9 * hr), (hu - sg * 1.25 * hr, hv + 1.25 * hr),
                         (hu - sg * 0.4 * hr, hv + 1.1 * hr)], 1.0)
    low.render(cv, 0.08 * A.bone, blur=1.5, target=cv.bones, ss=1)
    sk.render(cv, 0.26 * A.bone, blur=1.0, target=cv.bones, ss=1)


def _vessel_tree(A: _Anatomy, cv: _Canvas, rng: np.random.Generator) -> np.ndarray:
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
        sg = _sgn(side)
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


def _frontal_extras(A: _Anatomy, cv: _Canvas) -> None:
    """Breast shadows and gastric air."""
    for side in ("right", "left"):
        size = A.breast[side]
        if size <= 0:
            continue
        sg = _sgn(side)
        u, v = A.cx + sg * 0.62 * A.thw, A.dome_v(side) - 0.02
        ru, rv = 0.17 * size, 0.13 * size
        w = cv.win(u - ru, u + ru, v - rv * 1.6, v + rv)
        if w is None:
            continue
        r2 = _ellipse_r2(w, u, v - 0.2 * rv, ru, rv)
        shape = np.sqrt(np.clip(1.0 - r2, 0.0, 1.0)) * _smooth((w.v - (v - 1.3 * rv)) / (1.2 * rv))
        cv.D[w.idx] += 0.2 * A.soft * shape
        cv.anchor[f"breast_{side}"] = (u, v)
    su, sv, sr = A.stomach
    gu, gv = A.cx + 0.12 + 0.05 * su, A.dome_v("left") + 0.035 + sv
    cv.anchor["stomach"] = (gu, gv)
    rad = 0.032 * (0.7 + sr)
    w = cv.win(gu - rad, gu + rad, gv - rad, gv + rad)
    if w is not None:   # gastric bubble with a flat fluid level
        bubble = np.sqrt(np.clip(1.0 - _ellipse_r2(w, gu, gv, rad * 1.2, rad * 0.9), 0.0, 1.0))
        cv.D[w.idx] -= 0.3 * bubble * _ramp(gv + 0.25 * rad - w.v, 1.5 * cv.px)


def _parenchyma(cv: _Canvas, rng: np.random.Generator) -> None:
    """Mottle the lung air with a coarse and a fine smooth random texture (superimposed small vessels)."""
    n = cv.n
    coarse = _lowfreq(rng, 18, n, n)
    fine = _lowfreq(rng, max(8, n // 6), n, n)
    cv.air *= 0.84 + 0.17 * coarse + 0.12 * fine


def _compose(A: _Anatomy, cv: _Canvas, T: np.ndarray, vessels: np.ndarray) -> None:
    """D += soft tissue minus lung air, bones and gated vessels."""
    air = np.clip(cv.air * A.air, 0.0, 1.08)
    dens = T * A.soft * (1.0 - 0.7 * air)
    v = cv.c[:, None]
    upper = 1.0 + (A.vessel_upper - 1.0) * _ramp(0.5 - v, 0.2)
    gate = np.clip(cv.air * 1.6, 0.0, 1.0) * cv.vgate * upper
    cv.D += dens + cv.ribs + cv.bones + (0.13 * A.vessel_gain) * vessels * gate


def _tone(A: _Anatomy, cv: _Canvas, rng: np.random.Generator) -> np.ndarray:
    """Film curve (lookup table), rotation, blur and detector noise -> uint8."""
    n = cv.n
    steps = 512
    k, lo, span = 1.6 * A.exposure, A.lo, A.hi - A.lo
    curve = [min(max((1.0 - math.exp(-k * i / steps) - lo) / span, 0.0), 1.0) ** A.gamma for i in range(4 * steps + 1)]
    lut = (np.array(curve) * 255.0 + 0.5).astype(np.uint8)
    heel = (1.0 + A.heel * (cv.c - 0.5)) * steps
    idx = cv.D * heel[:, None].astype(np.float32)
    np.clip(idx, 0, 4 * steps, out=idx)
    pil = Image.fromarray(lut[idx.astype(np.intp)], mode="L")
    angle = math.radians(A.rotation)
    zoom = A.zoom * (1.0 + abs(math.sin(angle)) * 1.1) * (1.0 + A.crop)
    ca, sa = math.cos(angle) / zoom, math.sin(angle) / zoom
    c = n / 2.0
    shift_v = -A.crop * 0.35 * n
    pil = pil.transform((n, n), Image.AFFINE, (ca, -sa, c - ca * c + sa * c, sa, ca, c - sa * c - ca * c + shift_v),
                        resample=Image.BILINEAR)
    pil = pil.filter(ImageFilter.GaussianBlur(A.blur * n / 512.0))
    out = np.asarray(pil, dtype=np.float32)
    # detector noise: triangular (sum of two uniform bytes), std ~ noise * 255, stronger in bright areas
    a = np.frombuffer(rng.bytes(n * n), np.uint8).reshape(n, n).astype(np.float32)
    b = np.frombuffer(rng.bytes(n * n), np.uint8).reshape(n, n)
    a += b
    a -= 255.0
    gain = A.noise / 0.408
    out += a * (out * (0.55 * gain / 255.0) + 0.45 * gain)
    np.clip(out, 0.0, 255.0, out=out)
    return (out + 0.5).astype(np.uint8)


# ----------------------------------------------------------------------------------------------------------
# Lateral base anatomy
# ----------------------------------------------------------------------------------------------------------


def _lat_geometry(A: _Anatomy) -> dict[str, float]:
    """Lateral view: anterior (image left) and posterior inner chest wall, AP half-depth, centre, apex."""
    depth = 0.29 * A.ap_scale * (A.thw / 0.33)
    uc = 0.5 + (A.cx - 0.5) * 0.5
    return {"uc": uc, "ant": uc - 0.95 * depth, "post": uc + 1.05 * depth, "depth": depth, "apex_u": uc - 0.01}


def _lat_walls(A: _Anatomy, g: dict[str, float], v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Anterior and posterior lung boundary u for rows ``v``; both converge on a rounded apex."""
    r = np.clip((v - A.apex_v) / 0.3, 0.0, 1.0)
    cap = np.sqrt(1.0 - (1.0 - r) ** 2)
    kyph = A.spine.kyphosis * _bell((v - 0.42) / 0.22)
    lean = 0.035 * (1.0 - np.clip((v - A.apex_v) / 0.45, 0.0, 1.0))
    ant_l = g["apex_u"] - (g["apex_u"] - g["ant"] - 0.012 - lean) * cap
    post_l = g["apex_u"] + (g["post"] - 0.015 + kyph - g["apex_u"]) * cap
    return ant_l.astype(np.float32), post_l.astype(np.float32)


def _lat_spine_u(A: _Anatomy, g: dict[str, float], v: float) -> float:
    """Anterior margin of the vertebral bodies at row ``v`` (thoracic kyphosis, lumbar lordosis)."""
    kyph = A.spine.kyphosis * math.exp(-(((v - 0.42) / 0.22) ** 2))
    curve = 0.035 * math.sin(math.pi * min(max(v + 0.05, 0.0), 1.0))
    return g["post"] - 0.2 + curve + kyph


def _lat_dome(A: _Anatomy, g: dict[str, float], side: str, u: np.ndarray) -> np.ndarray:
    """Hemidiaphragm on the lateral view: high anteriorly, falling to the posterior costophrenic sulcus."""
    peak = g["ant"] + 0.4 * (g["post"] - g["ant"])
    flat = A.dome_depth / 0.07
    post = np.clip((u - peak) / (g["post"] - peak), 0.0, None)
    ant = np.clip((peak - u) / (peak - g["ant"]), 0.0, None)
    return (A.dome_v(side) - 0.01 + flat * (0.13 * post * post * post + 0.035 * ant * ant)).astype(np.float32)


def _lateral_body(A: _Anatomy, cv: _Canvas, g: dict[str, float]) -> np.ndarray:
    v = cv.c
    neck = _smooth((v - (A.apex_v - 0.12)) / 0.14)
    belly = 0.025 * _smooth((v - 0.7) / 0.3)
    breast = max(A.breast["right"], A.breast["left"])
    skin_a = g["ant"] - A.wall * 0.7 - 0.02 - belly
    skin_a = skin_a - 0.045 * breast * _bell((v - A.dome_v("left") + 0.09) / 0.07)
    skin_p = g["post"] + A.wall * 0.6 + 0.035 + A.spine.kyphosis * _bell((v - 0.42) / 0.22)
    neck_a, neck_p = g["uc"] - 0.06, g["post"] - 0.02
    front = neck_a + (skin_a - neck_a) * neck
    back = neck_p + (skin_p - neck_p) * neck
    mid, half = 0.5 * (front + back), 0.5 * (back - front)
    x = (cv.c[None, :] - mid[:, None]) * (1.0 / half)[:, None]
    T = np.sqrt(np.clip(1.0 - x * x, 0.0, 1.0))
    # shoulders and raised arms superimposed on the upper chest
    _blob(cv, g["uc"] - 0.02, A.apex_v - 0.02, 0.2, 0.12, 0.22, profile="gauss", target=T)
    _blob(cv, g["ant"] + 0.05, A.apex_v + 0.02, 0.1, 0.18, 0.12, profile="gauss", target=T)
    return T


def _lateral_base(A: _Anatomy, cv: _Canvas, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
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
    base = _ramp(w.u - a_w, e) * _ramp(p_w - w.u, e) * _ramp(w.v - A.apex_v, e)
    both = np.zeros((n, n), np.float32)
    air = np.zeros_like(base)
    for side in ("right", "left"):
        m = base * _ramp(_lat_dome(A, g, side, w.u) - w.v, e)
        air += 0.5 * m
    both[w.idx] = air
    spine_front = np.array([_lat_spine_u(A, g, float(vv)) for vv in cv.c[w.rows]], np.float32)[:, None]
    bevel = (0.6 + 0.4 * _ramp(w.v - A.apex_v, 0.16)) * (1.0 - 0.3 * _ramp(w.u - spine_front, 0.06))
    bevel *= 0.8 + 0.2 * _ramp(w.u - a_w, 0.05)
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
        r2 = _ellipse_r2(hw, hu, hv, ha, hb, -0.55)
        hm = np.clip((1.0 - np.sqrt(r2)) / (1.5 * cv.px / hb), 0.0, 1.0)
        cv.air[hw.idx] *= 1.0 - 0.72 * hm
    cv.anchor.update({"heart": (hu, hv), "ra": (hu + 0.02, hv + 0.02), "rv_apex": (hu - 0.08 * s, hv + 0.06),
                      "svc": (g["uc"] - 0.045, A.apex_v + 0.28), "carina": (g["uc"] + 0.01, A.apex_v + 0.24),
                      "stomach": (g["ant"] + 0.45 * g["depth"], A.dome_v("left") + 0.05),
                      "knob": (g["uc"] + 0.02, A.apex_v + 0.14), "lv_border": (hu + 0.1, hv + 0.05)})
    # aorta: ascending, arch over the trachea, descending along the spine
    ecta = 2.0 * A.desc_bulge          # tortuous/ectatic aorta: higher arch, descending part bowing back
    arch = _bezier((g["uc"] - 0.07 - ecta, A.apex_v + 0.34), (g["uc"] - 0.07 - ecta, A.apex_v + 0.1 - 2 * ecta),
                   (g["uc"] + 0.1 + ecta, A.apex_v + 0.1 - 2 * ecta),
                   (_lat_spine_u(A, g, A.apex_v + 0.3) - 0.015, A.apex_v + 0.3))
    arch += [(_lat_spine_u(A, g, float(vv)) - 0.015 - ecta * 4 * t * (1 - t), float(vv))
             for t, vv in zip(np.linspace(0, 1, 6), np.linspace(A.apex_v + 0.34, dome, 6))]
    _Sketch().line(arch, 0.03 + 0.5 * ecta, 1.0).render(cv, 0.1 + 2.0 * ecta, blur=3.0, target=cv.air,
                                                        gate=-cv.hemi["both"])
    hil = cv.anchor["hilum_right"] = cv.anchor["hilum_left"] = (g["uc"] + 0.02, A.apex_v + 0.3)
    _blob(cv, hil[0], hil[1], 0.045 * A.hilar_gain, 0.05 * A.hilar_gain, -0.25, profile="gauss", target=cv.air,
          gate=cv.hemi["both"])
    tr = _Sketch().line([(g["uc"] - 0.045, -0.02), (g["uc"] - 0.03, A.apex_v), (g["uc"] + 0.01, A.apex_v + 0.24)],
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
            band *= _ramp(rw.u - (g["uc"] - 0.02), 0.1) * _ramp(ph - 0.3, 0.3)
            cv.ribs[rw.idx] += amp * A.bone * band
    _lateral_bones(A, cv, g, dome)
    su, sv, sr = A.stomach
    gu, gv = cv.anchor["stomach"]
    _blob(cv, gu + 0.02 * su, gv + 0.01 * sv, 0.035 * (0.7 + sr), 0.022 * (0.7 + sr), -0.24)
    vessels = _lateral_vessels(A, cv, rng) * 0.6
    return T, vessels


def _lateral_bones(A: _Anatomy, cv: _Canvas, g: dict[str, float], dome: float) -> None:
    s = A.spine
    rng = np.random.Generator(np.random.PCG64([s.seed, 12]))
    sk = _Sketch()
    post_el = _Sketch()
    v = -0.02
    idx = 0
    while v < 1.05:
        hgt = 0.030 + 0.024 * min(max(v, 0.0), 1.0)
        dep = 0.055 + 0.025 * min(max(v, 0.0), 1.0)
        u0 = _lat_spine_u(A, g, v + hgt / 2)
        ang = math.atan2(_lat_spine_u(A, g, v + hgt) - _lat_spine_u(A, g, v), hgt)
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
        post_el.poly(_rect_pts(u0 + dep + 0.035, v + hgt / 2, 0.028, hgt * 0.28, angle=0.3), 0.7)
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
    sc = _Sketch().line([(g["post"] - 0.07, A.apex_v + 0.02), (g["post"] - 0.04, A.apex_v + 0.2),
                         (g["post"] - 0.06, A.apex_v + 0.33)], 0.01, 1.0)
    sc.render(cv, 0.06 * A.bone, blur=2.5, target=cv.bones, ss=1)


def _lateral_vessels(A: _Anatomy, cv: _Canvas, rng: np.random.Generator) -> np.ndarray:
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


# ----------------------------------------------------------------------------------------------------------
# Finding helpers shared by both views
# ----------------------------------------------------------------------------------------------------------

_ZONE_T = {"apex": 0.07, "upper": 0.22, "hilum": 0.45, "middle": 0.58, "lingula": 0.58, "lower": 0.8,
           "base": 0.88, "retrocardiac": 0.8}
_ZONE_F = {"apex": 0.45, "upper": 0.5, "hilum": 0.1, "middle": 0.45, "lingula": 0.4, "lower": 0.55,
           "base": 0.6}


def _zone_side(zone: str | None, side: str) -> str:
    if zone == "lingula":
        return "left"
    if zone == "middle" and side == "bilateral":
        return "right"
    return side


def _zone_center(cv: _Canvas, A: _Anatomy, side: str, zone: str | None, rng: np.random.Generator
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
            u = A.cx + _sgn(side) * 0.06
        else:
            u = um + _ZONE_F.get(zone or "", float(rng.uniform(0.3, 0.7))) * (ul - um)
        ru = 0.32 * abs(ul - um) + 0.01
        rv = 0.065 if zone not in ("base", "apex") else 0.05
    u += float(rng.normal(0, 0.08)) * ru
    v += float(rng.normal(0, 0.08)) * rv
    return u, v, ru, rv


def _sides(f: Finding, rng: np.random.Generator, default: str | None = None) -> list[str]:
    """Resolve ``f.side`` (seeded choice when missing; ``bilateral`` -> both)."""
    pick = "right" if rng.random() < 0.55 else "left"
    side = f.side or default or pick
    if f.zone == "lingula":
        side = "left" if side != "bilateral" else side
    return ["right", "left"] if side == "bilateral" else [side]


def _count(f: Finding, rng: np.random.Generator, lo: int, hi: int) -> int:
    return int(rng.integers(lo, hi + 1)) if f.multiple else 1


# ----- anatomy hooks --------------------------------------------------------------------------------------

AnatomyHook = Callable[[_Anatomy, Finding, list[str], np.random.Generator], None]
CanvasHook = Callable[[_Canvas, _Anatomy, Finding, list[str], np.random.Generator], None]


def _a_cardiomegaly(A: _Anatomy, f: Finding, sides: list[str], rng: np.random.Generator) -> None:
    # target cardiothoracic ratio by severity (normal patients have 0.40-0.47)
    ctr = {"borderline": 0.52, "mild": 0.56, "small": 0.56, "moderate": 0.62, "large": 0.68, "severe": 0.7}
    A.heart_scale = max(A.heart_scale, ctr.get(f.severity or "", 0.6) / A.ctr)


def _a_hyperinflation(A: _Anatomy, f: Finding, sides: list[str], rng: np.random.Generator) -> None:
    k = _sev(f)
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


def _a_hypoinflation(A: _Anatomy, f: Finding, sides: list[str], rng: np.random.Generator) -> None:
    k = _sev(f)
    for s in ("right", "left"):
        A.dome_shift[s] -= 0.075 * k
    A.vessel_gain *= 1.0 + 0.45 * k
    A.air *= 1.0 - 0.08 * k
    A.heart_tilt -= 0.12 * k


def _a_elevated(A: _Anatomy, f: Finding, sides: list[str], rng: np.random.Generator) -> None:
    for s in sides:
        A.dome_shift[s] -= 0.075 * _sev(f) + 0.01


def _a_flattened(A: _Anatomy, f: Finding, sides: list[str], rng: np.random.Generator) -> None:
    A.dome_depth *= 0.3
    for s in ("right", "left"):
        A.dome_shift[s] += 0.035 * _sev(f)


def _a_volume_loss(A: _Anatomy, f: Finding, sides: list[str], rng: np.random.Generator) -> None:
    for s in sides:
        A.dome_shift[s] -= 0.04 * _sev(f)
        A.med_shift += _sgn(s) * 0.012
        A.heart_shift += _sgn(s) * 0.01


def _a_atelectasis(A: _Anatomy, f: Finding, sides: list[str], rng: np.random.Generator) -> None:
    if f.zone in (None, "base", "lower"):
        for s in sides:
            A.dome_shift[s] -= 0.012 * _sev(f)


def _a_shift(A: _Anatomy, f: Finding, sides: list[str], rng: np.random.Generator) -> None:
    s = sides[0] if len(sides) == 1 else "right"
    A.med_shift += _sgn(s) * 0.03 * _sev(f)
    A.heart_shift += _sgn(s) * 0.02 * _sev(f)


def _a_pneumonectomy(A: _Anatomy, f: Finding, sides: list[str], rng: np.random.Generator) -> None:
    s = sides[0]
    full = f.zone is None
    A.med_shift += _sgn(s) * (0.05 if full else 0.015)
    A.heart_shift += _sgn(s) * (0.04 if full else 0.01)
    A.dome_shift[s] -= 0.06 if full else 0.025


def _a_mediastinum(A: _Anatomy, f: Finding, sides: list[str], rng: np.random.Generator) -> None:
    k = _sev(f)
    if f.side == "right":
        A.para_tracheal += 0.03 * k + 0.008
    else:
        A.med_widen = max(A.med_widen, 0.9 * k + 0.2)


def _a_tortuous_aorta(A: _Anatomy, f: Finding, sides: list[str], rng: np.random.Generator) -> None:
    k = _sev(f)
    A.knob_bulge += 0.02 * k + 0.006
    A.knob_r += 0.008 * k
    A.desc_bulge = max(A.desc_bulge, 0.02 * k + 0.008)


def _a_pulmonary_artery(A: _Anatomy, f: Finding, sides: list[str], rng: np.random.Generator) -> None:
    k = _sev(f)
    A.pa_bulge = max(A.pa_bulge, 0.02 * k + 0.008)
    A.hilar_gain = max(A.hilar_gain, 1.0 + 0.5 * k)
    A.vessel_prune = max(A.vessel_prune, 0.25 * k)


def _a_congestion(A: _Anatomy, f: Finding, sides: list[str], rng: np.random.Generator) -> None:
    k = _sev(f)
    A.vessel_gain *= 1.0 + 0.45 * k
    A.vessel_upper = max(A.vessel_upper, 1.0 + 1.2 * k)
    A.hilar_gain = max(A.hilar_gain, 1.0 + 0.35 * k)


def _a_markings(A: _Anatomy, f: Finding, sides: list[str], rng: np.random.Generator) -> None:
    A.vessel_gain *= 1.0 + 0.35 * _sev(f)


def _a_scoliosis(A: _Anatomy, f: Finding, sides: list[str], rng: np.random.Generator) -> None:
    side = sides[0] if len(sides) == 1 else "right"
    A.spine.scoliosis = _sgn(side) * (0.02 + 0.036 * _sev(f))
    A.spine.scoliosis_v = 0.75 if f.zone == "lower" else 0.42


def _a_kyphosis(A: _Anatomy, f: Finding, sides: list[str], rng: np.random.Generator) -> None:
    A.spine.kyphosis = 0.015 + 0.025 * _sev(f)
    A.ap_scale *= 1.04
    A.clav_v -= 0.015 * _sev(f)
    A.dome_shift["right"] -= 0.01
    A.dome_shift["left"] -= 0.01


def _a_degenerative(A: _Anatomy, f: Finding, sides: list[str], rng: np.random.Generator) -> None:
    A.spine.degenerative = max(A.spine.degenerative, 0.5 + 0.5 * _sev(f))


def _a_osteophytes(A: _Anatomy, f: Finding, sides: list[str], rng: np.random.Generator) -> None:
    A.spine.osteophytes = max(A.spine.osteophytes, 0.6 + 0.5 * _sev(f))


def _a_dish(A: _Anatomy, f: Finding, sides: list[str], rng: np.random.Generator) -> None:
    A.spine.dish = True
    A.spine.osteophytes = max(A.spine.osteophytes, 0.5)


def _a_compression(A: _Anatomy, f: Finding, sides: list[str], rng: np.random.Generator) -> None:
    lo, hi = (18, 21) if f.zone == "lower" else (8, 15)
    k = _count(f, rng, 2, 3)
    picks = sorted({int(rng.integers(lo, hi + 1)) for _ in range(k)})
    A.spine.compressed = tuple(sorted(set(A.spine.compressed) | set(picks)))


def _a_osteopenia(A: _Anatomy, f: Finding, sides: list[str], rng: np.random.Generator) -> None:
    A.bone *= 0.55


def _a_breast(A: _Anatomy, f: Finding, sides: list[str], rng: np.random.Generator) -> None:
    size = max(A.breast["right"], A.breast["left"], 0.9)
    A.female = True
    if f.kind == "mastectomy":
        other = "left" if sides[0] == "right" else "right"
        A.breast[other] = size
        A.breast[sides[0]] = 0.0
    else:
        A.breast = {"right": max(A.breast["right"], 0.5), "left": max(A.breast["left"], 0.5)}


def _a_shoulder(A: _Anatomy, f: Finding, sides: list[str], rng: np.random.Generator) -> None:
    A.arms = True
    for s in sides:
        A.shoulder[s] = "prosthesis" if f.kind == "shoulder_prosthesis" else "arthritis"


def _a_pectus(A: _Anatomy, f: Finding, sides: list[str], rng: np.random.Generator) -> None:
    A.heart_shift += 0.035
    A.ap_scale *= 0.85
    A.heart_tilt -= 0.1


def _a_technique(A: _Anatomy, f: Finding, sides: list[str], rng: np.random.Generator) -> None:
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


# ----- air hooks ------------------------------------------------------------------------------------------


def _effusion(cv: _Canvas, A: _Anatomy, side: str, height: float, lateral_only: bool) -> None:
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
        fill = _smooth((w.v - surf) / 0.03)
        cv.air[w.idx] *= 1.0 - 0.62 * fill
        cv.vgate[w.idx] *= 1.0 - 0.5 * fill
        return
    sg = _sgn(side)
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
        surf = surf + 0.1 * _ramp(0.75 - rel, 0.25)
    fill = _smooth((w.v - surf) / (0.018 + 0.08 * height))
    fill = 0.35 * _smooth((w.v - surf + 0.02) / 0.04) + 0.65 * fill
    cv.air[w.idx] *= 1.0 - 0.97 * fill
    cv.vgate[w.idx] *= 1.0 - fill


def _air_effusion(cv: _Canvas, A: _Anatomy, f: Finding, sides: list[str], rng: np.random.Generator) -> None:
    heights = {"borderline": 0.035, "mild": 0.06, "small": 0.06, "moderate": 0.13, "large": 0.22, "severe": 0.3}
    h = heights.get(f.severity or "", 0.08)
    for s in sides:
        _effusion(cv, A, s, h * (0.9 + 0.2 * rng.random()), False)


def _air_blunting(cv: _Canvas, A: _Anatomy, f: Finding, sides: list[str], rng: np.random.Generator) -> None:
    for s in sides:
        _effusion(cv, A, s, 0.03 + 0.01 * rng.random(), True)


def _air_pneumothorax(cv: _Canvas, A: _Anatomy, f: Finding, sides: list[str], rng: np.random.Generator) -> None:
    rims = {"borderline": 0.018, "mild": 0.025, "small": 0.025, "moderate": 0.05, "large": 0.085, "severe": 0.11}
    r = rims.get(f.severity or "", 0.04)
    for s in sides:
        if cv.view == "lateral":
            g = cv.lat
            w = cv.win(g["ant"], g["post"], A.apex_v - 0.02, A.apex_v + 0.3)
            if w is None:
                continue
            top = A.apex_v + 4.0 * (w.u - g["uc"] - 0.02) ** 2
            rim = cv.hemi["both"][w.idx] * (1.0 - _ramp(w.v - top - 1.6 * r, 2 * cv.px))
            cv.air[w.idx] += 0.25 * rim
            cv.vgate[w.idx] *= 1.0 - rim
            continue
        sg = _sgn(s)
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
        inner = _ramp(d, 1.5 * cv.px)
        rim = hemi * (1.0 - inner)
        line = hemi * np.clip(1.0 - np.abs(d) / (1.2 * cv.px + 0.0015), 0.0, 1.0)
        cv.air[w.idx] = cv.air[w.idx] * (1.0 - rim) + rim * 1.12 + hemi * inner * -0.06 * cv.air[w.idx]
        cv.vgate[w.idx] *= 1.0 - rim
        cv.D[w.idx] += 0.22 * line


def _air_lucency(cv: _Canvas, A: _Anatomy, f: Finding, sides: list[str], rng: np.random.Generator,
                 radius: float = 0.03, walls: float = 0.1) -> None:
    for s in sides:
        for _ in range(_count(f, rng, 2, 4)):
            zone = f.zone or ("upper" if rng.random() < 0.7 else None)
            u, v, ru, rv = _zone_center(cv, A, _zone_side(zone, s), zone, rng)
            u += float(rng.uniform(-0.5, 0.5)) * ru
            rad = radius * (0.8 + 0.6 * rng.random()) * (0.7 + 0.5 * _sev(f))
            gate = cv.gate(_zone_side(zone, s))
            _blob(cv, u, v, rad, rad, 0.32, profile="disk", target=cv.air, gate=gate)
            _blob(cv, u, v, rad, rad, -1.0, profile="disk", target=cv.vgate)
            ring = _Sketch().ellipse(u, v, rad, rad, 1.0, outline=0.0035)
            ring.render(cv, walls, blur=0.6, gate=gate)
    np.clip(cv.vgate, 0.0, 1.0, out=cv.vgate)


def _air_bullae(cv: _Canvas, A: _Anatomy, f: Finding, sides: list[str], rng: np.random.Generator) -> None:
    if f.multiple:
        _air_lucency(cv, A, replace(f, zone="upper"), ["right", "left"], rng, radius=0.04, walls=0.08)


def _air_hyperlucent(cv: _Canvas, A: _Anatomy, f: Finding, sides: list[str], rng: np.random.Generator) -> None:
    for s in sides:
        if f.zone:
            u, v, ru, rv = _zone_center(cv, A, s, f.zone, rng)
            _blob(cv, u, v, ru * 1.6, rv * 1.6, 0.3, profile="gauss", target=cv.air, gate=cv.gate(s))
            _blob(cv, u, v, ru * 1.6, rv * 1.6, -0.7, profile="gauss", target=cv.vgate)
        else:
            cv.air += 0.2 * cv.hemi[s] * (cv.air > 0.3)
            cv.vgate *= 1.0 - 0.6 * cv.hemi[s]
    np.clip(cv.vgate, 0.0, 1.0, out=cv.vgate)


def _air_pneumonectomy(cv: _Canvas, A: _Anatomy, f: Finding, sides: list[str], rng: np.random.Generator) -> None:
    s = sides[0]
    if f.zone is None:
        if cv.view == "lateral":
            cv.air *= 0.55
        else:
            cv.air *= 1.0 - 0.96 * cv.hemi[s]
            cv.vgate *= 1.0 - cv.hemi[s]
        return
    u, v, ru, rv = _zone_center(cv, A, s, f.zone, rng)
    _blob(cv, u, v, ru * 1.8, rv * 1.6, -0.75, profile="gauss", target=cv.air, gate=cv.gate(s))
    np.clip(cv.air, 0.0, None, out=cv.air)
    staple = [(u - ru, v + rv * 0.6), (u, v + rv * 0.9), (u + ru, v + rv * 0.5)]
    _staples(cv, staple, rng)


def _air_emphysema_prune(cv: _Canvas, A: _Anatomy, f: Finding, sides: list[str], rng: np.random.Generator
                         ) -> None:
    if cv.view == "frontal":
        for s in ("right", "left"):
            hu, hv = cv.anchor[f"hilum_{s}"]
            r = 0.12
            w = cv.win(0.0, 1.0, 0.0, 1.0)
            assert w is not None
            dist = np.sqrt((w.u - hu) ** 2 + (w.v - hv) ** 2)
            cv.vgate *= 1.0 - A.vessel_prune * cv.hemi[s] * _ramp(dist - r, 0.12)


# ----- overlay hooks --------------------------------------------------------------------------------------


_AIRSPACE_STYLE = {
    # kind: (blobs, blob scale, amplitude, texture lo, sharpen, streaks, bronchograms)
    "opacity": (5, 0.6, 0.42, 0.45, 0.0, 0, False),
    "airspace_disease": (7, 0.62, 0.45, 0.55, 0.0, 0, True),
    "consolidation": (5, 0.8, 0.5, 0.85, 2.2, 0, True),
    "pneumonia": (6, 0.7, 0.5, 0.6, 2.5, 0, True),
    "infiltrate": (4, 0.55, 0.3, 0.4, 0.0, 10, False),
    "density": (2, 0.5, 0.48, 0.8, 3.0, 0, False),
}


def _ov_airspace(cv: _Canvas, A: _Anatomy, f: Finding, sides: list[str], rng: np.random.Generator) -> None:
    blobs, scale, amp, tex_lo, sharpen, streaks, bronch = _AIRSPACE_STYLE[f.kind]
    k = _sev(f, 0.75)
    for s0 in sides:
        s = _zone_side(f.zone, s0)
        zones = [f.zone]
        if f.multiple and f.zone is None:
            zones = [None] * int(rng.integers(2, 4))
        for zone in zones:
            u, v, ru, rv = _zone_center(cv, A, s, zone, rng)
            if f.kind == "density":
                ru, rv = ru * 0.6, rv * 0.6
            if f.kind in ("consolidation", "pneumonia") and not f.multiple:
                _lobar_patch(cv, A, s, zone, u, v, rv, amp * (0.6 + 0.5 * k), rng)
                if f.kind == "consolidation":
                    continue
                amp *= 0.55
            _airspace_patch(cv, A, s, u, v, ru * (0.8 + 0.4 * k), rv * (0.8 + 0.4 * k), rng, blobs, scale,
                            amp * (0.6 + 0.5 * k), tex_lo, sharpen, streaks, bronch)


def _lobar_patch(cv: _Canvas, A: _Anatomy, side: str, zone: str | None, u: float, v: float, rv: float,
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
        sg = _sgn(side)
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
    band = _smooth((w.v - v0) / e0 + 0.5) * _smooth((v1 - w.v) / e1 + 0.5)
    lo_u, hi_u = min(u0, u1), max(u0, u1)
    band = band * _smooth((w.u - lo_u) / 0.05) * _smooth((hi_u - w.u) / 0.05)
    tex = _lowfreq(rng, 6, band.shape[0], band.shape[1], 0.55)
    cv.D[w.idx] += amp * band * tex * cv.gate(side)[w.idx]


def _airspace_patch(cv: _Canvas, A: _Anatomy, side: str, u: float, v: float, ru: float, rv: float,
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
        field += _expneg(2.0 * _ellipse_r2(w, bu, bv, br * ru, br * rv, float(rng.uniform(-0.5, 0.5))))
    field = np.minimum(field, 1.4) / 1.4
    field *= _lowfreq(rng, 7, field.shape[0], field.shape[1], tex_lo)
    if sharpen:
        field = _smooth((field - 0.25) * sharpen + 0.5 * (sharpen < 3))
    gate = cv.gate(side)[w.idx]
    cv.D[w.idx] += amp * field * gate
    if streaks:
        sk = _Sketch()
        for _ in range(streaks):
            a = float(rng.uniform(-0.6, 0.6)) + (0.9 if rng.random() < 0.5 else 0.0)
            cu, cvv = u + float(rng.normal(0, 0.5)) * ru, v + float(rng.normal(0, 0.5)) * rv
            ln = float(rng.uniform(0.4, 0.9)) * ru
            sk.line(_wobble([(cu - ln * math.cos(a), cvv - ln * math.sin(a)), (cu, cvv),
                             (cu + ln * math.cos(a), cvv + ln * math.sin(a))], rng, 0.003), 0.0045, 1.0)
        sk.render(cv, 0.2, blur=1.2, gate=cv.gate(side))
    if bronch:
        sk = _Sketch()
        for _ in range(3):
            a = float(rng.uniform(0, 2 * math.pi))
            pts = [(u + t * ru * 0.8 * math.cos(a) + float(rng.normal(0, 0.004)),
                    v + t * rv * 0.8 * math.sin(a) + float(rng.normal(0, 0.004))) for t in (-0.5, 0.0, 0.5, 0.9)]
            sk.line(pts, 0.005, 1.0)
        sk.render(cv, -0.35 * amp, blur=1.0, gate=cv.gate(side) * 1.0)


def _ov_atelectasis(cv: _Canvas, A: _Anatomy, f: Finding, sides: list[str], rng: np.random.Generator) -> None:
    k = _sev(f, 0.7)
    for s0 in sides:
        s = _zone_side(f.zone, s0)
        u, v, ru, rv = _zone_center(cv, A, s, f.zone or "base", rng)
        sk = _Sketch()
        for i in range(_count(f, rng, 2, 3) + (1 if k > 0.9 else 0)):
            a = float(rng.uniform(-0.25, 0.25)) + (0.25 * _sgn(s) if cv.view == "frontal" else 0.3)
            cu, cvv = u + float(rng.normal(0, 0.2)) * ru, v + (i - 0.5) * 0.035 + float(rng.normal(0, 0.01))
            ln = ru * (0.7 + 0.4 * rng.random())
            pts = _bezier((cu - ln * math.cos(a), cvv - ln * math.sin(a)), (cu, cvv + 0.012),
                          (cu + ln * math.cos(a), cvv + ln * math.sin(a)), k=8)
            sk.line(_wobble(pts, rng, 0.0015), 0.008 + 0.006 * k, 1.0)
        sk.render(cv, 0.26 + 0.1 * k, blur=2.2, gate=cv.gate(s))
        _blob(cv, u, v, ru * 0.9, rv * 0.6, 0.08 * k, profile="gauss", gate=cv.gate(s))


def _nodule(cv: _Canvas, A: _Anatomy, side: str, u: float, v: float, r: float, amp: float, calcified: bool,
            rng: np.random.Generator, lobulated: bool = False) -> None:
    gate = cv.gate(side)
    if calcified:
        _blob(cv, u, v, r, r * (0.85 + 0.3 * rng.random()), amp, profile="disk", gate=np.maximum(gate, 0.6))
        return
    if lobulated:
        for _ in range(3):
            _blob(cv, u + float(rng.normal(0, 0.3)) * r, v + float(rng.normal(0, 0.3)) * r,
                  r * (0.6 + 0.3 * rng.random()), None, amp * 0.55, profile="ball", gate=gate)
    _blob(cv, u, v, r, r * (0.9 + 0.2 * rng.random()), amp, profile="ball", gate=gate)


def _ov_nodule(cv: _Canvas, A: _Anatomy, f: Finding, sides: list[str], rng: np.random.Generator) -> None:
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
        s = _zone_side(f.zone, s0)
        count = _count(f, rng, 3, 7)
        for i in range(count):
            zone = f.zone
            if f.multiple and f.zone is None:
                zone = str(rng.choice(["upper", "middle", "lower", "hilum"]))
            u, v, ru, rv = _zone_center(cv, A, s, zone, rng)
            if i or f.multiple:
                u += float(rng.uniform(-0.9, 0.9)) * ru
                v += float(rng.uniform(-0.9, 0.9)) * rv
            rr = size * (0.8 + 0.4 * rng.random())
            _nodule(cv, A, s, u, v, rr, amp, f.calcified, rng, lobulated=kind == "mass")


def _ov_granulomatous(cv: _Canvas, A: _Anatomy, f: Finding, sides: list[str], rng: np.random.Generator) -> None:
    chosen = sides if f.side else ["right", "left"]
    for s in chosen:
        for _ in range(int(rng.integers(3, 7))):
            zone = str(rng.choice(["apex", "upper", "upper", "middle", "lower"]))
            u, v, ru, rv = _zone_center(cv, A, _zone_side(zone, s), zone, rng)
            u += float(rng.uniform(-0.8, 0.8)) * ru
            _nodule(cv, A, s, u, v, 0.006 + 0.004 * rng.random(), 0.85, True, rng)
        hu, hv = cv.anchor[f"hilum_{s}"]
        for _ in range(2):
            _nodule(cv, A, s, hu + float(rng.normal(0, 0.01)), hv + float(rng.normal(0, 0.015)),
                    0.007 + 0.004 * rng.random(), 0.8, True, rng)


def _ov_calcified_nodes(cv: _Canvas, A: _Anatomy, f: Finding, sides: list[str], rng: np.random.Generator
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
            _blob(cv, u, v, r, r * (0.7 + 0.6 * rng.random()), 0.85, profile="disk",
                  angle=float(rng.uniform(0, 3)))


def _ov_reticular(cv: _Canvas, A: _Anatomy, f: Finding, sides: list[str], rng: np.random.Generator) -> None:
    """Interstitial lines: fine reticulation for markings, coarse peripheral honeycombing for fibrosis."""
    fibrosis = f.kind == "interstitial_fibrosis"
    k = _sev(f, 0.75)
    chosen = sides if f.side else ["right", "left"]
    for s0 in chosen:
        s = _zone_side(f.zone, s0)
        zones = [f.zone] if f.zone else (["lower", "base", "middle"] if fibrosis else ["upper", "middle", "lower"])
        sk = _Sketch()
        for zone in zones:
            u, v, ru, rv = _zone_center(cv, A, s, zone, rng)
            if fibrosis and cv.view == "frontal":
                lat = float(cv.lung_rows[s][1][min(cv.n - 1, int(v * cv.n))])
                u = 0.5 * (u + lat) - _sgn(s) * 0.01
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
            u, v, ru, rv = _zone_center(cv, A, s, zones[0], rng)
            _blob(cv, u, v, ru * 1.4, rv * 1.4, 0.06 * k, profile="gauss", gate=cv.gate(s))


def _ov_edema(cv: _Canvas, A: _Anatomy, f: Finding, sides: list[str], rng: np.random.Generator) -> None:
    k = _sev(f, 0.75)
    for s in ("right", "left"):
        hu, hv = cv.anchor[f"hilum_{s}"]
        sg = _sgn(s) if cv.view == "frontal" else 0.0
        _blob(cv, hu + sg * 0.05, hv + 0.01, 0.1, 0.13, 0.22 * (0.6 + 0.6 * k), profile="gauss", gate=cv.gate(s),
              texture=_lowfreq(rng, 5, 64, 64, 0.5))
        if cv.view == "frontal":
            # Kerley B lines: short horizontal lines at the lateral lung bases
            med, lat = cv.lung_rows[s]
            sk = _Sketch()
            for i in range(int(rng.integers(4, 8))):
                vv = A.dome_v(s) - 0.02 - 0.016 * i - float(rng.uniform(0, 0.008))
                lu = float(lat[min(cv.n - 1, int(vv * cv.n))])
                ln = 0.012 + 0.012 * rng.random()
                sk.line([(lu - sg * 0.002, vv), (lu - sg * (0.002 + ln), vv + float(rng.normal(0, 0.002)))],
                        0.003, 1.0)
            sk.render(cv, 0.18, blur=0.7, gate=cv.gate(s))
    if cv.view == "lateral":
        _ov_reticular(cv, A, replace(f, kind="increased_markings", zone=None), ["right", "left"], rng)


def _ov_congestion(cv: _Canvas, A: _Anatomy, f: Finding, sides: list[str], rng: np.random.Generator) -> None:
    for s in ("right", "left"):
        hu, hv = cv.anchor[f"hilum_{s}"]
        _blob(cv, hu, hv, 0.045, 0.06, 0.12 * _sev(f), profile="gauss", gate=cv.gate(s))


def _ov_pleural_thickening(cv: _Canvas, A: _Anatomy, f: Finding, sides: list[str], rng: np.random.Generator
                           ) -> None:
    k = _sev(f, 0.7)
    thick = 0.012 + 0.014 * k
    amp = 0.6 if f.calcified else 0.42
    chosen = sides if f.side else ["right", "left"]
    for s in chosen:
        sg = _sgn(s)
        if cv.view == "lateral":
            g = cv.lat
            pts = [(g["post"] - 0.025, A.apex_v + 0.1 + 0.05 * i) for i in range(7)]
            _Sketch().line(pts, thick, 1.0).render(cv, amp, blur=1.5)
            continue
        med, lat = cv.lung_rows[s]
        if f.zone in ("apex", "upper"):
            apex_u = A.cx + sg * (A.med_w + 0.45 * A.thw * 0.4 + 0.02)
            us = np.linspace(apex_u - 0.06, apex_u + 0.06, 9)
            pts = [(float(x), A.apex_v + 9.0 * (float(x) - apex_u) ** 2 + thick * 0.6) for x in us]
            _Sketch().line(pts, thick * 1.3, 1.0).render(cv, amp, blur=1.5)
        else:
            v0 = A.apex_v + (0.55 if f.zone in ("base", "lower") else 0.15) * (A.dome_v(s) - A.apex_v)
            rows = np.linspace(v0, A.dome_v(s) + 0.02, 10)
            pts = [(float(lat[min(cv.n - 1, int(r * cv.n))]) - sg * thick * 0.5, float(r)) for r in rows]
            if f.calcified:
                for i in range(0, len(pts) - 1, 2):
                    _Sketch().line(pts[i:i + 2], thick, 1.0).render(cv, amp, blur=1.0)
            else:
                _Sketch().line(pts, thick, 1.0).render(cv, amp, blur=1.5)


def _ov_hilar(cv: _Canvas, A: _Anatomy, f: Finding, sides: list[str], rng: np.random.Generator) -> None:
    k = _sev(f, 0.75)
    chosen = sides if f.side else ["right", "left"]
    for s in chosen:
        hu, hv = cv.anchor[f"hilum_{s}"]
        sg = _sgn(s) if cv.view == "frontal" else 0.3
        for _ in range(3):
            _blob(cv, hu + sg * float(rng.uniform(0.005, 0.03)), hv + float(rng.normal(0, 0.025)),
                  0.02 + 0.012 * k, None, 0.28, profile="ball")


def _ov_aortic_calcification(cv: _Canvas, A: _Anatomy, f: Finding, sides: list[str], rng: np.random.Generator
                             ) -> None:
    ku, kv = cv.anchor["knob"]
    r = A.knob_r * 1.05 + 0.004
    k = _sev(f, 0.7)
    sk = _Sketch()
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


def _ov_hiatal_hernia(cv: _Canvas, A: _Anatomy, f: Finding, sides: list[str], rng: np.random.Generator) -> None:
    k = _sev(f, 0.75)
    r = 0.03 + 0.035 * k
    if cv.view == "frontal":
        u, v = A.cx + 0.015, 0.5 * (A.dome_v("right") + A.dome_v("left")) - 0.01 - r * 0.6
    else:
        g = cv.lat
        u, v = g["uc"] + 0.1 * g["depth"], A.dome_v("left") - r * 0.7
    _blob(cv, u, v, r * 1.15, r, 0.1, profile="ball")
    level = v - 0.1 * r
    w = cv.win(u - r, u + r, v - r, level)
    if w is not None:
        gas = np.sqrt(np.clip(1.0 - _ellipse_r2(w, u, v, r * 1.05, r * 0.92), 0.0, 1.0))
        gas *= _ramp(level - w.v, 1.5 * cv.px)
        cv.D[w.idx] -= 0.45 * gas


def _ov_pneumoperitoneum(cv: _Canvas, A: _Anatomy, f: Finding, sides: list[str], rng: np.random.Generator
                         ) -> None:
    k = _sev(f, 0.75)
    chosen = sides if f.side else ["right", "left"]
    for s in chosen:
        if cv.view == "lateral":
            g = cv.lat
            _blob(cv, g["ant"] + 0.2 * g["depth"], A.dome_v(s) + 0.02, 0.08, 0.015, -0.3)
            continue
        sg = _sgn(s)
        u0, u1 = A.cx + sg * 0.05, A.cx + sg * A.thw * 0.95
        w = cv.win(min(u0, u1), max(u0, u1), A.dome_v(s) - 0.02, A.dome_v(s) + A.dome_depth + 0.06)
        if w is None:
            continue
        dome = _dome_curve(A, s, w.u) + 0.009
        rel = np.clip(sg * (w.u - A.cx) / A.thw, 0.0, 1.0)
        x = np.clip((rel - 0.1) / 0.85, 0.0, 1.0)
        thick = (0.012 + 0.02 * k) * 4.0 * x * (1.0 - x)
        crescent = _ramp(w.v - dome, 1.5 * cv.px) * _ramp(dome + thick - w.v, 1.5 * cv.px)
        cv.D[w.idx] -= 0.55 * crescent


def _ov_subcutaneous(cv: _Canvas, A: _Anatomy, f: Finding, sides: list[str], rng: np.random.Generator) -> None:
    chosen = sides if f.side else ["right", "left"]
    for s in chosen:
        sk = _Sketch()
        for _ in range(int(18 + 14 * _sev(f))):
            if cv.view == "frontal":
                sg = _sgn(s)
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


def _ov_epicardial_fat(cv: _Canvas, A: _Anatomy, f: Finding, sides: list[str], rng: np.random.Generator) -> None:
    chosen = sides if f.side in ("right", "left") else ["left"] if f.side is None else ["right", "left"]
    for s in chosen:
        if cv.view == "lateral":
            hu, hv = cv.anchor["heart"]
            _blob(cv, hu - 0.08, 0.5 * (A.dome_v("left") + A.dome_v("right")) - 0.02, 0.05, 0.04, 0.12,
                  profile="ball")
            continue
        sg = _sgn(s)
        h = cv.anchor["lv_border"] if s == "left" else cv.anchor["ra"]
        u = h[0] + sg * 0.03 if s == "left" else cv.anchor["ra"][0] - 0.04
        v = 0.5 * (A.dome_v(s) + h[1]) + 0.02
        _blob(cv, u, v, 0.06, 0.05, 0.2, profile="ball", gate=cv.gate(s))


def _ov_azygos(cv: _Canvas, A: _Anatomy, f: Finding, sides: list[str], rng: np.random.Generator) -> None:
    if cv.view != "frontal":
        return
    cu, cvv = cv.anchor["carina"]
    start = (A.cx - A.thw * 0.45, A.apex_v + 0.01)
    end = (cu - A.med_w - 0.012, cvv - 0.03)
    _Sketch().line(_bezier(start, (start[0] + 0.02, cvv - 0.09), end), 0.0035, 1.0).render(cv, 0.24, blur=0.7)
    _blob(cv, end[0], end[1], 0.011, 0.016, 0.3, profile="ball")


def _ov_scarring(cv: _Canvas, A: _Anatomy, f: Finding, sides: list[str], rng: np.random.Generator) -> None:
    chosen = sides if f.side else [_sides(f, rng)[0]]
    for s0 in chosen:
        s = _zone_side(f.zone, s0)
        u, v, ru, rv = _zone_center(cv, A, s, f.zone or "upper", rng)
        sk = _Sketch()
        hu, hv = cv.anchor[f"hilum_{s}"]
        toward = math.atan2(hv - v, hu - u)
        for _ in range(int(rng.integers(4, 7))):
            a = toward + float(rng.normal(0, 0.5))
            cu, cvv = u + float(rng.normal(0, 0.4)) * ru, v + float(rng.normal(0, 0.4)) * rv
            ln = 0.02 + 0.03 * rng.random()
            pts = [(cu + ln * t * math.cos(a), cvv + ln * t * math.sin(a)) for t in (-1.0, -0.3, 0.4, 1.0)]
            sk.line(_wobble(pts, rng, 0.003), 0.005, 1.0)
        sk.render(cv, 0.42, blur=0.8, gate=cv.gate(s))
        _blob(cv, u, v, ru * 0.7, rv * 0.6, 0.05, profile="gauss", gate=cv.gate(s))


def _ov_cavitation(cv: _Canvas, A: _Anatomy, f: Finding, sides: list[str], rng: np.random.Generator) -> None:
    for s0 in sides:
        s = _zone_side(f.zone, s0)
        for _ in range(_count(f, rng, 2, 3)):
            u, v, ru, rv = _zone_center(cv, A, s, f.zone or "upper", rng)
            r = 0.03 + 0.015 * rng.random()
            _blob(cv, u, v, r * 1.35, r * 1.3, 0.4, profile="ball", gate=cv.gate(s))
            _blob(cv, u, v, r * 0.75, r * 0.7, -0.45, profile="disk", gate=cv.gate(s))


def _ov_nipples(cv: _Canvas, A: _Anatomy, f: Finding, sides: list[str], rng: np.random.Generator) -> None:
    chosen = sides if f.side else ["right", "left"]
    for s in chosen:
        if cv.view == "lateral":
            continue
        u = A.cx + _sgn(s) * (0.55 * A.thw + float(rng.uniform(-0.02, 0.02)))
        v = A.dome_v(s) - 0.07 + float(rng.uniform(-0.02, 0.02))
        _blob(cv, u, v, 0.015, 0.014, 0.32, profile="ball")


def _ov_breast_implants(cv: _Canvas, A: _Anatomy, f: Finding, sides: list[str], rng: np.random.Generator
                        ) -> None:
    chosen = sides if f.side else ["right", "left"]
    for s in chosen:
        if cv.view == "lateral":
            g = cv.lat
            _blob(cv, g["ant"] - 0.03, A.dome_v(s) - 0.1, 0.045, 0.08, 0.3, profile="ball")
            continue
        u, v = A.cx + _sgn(s) * 0.6 * A.thw, A.dome_v(s) - 0.1
        _blob(cv, u, v, 0.11, 0.095, 0.34, profile="ball")
        _Sketch().ellipse(u, v, 0.11, 0.095, 1.0, outline=0.003).render(
            cv, 0.35 if f.calcified else 0.12, blur=0.8)


def _ov_rib_fracture(cv: _Canvas, A: _Anatomy, f: Finding, sides: list[str], rng: np.random.Generator) -> None:
    if cv.view != "frontal":
        return
    for s in sides:
        sg = _sgn(s)
        for _ in range(_count(f, rng, 2, 4)):
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
            _blob(cv, u + sg * 0.005, v + 0.004, 0.018, 0.02, 0.22, profile="gauss")


def _ov_clavicle_fracture(cv: _Canvas, A: _Anatomy, f: Finding, sides: list[str], rng: np.random.Generator
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
        frag = _Sketch().line([(u - _sgn(s) * 0.006, v + 0.016), (u + _sgn(s) * 0.05, v + 0.008)], 0.016, 1.0)
        frag.render(cv, 0.28, blur=0.8)
        _blob(cv, u + _sgn(s) * 0.006, v + 0.008, 0.022, 0.018, 0.14, profile="gauss")


def _ov_shoulder_prosthesis(cv: _Canvas, A: _Anatomy, f: Finding, sides: list[str], rng: np.random.Generator
                            ) -> None:
    for s in sides:
        if cv.view == "lateral":
            g = cv.lat
            hu, hv = g["uc"] + 0.05, A.apex_v + 0.05
        else:
            hu, hv = cv.anchor.get(f"humerus_{s}", (A.cx + _sgn(s) * (A.thw + A.wall + 0.035), A.apex_v + 0.02))
        sk = _Sketch().ellipse(hu, hv, 0.046, 0.05, 1.0)
        sk.poly(_rect_pts(hu + _sgn(s) * 0.008, hv + 0.15, 0.011, 0.12), 1.0)
        sk.render(cv, 1.4, blur=0.6)


def _ov_spinal_fusion(cv: _Canvas, A: _Anatomy, f: Finding, sides: list[str], rng: np.random.Generator) -> None:
    v0 = {"upper": -0.02, "lower": 0.72}.get(f.zone or "", 0.3 + 0.2 * float(rng.random()))
    v1 = v0 + 0.2 + 0.1 * float(rng.random())
    sk = _Sketch()
    if cv.view == "frontal":
        for side in (-1, 1):
            pts = [(_spine_u(A, vv) + side * 0.024, vv) for vv in np.linspace(v0, v1, 6)]
            sk.line(pts, 0.006, 1.0)
            for vv in np.linspace(v0 + 0.01, v1 - 0.01, 4):
                sk.line([(_spine_u(A, vv) + side * 0.03, vv), (_spine_u(A, vv) + side * 0.012, vv)], 0.008, 1.0)
    else:
        g = cv.lat
        pts = [(_lat_spine_u(A, g, vv) + 0.11, vv) for vv in np.linspace(v0, v1, 6)]
        sk.line(pts, 0.007, 1.0)
        for vv in np.linspace(v0 + 0.01, v1 - 0.01, 4):
            sk.line([(_lat_spine_u(A, g, vv) + 0.11, vv), (_lat_spine_u(A, g, vv) + 0.03, vv + 0.004)], 0.006, 1.0)
    sk.render(cv, 1.3, blur=0.6)


def _staples(cv: _Canvas, path: list[tuple[float, float]], rng: np.random.Generator, amp: float = 1.1) -> None:
    sk = _Sketch()
    pts = _bezier(path[0], path[1], path[2], k=14)
    for (u0, v0), (u1, v1) in zip(pts[:-1], pts[1:]):
        mu, mv = 0.5 * (u0 + u1), 0.5 * (v0 + v1)
        du, dv = (u1 - u0) * 0.35, (v1 - v0) * 0.35
        sk.line([(mu - du, mv - dv), (mu + du, mv + dv)], 0.003, 1.0)
    sk.render(cv, amp, blur=0.5)


def _ov_lung_sutures(cv: _Canvas, A: _Anatomy, f: Finding, sides: list[str], rng: np.random.Generator) -> None:
    for s0 in sides:
        s = _zone_side(f.zone, s0)
        u, v, ru, rv = _zone_center(cv, A, s, f.zone or "upper", rng)
        a = float(rng.uniform(-0.6, 0.6))
        ln = 0.05 + 0.03 * rng.random()
        path = [(u - ln * math.cos(a), v - ln * math.sin(a)), (u, v + 0.015),
                (u + ln * math.cos(a), v + ln * math.sin(a))]
        _staples(cv, path, rng)
        _blob(cv, u, v, ru * 0.7, rv * 0.5, 0.06, profile="gauss", gate=cv.gate(s))


def _clip_shape(sk: _Sketch, u: float, v: float, size: float, angle: float) -> None:
    ca, sa = math.cos(angle), math.sin(angle)
    a = (u - size * ca, v - size * sa)
    b = (u + size * ca, v + size * sa)
    tip = (u + size * 0.3 * sa + size * ca, v - size * 0.3 * ca + size * sa)
    sk.line([a, b], 0.0035, 1.0)
    sk.line([a, tip], 0.0035, 1.0)


def _ov_surgical_clips(cv: _Canvas, A: _Anatomy, f: Finding, sides: list[str], rng: np.random.Generator) -> None:
    for s0 in sides:
        s = _zone_side(f.zone, s0)
        if f.zone == "apex" and cv.view == "frontal":
            u, v = A.cx + _sgn(s) * 0.06, A.apex_v - 0.02
            ru, rv = 0.025, 0.03
        else:
            u, v, ru, rv = _zone_center(cv, A, s, f.zone or str(rng.choice(["hilum", "upper", "middle"])), rng)
        sk = _Sketch()
        for _ in range(int(rng.integers(3, 8))):
            _clip_shape(sk, u + float(rng.normal(0, 0.5)) * ru, v + float(rng.normal(0, 0.5)) * rv,
                        0.007 + 0.003 * rng.random(), float(rng.uniform(0, math.pi)))
        sk.render(cv, 1.2, blur=0.5)


def _ov_abdominal_clips(cv: _Canvas, A: _Anatomy, f: Finding, sides: list[str], rng: np.random.Generator) -> None:
    s = sides[0] if f.side in ("right", "left") else "right"
    if cv.view == "frontal":
        u, v = A.cx + _sgn(s) * 0.45 * A.thw, A.dome_v(s) + A.dome_depth + 0.08
    else:
        g = cv.lat
        u, v = g["ant"] + 0.35 * g["depth"], A.dome_v(s) + 0.1
    sk = _Sketch()
    for _ in range(int(rng.integers(3, 7))):
        _clip_shape(sk, u + float(rng.normal(0, 0.02)), v + float(rng.normal(0, 0.015)),
                    0.008 + 0.003 * rng.random(), float(rng.uniform(0, math.pi)))
    sk.render(cv, 1.2, blur=0.5)


def _ov_sternotomy(cv: _Canvas, A: _Anatomy, f: Finding, sides: list[str], rng: np.random.Generator,
                   clips: bool = True) -> None:
    sk = _Sketch()
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


def _ov_valve(cv: _Canvas, A: _Anatomy, f: Finding, sides: list[str], rng: np.random.Generator) -> None:
    hu, hv = cv.anchor["heart"]
    u, v = (hu - 0.03, hv - 0.05) if cv.view == "frontal" else (hu + 0.03, hv - 0.06)
    sk = _Sketch().ellipse(u, v, 0.022, 0.012, 1.0, angle=0.6, outline=0.006)
    for t in (0.0, 2.1, 4.2):
        sk.line([(u + 0.02 * math.cos(t), v + 0.011 * math.sin(t)), (u + 0.02 * math.cos(t), v - 0.02)], 0.003, 1.0)
    sk.render(cv, 1.2, blur=0.5)
    _ov_sternotomy(cv, A, f, sides, rng, clips=False)


def _lead_path(cv: _Canvas, start: tuple[float, float], end: tuple[float, float], rng: np.random.Generator
               ) -> list[tuple[float, float]]:
    su, sv = cv.anchor["svc"]
    ra = cv.anchor["ra"]
    mid = (su + float(rng.normal(0, 0.005)), sv - 0.02)
    first = _bezier(start, (start[0] * 0.5 + su * 0.5, start[1] - 0.05), mid, k=12)
    second = _bezier(mid, (ra[0] - 0.01, ra[1] + 0.02), end, k=12)
    return first + second[1:]


def _ov_pacemaker(cv: _Canvas, A: _Anatomy, f: Finding, sides: list[str], rng: np.random.Generator) -> None:
    s = sides[0]
    if cv.view == "frontal":
        cu, cvv = cv.anchor[f"clavicle_lat_{s}"]
        gu, gv = cu - _sgn(s) * 0.02, cvv + 0.065
        box = _rect_pts(gu, gv, 0.04, 0.028, angle=float(rng.normal(0, 0.2)))
    else:
        g = cv.lat
        gu, gv = g["ant"] + 0.02, A.apex_v + 0.1
        box = _rect_pts(gu, gv, 0.012, 0.03, angle=0.2)
    sk = _Sketch().poly(box, 1.0)
    leads = _Sketch()
    targets = [cv.anchor["rv_apex"], cv.anchor["ra"]][: int(rng.integers(1, 3))]
    for i, end in enumerate(targets):
        end = (end[0] + float(rng.normal(0, 0.006)), end[1] + float(rng.normal(0, 0.006)))
        leads.line(_lead_path(cv, (gu + 0.006 * i, gv - 0.01), end, rng), 0.0045, 1.0)
        leads.ellipse(end[0], end[1], 0.005, 0.005, 1.0)
    leads.render(cv, 1.0, blur=0.5)
    sk.render(cv, 1.8, blur=0.6)


def _ov_catheter(cv: _Canvas, A: _Anatomy, f: Finding, sides: list[str], rng: np.random.Generator) -> None:
    s = sides[0]
    sg = _sgn(s)
    su, sv = cv.anchor["svc"]
    tip = (su + float(rng.normal(0, 0.004)), sv + 0.01 + float(rng.uniform(0, 0.05)))
    sk = _Sketch()
    if cv.view == "lateral":
        g = cv.lat
        path = _bezier((g["uc"] - 0.06, -0.01), (g["uc"] - 0.06, A.apex_v + 0.05), tip, k=16)
        sk.line(path, 0.005, 1.0)
        sk.render(cv, 0.8, blur=0.5)
        return
    route = int(rng.integers(0, 4))
    if route == 0:     # internal jugular
        start = (A.cx + sg * 0.06, -0.01)
        path = _bezier(start, (A.cx + sg * 0.05, A.apex_v + 0.05), tip, k=16)
    elif route == 1:   # subclavian
        cu, cvv = cv.anchor[f"clavicle_lat_{s}"]
        start = (cu + sg * 0.05, cvv + 0.02)
        path = _bezier(start, (A.cx + sg * 0.08, cvv + 0.03), (su + sg * 0.01, sv - 0.06), tip, k=18)
    elif route == 2:   # PICC from the arm
        start = (A.cx + sg * (A.thw + A.wall + 0.08), A.apex_v + 0.12)
        path = _bezier(start, (A.cx + sg * (A.thw * 0.7), A.apex_v + 0.03), (su + sg * 0.02, sv - 0.07), tip, k=20)
    else:              # chest port
        cu, cvv = cv.anchor[f"clavicle_{s}"]
        port = (cu, cvv + 0.075)
        sk.ellipse(port[0], port[1], 0.016, 0.014, 1.0, outline=0.005)
        sk.ellipse(port[0], port[1], 0.006, 0.005, 0.8)
        path = _bezier(port, (A.cx + sg * 0.07, cvv - 0.05), (su, sv - 0.08), tip, k=18)
    sk.line(path, 0.0055, 1.0)
    sk.render(cv, 0.85, blur=0.5)


def _ov_tube(cv: _Canvas, A: _Anatomy, f: Finding, sides: list[str], rng: np.random.Generator) -> None:
    tu, tv = cv.anchor["trachea_top"]
    cu, cvv = cv.anchor["carina"]
    end = (cu + 0.002, cvv - 0.045 - 0.02 * float(rng.random()))
    sk = _Sketch()
    ett = _bezier((tu, -0.01), ((tu + end[0]) / 2, A.apex_v), end, k=10)
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


def _ov_stent(cv: _Canvas, A: _Anatomy, f: Finding, sides: list[str], rng: np.random.Generator) -> None:
    if f.zone == "retrocardiac":
        if cv.view == "frontal":
            ku, kv = cv.anchor["knob"]
            center, length, radius, angle = (ku - 0.005, kv + 0.12), 0.09, 0.014, math.pi / 2
        else:
            g = cv.lat
            center, length, radius, angle = (_lat_spine_u(A, g, 0.5) - 0.02, 0.5), 0.1, 0.014, math.pi / 2
    else:
        hu, hv = cv.anchor["heart"]
        center, length, radius, angle = (hu + float(rng.normal(0, 0.02)), hv - 0.04), 0.03, 0.005, \
            float(rng.uniform(0.3, 1.2))
    ca, sa = math.cos(angle), math.sin(angle)
    sk = _Sketch()
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


def _ov_medical_device(cv: _Canvas, A: _Anatomy, f: Finding, sides: list[str], rng: np.random.Generator) -> None:
    sk = _Sketch()
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
        sk.line(_bezier((u, v), ((u + end[0]) / 2, v + float(rng.uniform(-0.1, 0.1))), end, k=10), 0.0025, 0.6)
    sk.render(cv, 0.7, blur=0.5)


def _ov_foreign_body(cv: _Canvas, A: _Anatomy, f: Finding, sides: list[str], rng: np.random.Generator) -> None:
    for s0 in sides:
        s = _zone_side(f.zone, s0)
        u, v, ru, rv = _zone_center(cv, A, s, f.zone, rng)
        sk = _Sketch()
        for _ in range(_count(f, rng, 2, 5)):
            cu, cvv = u + float(rng.normal(0, 0.4)) * ru, v + float(rng.normal(0, 0.4)) * rv
            r = 0.006 + 0.009 * rng.random()
            pts = [(cu + r * (0.6 + 0.6 * rng.random()) * math.cos(t), cvv + r * (0.6 + 0.6 * rng.random()) * math.sin(t))
                   for t in np.linspace(0, 2 * math.pi, 7)[:-1]]
            sk.poly(pts, 1.0)
        sk.render(cv, 1.6, blur=0.4)


def _ov_pectus(cv: _Canvas, A: _Anatomy, f: Finding, sides: list[str], rng: np.random.Generator) -> None:
    if cv.view == "frontal":
        ru, rv = cv.anchor["ra"]
        _blob(cv, ru - 0.02, rv + 0.02, 0.05, 0.06, 0.12, profile="gauss", gate=cv.gate("right"))
    else:
        u1, v1 = cv.anchor["sternum_bottom"]
        _blob(cv, u1 + 0.02, v1 - 0.06, 0.035, 0.09, 0.2, profile="ball")


def _ov_pulmonary_artery_lateral(cv: _Canvas, A: _Anatomy, f: Finding, sides: list[str],
                                 rng: np.random.Generator) -> None:
    """Lateral view: an enlarged pulmonary trunk/right pulmonary artery anterior to the hilum."""
    if cv.view == "lateral":
        hu, hv = cv.anchor["hilum_right"]
        _blob(cv, hu - 0.025, hv - 0.015, 0.035 + 0.01 * _sev(f), 0.04, 0.22, profile="ball")


def _ov_mediastinum_lateral(cv: _Canvas, A: _Anatomy, f: Finding, sides: list[str], rng: np.random.Generator
                            ) -> None:
    """Lateral view: soft tissue filling the retrosternal space (the frontal view widens the mediastinum)."""
    if cv.view == "lateral":
        g = cv.lat
        _blob(cv, g["ant"] + 0.11, A.apex_v + 0.2, 0.08, 0.11, 0.2 * _sev(f), profile="gauss", gate=cv.gate(None))


# kind -> (anatomy hook, air hook, overlay hook, default side)
_HANDLERS: dict[str, tuple[AnatomyHook | None, CanvasHook | None, CanvasHook | None, str | None]] = {
    "cardiomegaly": (_a_cardiomegaly, None, None, None),
    "pleural_effusion": (None, _air_effusion, None, None),
    "blunted_costophrenic_angle": (None, _air_blunting, None, None),
    "pneumothorax": (None, _air_pneumothorax, None, None),
    "opacity": (None, None, _ov_airspace, None),
    "airspace_disease": (None, None, _ov_airspace, None),
    "consolidation": (None, None, _ov_airspace, None),
    "infiltrate": (None, None, _ov_airspace, None),
    "pneumonia": (None, None, _ov_airspace, None),
    "density": (None, None, _ov_airspace, None),
    "atelectasis": (_a_atelectasis, None, _ov_atelectasis, None),
    "nodule": (None, None, _ov_nodule, None),
    "mass": (None, None, _ov_nodule, None),
    "granuloma": (None, None, _ov_nodule, None),
    "granulomatous_disease": (None, None, _ov_granulomatous, None),
    "calcified_lymph_nodes": (None, None, _ov_calcified_nodes, None),
    "emphysema": (_a_hyperinflation, _air_bullae, None, "bilateral"),
    "hyperinflation": (_a_hyperinflation, None, None, "bilateral"),
    "hypoinflation": (_a_hypoinflation, None, None, "bilateral"),
    "hyperlucent_lung": (None, _air_hyperlucent, None, None),
    "lucency": (None, _air_lucency, None, None),
    "cavitation": (None, None, _ov_cavitation, None),
    "scarring": (None, None, _ov_scarring, None),
    "increased_markings": (_a_markings, None, _ov_reticular, "bilateral"),
    "interstitial_fibrosis": (_a_markings, None, _ov_reticular, "bilateral"),
    "pulmonary_congestion": (_a_congestion, None, _ov_congestion, "bilateral"),
    "pulmonary_edema": (_a_congestion, None, _ov_edema, "bilateral"),
    "pleural_thickening": (None, None, _ov_pleural_thickening, None),
    "hilar_enlargement": (None, None, _ov_hilar, "bilateral"),
    "mediastinal_widening": (_a_mediastinum, None, _ov_mediastinum_lateral, None),
    "pulmonary_artery_enlargement": (_a_pulmonary_artery, None, _ov_pulmonary_artery_lateral, None),
    "tortuous_aorta": (_a_tortuous_aorta, None, None, None),
    "aortic_calcification": (None, None, _ov_aortic_calcification, None),
    "elevated_diaphragm": (_a_elevated, None, None, "right"),
    "flattened_diaphragm": (_a_flattened, None, None, "bilateral"),
    "hiatal_hernia": (None, None, _ov_hiatal_hernia, None),
    "pneumoperitoneum": (None, None, _ov_pneumoperitoneum, "bilateral"),
    "subcutaneous_emphysema": (None, None, _ov_subcutaneous, None),
    "volume_loss": (_a_volume_loss, None, None, None),
    "mediastinal_shift": (_a_shift, None, None, None),
    "pneumonectomy": (_a_pneumonectomy, _air_pneumonectomy, None, None),
    "epicardial_fat": (None, None, _ov_epicardial_fat, None),
    "azygos_lobe": (None, None, _ov_azygos, "right"),
    "scoliosis": (_a_scoliosis, None, None, "right"),
    "kyphosis": (_a_kyphosis, None, None, None),
    "degenerative_spine": (_a_degenerative, None, None, None),
    "osteophytes": (_a_osteophytes, None, None, None),
    "spinal_hyperostosis": (_a_dish, None, None, None),
    "vertebral_compression": (_a_compression, None, None, None),
    "osteopenia": (_a_osteopenia, None, None, None),
    "rib_fracture": (None, None, _ov_rib_fracture, None),
    "clavicle_fracture": (None, None, _ov_clavicle_fracture, None),
    "shoulder_arthritis": (_a_shoulder, None, None, None),
    "spinal_fusion": (None, None, _ov_spinal_fusion, None),
    "catheter": (None, None, _ov_catheter, "right"),
    "tube": (None, None, _ov_tube, None),
    "pacemaker": (None, None, _ov_pacemaker, "left"),
    "valve_prosthesis": (None, None, _ov_valve, None),
    "shoulder_prosthesis": (_a_shoulder, None, _ov_shoulder_prosthesis, None),
    "sternotomy": (None, None, _ov_sternotomy, None),
    "surgical_clips": (None, None, _ov_surgical_clips, None),
    "abdominal_clips": (None, None, _ov_abdominal_clips, "right"),
    "lung_sutures": (None, None, _ov_lung_sutures, None),
    "stent": (None, None, _ov_stent, None),
    "medical_device": (None, None, _ov_medical_device, None),
    "foreign_body": (None, None, _ov_foreign_body, None),
    "mastectomy": (_a_breast, None, None, None),
    "breast_implants": (_a_breast, None, _ov_breast_implants, "bilateral"),
    "nipple_shadow": (None, None, _ov_nipples, "bilateral"),
    "pectus_excavatum": (_a_pectus, None, _ov_pectus, None),
    "poor_technique": (_a_technique, None, None, None),
}


# ----------------------------------------------------------------------------------------------------------
# Rendering entry point
# ----------------------------------------------------------------------------------------------------------


def _seed64(seed: int) -> int:
    return int(seed) & ((1 << 64) - 1)


def _finding_rng(seed: int, index: int, kind: str) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64([seed, 7919, index, zlib.crc32(kind.encode())]))


def _prepare(spec: PhantomSpec, seed: int) -> tuple[_Anatomy, list[tuple[Finding, list[str], np.random.Generator]]]:
    """Patient plus resolved findings, after every anatomy hook (identical for both views)."""
    A = _patient(seed)
    jobs = []
    for i, f in enumerate(spec.findings):
        handlers = _HANDLERS[f.kind]
        rng = _finding_rng(seed, i, f.kind)
        sides = _sides(f, rng, handlers[3])
        if handlers[0] is not None:
            handlers[0](A, f, sides, rng)
        jobs.append((f, sides, rng))
    return A, jobs


def render(spec: PhantomSpec, *, seed: int, view: str = "frontal", size: int = 512) -> np.ndarray:
    """Render one phantom radiograph: uint8 ``(size, size)``, bright = dense, dark = air.

    ``view`` is ``"frontal"`` (PA) or ``"lateral"``; ``size`` >= 64. The same ``seed`` draws the same patient
    in both views; the output is bit-identical for identical arguments.
    """
    if view not in VIEWS:
        raise ValueError(f"view must be 'frontal' or 'lateral', got {view!r}")
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 64:
        raise ValueError(f"size must be an int >= 64, got {size!r}")
    unknown = sorted({f.kind for f in spec.findings} - set(_HANDLERS))
    if unknown:
        raise ValueError(f"unknown finding kind(s) {', '.join(map(repr, unknown))}; see FINDING_KINDS")
    n = int(size)
    s = _seed64(seed)
    A, jobs = _prepare(spec, s)
    cv = _Canvas(n, view)
    view_rng = np.random.Generator(np.random.PCG64([s, 104729, VIEWS.index(view)]))
    if view == "frontal":
        T = _frontal_body(A, cv)
        _frontal_lungs(A, cv)
        _frontal_heart(A, cv)
        _frontal_airways(A, cv)
        _rib_field(A, cv)
        _frontal_bones(A, cv)
        vessels = _vessel_tree(A, cv, view_rng)
        _frontal_extras(A, cv)
    else:
        T, vessels = _lateral_base(A, cv, view_rng)
    _parenchyma(cv, view_rng)
    if A.vessel_prune > 0:
        _air_emphysema_prune(cv, A, Finding("emphysema"), [], view_rng)
    for f, sides, rng in jobs:
        hook = _HANDLERS[f.kind][1]
        if hook is not None:
            hook(cv, A, f, sides, rng)
    _compose(A, cv, T, vessels)
    for f, sides, rng in jobs:
        hook = _HANDLERS[f.kind][2]
        if hook is not None:
            hook(cv, A, f, sides, rng)
    return _tone(A, cv, view_rng)


__all__ = ["FINDING_DOC", "FINDING_KINDS", "RENDERER_VERSION", "SEVERITIES", "SIDES", "VIEWS", "ZONES", "Finding",
           "PhantomSpec", "describe", "parse_mesh", "render"]
