"""Datasets: ``available()`` lists names, ``load_dataset(name, ...)`` returns a :class:`Dataset`.

Every loader returns the same shape (studies with images and report sections, a summary of counts and drops),
like torchxrayvision's one-class-per-dataset design. Loaders share :mod:`cxrbench.data.common` (helpers and the
StudyCollector) and never import one another; ``load_dataset`` checks every dataset's options the same way
(:func:`check_options`).
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable

from cxrbench.data import lung_masks
from cxrbench.data.records import TEXT_POLICIES, Dataset, ImageRecord, Study, report_text
from cxrbench.errors import ConfigError

#: datasets whose loader provides per-image lung-field masks itself (iu-phantom renders them with the images)
LUNG_MASK_DATASETS = ("iu-phantom",)
#: name -> ("module:function", default report-text policy)
_DATASETS: dict[str, tuple[str, str]] = {
    "iu-phantom": ("cxrbench.data.iu_phantom:load", "longest"),
    "iu-xray": ("cxrbench.data.iu_xray:load", "longest"),
    "mimic-cxr": ("cxrbench.data.mimic_cxr:load", "longest"),
    "chexpert-plus": ("cxrbench.data.chexpert_plus:load", "longest"),
    "manifest": ("cxrbench.data.manifest:load", "longest"),
}


def available() -> list[str]:
    return list(_DATASETS)


def default_policy(name: str) -> str:
    return _entry(name)[1]


def _entry(name: str) -> tuple[str, str]:
    if name not in _DATASETS:
        raise ConfigError(f"unknown dataset {name!r}; available: {', '.join(available())}")
    return _DATASETS[name]


def check_options(name: str, loader: Callable, options: dict) -> None:
    """The one option check of every dataset: a ConfigError naming each unknown option and listing the
    accepted ones, or naming the required ones that are missing (from the loader's signature)."""
    params = inspect.signature(loader).parameters
    accepted = ", ".join(p for p in params if p != "progress")
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        unknown = [k for k in options if k not in params]
        if unknown:
            raise ConfigError(f"dataset {name!r}: unknown option(s) {', '.join(map(repr, unknown))}; it accepts "
                              f"{accepted}")
    missing = [p.name for p in params.values() if p.default is p.empty and p.name not in options
               and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    if missing:
        hint = " (on the command line: --root PATH)" if missing == ["root"] else ""
        raise ConfigError(f"dataset {name!r} needs {', '.join(missing)}{hint}; it accepts {accepted}")


def provides_lung_masks(name: str, options: dict | None = None) -> bool:
    """Whether dataset ``name`` loaded with ``options`` has per-image lung masks: its own (iu-phantom) or a
    ``lung_masks=DIR`` folder (any dataset)."""
    return name in LUNG_MASK_DATASETS or (options or {}).get(lung_masks.OPTION) is not None


def load_dataset(name: str, split: str | None = None, policy: str | None = None, **options) -> Dataset:
    """Load dataset ``name``; ``split``/``policy`` default to the dataset's own defaults. Options are checked
    against the loader's signature first (:func:`check_options`), the same way for every dataset, except
    ``lung_masks=DIR``, which every dataset takes (:mod:`cxrbench.data.lung_masks`)."""
    target, default = _entry(name)
    module, _, fn = target.partition(":")
    loader = getattr(importlib.import_module(module), fn)
    kwargs = dict(options)
    mask_folder = kwargs.pop(lung_masks.OPTION, None)
    if mask_folder is not None:
        lung_masks.check_folder(mask_folder)  # before the loader's work
    if split is not None:
        kwargs["split"] = split
    kwargs["policy"] = policy or default
    check_options(name, loader, kwargs)
    dataset = loader(**kwargs)
    return dataset if mask_folder is None else lung_masks.attach(dataset, mask_folder)


def describe_dataset(name: str, split: str | None = None, policy: str | None = None, **options) -> dict:
    """What ``cxrbench datasets describe NAME`` prints: the dataset's name, split and policy and its whole
    summary (counts, drops, views, text availability, and each loader's own facts: for ``mimic-cxr`` the counts
    under every section requirement with the paper protocol's choice, ``section_requirements``, and
    ``paper_comparison``). Options as for :func:`load_dataset`; ``iu-phantom`` is described without rendering
    its images (``render=False``) unless the options say otherwise."""
    if name == "iu-phantom":
        options.setdefault("render", False)
    ds = load_dataset(name, split=split, policy=policy, **options)
    return {"dataset": ds.name, "split": ds.split, "policy": ds.policy, **ds.summary}


__all__ = ["TEXT_POLICIES", "Dataset", "ImageRecord", "Study", "available", "check_options", "default_policy",
           "describe_dataset", "load_dataset", "provides_lung_masks", "report_text"]
