"""Configs pickled with omegaconf objects, read without omegaconf and without unpickling arbitrary objects.

Training checkpoints written by Hydra / omegaconf code (CXR-CLIP's ``.tar``, GLoRIA's PyTorch Lightning ``.ckpt``)
hold ``DictConfig`` / ``ListConfig`` objects, which ``torch.load(weights_only=True)`` refuses. They are never
unpickled for real: :data:`OMEGACONF_STANDINS` registers inert stand-in classes under exactly the names an
omegaconf 2.x config pickles (for the duration of one load, via ``safe_globals``); the stand-ins keep only the
pickled state, and :func:`plain_config` turns them into plain dicts / lists / scalars. Anything else that is not
a tensor or a plain container is still refused (no fallback to full unpickling).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from cxrbench.errors import CheckpointError


class _PickledState:
    """Inert stand-in for an omegaconf object: keeps the pickled ``__dict__`` state, runs no omegaconf code."""

    def __setstate__(self, state: object) -> None:
        self.state = state


class _DictConfigState(_PickledState):
    pass


class _ListConfigState(_PickledState):
    pass


class _ValueNodeState(_PickledState):
    pass


class _MetadataState(_PickledState):
    pass


class _TypeRef:
    """Stands for a type object named in omegaconf metadata (``typing.Any``, ``builtins.dict`` ...)."""

    def __init__(self, name: str) -> None:
        self.name = name


def _empty_defaultdict(*_args: object) -> dict:
    """Stands for ``collections.defaultdict(dict)`` (omegaconf's resolver cache): an empty dict."""
    return {}


_NODE_NAMES = ("AnyNode", "StringNode", "IntegerNode", "FloatNode", "BooleanNode", "BytesNode", "PathNode")
_TYPE_NAMES = ("typing.Any", "builtins.dict", "builtins.list", "builtins.int", "builtins.str",
               "builtins.float", "builtins.bool", "builtins.bytes", "builtins.object")

#: Exactly the names an omegaconf 2.x config pickles, mapped to inert stand-ins (torch weights_only allowlist).
OMEGACONF_STANDINS: tuple[tuple[object, str], ...] = (
    (_DictConfigState, "omegaconf.dictconfig.DictConfig"),
    (_ListConfigState, "omegaconf.listconfig.ListConfig"),
    (_MetadataState, "omegaconf.base.Metadata"),
    (_MetadataState, "omegaconf.base.ContainerMetadata"),
    (_empty_defaultdict, "collections.defaultdict"),
    *((_ValueNodeState, f"omegaconf.nodes.{n}") for n in _NODE_NAMES),
    *((_TypeRef(n), n) for n in _TYPE_NAMES),
)


def plain_config(obj: object, *, adapter: str, source: str | Path = "") -> object:
    """Turn a config that may hold omegaconf stand-ins into plain dicts / lists / scalars."""
    if isinstance(obj, (_DictConfigState, _ListConfigState)):
        content = obj.state.get("_content") if isinstance(obj.state, dict) else None
        if content is None or isinstance(content, str):  # None / "???" / unresolved interpolation
            return content
        return plain_config(content, adapter=adapter, source=source)
    if isinstance(obj, _ValueNodeState):
        return plain_config(obj.state.get("_val"), adapter=adapter, source=source)
    if isinstance(obj, Mapping):
        return {k: plain_config(v, adapter=adapter, source=source) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain_config(v, adapter=adapter, source=source) for v in obj]
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    raise CheckpointError(f"{adapter}: {source}: unexpected {type(obj).__name__} object in the stored config")


def type_standins(*names: str) -> tuple[tuple[object, str], ...]:
    """Stand-ins for classes a checkpoint names only as objects (e.g. callback classes used as dict keys)."""
    return tuple((_TypeRef(name), name) for name in names)
