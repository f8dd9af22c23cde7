"""Model adapters: ``available()`` lists names, ``load_model(name, ...)`` builds an Encoder.

Your own model: a ``models.yaml`` entry with ``family: open_clip`` or ``family: hf``, or a plugin
(``load_plugins``; entry-point group ``cxrbench.models``); see docs/your-model.md.
"""

from cxrbench.models import catalog as _catalog  # noqa: F401  (registers the built-in models)
from cxrbench.models.base import Encoder, ModelInfo
from cxrbench.models.plugins import load_plugins
from cxrbench.models.registry import (
    Family,
    ModelSpec,
    available,
    canonical_name,
    families,
    get_spec,
    load_model,
    register,
    set_trust_remote_code,
    trust_remote_code_allowed,
)

__all__ = ["Encoder", "Family", "ModelInfo", "ModelSpec", "available", "canonical_name", "families", "get_spec",
           "load_model", "load_plugins", "register", "set_trust_remote_code", "trust_remote_code_allowed"]
