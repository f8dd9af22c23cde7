"""Named evaluation protocols: one preset of options that reproduces a published evaluation.

``PROTOCOLS["paper"]`` is the protocol of *Benchmarking Robustness of Contrastive Learning Models for Medical
Image-Report Retrieval* (arXiv 2501.09134) as cxrbench reads it: MIMIC-CXR's ``validate`` split, every view,
reports sectioned by MIT-LCP's own parser (``sections="mitlcp"``), studies with **both** FINDINGS and
IMPRESSION (``require="both"``), pixel occlusion at the 8 levels ``PAPER_LEVELS`` and Recall@k for k in
``PAPER_KS``. The paper reports 994 studies and 1,770 images for its evaluation set.

What the paper states and what is our reconstruction (docs/datasets.md, "The paper protocol", gives the
reasoning): the dataset, the split, "every view", the k values and "8 levels from 0% to 81%" are the paper's;
the section requirement (``both``, chosen because 994 of MIT-LCP's 1,808 validate studies is 55%, far below the
share with FINDINGS or IMPRESSION), the parser (MIT-LCP's, which most public MIMIC-CXR pipelines start from),
the intermediate levels (the squares 0.09 ... 0.81), the occlusion mode and fill, and the report text
(``longest``) are reconstructions (:attr:`Protocol.reconstructed`).

:func:`apply_protocol` merges a protocol with the options a user gave. The options are named like the fields of
the runner's ``SweepConfig`` (``dataset``, ``split``, ``policy``, ``levels``, ``ks``, ``corruptions``,
``fill``, ..., with the loader's options in ``dataset_options``); a value of None means "not given".

* *Fixed* settings (:attr:`Protocol.fixed`, :attr:`Protocol.fixed_dataset_options`) define the evaluation set
  and the metric. A user value equal to the protocol's (after normalising: ``val`` is ``validate``,
  ``levels="paper"`` is ``PAPER_LEVELS``, ``views="all"`` is every view) is accepted; a different one is a
  ConfigError naming the option, both values and what to do (drop the option, or drop the protocol to run a
  variant). A protocol is a promise about what was measured, so it is never silently changed.
* *Default* settings (:attr:`Protocol.defaults`: the report-text policy, the occlusion mode and its fill) are
  the protocol's choices where the paper is ambiguous; a user value replaces them and is listed in the merged
  options' ``protocol["overridden"]``, so the results say the run was the protocol with that change.
* Everything else (``root``, ``reports``, ``on_bad_image``, models, device, seed, bootstrap, ``max_studies``...)
  passes through unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from cxrbench.corruptions import PAPER_LEVELS, parse_levels
from cxrbench.data import mimic_cxr, mimic_paper
from cxrbench.errors import ConfigError

#: The paper's k values for Recall@k.
PAPER_KS = (5, 10, 20, 30, 50, 100)


@dataclass(frozen=True)
class Protocol:
    """A named preset: ``fixed`` run options and ``fixed_dataset_options`` (loader options) that a user may
    not change, ``defaults`` that a user may override, and which settings are reconstructions."""

    name: str
    description: str
    fixed: dict
    fixed_dataset_options: dict
    defaults: dict
    reconstructed: tuple[str, ...] = ()
    sources: tuple[str, ...] = field(default=())

    def settings(self) -> dict:
        """Every setting of the protocol, flat (run options, loader options and defaults)."""
        return {**self.fixed, **self.fixed_dataset_options, **self.defaults}


PAPER = Protocol(
    name="paper",
    description=("arXiv 2501.09134: MIMIC-CXR validate split, every view, studies with FINDINGS and IMPRESSION "
                 "as MIT-LCP's parser sections them (the paper: 994 studies, 1,770 images), pixel occlusion at 8 "
                 "levels from 0% to 81%, Recall@k for k in 5, 10, 20, 30, 50, 100"),
    fixed={"dataset": mimic_cxr.NAME, "split": mimic_paper.PAPER_PROTOCOL["split"], "levels": PAPER_LEVELS,
           "ks": PAPER_KS},
    fixed_dataset_options={"views": None, "sections": mimic_paper.PAPER_PROTOCOL["sections"],
                           "require": mimic_paper.PAPER_PROTOCOL["require"],
                           "fallback": mimic_paper.PAPER_PROTOCOL["fallback"]},
    defaults={"policy": "longest", "corruptions": ("pixels",), "fill": "zero"},
    reconstructed=("sections", "require", "levels", "policy", "corruptions", "fill"),
    sources=("arXiv 2501.09134 (dataset, split, views, k, '8 levels from 0% to 81%', 994 studies / 1,770 images)",
             "MIT-LCP/mimic-cxr notebooks/generate-stats-from-paper.ipynb (validate split: 1,808 studies, "
             "2,991 images; 83.2% of reports have an IMPRESSION, a further 12.2% FINDINGS only)",
             "MIT-LCP/mimic-cxr txt/section_parser.py, txt/create_section_files.py (the mitlcp parser)"),
)

#: The protocols by name.
PROTOCOLS: dict[str, Protocol] = {PAPER.name: PAPER}


def available() -> list[str]:
    return list(PROTOCOLS)


def get_protocol(name: str) -> Protocol:
    if name not in PROTOCOLS:
        raise ConfigError(f"unknown protocol {name!r}; available: {', '.join(available())}")
    return PROTOCOLS[name]


def _ks(value: object) -> tuple[int, ...]:
    items = value.split(",") if isinstance(value, str) else list(value)  # type: ignore[arg-type]
    try:
        return tuple(int(str(k).strip()) for k in items if str(k).strip())
    except ValueError:
        raise ConfigError(f"ks={value!r}: give whole numbers, e.g. 5,10,20") from None


def _names(value: object) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else list(value)  # type: ignore[arg-type]
    return tuple(str(x).strip() for x in items if str(x).strip())


#: How a user value is normalised before it is compared with the protocol's (options not listed: as given).
_NORMALISE: dict[str, Callable[[object], object]] = {
    "split": lambda v: mimic_cxr.normalise_split(str(v)),
    "levels": lambda v: parse_levels(v),  # type: ignore[arg-type]
    "ks": _ks,
    "views": lambda v: mimic_cxr.parse_views(v),  # type: ignore[arg-type]
    "fallback": bool,
    "corruptions": _names,
}


def _normalised(option: str, value: object) -> object:
    return _NORMALISE.get(option, lambda v: v)(value)


def _conflict(protocol: Protocol, option: str, fixed: object, given: object) -> ConfigError:
    shown = "every view" if option == "views" and fixed is None else repr(fixed)
    return ConfigError(
        f"protocol {protocol.name!r} fixes {option} to {shown}, but {option}={given!r} was given; drop that option, "
        f"or run without the protocol to evaluate a variant (the results then record your options instead of the "
        f"protocol)")


def apply_protocol(name: str, user_options: Mapping[str, object] | None = None) -> dict:
    """The options of protocol ``name`` merged with ``user_options`` (module docstring: fixed settings conflict,
    defaults are overridden, the rest passes through).

    ``user_options`` uses the runner's option names, loader options in ``dataset_options``; None values count as
    not given. Returns the same shape: every user option, the protocol's settings (``dataset_options`` holding
    the user's loader options plus the protocol's), and ``protocol``: ``{"name", "overridden": {option: value},
    "reconstructed": [...]}`` for the results record.
    """
    protocol = get_protocol(name)
    given = {k: v for k, v in (user_options or {}).items() if v is not None}
    dataset_given = {k: v for k, v in dict(given.pop("dataset_options", None) or {}).items() if v is not None}
    if "protocol" in given:
        raise ConfigError("user_options must not name a protocol; pass its name as the first argument")
    for option, fixed in protocol.fixed.items():
        if option in given and _normalised(option, given[option]) != _normalised(option, fixed):
            raise _conflict(protocol, option, fixed, given[option])
    for option, fixed in protocol.fixed_dataset_options.items():
        value = dataset_given.get(option, given.get(option))
        if value is not None and _normalised(option, value) != _normalised(option, fixed):
            raise _conflict(protocol, option, fixed, value)
        given.pop(option, None)  # a loader option given at the top level is checked here, not passed twice
    merged = dict(given)
    merged.update(protocol.fixed)
    overridden = {}
    for option, default in protocol.defaults.items():
        if option in given and _normalised(option, given[option]) != _normalised(option, default):
            overridden[option] = given[option]
        else:
            merged[option] = default
    merged["dataset_options"] = {**dataset_given, **protocol.fixed_dataset_options}
    merged["protocol"] = {"name": protocol.name, "overridden": overridden,
                          "reconstructed": list(protocol.reconstructed)}
    return merged


def describe_protocol(name: str) -> dict:
    """A protocol's settings, which of them a user may override, and what is reconstruction (for docs, the CLI
    and results records)."""
    p = get_protocol(name)
    settings = {k: (list(v) if isinstance(v, tuple) else v) for k, v in p.settings().items()}
    return {"name": p.name, "description": p.description, "settings": settings,
            "overridable": list(p.defaults), "reconstructed": list(p.reconstructed), "sources": list(p.sources),
            "paper_counts": {"studies": mimic_paper.PAPER_STUDIES, "images": mimic_paper.PAPER_IMAGES}}

