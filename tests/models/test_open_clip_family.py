"""The ``open_clip`` family against open_clip's own end-to-end pipeline.

Reference: ``open_clip.create_model_and_transforms(arch, pretrained=<file>)`` (or ``local-dir:`` / ``hf-hub:``),
its eval transform, ``get_tokenizer`` and ``encode_image`` / ``encode_text``, on the same seeded random checkpoint
and non-square inputs: per-row cosine >= 0.99999, identical token ids, and the geometry/intensity split equal to the
transform's pixel values. The full-size architectures (ViT-B-32, ViT-B-16, RN50: two models each, 10-20 s) are
marked ``slow``; tiny ``local-dir:`` / ``hf-hub:`` models cover the preprocess-config variants in about a second.
"""

from __future__ import annotations

import json
import logging

import huggingface_hub
import pytest
import torch
from PIL import Image

from cxrbench.errors import CheckpointError, ConfigError, WeightsNotAvailable
from cxrbench.models import load_model

from family_fixtures import FIXTURES as FAMILY_GOLDEN
from family_fixtures import TEXTS, images, write_open_clip_folder
from golden_helpers import hf_cache_entry

MIN_COSINE = 0.99999
logging.getLogger().setLevel(logging.ERROR)  # open_clip logs "initialized randomly" for the reference models


def _yaml(tmp_path, entries: dict):
    import yaml

    path = tmp_path / "models.yaml"
    path.write_text(yaml.safe_dump(entries))
    return path


def _library(model_name: str, pretrained: str | None = None, **kwargs):
    import open_clip

    model, _, preprocess = open_clip.create_model_and_transforms(model_name, pretrained=pretrained, **kwargs)
    return model.eval(), preprocess, open_clip.get_tokenizer(model_name)


def _assert_matches_library(encoder, model, preprocess, tokenizer):
    ims = images()
    with torch.no_grad():
        pixels = torch.stack([preprocess(im) for im in ims])
        img_ref = torch.nn.functional.normalize(model.encode_image(pixels), dim=-1)
        tokens = tokenizer(TEXTS)
        txt_ref = torch.nn.functional.normalize(model.encode_text(tokens), dim=-1)
    geometry = torch.stack([encoder.geometry(im) for im in ims])
    assert geometry.dtype == torch.uint8
    assert (encoder.intensity(geometry.float()) - pixels).abs().max() < 1e-5
    assert torch.equal(encoder.tokenize(TEXTS), tokens)
    assert (encoder.encode_images(ims) * img_ref).sum(1).min() >= MIN_COSINE
    assert (encoder.encode_texts(TEXTS) * txt_ref).sum(1).min() >= MIN_COSINE


def _named_arch_case(tmp_path, arch: str, quick_gelu: bool | None = None):
    import open_clip

    torch.manual_seed(7)
    seeded = open_clip.create_model(arch, force_quick_gelu=bool(quick_gelu))
    ckpt = tmp_path / "epoch_30.pt"
    torch.save({"epoch": 30, "state_dict": {f"module.{k}": v for k, v in seeded.state_dict().items()}}, ckpt)
    del seeded
    entry = {"family": "open_clip", "arch": arch, "checkpoint": "epoch_30.pt"}  # relative to the YAML
    if quick_gelu is not None:
        entry["quick_gelu"] = quick_gelu
    encoder = load_model("mymodel", config=_yaml(tmp_path, {"mymodel": entry}))
    model, preprocess, tokenizer = _library(arch, str(ckpt), force_quick_gelu=bool(quick_gelu))
    _assert_matches_library(encoder, model, preprocess, tokenizer)
    return encoder


@pytest.mark.slow
def test_vit_b_32_training_checkpoint_matches_open_clip(tmp_path):
    """An open_clip training checkpoint ({'state_dict': {'module.…'}}) of ViT-B-32, as the issue's example."""
    encoder = _named_arch_case(tmp_path, "ViT-B-32")
    assert encoder.info.extra["quick_gelu"] is False and encoder.info.embed_dim == 512
    assert encoder.geometry_key == "open_clip-(224, 224)-shortest-bicubic-fill0-RGB"


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["ViT-B-16", "RN50"])
def test_named_architectures_match_open_clip(tmp_path, arch):
    _named_arch_case(tmp_path, arch)


@pytest.mark.slow
def test_quick_gelu_setting_matches_open_clip_quickgelu(tmp_path):
    """OpenAI-trained weights need QuickGELU; ``quick_gelu: true`` builds what open_clip's force_quick_gelu does."""
    encoder = _named_arch_case(tmp_path, "ViT-B-32", quick_gelu=True)
    assert encoder.info.extra["quick_gelu"] is True and "QuickGELU" in encoder.info.preprocessing


# -- tiny local-dir / hf-hub models: every preprocess variant, fast ----------------------------------------------
PREPROCESS = {
    "longest-bilinear": {"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25], "interpolation": "bilinear",
                         "resize_mode": "longest", "fill_color": 0},
    "shortest-nonsquare": {"resize_mode": "shortest"},
    "squash": {"resize_mode": "squash", "interpolation": "bicubic", "mean": [0.4, 0.4, 0.4], "std": [0.3, 0.2, 0.1]},
}


@pytest.mark.parametrize("variant", list(PREPROCESS))
def test_local_dir_preprocess_variants_match_open_clip(tmp_path, variant):
    folder = write_open_clip_folder(tmp_path / "tiny", PREPROCESS[variant])
    encoder = load_model("tiny", config=_yaml(tmp_path, {"tiny": {"family": "open_clip",
                                                                   "checkpoint": "local-dir:tiny"}}))
    _assert_matches_library(encoder, *_library(f"local-dir:{folder}"))
    assert tuple(encoder.geometry(images()[1]).shape) == (3, 96, 128)


def test_hf_hub_id_resolves_offline_from_the_cache(tmp_path, monkeypatch):
    folder = write_open_clip_folder(tmp_path / "tiny", PREPROCESS["longest-bilinear"], quick_gelu=True)
    hf_cache_entry(tmp_path / "cache", "someone/tiny-cxr-clip", sorted(folder.iterdir()), "2" * 40)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "cache"))
    encoder = load_model("hubbed", config=_yaml(tmp_path, {"hubbed": {"family": "open_clip",
                                                                       "checkpoint": "hf-hub:someone/tiny-cxr-clip"}}))
    assert encoder.info.extra["quick_gelu"] is True  # from the folder's config
    _assert_matches_library(encoder, *_library(f"local-dir:{folder}"))
    with pytest.raises(WeightsNotAvailable, match="not in the local Hugging Face cache"):
        load_model("gone", config=_yaml(tmp_path, {"gone": {"family": "open_clip", "checkpoint": "hf-hub:no/such"}}))


def test_bad_settings_fail_before_any_compute(tmp_path):
    folder = write_open_clip_folder(tmp_path / "tiny", {})
    weights = folder / "open_clip_model.safetensors"
    cases = {
        "a checkpoint file needs 'arch'": {"checkpoint": str(weights)},
        "did you mean ViT-B-16": {"checkpoint": str(weights), "arch": "ViT-B-61"},
        "remove 'arch'": {"checkpoint": str(folder), "arch": "ViT-B-32"},
        "quick_gelu must be true or false": {"checkpoint": str(folder), "quick_gelu": "yes"},
        r"unknown setting\(s\) \['text_encoder'\]": {"checkpoint": str(folder), "text_encoder": "x"},
    }
    for message, entry in cases.items():
        with pytest.raises(ConfigError, match=message):
            load_model("m", config=_yaml(tmp_path, {"m": {"family": "open_clip", **entry}}))
    with pytest.raises(WeightsNotAvailable, match="CXRBENCH_M_CHECKPOINT"):
        load_model("m", config=_yaml(tmp_path, {"m": {"family": "open_clip", "arch": "RN50"}}))
    with pytest.raises(WeightsNotAvailable, match="does not exist"):
        load_model("m", config=_yaml(tmp_path, {"m": {"family": "open_clip", "arch": "RN50", "checkpoint": "x.pt"}}))
    with pytest.raises(CheckpointError, match="wrong shape|does not match"):
        load_model("m", config=_yaml(tmp_path, {"m": {"family": "open_clip", "arch": "ViT-B-32",
                                                        "checkpoint": str(weights)}}))


def test_openai_torchscript_release_defaults_to_quick_gelu_and_matches_openai(tmp_path, golden_recipes):
    """OpenAI's release container (a TorchScript archive) in a local-dir folder: QuickGELU by default, and the
    embeddings equal the goldens that openai/CLIP itself produced from the same archive (openai_clip fixture)."""
    from cxrbench.models.openai_clip import infer_arch, read_torchscript_tensors

    from golden_helpers import load_npz

    fixture = FAMILY_GOLDEN.parent / "golden" / "openai_clip"
    manifest = golden_recipes.load_manifest(fixture / "checkpoint_manifest.json")["openai"]
    folder = tmp_path / "openai"
    folder.mkdir()
    archive, _ = golden_recipes.write_checkpoint(folder, manifest)
    archive.rename(folder / "model.pth")
    arch = infer_arch(read_torchscript_tensors(folder / "model.pth", adapter="t"), adapter="t", source="t")
    model_cfg = {"embed_dim": arch.embed_dim,
                 "vision_cfg": {"image_size": arch.image_size, "layers": arch.vision_layers,
                                "width": arch.vision_width, "patch_size": arch.patch_size},
                 "text_cfg": {"context_length": arch.context_length, "vocab_size": arch.vocab_size,
                              "width": arch.text_width, "heads": arch.text_width // 64, "layers": arch.text_layers}}
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": model_cfg}))
    encoder = load_model("oai", config=_yaml(tmp_path, {"oai": {"family": "open_clip", "checkpoint": str(folder)}}))
    assert encoder.info.extra["container"] == "torchscript" and encoder.info.extra["quick_gelu"] is True
    golden = load_npz(fixture / "expected.npz")
    texts = json.loads((fixture / "texts.json").read_text())["texts"]
    images = [Image.open(fixture / "image_gray.png"), Image.open(fixture / "image_rgb.png")]
    assert (encoder.encode_images(images).numpy() * golden["openai/image"]).sum(1).min() >= 0.9999
    assert (encoder.encode_texts(texts).numpy() * golden["openai/text"]).sum(1).min() >= 0.9999
