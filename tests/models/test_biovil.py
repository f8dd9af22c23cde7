"""Golden tests for the BioViL adapter (hi-ml-multimodal release format).

The ResNet-50 image checkpoint is rebuilt from tests/fixtures/golden/biovil/checkpoint_manifest.json by the
shared seeded recipe (tests/fixtures/golden/recipes.py) plus the stored BatchNorm statistics, its SHA-256 is
checked, and the adapter's embeddings are compared with those hi-ml-multimodal 0.2.2 produced from the same
files (see the fixture README). The tiny CXR-BERT folder is stored as released (config.json, pytorch_model.bin,
vocab). The model is built through the registry (``load_model("biovil", ...)``).
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
from cxrbench.models.biovil import HUB_ID, IMAGE_FILE

from golden_helpers import hf_cache_entry, load_npz, row_cosines

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "golden" / "biovil"
TEXT_DIR = FIXTURE / "cxr_bert"
MIN_COS = 0.9999


def build(**settings):
    """The registered ``biovil`` model, built through the registry."""
    return load_model("biovil", **settings)


@pytest.fixture(scope="module")
def expected() -> dict[str, np.ndarray]:
    return load_npz(FIXTURE / "expected.npz")


@pytest.fixture(scope="module")
def inputs() -> tuple[list[Image.Image], dict]:
    images = [Image.open(FIXTURE / "gray.png"), Image.open(FIXTURE / "rgb.png")]
    return images, json.loads((FIXTURE / "texts.json").read_text())


@pytest.fixture(scope="module")
def image_checkpoint(tmp_path_factory, golden_recipes) -> Path:
    """biovil_image_resnet50_proj_size_128.pt rebuilt from the recipe, digests checked."""
    folder = tmp_path_factory.mktemp("biovil")
    manifest = golden_recipes.load_manifest(FIXTURE / "checkpoint_manifest.json")
    stored = golden_recipes.load_stored(FIXTURE / "bn_running_stats.npz")
    path, content = golden_recipes.write_checkpoint(folder, manifest, stored)
    assert content == manifest["content_sha256"], "checkpoint recipe no longer reproduces the golden tensors"
    if torch.__version__ == manifest["torch_version"]:  # the zip container may differ across torch versions
        from cxrbench.models.checkpoint import sha256_file

        assert sha256_file(path) == manifest["file_sha256"]
    return path


@pytest.fixture(scope="module")
def encoder(image_checkpoint):
    return build(checkpoint=str(image_checkpoint), text_encoder=str(TEXT_DIR))


# -- golden comparisons --------------------------------------------------------------------------------------
def test_geometry_matches_upstream_pixels(encoder, inputs, expected):
    images, _ = inputs
    for im, want in zip(images, expected["pixels_uint8"]):
        got = encoder.geometry(im)
        assert got.dtype == torch.uint8 and tuple(got.shape) == (1, 480, 480)
        assert np.array_equal(got.numpy(), want)


def test_tokens_match_upstream(encoder, inputs, expected):
    _, texts = inputs
    for i, text in enumerate(texts["texts"]):
        ids = encoder.tokenize([text]).input_ids[0].numpy()
        assert np.array_equal(ids, expected[f"input_ids_{i}"])
    over = encoder.tokenize([texts["overlong"]]).input_ids[0].numpy()
    assert np.array_equal(over, expected["overlong_input_ids"]) and len(over) == 512


def test_image_embeddings_match_golden(encoder, inputs, expected):
    images, _ = inputs
    got = encoder.encode_images(images)
    assert got.shape == (2, 128) and got.dtype == torch.float32
    assert torch.allclose(got.norm(dim=1), torch.ones(2), atol=1e-5)
    assert row_cosines(got, expected["image_embeddings"]).min() >= MIN_COS


def test_text_embeddings_match_golden_whatever_the_batch(encoder, inputs, expected):
    _, texts = inputs
    got = encoder.encode_texts(texts["texts"])
    assert got.shape == (3, 128) and got.dtype == torch.float32
    assert row_cosines(got, expected["text_embeddings"]).min() >= MIN_COS
    one_by_one = encoder.encode_texts(texts["texts"], batch_size=1)
    assert torch.allclose(one_by_one, got, atol=1e-5)


def test_overlong_text_is_truncated_like_the_upstream_model(encoder, inputs, expected):
    """Upstream's engine refuses > 512 tokens; the golden is its model on the 512 truncated ids."""
    _, texts = inputs
    got = encoder.encode_texts([texts["overlong"], texts["texts"][0]])
    assert row_cosines(got[:1], expected["overlong_embedding"]).min() >= MIN_COS
    assert row_cosines(got[1:], expected["text_embeddings"][:1]).min() >= MIN_COS


def test_info(encoder, image_checkpoint):
    info = encoder.info
    assert info.name == "biovil" and info.embed_dim == 128
    assert info.family == get_spec("biovil").family == "biovil"
    assert info.checkpoint == str(image_checkpoint) and len(info.checkpoint_sha256) == 64
    assert "480" in info.preprocessing


def test_resolves_the_release_repo_from_the_hf_cache(tmp_path, image_checkpoint, inputs, expected, monkeypatch):
    """With no settings, both files come from the cached microsoft/BiomedVLP-CXR-BERT-specialized@v1.1."""
    import huggingface_hub.constants

    commit = "3" * 40
    hf_cache_entry(tmp_path, HUB_ID, [*TEXT_DIR.iterdir(), image_checkpoint], commit, revision="v1.1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    enc = build()
    images, texts = inputs
    assert row_cosines(enc.encode_images(images[:1]), expected["image_embeddings"][:1]).min() >= MIN_COS
    assert row_cosines(enc.encode_texts(texts["texts"]), expected["text_embeddings"]).min() >= MIN_COS


# -- loud failures ---------------------------------------------------------------------------------------------
def _write(tmp_path: Path, content) -> Path:
    path = tmp_path / IMAGE_FILE
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        torch.save(content, path)
    return path


def test_missing_and_renamed_keys_are_listed(tmp_path, image_checkpoint):
    # the key check runs before any shape check, so placeholders keep this file small
    keys = torch.load(image_checkpoint, weights_only=True, mmap=True).keys()
    state = {k: torch.zeros(1) for k in keys}
    del state["projector.model.3.bias"]
    state["encoder.encoder.layer4.2.bn3.weight_renamed"] = state.pop("encoder.encoder.layer4.2.bn3.weight")
    with pytest.raises(CheckpointError) as err:
        build(checkpoint=str(_write(tmp_path, state)), text_encoder=str(TEXT_DIR))
    msg = str(err.value)
    for key in ("projector.model.3.bias", "encoder.encoder.layer4.2.bn3.weight",
                "encoder.encoder.layer4.2.bn3.weight_renamed"):
        assert key in msg


def test_missing_text_key_is_listed(tmp_path, image_checkpoint):
    text_dir = tmp_path / "cxr_bert"
    shutil.copytree(TEXT_DIR, text_dir)
    state = torch.load(text_dir / "pytorch_model.bin", weights_only=True)
    del state["cls_projection_head.LayerNorm.weight"]
    torch.save(state, text_dir / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="cls_projection_head.LayerNorm.weight"):
        build(checkpoint=str(image_checkpoint), text_encoder=str(text_dir))


def test_not_a_checkpoint_names_the_file(tmp_path):
    path = _write(tmp_path, b"<html>not a checkpoint</html>\n")
    with pytest.raises(CheckpointError, match=IMAGE_FILE) as err:
        build(checkpoint=str(path), text_encoder=str(TEXT_DIR))
    assert "biovil" in str(err.value)


def test_truncated_checkpoint_names_the_file(tmp_path, image_checkpoint):
    with open(image_checkpoint, "rb") as fh:
        head = fh.read(1 << 20)
    with pytest.raises(CheckpointError, match=IMAGE_FILE):
        build(checkpoint=str(_write(tmp_path, head)), text_encoder=str(TEXT_DIR))


def test_another_familys_checkpoint_is_refused(tmp_path):
    open_clip_like = {  # BiomedCLIP's open_clip layout
        "logit_scale": torch.tensor(4.6),
        "visual.trunk.cls_token": torch.zeros(1, 1, 8),
        "text.proj.0.weight": torch.zeros(4, 8),
    }
    with pytest.raises(CheckpointError, match="another model's checkpoint") as err:
        build(checkpoint=str(_write(tmp_path, open_clip_like)), text_encoder=str(TEXT_DIR))
    assert IMAGE_FILE in str(err.value)


def test_missing_settings_name_the_env_vars(tmp_path, image_checkpoint, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty_cache"))
    with pytest.raises(WeightsNotAvailable, match="CXRBENCH_BIOVIL_CHECKPOINT"):
        build()
    with pytest.raises(WeightsNotAvailable, match="CXRBENCH_BIOVIL_TEXT_ENCODER"):
        build(checkpoint=str(image_checkpoint))
