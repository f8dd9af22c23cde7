"""Model plugins: a single .py file (``load_plugins(model_modules=...)``) and an installed distribution with a
``cxrbench.models`` entry point. The example adapter of docs/your-model.md IS tests/fixtures/plugin/
cxrbench_toy_plugin.py (checked below), and both routes run it."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cxrbench.errors import ConfigError, WeightsNotAvailable
from cxrbench.models import ModelSpec, available, get_spec, load_model, load_plugins, register
from cxrbench.models import plugins as plugin_loader

ROOT = Path(__file__).resolve().parents[2]
PLUGIN = ROOT / "tests" / "fixtures" / "plugin"
EXAMPLE = PLUGIN / "cxrbench_toy_plugin.py"
DOC = ROOT / "docs" / "your-model.md"


def _doc_block(marker: str) -> str:
    text = DOC.read_text()
    match = re.search(re.escape(f"<!-- {marker} -->") + r"\s*```python\n(.*?)```", text, flags=re.DOTALL)
    assert match, f"docs/your-model.md has no python block after <!-- {marker} -->"
    return match.group(1)


def test_docs_show_the_files_the_tests_run():
    assert _doc_block("file: tests/fixtures/plugin/cxrbench_toy_plugin.py") == EXAMPLE.read_text()
    assert _doc_block("file: tests/fixtures/plugin/reference_check.py") == (PLUGIN / "reference_check.py").read_text()
    assert len(EXAMPLE.read_text().splitlines()) < 60


def _images() -> list[Image.Image]:
    rng = np.random.default_rng(5)
    return [Image.fromarray(rng.integers(0, 256, (300, 240), dtype=np.uint8), "L"),
            Image.fromarray(rng.integers(0, 256, (180, 260, 3), dtype=np.uint8), "RGB")]


def test_model_module_registers_and_matches_its_reference_pipeline(toy_checkpoint, isolated_registry):
    ckpt = toy_checkpoint
    assert load_plugins(model_modules=[EXAMPLE], entry_points=False) == ["toy_clip"]
    assert "toy_clip" in available() and get_spec("toy_clip").origin == f"model module {EXAMPLE}"
    assert load_plugins(model_modules=[EXAMPLE], entry_points=False) == []  # the same file again: nothing new
    with pytest.raises(WeightsNotAvailable, match="CXRBENCH_TOY_CLIP_CHECKPOINT"):
        load_model("toy_clip")
    encoder = load_model("toy_clip", checkpoint=ckpt)
    reference = importlib.util.spec_from_file_location("reference_check", PLUGIN / "reference_check.py")
    check = importlib.util.module_from_spec(reference)
    reference.loader.exec_module(check)
    check.assert_matches_reference(encoder, _images())
    texts = encoder.encode_texts(["no acute process", "small left effusion"])
    assert texts.shape == (2, 32) and torch.allclose(texts.norm(dim=1), torch.ones(2))


def test_broken_or_conflicting_plugins_are_named(tmp_path, isolated_registry):
    broken = tmp_path / "broken_model.py"
    broken.write_text("import no_such_package_here\n")
    with pytest.raises(ConfigError, match="broken_model.py failed to import: ModuleNotFoundError"):
        load_plugins(model_modules=[broken], entry_points=False)
    with pytest.raises(ConfigError, match="missing.py does not exist"):
        load_plugins(model_modules=[tmp_path / "missing.py"], entry_points=False)
    (tmp_path / "notes.txt").write_text("not python\n")
    with pytest.raises(ConfigError, match="is not a .py file"):
        load_plugins(model_modules=[tmp_path / "notes.txt"], entry_points=False)
    clash = tmp_path / "clash.py"
    clash.write_text("from cxrbench.models import ModelSpec, register\n"
                     "register(ModelSpec(name='clip', family='x', builder='x:y', description='mine'))\n")
    with pytest.raises(ConfigError, match=r"'clip' is registered twice: by cxrbench and by model module .*clash.py"):
        load_plugins(model_modules=[clash], entry_points=False)
    with pytest.raises(ConfigError, match="lower case with underscores"):
        register(ModelSpec(name="My-Model", family="x", builder="x:y", description=""))


def test_entry_point_callables_may_return_specs(isolated_registry, monkeypatch):
    class EntryPoint:
        name, value, dist = "two", "pkg:models", None

        def load(self):
            return lambda: [ModelSpec(name="plugin_a", family="x", builder="x:y", description="a"),
                            ModelSpec(name="plugin_b", family="x", builder="x:y", description="b")]

    monkeypatch.setattr(plugin_loader.metadata, "entry_points", lambda group: [EntryPoint()])
    plugin_loader.discover_entry_points(force=True)
    assert {"plugin_a", "plugin_b"} <= set(available())
    assert get_spec("plugin_a").origin.startswith("plugin 'two' = pkg:models")


def test_installed_distribution_is_discovered_and_runs(installed_plugin, toy_checkpoint):
    ckpt = toy_checkpoint
    code = (
        "import json, sys\n"
        "from PIL import Image\n"
        "from cxrbench.models import available, get_spec, load_model\n"
        "names = available()\n"
        "enc = load_model('toy_clip')\n"  # checkpoint from CXRBENCH_TOY_CLIP_CHECKPOINT
        "img = enc.encode_images([Image.new('L', (300, 200), 90)])\n"
        "txt = enc.encode_texts(['no acute process'])\n"
        "print(json.dumps({'names': names, 'origin': get_spec('toy_clip').origin, 'shapes': [list(img.shape), "
        "list(txt.shape)], 'module': type(enc).__module__}))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("CXRBENCH_")}
    env.update(PYTHONPATH=os.pathsep.join([str(installed_plugin), str(ROOT / "src")]),
               CXRBENCH_TOY_CLIP_CHECKPOINT=str(ckpt))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "toy_clip" in out["names"] and "clip" in out["names"]
    assert out["origin"].startswith("plugin 'toy_clip' = cxrbench_toy_plugin (cxrbench-toy-plugin)")
    assert out["shapes"] == [[1, 32], [1, 32]] and out["module"] == "cxrbench_toy_plugin"
