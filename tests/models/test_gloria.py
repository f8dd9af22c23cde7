"""Golden tests for the GLoRIA adapter (``gloria``).

tests/fixtures/golden/gloria/expected.npz was produced by the UPSTREAM code (marshuang80/gloria at 416466a:
``load_gloria``, ``process_img`` + ``image_encoder_forward``, ``process_text`` + ``text_encoder_forward``) from a
checkpoint written by pytorch-lightning 1.1.4's own ``dump_checkpoint`` with omegaconf 2.0.5 (see the fixture
README). The ResNet-50 + tiny-BERT weights are regenerated here from the indexed recipe and fingerprinted before any
comparison; ``skeleton.ckpt`` is that checkpoint's container (callbacks keyed by Lightning classes, the omegaconf
``DictConfig``) without its tensors.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cxrbench.errors import CheckpointError, WeightsNotAvailable
from cxrbench.models import get_spec, load_model
from cxrbench.models.gloria import clean_report, read_checkpoint

from golden_helpers import load_npz

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "golden" / "gloria"
TEXT_ENCODER = FIXTURES / "bio_clinicalbert_tiny"
IMAGES = ["gray_512.png", "gray_410x300.png", "gray_150x190.png"]  # OpenCV's block / area / enlarging paths
MIN_COSINE = 0.9999
MAX_ABS = 1e-4  # random towers map inputs near one direction: entries of the unit vectors must agree too


@pytest.fixture(scope="module")
def expected():
    return load_npz(FIXTURES / "expected.npz")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, golden_recipes):
    """The seeded weights (fingerprint checked) in GLoRIA's Lightning layout, with the stored config."""
    manifest = json.loads((FIXTURES / "r50_manifest.json").read_text())
    state = golden_recipes.regenerate_indexed(manifest["tensors"], manifest["seed"])
    assert golden_recipes.torch_state_sha256(state) == manifest["sha256"], "regenerated GLoRIA weights differ"
    config = json.loads((FIXTURES / "hyper_parameters.json").read_text())
    path = tmp_path_factory.mktemp("gloria") / "chexpert_resnet50.ckpt"
    torch.save({"epoch": 8, "global_step": 42000, "pytorch-lightning_version": "1.1.4", "state_dict": state,
                "hparams_name": "cfg", "hyper_parameters": config}, path)
    return path


@pytest.fixture(scope="module")
def encoder(checkpoint):
    return load_model("gloria", checkpoint=checkpoint, text_encoder=TEXT_ENCODER)


@pytest.fixture(scope="module")
def images():
    return [Image.open(FIXTURES / name) for name in IMAGES]


@pytest.fixture(scope="module")
def texts():
    return json.loads((FIXTURES / "texts.json").read_text())


def _assert_close(got: torch.Tensor, want: np.ndarray) -> None:
    got = got.numpy()
    want = want / np.linalg.norm(want, axis=1, keepdims=True)
    assert got.shape == want.shape
    assert ((got * want).sum(1)).min() >= MIN_COSINE
    assert np.abs(got - want).max() <= MAX_ABS


def test_geometry_is_upstreams_pixels_exactly(encoder, images, expected):
    """OpenCV INTER_AREA (all three regimes), zero pad and centre crop reproduced bit for bit."""
    for im, want in zip(images, expected["geometry"]):
        got = encoder.geometry(im)
        assert got.dtype == torch.uint8 and tuple(got.shape) == (1, 224, 224)
        assert torch.equal(got[0], torch.from_numpy(want))


def test_images_match_upstream(encoder, images, expected):
    _assert_close(encoder.encode_images(images), expected["image"])


def test_token_ids_and_texts_match_upstream(encoder, texts, expected):
    assert torch.equal(encoder.tokenize(texts)["input_ids"], torch.from_numpy(expected["caption_ids"]))
    _assert_close(encoder.encode_texts(texts), expected["text"])


def test_report_cleaning():
    assert clean_report("1. Heart size is normal. 2. No effusion!\nÜber ok") == "heart size is normal no effusion ber ok"
    assert clean_report("Stable. Unchanged.") == ""  # one-word pieces are dropped


def test_release_container_reads_without_unpickling(expected):
    """skeleton.ckpt: pytorch-lightning 1.1.4's checkpoint with omegaconf 2.0.5 hyper_parameters and callback
    classes as dict keys; read with weights_only and the exact allow-list."""
    state, config = read_checkpoint(FIXTURES / "skeleton.ckpt")
    assert state == {}
    assert config == json.loads((FIXTURES / "hyper_parameters.json").read_text())
    assert config["model"]["vision"]["model_name"] == "resnet_50"


def test_missing_and_wrong_checkpoints(tmp_path, checkpoint):
    with pytest.raises(WeightsNotAvailable, match="CXRBENCH_GLORIA_CHECKPOINT") as err:
        load_model("gloria")
    assert "chexpert_resnet50.ckpt" in str(err.value) and "marshuang80/gloria" in str(err.value)
    ckpt = torch.load(checkpoint, weights_only=True)
    ckpt["state_dict"]["gloria.img_encoder.extra.weight"] = ckpt["state_dict"].pop("gloria.img_encoder.global_embedder.weight")
    bad = tmp_path / "bad.ckpt"
    torch.save(ckpt, bad)
    with pytest.raises(CheckpointError, match=r"missing key\(s\): img_encoder.global_embedder.weight"):
        load_model("gloria", checkpoint=bad, text_encoder=TEXT_ENCODER)
    torch.save({"state_dict": {"model.x": torch.zeros(1)}, "hyper_parameters": {}}, bad)
    with pytest.raises(CheckpointError, match="outside the 'gloria.' module"):
        load_model("gloria", checkpoint=bad, text_encoder=TEXT_ENCODER)


def test_catalogue_row():
    spec = get_spec("gloria")
    assert spec.keys == ("checkpoint", "text_encoder") and "ResNet-50" in spec.description
