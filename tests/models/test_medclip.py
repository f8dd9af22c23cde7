"""MedCLIP adapters against goldens produced by the upstream MedCLIP code (transformers 4.24).

The fixture (tests/fixtures/golden/medclip, see its README) holds tiny random checkpoints in upstream's format
(``MedCLIPModel.state_dict()`` as pytorch_model.bin), a Bio_ClinicalBERT-layout tokenizer folder, two images,
three texts, upstream's L2-normalised embeddings and upstream's preprocessed pixels. Both models are built
through the registry (``load_model("medclip" / "medclip_resnet", ...)``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cxrbench.errors import CheckpointError, WeightsNotAvailable
from cxrbench.models import get_spec, load_model, medclip

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "golden" / "medclip"
EXPECTED = json.loads((FIX / "expected.json").read_text())
TEXTS = json.loads((FIX / "texts.json").read_text())
VARIANTS = {"medclip": "vit", "medclip_resnet": "resnet"}
MIN_COS = 0.9999


def _build(name: str, checkpoint=None, tokenizer=FIX / "tokenizer"):
    return load_model(name, checkpoint=checkpoint, device="cpu", tokenizer=tokenizer)


def _images() -> list[Image.Image]:
    return [Image.open(FIX / name) for name in EXPECTED["images"]]


@pytest.fixture(scope="module", params=list(VARIANTS))
def encoder(request):
    name = request.param
    return name, _build(name, checkpoint=FIX / VARIANTS[name] / "pytorch_model.bin")


def _min_row_cos(a: torch.Tensor, b) -> float:
    b = torch.as_tensor(np.asarray(b), dtype=torch.float32)
    assert a.shape == b.shape
    return float((a * b).sum(dim=1).min())


def test_image_embeddings_match_upstream(encoder):
    name, enc = encoder
    got = enc.encode_images(_images())
    assert got.dtype == torch.float32
    assert torch.allclose(got.norm(dim=1), torch.ones(len(got)), atol=1e-5)
    assert _min_row_cos(got, EXPECTED[VARIANTS[name]]["image"]) >= MIN_COS


def test_text_embeddings_match_upstream(encoder):
    name, enc = encoder
    got = enc.encode_texts(TEXTS)
    assert got.shape == (3, enc.info.embed_dim)
    assert _min_row_cos(got, EXPECTED[VARIANTS[name]]["text"]) >= MIN_COS


def test_text_embedding_does_not_depend_on_batch(encoder):
    _, enc = encoder
    together = enc.encode_texts(TEXTS)
    alone = torch.cat([enc.encode_texts([t]) for t in TEXTS])
    assert float((together * alone).sum(dim=1).min()) >= 0.99999
    assert enc.encode_texts([]).shape == (0, enc.info.embed_dim)


def test_geometry_equals_upstream_pixels_exactly(encoder):
    """Upstream's processor output, recovered as the 8-bit image it was computed from (fixture README)."""
    _, enc = encoder
    ref = np.load(FIX / "upstream_pixels.npz")
    for i, image in enumerate(_images()):
        geo = enc.geometry(image)
        assert geo.shape == (1, 224, 224) and geo.dtype == torch.uint8
        assert np.array_equal(geo[0].numpy(), ref["geometry"][i])
        model_in = enc.intensity(geo[None].float())
        assert model_in.shape == (1, 3, 224, 224)
        assert torch.equal(model_in[:, 0], model_in[:, 2])
        np.testing.assert_allclose(model_in[0, 0, 100:116, 100:116].numpy(), ref["pixel_values_patch"][i],
                                   atol=1e-5)


def test_both_variants_share_one_geometry():
    """Equal geometry keys let the runner decode and resize once for medclip and medclip_resnet."""
    vit, resnet = (_build(n, checkpoint=FIX / VARIANTS[n] / "pytorch_model.bin") for n in VARIANTS)
    assert vit.geometry_key == resnet.geometry_key
    for im in _images():
        assert torch.equal(vit.geometry(im), resnet.geometry(im))


def test_small_image_is_padded_not_enlarged():
    """Upstream pads to max(224, w, h): an image smaller than 224 keeps its pixels, centred (floor offsets)."""
    rng = np.random.default_rng(0)
    small = rng.integers(1, 255, size=(81, 101), dtype=np.uint8)  # h=81, w=101
    geo = medclip.medclip_geometry(Image.fromarray(small, mode="L"))[0].numpy()
    top, left = (224 - 81) // 2, (224 - 101) // 2
    assert np.array_equal(geo[top : top + 81, left : left + 101], small)
    assert geo[:top].max() == 0 and geo[:, :left].max() == 0


def test_info(encoder):
    name, enc = encoder
    ckpt = FIX / VARIANTS[name] / "pytorch_model.bin"
    assert enc.info.name == name and enc.info.family == get_spec(name).family == "medclip"
    assert enc.info.checkpoint_sha256 == medclip.sha256_file(ckpt)
    assert enc.info.embed_dim == len(EXPECTED[VARIANTS[name]]["image"][0])
    assert "bicubic" in enc.info.preprocessing


def test_checkpoint_folder_is_accepted():
    enc = _build("medclip_resnet", checkpoint=FIX / "resnet")
    assert enc.info.checkpoint.endswith("pytorch_model.bin")


def _write_state(tmp_path: Path, state: dict) -> Path:
    path = tmp_path / "pytorch_model.bin"
    torch.save(state, path)
    return path


def test_missing_and_renamed_keys_are_listed(tmp_path):
    state = torch.load(FIX / "vit" / "pytorch_model.bin", weights_only=True)
    removed = "text_model.model.encoder.layer.1.attention.self.key.weight"
    renamed = "vision_model.model.encoder.layers.1.blocks.0.attention.self.query.weight"
    del state[removed]
    state[renamed.replace(".query.", ".q.")] = state.pop(renamed)
    path = _write_state(tmp_path, state)
    with pytest.raises(CheckpointError) as err:
        _build("medclip", checkpoint=path)
    msg = str(err.value)
    assert removed in msg
    assert renamed.replace(".query.", ".q.") in msg  # the key translation cannot map it: named as it is
    assert str(path) in msg


def test_not_a_checkpoint(tmp_path):
    path = tmp_path / "pytorch_model.bin"
    path.write_text("this is not a checkpoint\n")
    with pytest.raises(CheckpointError, match="pytorch_model.bin") as err:
        _build("medclip", checkpoint=path)
    assert "medclip" in str(err.value)


def test_truncated_checkpoint(tmp_path):
    data = (FIX / "vit" / "pytorch_model.bin").read_bytes()
    path = tmp_path / "pytorch_model.bin"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=str(path)):
        _build("medclip", checkpoint=path)


def test_other_variant_checkpoint_is_refused():
    with pytest.raises(CheckpointError, match="medclip_resnet"):
        _build("medclip", checkpoint=FIX / "resnet" / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="use medclip instead"):
        _build("medclip_resnet", checkpoint=FIX / "vit" / "pytorch_model.bin")


def test_other_family_checkpoint_is_refused(tmp_path):
    clip_like = {"visual.conv1.weight": torch.zeros(4, 3, 2, 2), "token_embedding.weight": torch.zeros(5, 4),
                 "logit_scale": torch.tensor(1.0)}
    path = _write_state(tmp_path, clip_like)
    with pytest.raises(CheckpointError, match="not a MedCLIP checkpoint") as err:
        _build("medclip", checkpoint=path)
    assert str(path) in str(err.value)


def test_missing_checkpoint_setting_names_env_var(monkeypatch):
    monkeypatch.delenv("CXRBENCH_MEDCLIP_RESNET_CHECKPOINT", raising=False)
    with pytest.raises(WeightsNotAvailable, match="CXRBENCH_MEDCLIP_RESNET_CHECKPOINT") as err:
        _build("medclip_resnet", checkpoint=None)
    assert "medclip-pretrained.zip" in str(err.value)  # where the released weights come from


def test_uncached_tokenizer_names_env_var():
    with pytest.raises(WeightsNotAvailable, match="CXRBENCH_MEDCLIP_TOKENIZER"):
        _build("medclip", checkpoint=FIX / "vit", tokenizer="cxrbench-test/not-cached")
