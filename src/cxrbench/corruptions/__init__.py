"""Image corruptions (pure tensor functions). Registry: ``get(name, **params)``; ``available()``."""

from cxrbench.corruptions.base import Corruption
from cxrbench.corruptions.hashing import image_key, image_keys
from cxrbench.corruptions.lung_template import lung_template
from cxrbench.corruptions.occlusion import (
    FILLS,
    LEVEL_PRESETS,
    LUNG_FIELDS,
    MODES,
    PAPER_LEVELS,
    Occlusion,
    check_level,
    parse_levels,
)
from cxrbench.errors import ConfigError

_LUNG_ALIASES = {f"lungs({source})": source for source in LUNG_FIELDS}


def available() -> list[str]:
    """Corruption names: the occlusion modes."""
    return list(MODES)


def get(name: str, **params) -> Occlusion:
    if name in _LUNG_ALIASES:
        return Occlusion(mode="lungs", lung_fields=_LUNG_ALIASES[name], **params)
    if name not in MODES:
        raise ConfigError(f"unknown corruption {name!r}; available: {', '.join(available())}")
    return Occlusion(mode=name, **params)


__all__ = [
    "FILLS", "LEVEL_PRESETS", "LUNG_FIELDS", "MODES", "PAPER_LEVELS", "Corruption", "Occlusion", "available",
    "check_level", "get", "image_key", "image_keys", "lung_template", "parse_levels",
]
