"""Model plugins: code outside cxrbench that registers ``ModelSpec`` s.

Two ways in, both ending in :func:`cxrbench.models.register` calls made while a module is imported:

* an installed package that declares an entry point in the group ``cxrbench.models``::

      [project.entry-points."cxrbench.models"]
      my_model = "my_package.cxrbench_adapter"

  The entry point names a module (imported; it registers on import) or a callable (called with no arguments;
  it may register itself, or return ``ModelSpec`` s to register). Entry points are discovered the first time
  the registry is asked for a model, once per process;
* a single ``.py`` file, loaded with :func:`load_plugins` (``--model-module path/to/file.py`` on the command
  line and in pytest). The file is imported as module ``cxrbench_user_models.<file stem>``, so a spec in it
  may name its builder ``f"{__name__}:build"`` or pass the function itself.

docs/your-model.md walks through a complete adapter.
"""

from __future__ import annotations

import importlib.util
import re
import sys
import types
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path

from cxrbench.errors import ConfigError
from cxrbench.models.registry import ModelSpec, register, registering_from

ENTRY_POINT_GROUP = "cxrbench.models"
MODULE_PACKAGE = "cxrbench_user_models"

_DISCOVERED: list[bool] = [False]
_LOADED_FILES: dict[str, types.ModuleType] = {}


def _register_returned(value: object, origin: str) -> None:
    if value is None:
        return
    specs = [value] if isinstance(value, ModelSpec) else value
    if not isinstance(specs, Iterable) or not all(isinstance(s, ModelSpec) for s in specs):
        raise ConfigError(f"{origin} returned {type(value).__name__}; a plugin callable registers its models "
                          "itself or returns ModelSpec objects.")
    for spec in specs:
        register(spec)


def _load_entry_point(ep: metadata.EntryPoint) -> None:
    dist = getattr(getattr(ep, "dist", None), "name", None) or "an installed package"
    origin = f"plugin {ep.name!r} = {ep.value} ({dist})"
    with registering_from(origin):
        try:
            obj = ep.load()
        except ConfigError:
            raise
        except Exception as exc:
            raise ConfigError(f"{origin}: importing the entry point of group {ENTRY_POINT_GROUP!r} failed: "
                              f"{type(exc).__name__}: {exc}. Fix or uninstall {dist}.") from exc
        if callable(obj) and not isinstance(obj, types.ModuleType):
            _register_returned(obj(), origin)


def discover_entry_points(force: bool = False) -> None:
    """Import every installed ``cxrbench.models`` entry point (once per process unless ``force``)."""
    if _DISCOVERED[0] and not force:
        return
    _DISCOVERED[0] = True  # set first: a plugin that asks the registry while it is imported must not recurse
    try:
        for ep in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            _load_entry_point(ep)
    except ConfigError:
        _DISCOVERED[0] = False  # a broken plugin fails every later look-up too, not just the first
        raise


def _module_name(path: Path) -> str:
    stem = re.sub(r"\W", "_", path.stem) or "module"
    return f"{MODULE_PACKAGE}.{stem}"


def load_model_module(path: str | Path) -> types.ModuleType:
    """Import one ``.py`` file that registers models (the same file again is not re-imported)."""
    path = Path(path).expanduser()
    if not path.exists():
        raise ConfigError(f"model module {path} does not exist (given with --model-module / model_modules=); "
                          "give the path of a .py file that registers models (docs/your-model.md).")
    if not path.is_file() or path.suffix != ".py":
        raise ConfigError(f"model module {path} is not a .py file (given with --model-module / model_modules=).")
    key = str(path.resolve())
    if key in _LOADED_FILES:
        return _LOADED_FILES[key]
    name = _module_name(path)
    if name in sys.modules:
        raise ConfigError(f"model module {path}: another model module with the file name {path.name!r} is "
                          f"already loaded ({sys.modules[name].__file__}); rename one of them.")
    if MODULE_PACKAGE not in sys.modules:
        package = types.ModuleType(MODULE_PACKAGE)
        package.__path__ = []
        sys.modules[MODULE_PACKAGE] = package
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    with registering_from(f"model module {path}"):
        try:
            spec.loader.exec_module(module)
        except ConfigError:
            sys.modules.pop(name, None)
            raise
        except Exception as exc:
            sys.modules.pop(name, None)
            raise ConfigError(f"model module {path} failed to import: {type(exc).__name__}: {exc}") from exc
    _LOADED_FILES[key] = module
    return module


def load_plugins(model_modules: Iterable[str | Path] = (), entry_points: bool = True) -> list[str]:
    """Load model plugins: installed entry points (group ``cxrbench.models``) and the given ``.py`` files.

    Returns the names of the models registered by this call (what ``--model-module`` added).
    """
    from cxrbench.models.registry import _REGISTRY

    before = set(_REGISTRY)
    if entry_points:
        discover_entry_points()
    for path in model_modules:
        load_model_module(path)
    return [name for name in _REGISTRY if name not in before]
