"""MeSH parsing: the ``<major>`` strings of one study to a :class:`~cxrbench.phantom.spec.PhantomSpec`.

A ``<major>`` string is a top-level term followed by ``/``-separated qualifiers (``Opacity/lung/upper
lobe/right``). ``_RULES`` maps each known term (lower case) to a rule that reads the qualifiers and returns
the findings to draw; a term without a rule, or whose rule returns nothing, is reported in ``unknown_terms``
(``normal`` and ``No Indexing`` draw nothing and are not reported).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cxrbench.phantom.spec import SEVERITIES, SIDES, Finding, PhantomSpec

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
