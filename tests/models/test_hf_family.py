"""The ``hf`` family against transformers' own end-to-end pipeline, and the catalogue entries made of it.

Reference: ``AutoProcessor(text=..., images=..., padding=...)`` + ``AutoModel.get_image_features`` /
``get_text_features`` on the same seeded random checkpoint, with the padding each model card uses
(``padding=True`` for CLIP, ``padding="max_length"`` for SigLIP / MedSigLIP). Inputs are non-square (a portrait
grayscale and a landscape RGB image); per-row cosine >= 0.99999 and identical token ids.
"""

from __future__ import annotations

import json

import huggingface_hub
import pytest
import torch

from cxrbench.errors import CheckpointError, ConfigError, WeightsNotAvailable
from cxrbench.models import get_spec, load_model, set_trust_remote_code

from family_fixtures import (
    MEDSIGLIP_PREPROCESSOR,
    TEXTS,
    images,
    library_embeddings,
    write_clip_folder,
    write_siglip_folder,
)
from golden_helpers import hf_cache_entry

MIN_COSINE = 0.99999


def _yaml(tmp_path, entries: dict):
    import yaml

    path = tmp_path / "models.yaml"
    path.write_text(yaml.safe_dump(entries))
    return path


def _assert_matches_library(encoder, folder, texts, padding):
    ims = images()
    img_ref, txt_ref, ids_ref = library_embeddings(folder, ims, texts, padding)
    assert torch.equal(encoder.tokenize(texts)["input_ids"], ids_ref)
    img, txt = encoder.encode_images(ims), encoder.encode_texts(texts)
    assert (img * img_ref).sum(1).min() >= MIN_COSINE
    assert (txt * txt_ref).sum(1).min() >= MIN_COSINE
    # the split is exact: geometry is uint8 in the model frame, intensity gives the processor's pixel values
    pixels = torch.stack([encoder.geometry(im) for im in ims])
    assert pixels.dtype == torch.uint8 and pixels.shape[1] == 3
    return img, txt


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    return write_clip_folder(tmp_path_factory.mktemp("hf_clip"), seed=11)


@pytest.fixture(scope="module")
def siglip_dir(tmp_path_factory):
    pytest.importorskip("sentencepiece", reason="SiglipTokenizer needs sentencepiece (a cxrbench dependency)")
    return write_siglip_folder(tmp_path_factory.mktemp("hf_siglip"), seed=12)


def test_clipmodel_from_models_yaml_matches_transformers(tmp_path, clip_dir):
    config = _yaml(tmp_path, {"myclip": {"family": "hf", "path": str(clip_dir)}})
    encoder = load_model("myclip", config=config)
    assert encoder.info.family == "hf" and encoder.info.extra["model_class"] == "CLIPModel"
    assert encoder.padding == "longest" and encoder.max_length == 77
    _assert_matches_library(encoder, clip_dir, TEXTS, padding=True)
    assert encoder.tokenize(TEXTS)["input_ids"].shape[1] == 77  # the long report is truncated to the context


def test_siglipmodel_pads_to_max_length_and_matches_transformers(tmp_path, siglip_dir):
    encoder = load_model("mysiglip", config=_yaml(tmp_path, {"mysiglip": {"family": "hf", "checkpoint": str(siglip_dir)}}))
    assert encoder.padding == "max_length" and encoder.max_length == 64
    assert list(encoder.tokenize(TEXTS)) == ["input_ids"]  # as SigLIP's processor: no attention mask
    img, txt = _assert_matches_library(encoder, siglip_dir, TEXTS, padding="max_length")
    # padding matters: the same texts padded to the longest one embed differently (last-position pooling)
    encoder.padding = "longest"
    shorter = encoder.encode_texts(TEXTS[:2])
    assert (shorter * txt[:2]).sum(1).min() < 0.999
    assert tuple(encoder.geometry(images()[0]).shape) == (3, 448, 448)  # squashed, not cropped


def test_medsiglip_is_the_hf_family_with_its_processor(tmp_path, siglip_dir, monkeypatch):
    """``medsiglip`` resolves google/medsiglip-448 from the local HF cache; processor settings as released."""
    spec = get_spec("medsiglip")
    assert spec.family == "hf" and spec.builder == "cxrbench.models.hf_family:build"
    commit = "0" * 40
    hf_cache_entry(tmp_path, "google/medsiglip-448", sorted(p for p in siglip_dir.iterdir() if p.is_file()), commit)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    encoder = load_model("medsiglip")
    assert json.loads((siglip_dir / "preprocessor_config.json").read_text()) == MEDSIGLIP_PREPROCESSOR
    kw = encoder.kw
    assert (kw["size"].height, kw["size"].width, int(kw["resample"])) == (448, 448, 3)
    assert not kw["do_center_crop"] and tuple(kw["image_mean"]) == tuple(kw["image_std"]) == (0.5, 0.5, 0.5)
    _assert_matches_library(encoder, siglip_dir, TEXTS, padding="max_length")
    white = torch.full((1, 3, 448, 448), 255.0)
    assert torch.allclose(encoder.intensity(white), torch.ones_like(white), atol=1e-6)


def test_pubmedclip_is_pure_configuration(tmp_path, monkeypatch):
    """``pubmedclip`` is a catalogue row of the hf family and nothing else; its release is a transformers-4.2x
    folder (legacy CLIPFeatureExtractor config, pytorch_model.bin with position_ids, no model_max_length)."""
    spec = get_spec("pubmedclip")
    assert spec.family == "hf" and set(spec.options) == {"default_checkpoint"}
    folder = write_clip_folder(tmp_path / "release", seed=13, legacy=True)
    hf_cache_entry(tmp_path / "cache", "flaviagiammarino/pubmed-clip-vit-base-patch32",
                   sorted(folder.iterdir()), "1" * 40)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "cache"))
    encoder = load_model("pubmedclip")
    assert encoder.max_length == 77  # from the text config: the release's tokenizer has no model_max_length
    _assert_matches_library(encoder, folder, TEXTS[:2], padding=True)
    assert encoder.tokenize(TEXTS)["input_ids"].shape[1] == 77


def test_missing_weights_skip_with_what_to_set(tmp_path, monkeypatch):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty"))
    for name in ("medsiglip", "pubmedclip"):
        with pytest.raises(WeightsNotAvailable, match=f"CXRBENCH_{name.upper()}_CHECKPOINT") as err:
            load_model(name)
        assert "hf download" in str(err.value)
    config = _yaml(tmp_path, {"mine": {"family": "hf", "path": str(tmp_path / "nowhere")}})
    with pytest.raises(WeightsNotAvailable, match="nowhere does not exist"):
        load_model("mine", config=config)


def test_wrong_weights_are_named(tmp_path, clip_dir):
    from safetensors.torch import load_file, save_file

    bad = tmp_path / "bad"
    bad.mkdir()
    for f in clip_dir.iterdir():
        (bad / f.name).write_bytes(f.read_bytes())
    state = load_file(str(bad / "model.safetensors"))
    state["visual_projection.extra"] = state.pop("visual_projection.weight")
    save_file(state, str(bad / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"missing key\(s\): visual_projection.weight"):
        load_model("bad", config=_yaml(tmp_path, {"bad": {"family": "hf", "path": str(bad)}}))


def test_trust_remote_code_is_refused_unless_allowed(tmp_path, clip_dir):
    config = _yaml(tmp_path, {"remote": {"family": "hf", "path": str(clip_dir), "trust_remote_code": True}})
    with pytest.raises(ConfigError, match="--trust-remote-code") as err:
        load_model("remote", config=config)
    assert "Python files shipped with the model" in str(err.value)
    set_trust_remote_code(True)
    try:
        assert load_model("remote", config=config).info.extra["trust_remote_code"] is True
    finally:
        set_trust_remote_code(False)


def test_model_code_outside_transformers_asks_for_trust_remote_code(tmp_path, clip_dir):
    custom = tmp_path / "custom"
    custom.mkdir()
    for f in clip_dir.iterdir():
        (custom / f.name).write_bytes(f.read_bytes())
    cfg = json.loads((custom / "config.json").read_text())
    cfg.update(model_type="my_private_clip", auto_map={"AutoModel": "modeling_mine.MyModel"})
    (custom / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ConfigError, match="trust_remote_code: true"):
        load_model("custom", config=_yaml(tmp_path, {"custom": {"family": "hf", "path": str(custom)}}))


def test_bad_settings_are_named(tmp_path, clip_dir):
    config = _yaml(tmp_path, {"m": {"family": "hf", "path": str(clip_dir), "padding": "sideways"}})
    with pytest.raises(ConfigError, match="padding must be"):
        load_model("m", config=config)
    config = _yaml(tmp_path, {"m": {"family": "hf", "path": str(clip_dir), "arch": "ViT-B-32"}})
    with pytest.raises(ConfigError, match=r"unknown setting\(s\) \['arch'\]"):
        load_model("m", config=config)
