"""Model registry: names -> lazily imported builders, and where each model's files come from.

Architectures and sources are data (the catalogue table in :mod:`cxrbench.models.catalog`); one ``load_model``
builds any of them. Builders are imported lazily so that ``import cxrbench.models`` stays cheap and optional
dependencies stay optional.

Models come from four places, listed by ``available()`` in this order:

1. the built-in catalogue;
2. plugins: packages that declare an entry point in the group ``cxrbench.models`` (discovered on first use) and
   single ``.py`` files given to :func:`cxrbench.models.load_plugins`; each registers ``ModelSpec`` s on import;
3. ``models.yaml`` entries with a ``family:`` key (``open_clip``, ``hf``): a model defined by configuration only,
   e.g. ``mymodel: {family: open_clip, arch: ViT-B-16, checkpoint: /ckpt/epoch_30.pt}``.

Where a model's files come from, first match wins:

1. keyword arguments to ``load_model`` (``checkpoint=...``, ``text_encoder=...``, ...);
2. environment variables ``CXRBENCH_<NAME>_<KEY>`` (e.g. ``CXRBENCH_CXR_CLIP_CHECKPOINT``);
3. a ``models.yaml`` given as ``config=`` or via ``CXRBENCH_MODELS`` (``{name: {key: path}}``, relative
   paths resolved against the YAML's folder);
4. the adapter's own default (for example the packaged weights of the reference models).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import yaml

from cxrbench.errors import ConfigError


@dataclass(frozen=True)
class ModelSpec:
    name: str
    family: str
    #: ``"module:function"`` (imported when the model is built) or the function itself; called as
    #: ``fn(spec, device=..., **settings)``.
    builder: str | Callable
    description: str
    #: Path-like settings the builder understands, e.g. ("checkpoint", "text_encoder").
    keys: tuple[str, ...] = ("checkpoint",)
    #: Shown when the weights are missing: where to get them and what to point at.
    how_to_get: str = ""
    options: dict = field(default_factory=dict)
    #: Where the spec came from ("cxrbench", "plugin <entry point> (<distribution>)", "models.yaml <path>", ...).
    origin: str = ""

    def resolve_builder(self) -> Callable:
        if callable(self.builder):
            return self.builder
        module, _, fn = self.builder.partition(":")
        try:
            return getattr(importlib.import_module(module), fn)
        except (ImportError, AttributeError) as exc:
            raise ConfigError(f"model {self.name!r} ({self.origin or 'cxrbench'}): its builder {self.builder!r} "
                              f"cannot be imported: {exc}") from exc


@dataclass(frozen=True)
class Family:
    """A generic model family that a ``models.yaml`` entry can instantiate (``family: <name>``)."""

    name: str
    builder: str
    #: Path-like settings (resolved against the YAML's folder, overridable by CXRBENCH_<NAME>_<KEY>).
    keys: tuple[str, ...]
    #: Other settings; they become ``ModelSpec.options``.
    options: tuple[str, ...] = ()
    #: Alternative spellings accepted in models.yaml (``{"path": "checkpoint"}``).
    aliases: dict = field(default_factory=dict)
    #: One line for ``cxrbench models``: ``{settings}`` is replaced by the entry's settings.
    describe: str = ""
    how_to_get: str = ""


_REGISTRY: dict[str, ModelSpec] = {}
_FAMILIES: dict[str, Family] = {}
_ORIGIN: list[str] = []  # stack: who is registering right now (plugin loaders push their name)
_YAML_KEYS = ("family", "description", "how_to_get")


def canonical_name(name: str) -> str:
    """Model names use underscores (pytest ids); hyphens are accepted as aliases."""
    return name.strip().lower().replace("-", "_")


@contextmanager
def registering_from(origin: str) -> Iterator[None]:
    """Specs registered inside this block record ``origin`` (used by the plugin loaders)."""
    _ORIGIN.append(origin)
    try:
        yield
    finally:
        _ORIGIN.pop()


def register(spec: ModelSpec) -> ModelSpec:
    """Add a model to the registry. Registering an identical spec again (a module imported twice) is a no-op;
    a different spec under a taken name is an error naming both origins."""
    if canonical_name(spec.name) != spec.name:
        raise ConfigError(f"model name {spec.name!r} must be lower case with underscores "
                          f"(e.g. {canonical_name(spec.name)!r})")
    if not spec.origin:
        spec = replace(spec, origin=_ORIGIN[-1] if _ORIGIN else "cxrbench")
    existing = _REGISTRY.get(spec.name)
    if existing is not None:
        if existing == spec:
            return existing
        raise ConfigError(f"model {spec.name!r} is registered twice: by {existing.origin} and by {spec.origin}. "
                          "Rename one of them.")
    _REGISTRY[spec.name] = spec
    return spec


def register_family(family: Family) -> Family:
    _FAMILIES[family.name] = family
    return family


def families() -> list[str]:
    """Names of the families a models.yaml entry can use (``family: <name>``)."""
    return list(_FAMILIES)


def _ensure_plugins() -> None:
    from cxrbench.models.plugins import discover_entry_points

    discover_entry_points()


def available(config: str | Path | None = None) -> list[str]:
    """Names of every model: built-in, plugins, then models defined in ``config`` (or ``$CXRBENCH_MODELS``)."""
    _ensure_plugins()
    return list(_REGISTRY) + [n for n in _yaml_specs(config) if n not in _REGISTRY]


def get_spec(name: str, config: str | Path | None = None) -> ModelSpec:
    """The spec registered (or defined in ``config`` / ``$CXRBENCH_MODELS``) as ``name``."""
    _ensure_plugins()
    key = canonical_name(name)
    if key in _REGISTRY:
        return _REGISTRY[key]
    defined = _yaml_specs(config)
    if key in defined:
        return defined[key]
    raise ConfigError(
        f"unknown model {name!r}; available: {', '.join(available(config))}. "
        "Names are case-insensitive and '-' equals '_'. A model of your own is added with a models.yaml entry "
        "(family: open_clip | hf) or a plugin (docs/your-model.md)."
    )


# -- models.yaml ---------------------------------------------------------------------------------------------------
def _config_path(config: str | Path | None) -> Path | None:
    config = config or os.environ.get("CXRBENCH_MODELS")
    if not config:
        return None
    path = Path(config).expanduser()
    if not path.is_file():
        raise ConfigError(f"models config {path} does not exist (given by config= or CXRBENCH_MODELS).")
    return path


_YAML_CACHE: dict[tuple[str, int, int], dict] = {}


def _read_yaml(path: Path) -> dict:
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _YAML_CACHE:
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"models config {path} is not valid YAML: {exc}") from exc
        if not isinstance(data, dict):
            raise ConfigError(f"models config {path} must map model names to settings, got {type(data).__name__}")
        entries = {}
        for name, entry in data.items():
            if not isinstance(entry, dict):
                raise ConfigError(f"models config {path}: entry {name!r} must be a mapping of settings, "
                                  f"got {type(entry).__name__}")
            entries[canonical_name(str(name))] = entry
        _YAML_CACHE[key] = entries
    return _YAML_CACHE[key]


def _yaml_entries(config: str | Path | None) -> tuple[dict, Path | None]:
    path = _config_path(config)
    return ({}, None) if path is None else (_read_yaml(path), path)


def _family_entry(family: Family, entry: dict) -> dict:
    """The entry with the family's aliases replaced by the canonical setting names."""
    out = {}
    for key, value in entry.items():
        out[family.aliases.get(key, key)] = value
    return out


def _spec_from_yaml(name: str, entry: dict, path: Path) -> ModelSpec:
    family_name = entry.get("family")
    if family_name not in _FAMILIES:
        raise ConfigError(f"models config {path}: model {name!r} has family {family_name!r}; a models.yaml entry "
                          f"can define a model of the families {families()} (other models need a plugin: "
                          "docs/your-model.md).")
    family = _FAMILIES[family_name]
    if name in _REGISTRY:
        raise ConfigError(f"models config {path}: {name!r} with 'family:' would redefine the {_REGISTRY[name].origin} "
                          f"model of that name; choose another name (or drop 'family:' to configure its paths).")
    entry = _family_entry(family, entry)
    allowed = set(_YAML_KEYS) | set(family.keys) | set(family.options)
    unknown = sorted(set(entry) - allowed)
    if unknown:
        raise ConfigError(f"models config {path}: model {name!r} (family {family.name}) has unknown setting(s) "
                          f"{unknown}; known: {sorted(allowed - {'family'})}"
                          + (f" (aliases: {family.aliases})" if family.aliases else ""))
    options = {k: entry[k] for k in family.options if k in entry}
    settings = ", ".join(f"{k}={entry[k]}" for k in (*family.keys, *family.options) if k in entry)
    description = str(entry.get("description") or family.describe.format(settings=settings) or settings)
    how = str(entry.get("how_to_get") or f"defined in {path} (entry '{name}'); {family.how_to_get}".rstrip("; "))
    return ModelSpec(name=name, family=family.name, builder=family.builder, description=description,
                     keys=family.keys, how_to_get=how, options=options, origin=f"models.yaml {path}")


def _yaml_specs(config: str | Path | None) -> dict[str, ModelSpec]:
    entries, path = _yaml_entries(config)
    return {name: _spec_from_yaml(name, entry, path) for name, entry in entries.items() if "family" in entry}


def _yaml_settings(config: str | Path | None, spec: ModelSpec) -> tuple[dict, Path | None]:
    entries, path = _yaml_entries(config)
    entry = entries.get(spec.name)
    if entry is None:
        return {}, None
    if "family" in entry:
        family = _FAMILIES.get(spec.family)
        entry = _family_entry(family, entry) if family else entry
        entry = {k: v for k, v in entry.items() if k in spec.keys}
    else:
        unknown = sorted(set(entry) - set(spec.keys))
        if unknown:
            raise ConfigError(f"models config {path}: model {spec.name!r} takes the settings {list(spec.keys)}, "
                              f"not {unknown}.")
    return entry, path.parent


def env_var(model: str, key: str) -> str:
    """The environment variable that sets ``key`` of ``model``: ``CXRBENCH_<NAME>_<KEY>``."""
    return f"CXRBENCH_{model.upper()}_{key.upper()}"


_PREFIXES = ("local-dir:", "hf-hub:")


def _relative_to(value: str, folder: Path) -> str:
    """A relative path (also after ``local-dir:``) resolved against ``folder``; other values unchanged."""
    prefix = next((p for p in _PREFIXES if value.startswith(p)), "")
    rest = value[len(prefix):]
    if prefix == "hf-hub:" or Path(rest).expanduser().is_absolute() or (not prefix and ":" in rest):
        return value
    return prefix + str(folder / rest)


def resolve_paths(spec: ModelSpec, config: str | Path | None = None, **given) -> dict:
    """Settings for ``spec`` from arguments, environment, models.yaml (in that order)."""
    unknown = set(given) - set(spec.keys)
    if unknown:
        raise ConfigError(f"model {spec.name!r} takes settings {list(spec.keys)}, not {sorted(unknown)}")
    yaml_entry, yaml_dir = _yaml_settings(config, spec)
    out = {}
    for key in spec.keys:
        env = env_var(spec.name, key)
        if given.get(key) is not None:
            out[key] = given[key]
        elif os.environ.get(env):
            out[key] = os.environ[env]
        elif yaml_entry.get(key) is not None:
            value = str(yaml_entry[key])
            out[key] = _relative_to(value, yaml_dir) if yaml_dir is not None else value
    return out


def load_model(name: str, checkpoint: str | Path | None = None, device: str = "cpu",
               config: str | Path | None = None, **paths):
    """Build the encoder registered (or defined in ``config``) as ``name`` (see the module docstring for where
    files come from)."""
    spec = get_spec(name, config)
    if checkpoint is not None:
        paths["checkpoint"] = checkpoint
    settings = resolve_paths(spec, config, **paths)
    return spec.resolve_builder()(spec, device=device, **settings)


# -- trust_remote_code ---------------------------------------------------------------------------------------------
_TRUST_REMOTE_CODE = [False]
TRUST_REMOTE_CODE_ENV = "CXRBENCH_TRUST_REMOTE_CODE"


def set_trust_remote_code(allowed: bool) -> None:
    """Allow (or forbid again) models that run Python code shipped with their weights (``--trust-remote-code``)."""
    _TRUST_REMOTE_CODE[0] = bool(allowed)


def trust_remote_code_allowed() -> bool:
    """True after ``set_trust_remote_code(True)`` or with ``CXRBENCH_TRUST_REMOTE_CODE=1`` in the environment."""
    return _TRUST_REMOTE_CODE[0] or os.environ.get(TRUST_REMOTE_CODE_ENV, "").strip().lower() in ("1", "true", "yes")


def refuse_remote_code(spec: ModelSpec, where: object = None) -> None:
    """ConfigError when ``spec`` asks for ``trust_remote_code`` and this run has not allowed it. Called when a
    run's options are checked (before any data is read) and again by the ``hf`` builder."""
    if not spec.options.get("trust_remote_code") or trust_remote_code_allowed():
        return
    raise ConfigError(
        f"{spec.name}: trust_remote_code is set{f' for {where}' if where else ''}, which makes transformers import "
        "and run the Python files shipped with the model (arbitrary code with your permissions). cxrbench refuses "
        f"that unless you allow it for this run: pass --trust-remote-code (or set {TRUST_REMOTE_CODE_ENV}=1) if "
        "you trust the files in that folder.")
