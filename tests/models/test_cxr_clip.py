"""Golden tests for the CXR-CLIP adapters (``cxr_clip`` Swin-Tiny, ``cxr_clip_r50`` ResNet-50).

The expected embeddings in tests/fixtures/golden/cxr_clip/expected.npz were produced by UPSTREAM code
(kakaobrain/cxr-clip, its Evaluator.evaluate_clip path with transformers 4.26.1) from the same checkpoints,
images and texts; see the fixture README. The Swin checkpoint is stored as upstream's trainer wrote it; the
ResNet-50 one (94 MB) is regenerated from seeds by the shared tests/fixtures/golden/recipes.py and fingerprinted
first. Both models are built through the registry (``load_model("cxr_clip" / "cxr_clip_r50", ...)``).
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cxrbench.errors import CheckpointError, WeightsNotAvailable
from cxrbench.models import get_spec, load_model
from cxrbench.models.cxr_clip import read_checkpoint

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "golden" / "cxr_clip"
SWIN_TAR = FIXTURES / "cxr_clip_swin_tiny.tar"
TEXT_ENCODER = FIXTURES / "bio_clinicalbert_tiny"
MIN_COSINE = 0.9999
#: Random towers map every input near one common direction, so per-row cosine alone would miss a one-pixel
#: shift of the ResNet input (cosine 0.99996). Unit-vector entries must also agree to 1e-4 (measured: 3e-7).
MAX_ABS = 1e-4


SWIN, R50 = "cxr_clip", "cxr_clip_r50"


def build(name: str, **settings):
    """A registered CXR-CLIP model, built through the registry."""
    return load_model(name, **settings)


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="module")
def expected():
    return np.load(FIXTURES / "expected.npz")


@pytest.fixture(scope="module")
def images():
    return [Image.open(FIXTURES / "image_gray.png"), Image.open(FIXTURES / "image_rgb.png")]


@pytest.fixture(scope="module")
def texts():
    return json.loads((FIXTURES / "texts.json").read_text())


@pytest.fixture(scope="module")
def r50_tar(tmp_path_factory, golden_recipes):
    """Regenerate the seeded ResNet-50 checkpoint; refuse to compare anything if its weights differ."""
    manifest = json.loads((FIXTURES / "r50_manifest.json").read_text())
    state = golden_recipes.regenerate_indexed(manifest["tensors"], manifest["seed"])
    assert golden_recipes.torch_state_sha256(state) == manifest["sha256"], "regenerated ResNet-50 weights differ"
    config = json.loads((FIXTURES / "r50_config.json").read_text())
    path = tmp_path_factory.mktemp("cxr_clip_r50") / "r50_seeded.tar"
    torch.save({"model": state, "config": config, "epoch": 1}, path)
    return path


@pytest.fixture(scope="module")
def swin_encoder():
    return build(SWIN, checkpoint=SWIN_TAR, text_encoder=TEXT_ENCODER)


@pytest.fixture(scope="module")
def r50_encoder(r50_tar):
    return build(R50, checkpoint=r50_tar, text_encoder=TEXT_ENCODER)


def _assert_close(got: torch.Tensor, want: np.ndarray) -> None:
    got = got.numpy()
    assert got.shape == want.shape and got.dtype == np.float32
    cos = (got * want).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(want, axis=1)
    assert cos.min() >= MIN_COSINE, cos
    assert np.abs(got - want).max() <= MAX_ABS, np.abs(got - want).max()


# -- goldens -------------------------------------------------------------------------------------------------
def test_swin_images_match_upstream(swin_encoder, images, expected):
    _assert_close(swin_encoder.encode_images(images), expected["swin_image"])


def test_swin_texts_match_upstream(swin_encoder, texts, expected):
    _assert_close(swin_encoder.encode_texts(texts), expected["swin_text"])


def test_r50_images_match_upstream(r50_encoder, images, expected):
    _assert_close(r50_encoder.encode_images(images), expected["r50_image"])


def test_r50_texts_match_upstream(r50_encoder, texts, expected):
    _assert_close(r50_encoder.encode_texts(texts), expected["r50_text"])


def test_stored_config_lists_come_back_as_plain_lists():
    """The fixture config holds omegaconf ListConfig objects, as upstream's trainer leaves them."""
    _, config = read_checkpoint(SWIN_TAR, adapter="cxr_clip")
    assert config["transform"]["train"]["RandomResizedCrop"]["scale"] == [0.8, 1.1]
    assert config["model"]["image_encoder"]["name"] == "microsoft/swin-tiny-patch4-window7-224"


# -- interface properties ------------------------------------------------------------------------------------
def test_geometry_and_intensity_split(swin_encoder, r50_encoder, images):
    assert swin_encoder.geometry_key == r50_encoder.geometry_key  # the runner computes it once for both
    for im in images:
        px = swin_encoder.geometry(im)
        assert px.dtype == torch.uint8 and tuple(px.shape) == (3, 224, 224)
        assert torch.equal(px, r50_encoder.geometry(im))
    white = torch.full((1, 3, 224, 224), 255.0)
    assert torch.allclose(swin_encoder.intensity(white), torch.ones(1, 3, 224, 224))
    imagenet_white = (1 - torch.tensor([0.485, 0.456, 0.406])) / torch.tensor([0.229, 0.224, 0.225])
    assert torch.allclose(r50_encoder.intensity(white)[0, :, 0, 0], imagenet_white)


def test_batch_composition_does_not_change_embeddings(swin_encoder, texts, images):
    together = swin_encoder.encode_texts(texts)
    alone = torch.cat([swin_encoder.encode_texts([t]) for t in texts])
    assert torch.allclose(together, alone, atol=1e-5)
    assert torch.allclose(swin_encoder.encode_images(images), swin_encoder.encode_images(images, batch_size=1),
                          atol=1e-5)


def test_info(swin_encoder, r50_encoder):
    assert swin_encoder.info.family == "cxr_clip" and swin_encoder.info.embed_dim == 16
    assert len(swin_encoder.info.checkpoint_sha256) == 64
    assert "0.5" in swin_encoder.info.preprocessing and "ImageNet" in r50_encoder.info.preprocessing


# -- loud failures -------------------------------------------------------------------------------------------
def _resave(tmp_path: Path, edit) -> Path:
    state, config = read_checkpoint(SWIN_TAR, adapter="cxr_clip")
    edit(state, config)
    out = tmp_path / "edited.tar"
    torch.save({"model": state, "config": config}, out)
    return out


def test_missing_and_renamed_keys_are_listed(tmp_path):
    gone = "text_projection.projection.bias"
    old = "image_encoder.image_encoder.encoder.layers.0.blocks.0.attention.self.query.weight"
    new = "image_encoder.image_encoder.encoder.layers.0.blocks.0.attention.self.qry.weight"

    def edit(state, _config):
        del state[gone]
        state[new] = state.pop(old)

    with pytest.raises(CheckpointError) as err:
        build(SWIN, checkpoint=_resave(tmp_path, edit), text_encoder=TEXT_ENCODER)
    msg = str(err.value)
    assert gone in msg and new in msg and "attention.q_proj.weight" in msg


def test_untranslated_transformers4_keys_would_fail_loudly(swin_encoder):
    """What upstream's strict=False loader silently accepts under transformers 5 is an error here."""
    from cxrbench.models.checkpoint import load_checked

    state, _ = read_checkpoint(SWIN_TAR, adapter="cxr_clip")
    with pytest.raises(CheckpointError, match=r"missing key\(s\).*q_proj") as err:
        load_checked(swin_encoder.model, state, adapter="cxr_clip", source=SWIN_TAR)
    assert "attention.self.query.weight" in str(err.value)


def test_text_encoder_config_that_does_not_match_fails(tmp_path):
    folder = tmp_path / "bert"
    shutil.copytree(TEXT_ENCODER, folder)
    cfg = json.loads((folder / "config.json").read_text())
    cfg["num_hidden_layers"] = 3
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="text_encoder.text_encoder.encoder.layer.2"):
        build(SWIN, checkpoint=SWIN_TAR, text_encoder=folder)


def test_not_a_checkpoint_names_file(tmp_path):
    bad = tmp_path / "notes.tar"
    bad.write_text("this is not a checkpoint\n")
    with pytest.raises(CheckpointError, match="cxr_clip") as err:
        build(SWIN, checkpoint=bad, text_encoder=TEXT_ENCODER)
    assert str(bad) in str(err.value)


def test_truncated_checkpoint_names_file(tmp_path):
    cut = tmp_path / "truncated.tar"
    data = SWIN_TAR.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="cxr_clip") as err:
        build(SWIN, checkpoint=cut, text_encoder=TEXT_ENCODER)
    assert str(cut) in str(err.value)


def test_other_family_checkpoint_fails(tmp_path):
    other = tmp_path / "pytorch_model.bin"  # e.g. a MedCLIP / open_clip style bare state dict
    torch.save({"vision_model.conv1.weight": torch.zeros(4, 3, 3, 3), "logit_scale": torch.ones(())}, other)
    with pytest.raises(CheckpointError, match="not a CXR-CLIP training checkpoint") as err:
        build(SWIN, checkpoint=other, text_encoder=TEXT_ENCODER)
    assert str(other) in str(err.value)


def test_swin_checkpoint_refused_by_r50_adapter():
    with pytest.raises(CheckpointError, match="swin image encoder"):
        build(R50, checkpoint=SWIN_TAR, text_encoder=TEXT_ENCODER)


def test_finetuned_classifier_checkpoint_refused(tmp_path):
    def edit(_state, config):
        config["model"]["name"] = "finetune_classification"

    with pytest.raises(CheckpointError, match="finetune_classification"):
        build(SWIN, checkpoint=_resave(tmp_path, edit), text_encoder=TEXT_ENCODER)


def test_arbitrary_objects_are_never_unpickled(tmp_path):
    evil = tmp_path / "objects.tar"
    torch.save({"model": {}, "config": argparse.Namespace(model="clip_custom")}, evil)
    with pytest.raises(CheckpointError, match="not loaded"):
        build(SWIN, checkpoint=evil, text_encoder=TEXT_ENCODER)


@pytest.mark.parametrize("name", [SWIN, R50])
def test_missing_checkpoint_setting_names_env_var(name):
    with pytest.raises(WeightsNotAvailable, match=f"CXRBENCH_{name.upper()}_CHECKPOINT") as err:
        build(name)
    assert get_spec(name).how_to_get in str(err.value)  # says where the released weights come from


def test_missing_text_encoder_names_env_var(tmp_path):
    with pytest.raises(WeightsNotAvailable, match="CXRBENCH_CXR_CLIP_TEXT_ENCODER"):
        build(SWIN, checkpoint=SWIN_TAR, text_encoder=tmp_path / "no_such_folder")
