"""The handler table: for every finding kind, its anatomy, air and overlay hooks and its default side.

Each :class:`~cxrbench.phantom.spec.Finding` kind has up to three hooks: *anatomy* hooks change the patient
before drawing (cardiomegaly scales the heart, hyperinflation lowers and flattens the domes, scoliosis bends
the spine, ...); *air* hooks change the lung air map (effusion fills the costophrenic recess up to a
meniscus, pneumothorax adds a marking-free dark rim inside a thin visceral pleural line, bullae, ...);
*overlay* hooks add density in small windows (opacities, nodules, devices, calcifications, ...). Location:
``zone`` gives the height in the lung (apex/upper = top third, middle/lingula/hilum = middle, lower/base =
bottom third, hilum = medial, retrocardiac = behind the heart), ``side`` the lung; findings without a side
pick one from the seed (some kinds have a natural default, e.g. a pacemaker sits in the left chest);
``bilateral`` draws both. Severity scales size/height/intensity (borderline < mild = small < moderate <
large < severe), ``multiple`` draws several, ``calcified`` draws bright sharp calcium.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from cxrbench.phantom.air_hooks import (
    _air_blunting,
    _air_bullae,
    _air_effusion,
    _air_hyperlucent,
    _air_lucency,
    _air_pneumonectomy,
    _air_pneumothorax,
)
from cxrbench.phantom.anatomy import _Anatomy
from cxrbench.phantom.anatomy_hooks import (
    _a_atelectasis,
    _a_breast,
    _a_cardiomegaly,
    _a_compression,
    _a_congestion,
    _a_degenerative,
    _a_dish,
    _a_elevated,
    _a_flattened,
    _a_hyperinflation,
    _a_hypoinflation,
    _a_kyphosis,
    _a_markings,
    _a_mediastinum,
    _a_osteopenia,
    _a_osteophytes,
    _a_pectus,
    _a_pneumonectomy,
    _a_pulmonary_artery,
    _a_scoliosis,
    _a_shift,
    _a_shoulder,
    _a_technique,
    _a_tortuous_aorta,
    _a_volume_loss,
)
from cxrbench.phantom.body_overlays import (
    _ov_aortic_calcification,
    _ov_azygos,
    _ov_breast_implants,
    _ov_clavicle_fracture,
    _ov_epicardial_fat,
    _ov_hiatal_hernia,
    _ov_mediastinum_lateral,
    _ov_nipples,
    _ov_pectus,
    _ov_pneumoperitoneum,
    _ov_pulmonary_artery_lateral,
    _ov_rib_fracture,
    _ov_subcutaneous,
)
from cxrbench.phantom.canvas import _Canvas
from cxrbench.phantom.device_overlays import (
    _ov_abdominal_clips,
    _ov_catheter,
    _ov_foreign_body,
    _ov_lung_sutures,
    _ov_medical_device,
    _ov_pacemaker,
    _ov_shoulder_prosthesis,
    _ov_spinal_fusion,
    _ov_stent,
    _ov_sternotomy,
    _ov_surgical_clips,
    _ov_tube,
    _ov_valve,
)
from cxrbench.phantom.lung_overlays import (
    _ov_airspace,
    _ov_atelectasis,
    _ov_calcified_nodes,
    _ov_cavitation,
    _ov_congestion,
    _ov_edema,
    _ov_granulomatous,
    _ov_hilar,
    _ov_nodule,
    _ov_pleural_thickening,
    _ov_reticular,
    _ov_scarring,
)
from cxrbench.phantom.spec import Finding

AnatomyHook = Callable[[_Anatomy, Finding, list[str], np.random.Generator], None]
CanvasHook = Callable[[_Canvas, _Anatomy, Finding, list[str], np.random.Generator], None]


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
