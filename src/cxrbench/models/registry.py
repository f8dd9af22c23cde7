"""Model registry: names -> lazily imported builders, and where each model's files come from.

Architectures and sources are data (the table below); one ``load_model`` builds any of them. Builders are
imported lazily so that ``import cxrbench.models`` stays cheap and optional dependencies stay optional.

Where files come from, first match wins:
1. keyword arguments to ``load_model`` (``checkpoint=...``, ``text_encoder=...``, ...);
2. environment variables ``CXRBENCH_<NAME>_<KEY>`` (e.g. ``CXRBENCH_CXR_CLIP_CHECKPOINT``);
3. a ``models.yaml`` given as ``config=`` or via ``CXRBENCH_MODELS`` (``{name: {key: path}}``, relative
   paths resolved against the YAML's folder);
4. the adapter's own default (for example the packaged weights of the reference models).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from cxrbench.errors import ConfigError


@dataclass(frozen=True)
class ModelSpec:
    name: str
    family: str
    builder: str  # "module:function"; called as fn(spec, device=..., **paths)
    description: str
    #: Path-like settings the builder understands, e.g. ("checkpoint", "text_encoder").
    keys: tuple[str, ...] = ("checkpoint",)
    #: Shown when the weights are missing: where to get them and what to point at.
    how_to_get: str = ""
    options: dict = field(default_factory=dict)

    def resolve_builder(self) -> Callable:
        module, _, fn = self.builder.partition(":")
        return getattr(importlib.import_module(module), fn)


_REGISTRY: dict[str, ModelSpec] = {}


def canonical_name(name: str) -> str:
    """Model names use underscores (pytest ids); hyphens are accepted as aliases."""
    return name.strip().lower().replace("-", "_")


def register(spec: ModelSpec) -> ModelSpec:
    if spec.name in _REGISTRY:
        raise ValueError(f"model {spec.name!r} registered twice")
    _REGISTRY[spec.name] = spec
    return spec


def get_spec(name: str) -> ModelSpec:
    key = canonical_name(name)
    if key not in _REGISTRY:
        raise ConfigError(
            f"unknown model {name!r}; available: {', '.join(available())}. "
            "Names are case-insensitive and '-' equals '_'."
        )
    return _REGISTRY[key]


def available() -> list[str]:
    """Names of every registered model, in registration order."""
    return list(_REGISTRY)


def _yaml_settings(config: str | Path | None, name: str) -> tuple[dict, Path | None]:
    config = config or os.environ.get("CXRBENCH_MODELS")
    if not config:
        return {}, None
    path = Path(config).expanduser()
    if not path.is_file():
        raise ConfigError(f"models config {path} does not exist (given by config= or CXRBENCH_MODELS).")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"models config {path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"models config {path} must map model names to settings, got {type(data).__name__}")
    entries = {canonical_name(k): v for k, v in data.items()}
    entry = entries.get(name) or {}
    if not isinstance(entry, dict):
        raise ConfigError(f"models config {path}: entry {name!r} must be a mapping of settings")
    return entry, path.parent


def env_var(model: str, key: str) -> str:
    """The environment variable that sets ``key`` of ``model``: ``CXRBENCH_<NAME>_<KEY>``."""
    return f"CXRBENCH_{model.upper()}_{key.upper()}"


def resolve_paths(spec: ModelSpec, config: str | Path | None = None, **given) -> dict:
    """Settings for ``spec`` from arguments, environment, models.yaml (in that order)."""
    yaml_entry, yaml_dir = _yaml_settings(config, spec.name)
    unknown = set(given) - set(spec.keys)
    if unknown:
        raise ConfigError(f"model {spec.name!r} takes settings {list(spec.keys)}, not {sorted(unknown)}")
    out = {}
    for key in spec.keys:
        env = env_var(spec.name, key)
        if given.get(key) is not None:
            out[key] = given[key]
        elif os.environ.get(env):
            out[key] = os.environ[env]
        elif yaml_entry.get(key) is not None:
            value = str(yaml_entry[key])
            if yaml_dir is not None and not Path(value).expanduser().is_absolute() and ":" not in value:
                value = str(yaml_dir / value)
            out[key] = value
    return out


def load_model(name: str, checkpoint: str | Path | None = None, device: str = "cpu",
               config: str | Path | None = None, **paths):
    """Build the encoder registered as ``name`` (see module docstring for where files come from)."""
    spec = get_spec(name)
    if checkpoint is not None:
        paths["checkpoint"] = checkpoint
    settings = resolve_paths(spec, config, **paths)
    return spec.resolve_builder()(spec, device=device, **settings)
