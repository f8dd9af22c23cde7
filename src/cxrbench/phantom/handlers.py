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

The hooks are named after their stage: ``anatomy_*`` (:mod:`~cxrbench.phantom.anatomy_hooks`), ``air_*``
(:mod:`~cxrbench.phantom.air_hooks`) and ``overlay_*`` (:mod:`~cxrbench.phantom.lung_overlays`,
:mod:`~cxrbench.phantom.body_overlays`, :mod:`~cxrbench.phantom.device_overlays`). This table is the only
module that imports them (the render entry point reads it).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from cxrbench.phantom.air_hooks import (
    air_blunting,
    air_bullae,
    air_effusion,
    air_hyperlucent,
    air_lucency,
    air_pneumonectomy,
    air_pneumothorax,
)
from cxrbench.phantom.anatomy import Anatomy
from cxrbench.phantom.anatomy_hooks import (
    anatomy_atelectasis,
    anatomy_breast,
    anatomy_cardiomegaly,
    anatomy_compression,
    anatomy_congestion,
    anatomy_degenerative,
    anatomy_dish,
    anatomy_elevated,
    anatomy_flattened,
    anatomy_hyperinflation,
    anatomy_hypoinflation,
    anatomy_kyphosis,
    anatomy_markings,
    anatomy_mediastinum,
    anatomy_osteopenia,
    anatomy_osteophytes,
    anatomy_pectus,
    anatomy_pneumonectomy,
    anatomy_pulmonary_artery,
    anatomy_scoliosis,
    anatomy_shift,
    anatomy_shoulder,
    anatomy_technique,
    anatomy_tortuous_aorta,
    anatomy_volume_loss,
)
from cxrbench.phantom.body_overlays import (
    overlay_aortic_calcification,
    overlay_azygos,
    overlay_breast_implants,
    overlay_clavicle_fracture,
    overlay_epicardial_fat,
    overlay_hiatal_hernia,
    overlay_mediastinum_lateral,
    overlay_nipples,
    overlay_pectus,
    overlay_pneumoperitoneum,
    overlay_pulmonary_artery_lateral,
    overlay_rib_fracture,
    overlay_subcutaneous,
)
from cxrbench.phantom.canvas import Canvas
from cxrbench.phantom.device_overlays import (
    overlay_abdominal_clips,
    overlay_catheter,
    overlay_foreign_body,
    overlay_lung_sutures,
    overlay_medical_device,
    overlay_pacemaker,
    overlay_shoulder_prosthesis,
    overlay_spinal_fusion,
    overlay_stent,
    overlay_sternotomy,
    overlay_surgical_clips,
    overlay_tube,
    overlay_valve,
)
from cxrbench.phantom.lung_overlays import (
    overlay_airspace,
    overlay_atelectasis,
    overlay_calcified_nodes,
    overlay_cavitation,
    overlay_congestion,
    overlay_edema,
    overlay_granulomatous,
    overlay_hilar,
    overlay_nodule,
    overlay_pleural_thickening,
    overlay_reticular,
    overlay_scarring,
)
from cxrbench.phantom.spec import Finding

AnatomyHook = Callable[[Anatomy, Finding, list[str], np.random.Generator], None]
CanvasHook = Callable[[Canvas, Anatomy, Finding, list[str], np.random.Generator], None]


# kind -> (anatomy hook, air hook, overlay hook, default side)
HANDLERS: dict[str, tuple[AnatomyHook | None, CanvasHook | None, CanvasHook | None, str | None]] = {
    "cardiomegaly": (anatomy_cardiomegaly, None, None, None),
    "pleural_effusion": (None, air_effusion, None, None),
    "blunted_costophrenic_angle": (None, air_blunting, None, None),
    "pneumothorax": (None, air_pneumothorax, None, None),
    "opacity": (None, None, overlay_airspace, None),
    "airspace_disease": (None, None, overlay_airspace, None),
    "consolidation": (None, None, overlay_airspace, None),
    "infiltrate": (None, None, overlay_airspace, None),
    "pneumonia": (None, None, overlay_airspace, None),
    "density": (None, None, overlay_airspace, None),
    "atelectasis": (anatomy_atelectasis, None, overlay_atelectasis, None),
    "nodule": (None, None, overlay_nodule, None),
    "mass": (None, None, overlay_nodule, None),
    "granuloma": (None, None, overlay_nodule, None),
    "granulomatous_disease": (None, None, overlay_granulomatous, None),
    "calcified_lymph_nodes": (None, None, overlay_calcified_nodes, None),
    "emphysema": (anatomy_hyperinflation, air_bullae, None, "bilateral"),
    "hyperinflation": (anatomy_hyperinflation, None, None, "bilateral"),
    "hypoinflation": (anatomy_hypoinflation, None, None, "bilateral"),
    "hyperlucent_lung": (None, air_hyperlucent, None, None),
    "lucency": (None, air_lucency, None, None),
    "cavitation": (None, None, overlay_cavitation, None),
    "scarring": (None, None, overlay_scarring, None),
    "increased_markings": (anatomy_markings, None, overlay_reticular, "bilateral"),
    "interstitial_fibrosis": (anatomy_markings, None, overlay_reticular, "bilateral"),
    "pulmonary_congestion": (anatomy_congestion, None, overlay_congestion, "bilateral"),
    "pulmonary_edema": (anatomy_congestion, None, overlay_edema, "bilateral"),
    "pleural_thickening": (None, None, overlay_pleural_thickening, None),
    "hilar_enlargement": (None, None, overlay_hilar, "bilateral"),
    "mediastinal_widening": (anatomy_mediastinum, None, overlay_mediastinum_lateral, None),
    "pulmonary_artery_enlargement": (anatomy_pulmonary_artery, None, overlay_pulmonary_artery_lateral, None),
    "tortuous_aorta": (anatomy_tortuous_aorta, None, None, None),
    "aortic_calcification": (None, None, overlay_aortic_calcification, None),
    "elevated_diaphragm": (anatomy_elevated, None, None, "right"),
    "flattened_diaphragm": (anatomy_flattened, None, None, "bilateral"),
    "hiatal_hernia": (None, None, overlay_hiatal_hernia, None),
    "pneumoperitoneum": (None, None, overlay_pneumoperitoneum, "bilateral"),
    "subcutaneous_emphysema": (None, None, overlay_subcutaneous, None),
    "volume_loss": (anatomy_volume_loss, None, None, None),
    "mediastinal_shift": (anatomy_shift, None, None, None),
    "pneumonectomy": (anatomy_pneumonectomy, air_pneumonectomy, None, None),
    "epicardial_fat": (None, None, overlay_epicardial_fat, None),
    "azygos_lobe": (None, None, overlay_azygos, "right"),
    "scoliosis": (anatomy_scoliosis, None, None, "right"),
    "kyphosis": (anatomy_kyphosis, None, None, None),
    "degenerative_spine": (anatomy_degenerative, None, None, None),
    "osteophytes": (anatomy_osteophytes, None, None, None),
    "spinal_hyperostosis": (anatomy_dish, None, None, None),
    "vertebral_compression": (anatomy_compression, None, None, None),
    "osteopenia": (anatomy_osteopenia, None, None, None),
    "rib_fracture": (None, None, overlay_rib_fracture, None),
    "clavicle_fracture": (None, None, overlay_clavicle_fracture, None),
    "shoulder_arthritis": (anatomy_shoulder, None, None, None),
    "spinal_fusion": (None, None, overlay_spinal_fusion, None),
    "catheter": (None, None, overlay_catheter, "right"),
    "tube": (None, None, overlay_tube, None),
    "pacemaker": (None, None, overlay_pacemaker, "left"),
    "valve_prosthesis": (None, None, overlay_valve, None),
    "shoulder_prosthesis": (anatomy_shoulder, None, overlay_shoulder_prosthesis, None),
    "sternotomy": (None, None, overlay_sternotomy, None),
    "surgical_clips": (None, None, overlay_surgical_clips, None),
    "abdominal_clips": (None, None, overlay_abdominal_clips, "right"),
    "lung_sutures": (None, None, overlay_lung_sutures, None),
    "stent": (None, None, overlay_stent, None),
    "medical_device": (None, None, overlay_medical_device, None),
    "foreign_body": (None, None, overlay_foreign_body, None),
    "mastectomy": (anatomy_breast, None, None, None),
    "breast_implants": (anatomy_breast, None, overlay_breast_implants, "bilateral"),
    "nipple_shadow": (None, None, overlay_nipples, "bilateral"),
    "pectus_excavatum": (anatomy_pectus, None, overlay_pectus, None),
    "poor_technique": (anatomy_technique, None, None, None),
}
