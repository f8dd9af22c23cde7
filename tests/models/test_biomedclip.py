"""Golden tests for the BiomedCLIP adapter (open_clip hf-hub release format).

The checkpoint is rebuilt from tests/fixtures/golden/biomedclip/checkpoint_manifest.json by the shared seeded
recipe tests/fixtures/golden/recipes.py (the ViT-B/16 image tower cannot shrink), its SHA-256 is checked, and
the adapter's embeddings are compared with those open_clip 3.3.0 produced from the same files (see the fixture
README). The model is built through the registry (``load_model("biomedclip", ...)``).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cxrbench.errors import CheckpointError, WeightsNotAvailable
from cxrbench.models import get_spec, load_model
from cxrbench.models.biomedclip import HUB_ID

from golden_helpers import hf_cache_entry, load_npz, row_cosines

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "golden" / "biomedclip"
TEXT_HUB_ID = "microsoft/BiomedNLP-BiomedBERT-base-uncased-abstract"
MIN_COS = 0.9999


def build(**settings):
    """The registered ``biomedclip`` model, built through the registry."""
    return load_model("biomedclip", **settings)


@pytest.fixture(scope="module")
def expected() -> dict[str, np.ndarray]:
    return load_npz(FIXTURE / "expected.npz")


@pytest.fixture(scope="module")
def inputs() -> tuple[list[Image.Image], list[str]]:
    images = [Image.open(FIXTURE / "gray.png"), Image.open(FIXTURE / "rgb.png")]
    return images, json.loads((FIXTURE / "texts.json").read_text())


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, golden_recipes) -> Path:
    """The BiomedCLIP folder: fixture files + the checkpoint rebuilt from the recipe (digests checked)."""
    folder = tmp_path_factory.mktemp("biomedclip") / "model"
    shutil.copytree(FIXTURE / "model", folder)
    manifest = golden_recipes.load_manifest(FIXTURE / "checkpoint_manifest.json")
    path, content = golden_recipes.write_checkpoint(folder, manifest)
    assert content == manifest["content_sha256"], "checkpoint recipe no longer reproduces the golden tensors"
    if torch.__version__ == manifest["torch_version"]:  # the zip container may differ across torch versions
        from cxrbench.models.checkpoint import sha256_file

        assert sha256_file(path) == manifest["file_sha256"]
    return folder


@pytest.fixture(scope="module")
def encoder(model_dir):
    return build(checkpoint=str(model_dir), text_config=str(FIXTURE / "text_config"))


def _folder_with_weights(tmp_path: Path, model_dir: Path, state_or_bytes) -> Path:
    folder = tmp_path / "model"
    folder.mkdir()
    for f in model_dir.iterdir():
        if f.suffix != ".bin":
            shutil.copy(f, folder / f.name)
    target = folder / "open_clip_pytorch_model.bin"
    if isinstance(state_or_bytes, bytes):
        target.write_bytes(state_or_bytes)
    else:
        torch.save(state_or_bytes, target)
    return folder


# -- golden comparisons --------------------------------------------------------------------------------------
def test_geometry_matches_upstream_pixels(encoder, inputs, expected):
    images, _ = inputs
    for im, want in zip(images, expected["pixels_uint8"]):
        got = encoder.geometry(im)
        assert got.dtype == torch.uint8 and tuple(got.shape) == (3, 224, 224)
        assert np.array_equal(got.numpy(), want)


def test_tokens_match_upstream(encoder, inputs, expected):
    _, texts = inputs
    ids = encoder.tokenize(texts).numpy()
    assert np.array_equal(ids, expected["input_ids"])
    assert (ids[2] != 0).all(), "the long report must be truncated at the context length"


def test_image_embeddings_match_golden(encoder, inputs, expected):
    images, _ = inputs
    got = encoder.encode_images(images)
    assert got.shape == (2, 512) and got.dtype == torch.float32
    assert torch.allclose(got.norm(dim=1), torch.ones(2), atol=1e-5)
    assert row_cosines(got, expected["image_embeddings"]).min() >= MIN_COS


def test_text_embeddings_match_golden_whatever_the_batch(encoder, inputs, expected):
    _, texts = inputs
    got = encoder.encode_texts(texts)
    assert got.shape == (3, 512) and got.dtype == torch.float32
    assert row_cosines(got, expected["text_embeddings"]).min() >= MIN_COS
    one_by_one = encoder.encode_texts(texts, batch_size=1)
    assert torch.allclose(one_by_one, got, atol=1e-5)


def test_info(encoder, model_dir):
    info = encoder.info
    assert info.name == "biomedclip" and info.embed_dim == 512
    assert info.family == get_spec("biomedclip").family == "biomedclip"
    assert info.checkpoint == str(model_dir / "open_clip_pytorch_model.bin")
    assert len(info.checkpoint_sha256) == 64
    assert "bicubic" in info.preprocessing


def test_resolves_both_repos_from_the_hf_cache(tmp_path, model_dir, inputs, expected, monkeypatch):
    """With no settings, the adapter finds BiomedCLIP and the BiomedBERT config in the HF cache (offline)."""
    import huggingface_hub.constants

    commit = "1" * 40
    for repo_id, files in (
        (HUB_ID, list(model_dir.iterdir())),
        (TEXT_HUB_ID, [FIXTURE / "text_config" / "config.json"]),
    ):
        hf_cache_entry(tmp_path, repo_id, files, commit)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    enc = build()
    images, texts = inputs
    assert row_cosines(enc.encode_images(images[:1]), expected["image_embeddings"][:1]).min() >= MIN_COS
    assert row_cosines(enc.encode_texts(texts), expected["text_embeddings"]).min() >= MIN_COS


# -- loud failures ---------------------------------------------------------------------------------------------
def test_missing_and_renamed_keys_are_listed(tmp_path, model_dir):
    # the key check runs before any shape check, so placeholders keep this file small
    keys = torch.load(model_dir / "open_clip_pytorch_model.bin", weights_only=True, mmap=True).keys()
    state = {k: torch.zeros(1) for k in keys}
    del state["text.proj.2.weight"]
    state["visual.trunk.final_norm.weight"] = state.pop("visual.trunk.norm.weight")
    folder = _folder_with_weights(tmp_path, model_dir, state)
    with pytest.raises(CheckpointError) as err:
        build(checkpoint=str(folder), text_config=str(FIXTURE / "text_config"))
    msg = str(err.value)
    for key in ("text.proj.2.weight", "visual.trunk.norm.weight", "visual.trunk.final_norm.weight"):
        assert key in msg


def test_not_a_checkpoint_names_the_file(tmp_path, model_dir):
    folder = _folder_with_weights(tmp_path, model_dir, b"this is a README, not weights\n")
    with pytest.raises(CheckpointError, match="open_clip_pytorch_model.bin") as err:
        build(checkpoint=str(folder), text_config=str(FIXTURE / "text_config"))
    assert "biomedclip" in str(err.value)


def test_truncated_checkpoint_names_the_file(tmp_path, model_dir):
    with open(model_dir / "open_clip_pytorch_model.bin", "rb") as fh:
        head = fh.read(1 << 20)
    folder = _folder_with_weights(tmp_path, model_dir, head)
    with pytest.raises(CheckpointError, match="open_clip_pytorch_model.bin"):
        build(checkpoint=str(folder / "open_clip_pytorch_model.bin"), text_config=str(FIXTURE / "text_config"))


def test_another_familys_checkpoint_is_refused(tmp_path, model_dir):
    biovil_like = {  # BioViL's image checkpoint layout
        "encoder.encoder.conv1.weight": torch.zeros(8, 3, 7, 7),
        "encoder.encoder.bn1.weight": torch.ones(8),
        "projector.projection.0.weight": torch.zeros(4, 8, 1, 1),
    }
    folder = _folder_with_weights(tmp_path, model_dir, biovil_like)
    with pytest.raises(CheckpointError, match="another model's checkpoint") as err:
        build(checkpoint=str(folder), text_config=str(FIXTURE / "text_config"))
    assert "open_clip_pytorch_model.bin" in str(err.value)


def test_missing_settings_name_the_env_vars(tmp_path, model_dir, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty_cache"))
    with pytest.raises(WeightsNotAvailable, match="CXRBENCH_BIOMEDCLIP_CHECKPOINT"):
        build()
    with pytest.raises(WeightsNotAvailable, match="CXRBENCH_BIOMEDCLIP_TEXT_CONFIG"):
        build(checkpoint=str(model_dir))
