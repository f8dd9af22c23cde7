"""Shared fixtures for the model adapter tests."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch

GOLDEN = Path(__file__).resolve().parents[1] / "fixtures" / "golden"
PLUGIN = Path(__file__).resolve().parents[1] / "fixtures" / "plugin"  # the plugin of docs/your-model.md


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


@pytest.fixture(scope="session")
def toy_checkpoint(tmp_path_factory) -> Path:
    """A seeded state dict of the example plugin's ToyClip (the plugin file is imported outside the registry)."""
    from cxrbench.models import registry

    spec = importlib.util.spec_from_file_location("toy_for_weights", PLUGIN / "cxrbench_toy_plugin.py")
    module = importlib.util.module_from_spec(spec)
    registered = dict(registry._REGISTRY)
    spec.loader.exec_module(module)  # registers toy_clip: undone below
    registry._REGISTRY.clear()
    registry._REGISTRY.update(registered)
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("toy_clip") / "toy.pt"
    torch.save(module.ToyClip().state_dict(), path)
    return path


@pytest.fixture(scope="session")
def installed_plugin(tmp_path_factory) -> Path:
    """tests/fixtures/plugin installed with pip into a target folder (no index, no build isolation); put it on
    PYTHONPATH to have its ``cxrbench.models`` entry point discovered."""
    pytest.importorskip("setuptools", reason="building the plugin fixture needs setuptools in this environment")
    work = tmp_path_factory.mktemp("plugin")
    source = shutil.copytree(PLUGIN, work / "src")  # the build writes into its source tree: keep the repo clean
    target = work / "site"
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
                           "--quiet", "--target", str(target), str(source)], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert list(target.glob("cxrbench_toy_plugin-0.1.0.dist-info/entry_points.txt"))
    return target
