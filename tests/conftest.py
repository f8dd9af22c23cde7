"""Fixtures for tests/: a tiny in-memory dataset, an isolated cache folder and an isolated model registry."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from PIL import Image

from cxrbench.data.records import Dataset, ImageRecord, Study


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Embedding and geometry caches written by tests go to a temporary folder (rendered phantoms stay shared)."""
    import cxrbench.embed_cache as embed_cache
    import cxrbench.mask_geometry as mask_geometry
    import cxrbench.prepared as prepared

    root = tmp_path_factory.getbasetemp() / "cxrbench-cache"
    monkeypatch.setattr(embed_cache, "cache_root", lambda: root)
    monkeypatch.setattr(prepared, "cache_root", lambda: root)
    monkeypatch.setattr(mask_geometry, "cache_root", lambda: root)


@pytest.fixture(scope="session")
def nightly_runs(tmp_path_factory):
    """Three results folders for `cxrbench diff` and the nightly steps: base, the same run again, and a run with
    perturbed reference weights (tests/nightly_runs.py)."""
    from nightly_runs import make_runs

    return make_runs(tmp_path_factory.mktemp("nightly-runs"))


@pytest.fixture
def isolated_registry():
    """Whatever a test registers, loads or allows is forgotten afterwards (model registry, --model-module files,
    trust_remote_code)."""
    from cxrbench.models import plugins as plugin_loader
    from cxrbench.models import registry

    saved = dict(registry._REGISTRY)
    loaded = dict(plugin_loader._LOADED_FILES)
    modules = set(sys.modules)
    yield
    registry._REGISTRY.clear()
    registry._REGISTRY.update(saved)
    plugin_loader._LOADED_FILES.clear()
    plugin_loader._LOADED_FILES.update(loaded)
    registry.set_trust_remote_code(False)
    for name in set(sys.modules) - modules:
        if name.startswith(plugin_loader.MODULE_PACKAGE):
            del sys.modules[name]


def _image(seed: int, size=(72, 64), mode="L") -> Image.Image:
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 256, size=(size[1], size[0]) + ((3,) if mode == "RGB" else ()), dtype=np.uint8)
    return Image.fromarray(arr, mode=mode)


@pytest.fixture
def tiny_dataset() -> Dataset:
    """6 studies (one with two images, two sharing the same text), images generated in memory."""
    texts = ["Heart normal. Lungs clear.", "Small left effusion.", "Heart normal. Lungs clear.",
             "Right upper lobe opacity.", "Mild cardiomegaly.", "Calcified granuloma in the left apex."]
    studies = []
    for j, t in enumerate(texts):
        n = 2 if j == 1 else 1
        images = tuple(ImageRecord(f"s{j}_im{k}", f"mem://{j}/{k}", "frontal") for k in range(n))
        studies.append(Study(f"s{j}", images, findings=t, impression=""))

    def loader(rec: ImageRecord) -> Image.Image:
        j, k = rec.source.split("//")[1].split("/")
        return _image(int(j) * 10 + int(k))

    return Dataset("tiny", "test", "findings", studies, summary={"studies": 6}, image_loader=loader,
                   provenance={"kind": "in-memory test fixture"})


@pytest.fixture(scope="session")
def paper_data(tmp_path_factory) -> dict:
    """A small paper-size-shaped set: 7 grayscale JPEGs of 400 x 480 (4 studies, 3 with a lateral view) and its
    manifest (cxrbench.paper_size, rendered in this process)."""
    from cxrbench.paper_size import PaperData, build_paper_data

    spec = PaperData(studies=4, two_image_studies=3, width=400, height=480, render_size=128)
    return build_paper_data(tmp_path_factory.mktemp("paper-data") / spec.folder_name(), spec, workers=1)


@pytest.fixture(scope="session")
def paper_settings(tmp_path_factory) -> dict[str, dict]:
    """load_model settings of tiny random clip, cxr_repair, medclip and cxr_clip checkpoints in the releases'
    formats (cxrbench.random_checkpoints)."""
    from cxrbench.random_checkpoints import write_checkpoints

    settings, _ = write_checkpoints(tmp_path_factory.mktemp("paper-checkpoints"), size="tiny")
    return settings


@pytest.fixture(scope="session")
def paper_encoders(paper_settings) -> dict:
    """The four tiny paper models, loaded once (on the CPU)."""
    from cxrbench.models import load_model

    return {name: load_model(name, device="cpu", **s) for name, s in paper_settings.items()}
