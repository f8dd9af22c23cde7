"""Model adapters: ``available()`` lists names, ``load_model(name, ...)`` builds an Encoder."""

from cxrbench.models import catalog as _catalog  # noqa: F401  (registers the built-in models)
from cxrbench.models.base import Encoder, ModelInfo
from cxrbench.models.registry import ModelSpec, available, canonical_name, get_spec, load_model, register

__all__ = ["Encoder", "ModelInfo", "ModelSpec", "available", "canonical_name", "get_spec", "load_model", "register"]
