"""Shared fixtures for the model adapter tests."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

GOLDEN = Path(__file__).resolve().parents[1] / "fixtures" / "golden"


def load_golden_recipes() -> ModuleType:
    """tests/fixtures/golden/recipes.py (not a package: loaded by path)."""
    spec = importlib.util.spec_from_file_location("golden_recipes", GOLDEN / "recipes.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def golden_recipes() -> ModuleType:
    """The seeded checkpoint recipes that rebuild the golden fixtures' checkpoints."""
    return load_golden_recipes()


@pytest.fixture(autouse=True)
def _no_user_model_settings(monkeypatch):
    """Model settings from the user's environment (CXRBENCH_<NAME>_<KEY>, CXRBENCH_MODELS) never leak in."""
    import os

    for var in list(os.environ):
        if var.startswith("CXRBENCH_") and var != "CXRBENCH_CACHE":
            monkeypatch.delenv(var)
