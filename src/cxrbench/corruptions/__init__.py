"""Image corruptions (pure tensor functions). Registry: ``get(name, **params)``; ``available()``."""

from cxrbench.corruptions.occlusion import (
    FILLS,
    LEVEL_PRESETS,
    MODES,
    PAPER_LEVELS,
    Occlusion,
    check_level,
    image_key,
    image_keys,
    parse_levels,
)
from cxrbench.errors import ConfigError


def available() -> list[str]:
    """Corruption names: the occlusion modes."""
    return list(MODES)


def get(name: str, **params) -> Occlusion:
    if name not in MODES:
        raise ConfigError(f"unknown corruption {name!r}; available: {', '.join(available())}")
    return Occlusion(mode=name, **params)


__all__ = [
    "FILLS", "LEVEL_PRESETS", "MODES", "PAPER_LEVELS", "Occlusion", "available", "check_level", "get",
    "image_key", "image_keys", "parse_levels",
]
