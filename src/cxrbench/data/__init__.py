"""Datasets: ``available()`` lists names, ``load_dataset(name, ...)`` returns a :class:`Dataset`.

Every loader returns the same shape (studies with images and report sections, a summary of counts and drops),
like torchxrayvision's one-class-per-dataset design.
"""

from __future__ import annotations

import importlib
import inspect

from cxrbench.data.records import TEXT_POLICIES, Dataset, ImageRecord, Study, report_text
from cxrbench.errors import ConfigError

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


def load_dataset(name: str, split: str | None = None, policy: str | None = None, **options) -> Dataset:
    """Load dataset ``name``; ``split``/``policy`` default to the dataset's own defaults."""
    target, default = _entry(name)
    module, _, fn = target.partition(":")
    loader = getattr(importlib.import_module(module), fn)
    kwargs = dict(options)
    if split is not None:
        kwargs["split"] = split
    kwargs["policy"] = policy or default
    try:
        inspect.signature(loader).bind(**kwargs)
    except TypeError as exc:
        params = [p for p in inspect.signature(loader).parameters if p not in ("progress",)]
        raise ConfigError(f"dataset {name!r}: {exc}; it takes {', '.join(params)}") from None
    return loader(**kwargs)


__all__ = ["TEXT_POLICIES", "Dataset", "ImageRecord", "Study", "available", "default_policy", "load_dataset",
           "report_text"]
