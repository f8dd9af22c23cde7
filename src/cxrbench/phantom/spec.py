"""What the renderer can draw: the finding vocabulary, ``Finding``, ``PhantomSpec`` and ``describe``.

``FINDING_DOC`` maps every kind to the MeSH terms that produce it (see :mod:`cxrbench.phantom.mesh`) and
defines ``FINDING_KINDS``; every kind has an entry in the handler table (:mod:`cxrbench.phantom.handlers`).
"""

from __future__ import annotations

from dataclasses import dataclass

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
