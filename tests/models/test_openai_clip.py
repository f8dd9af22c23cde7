"""Golden tests for the OpenAI-CLIP-architecture adapters: clip, cxr_repair, chexzero.

The fixture (tests/fixtures/golden/openai_clip, see its README) holds two PNGs, three report texts, the manifest
of two tiny random CLIP ViTs and what the upstream code (openai/CLIP, CXR-RePaiR, CheXzero) produced from them:
embeddings, token ids, and the intermediate pixels. The checkpoints themselves are rebuilt here from the
manifest by the shared seeded recipe (tests/fixtures/golden/recipes.py) in the formats upstream read: OpenAI's
release format (a TorchScript archive, fp16) for ``clip`` and a "fine-tuned" plain state dict as CXR-RePaiR /
CheXzero save it; their tensor digests are checked against those the goldens were made from before anything
is compared. Models are built through the registry (``load_model``). No upstream code is needed here.
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from functools import cache, lru_cache
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cxrbench.errors import CheckpointError, ConfigError, WeightsNotAvailable
from cxrbench.models import get_spec, load_model, openai_clip
from cxrbench.models.checkpoint import load_checked, sha256_file

from golden_helpers import load_npz, row_cosines

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "golden" / "openai_clip"
#: which recipe checkpoint each model is tested with (CXR-RePaiR and CheXzero save the same format)
CHECKPOINT_OF = {"clip": "openai", "cxr_repair": "finetuned", "chexzero": "finetuned"}
GOLDEN_KEY = {"clip": "openai", "cxr_repair": "cxr_repair", "chexzero": "chexzero"}
MIN_COS = 0.9999

#: (model name, antialias option) combinations with upstream goldens.
VARIANTS = [("clip", False), ("cxr_repair", False), ("cxr_repair", True), ("chexzero", False),
            ("chexzero", True)]


def variant(name: str, path: Path, **options):
    """A deliberately unregistered variant of a registered model (its spec with other options), built by the
    registered builder. Used for the antialias=True goldens (the registered cxr_repair / chexzero reproduce
    upstream as written, antialias=False), the strict-tokenizer option and invalid options."""
    base = get_spec(name)
    spec = dataclasses.replace(base, options={**base.options, **options})
    return spec.resolve_builder()(spec, checkpoint=str(path))


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory, golden_recipes) -> dict[str, Path]:
    """Both tiny checkpoints written from the recipe; refuse to compare anything if their tensors differ."""
    if not (hasattr(torch.jit, "script") and hasattr(torch.jit, "save")):  # pragma: no cover
        pytest.skip("this torch cannot write TorchScript archives (OpenAI's release format)")
    folder = tmp_path_factory.mktemp("openai_clip")
    manifest = golden_recipes.load_manifest(FIXTURE / "checkpoint_manifest.json")
    out = {}
    for name, m in manifest.items():
        path, content = golden_recipes.write_checkpoint(folder, m)
        assert content == m["content_sha256"] == str(golden()[f"{name}/weights_sha256"]), (
            f"{name}: the recipe no longer reproduces the tensors the goldens were made from")
        if "file_sha256" in m and torch.__version__ == m["torch_version"]:  # torch.save's zip may change
            assert sha256_file(path) == m["file_sha256"]
        out[name] = path
    return out


@pytest.fixture(scope="module")
def encoder(checkpoints):
    """encoder(name, antialias=False): the registered model, or its antialias variant, on the recipe files."""

    @cache
    def make(name: str, antialias: bool = False):
        path = checkpoints[CHECKPOINT_OF[name]]
        if antialias:
            return variant(name, path, antialias=True)
        return load_model(name, checkpoint=str(path))

    return make


@lru_cache(maxsize=1)
def golden() -> dict[str, np.ndarray]:
    return load_npz(FIXTURE / "expected.npz")


@lru_cache(maxsize=1)
def inputs() -> tuple[list[Image.Image], list[str], list[str]]:
    texts = json.loads((FIXTURE / "texts.json").read_text())
    images = [Image.open(FIXTURE / "image_gray.png"), Image.open(FIXTURE / "image_rgb.png")]
    for im in images:
        im.load()
    return images, texts["texts"], texts["token_probes"]


def image_key(name: str, antialias: bool) -> str:
    return f"{GOLDEN_KEY[name]}{'_antialias' if antialias else ''}/image"


# -- golden embeddings ------------------------------------------------------------------------------------
@pytest.mark.parametrize(("name", "antialias"), VARIANTS)
def test_image_embeddings_match_upstream(encoder, name, antialias):
    images, _, _ = inputs()
    emb = encoder(name, antialias).encode_images(images)
    assert emb.dtype == torch.float32 and emb.shape == (2, 32)
    assert torch.allclose(emb.norm(dim=-1), torch.ones(2), atol=1e-5)
    cos = row_cosines(emb, golden()[image_key(name, antialias)])
    assert cos.min() >= MIN_COS, cos


@pytest.mark.parametrize("name", ["clip", "cxr_repair", "chexzero"])
def test_text_embeddings_match_upstream(encoder, name):
    _, texts, _ = inputs()
    emb = encoder(name).encode_texts(texts)
    assert emb.dtype == torch.float32 and emb.shape == (3, 32) and emb.device.type == "cpu"
    cos = row_cosines(emb, golden()[f"{GOLDEN_KEY[name]}/text"])
    assert cos.min() >= MIN_COS, cos


def test_goldens_tell_the_two_images_and_three_texts_apart():
    """The random weights are not degenerate: a golden match is not a match of near-constant vectors."""
    for key in ("openai", "cxr_repair"):
        img, txt = golden()[f"{key}/image"], golden()[f"{key}/text"]
        assert float(img[0] @ img[1]) < 0.99
        assert (txt @ txt.T - np.eye(3)).max() < 0.9


# -- preprocessing, stage by stage ------------------------------------------------------------------------
def test_openai_geometry_is_upstream_resize_crop_rgb(encoder):
    images, _, _ = inputs()
    geo = torch.stack([encoder("clip").geometry(im) for im in images])
    assert geo.dtype == torch.uint8 and geo.shape == (2, 3, 224, 224)
    assert np.array_equal(geo.numpy(), golden()["openai/geometry"])


@pytest.mark.parametrize("name", ["cxr_repair", "chexzero"])
def test_cxr_geometry_is_the_upstream_320_canvas(encoder, name):
    images, _, _ = inputs()
    geo = torch.stack([encoder(name).geometry(im) for im in images])
    assert geo.dtype == torch.uint8 and geo.shape == (2, 1, 320, 320)
    assert np.array_equal(geo[:, 0].numpy(), golden()["cxr_repair/canvas"])
    assert bool(golden()["chexzero/same_pixels_as_cxr_repair"])  # upstream runs agreed pixel for pixel


def test_geometry_keys_are_shared_exactly_where_the_geometry_is(encoder):
    """The runner computes geometry once per key: equal keys must mean equal pixels, and only then."""
    images, _, _ = inputs()
    repair, chexzero, clip = encoder("cxr_repair"), encoder("chexzero"), encoder("clip")
    assert repair.geometry_key == chexzero.geometry_key == encoder("cxr_repair", True).geometry_key
    assert clip.geometry_key != repair.geometry_key
    for im in images:
        assert torch.equal(repair.geometry(im), chexzero.geometry(im))


@pytest.mark.parametrize("antialias", [False, True])
def test_cxr_intensity_normalises_then_resizes_like_upstream(encoder, antialias):
    canvas = torch.from_numpy(golden()["cxr_repair/canvas"]).unsqueeze(1).float()
    x = encoder("cxr_repair", antialias).intensity(canvas)
    assert x.shape == (2, 3, 224, 224) and torch.equal(x[:, 0], x[:, 2])
    own = golden()[f"cxr_repair{'_antialias' if antialias else ''}/model_input0"].astype(np.float32)
    other = golden()[f"cxr_repair{'' if antialias else '_antialias'}/model_input0"].astype(np.float32)
    assert np.abs(x[:, 0].numpy() - own).max() < 2e-3  # the golden is stored as fp16
    assert np.abs(x[:, 0].numpy() - other).max() > 0.1  # the antialias option really matters


def test_openai_intensity_is_clip_mean_std(encoder):
    x = encoder("clip").intensity(torch.full((1, 3, 2, 2), 255.0))
    expected = [(1 - m) / s for m, s in zip(openai_clip.CLIP_MEAN, openai_clip.CLIP_STD)]
    assert torch.allclose(x[0, :, 0, 0], torch.tensor(expected))


def test_registered_options_pick_the_upstream_preprocessing():
    assert get_spec("clip").options == {"preprocessing": "openai"}
    for name in ("cxr_repair", "chexzero"):
        assert get_spec(name).options == {"preprocessing": "cxr_pad320", "antialias": False}


# -- tokenizer ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["openai", "cxr_repair", "chexzero"])
def test_clip_tokenize_matches_upstream_ids(name):
    _, texts, probes = inputs()
    assert np.array_equal(openai_clip.clip_tokenize(texts).numpy(), golden()[f"{name}/tokens"])
    assert np.array_equal(openai_clip.clip_tokenize(probes).numpy(), golden()[f"{name}/probe_tokens"])


def test_truncation_keeps_end_token_and_strict_mode_raises(checkpoints):
    _, texts, _ = inputs()
    tokens = openai_clip.clip_tokenize(texts)
    assert tokens[2, -1].item() == openai_clip.EOT_ID and tokens[2, 0].item() == openai_clip.SOT_ID
    assert tokens[2].argmax().item() == 76  # EOT pooling picks the last position
    assert bool(golden()["openai/default_tokenize_raises_on_long"])
    assert bool(golden()["chexzero/inference_tokenize_raises_on_long"])
    with pytest.raises(ConfigError, match="context length"):
        openai_clip.clip_tokenize(texts, truncate=False)
    strict = variant("chexzero", checkpoints["finetuned"], truncate=False)  # CheXzero's inference tokenizer
    with pytest.raises(ConfigError):
        strict.encode_texts(texts)


# -- architecture -------------------------------------------------------------------------------------------
def test_uses_quick_gelu_and_gelu_would_change_embeddings(encoder, checkpoints):
    from open_clip.transformer import QuickGELU

    enc = encoder("cxr_repair")
    acts = [m for m in enc.model.modules() if isinstance(m, (QuickGELU, torch.nn.GELU))]
    assert acts and all(isinstance(m, QuickGELU) for m in acts)

    gelu = openai_clip.build_open_clip_model(enc.arch, quick_gelu=False)
    state = openai_clip.load_clip_state(checkpoints["finetuned"], adapter="test")
    load_checked(gelu, state, adapter="test", source=checkpoints["finetuned"])
    _, texts, _ = inputs()
    with torch.no_grad():
        emb = gelu.encode_text(openai_clip.clip_tokenize(texts))
    assert row_cosines(emb, golden()["cxr_repair/text"]).min() < MIN_COS


def test_torchscript_reader_reads_what_torch_jit_reads(checkpoints):
    archive = checkpoints["openai"]
    assert openai_clip.is_torchscript_archive(archive)
    ours = openai_clip.read_torchscript_tensors(archive, adapter="clip")
    assert all(v.dtype == torch.float16 for k, v in ours.items() if v.is_floating_point())
    assert {"input_resolution", "context_length", "vocab_size"} <= set(ours)
    if not hasattr(torch.jit, "load"):  # pragma: no cover - torch.jit removed in some future torch
        pytest.skip("torch.jit.load unavailable")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = torch.jit.load(str(archive), map_location="cpu").state_dict()
    assert set(ours) == set(theirs)
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)


def test_info_records_checkpoint_and_preprocessing(encoder, checkpoints):
    info = encoder("cxr_repair").info
    assert info.name == "cxr_repair" and info.family == "openai_clip" and info.embed_dim == 32
    assert info.checkpoint_sha256 == sha256_file(checkpoints["finetuned"])
    assert "320" in info.preprocessing and "antialias=False" in info.preprocessing
    assert encoder("clip").info.extra["container"] == "torchscript"


# -- other containers ---------------------------------------------------------------------------------------
def test_open_clip_wrapper_and_module_prefix(tmp_path, checkpoints):
    state = torch.load(checkpoints["finetuned"], map_location="cpu", weights_only=True)
    wrapped = {"epoch": 3, "name": "tiny", "state_dict": {f"module.{k}": v for k, v in state.items()}}
    path = tmp_path / "epoch_3.pt"
    torch.save(wrapped, path)
    images, texts, _ = inputs()
    enc = load_model("cxr_repair", checkpoint=str(path))
    assert row_cosines(enc.encode_images(images), golden()["cxr_repair/image"]).min() >= MIN_COS
    assert row_cosines(enc.encode_texts(texts), golden()["cxr_repair/text"]).min() >= MIN_COS


def test_plain_fp32_state_dict_of_the_openai_model(tmp_path, checkpoints):
    state = openai_clip.read_torchscript_tensors(checkpoints["openai"], adapter="clip")
    plain = {k: (v.float() if v.is_floating_point() else v) for k, v in state.items()
             if k not in ("input_resolution", "context_length", "vocab_size")}
    path = tmp_path / "clip_state.pt"
    torch.save(plain, path)
    _, texts, _ = inputs()
    enc = load_model("clip", checkpoint=str(path))
    assert enc.info.extra["container"] == "state_dict"
    assert row_cosines(enc.encode_texts(texts), golden()["openai/text"]).min() >= MIN_COS


def test_batch_composition_does_not_change_embeddings(encoder):
    images, texts, _ = inputs()
    enc = encoder("chexzero")
    together = enc.encode_texts(texts, batch_size=3)
    alone = torch.cat([enc.encode_texts([t]) for t in texts])
    assert torch.allclose(together, alone, atol=1e-5)
    assert torch.allclose(enc.encode_images(images, batch_size=2),
                          torch.cat([enc.encode_images([im]) for im in images]), atol=1e-5)


# -- loud failures ------------------------------------------------------------------------------------------
def test_missing_and_renamed_keys_are_listed(tmp_path, checkpoints):
    state = torch.load(checkpoints["finetuned"], map_location="cpu", weights_only=True)
    del state["visual.ln_post.bias"]
    state["transformer.resblocks.0.ln_1.gamma"] = state.pop("transformer.resblocks.0.ln_1.weight")
    path = tmp_path / "broken.pt"
    torch.save(state, path)
    with pytest.raises(CheckpointError) as err:
        load_model("cxr_repair", checkpoint=str(path))
    msg = str(err.value)
    for key in ("visual.ln_post.bias", "transformer.resblocks.0.ln_1.weight",
                "transformer.resblocks.0.ln_1.gamma", str(path)):
        assert key in msg


def test_not_a_checkpoint_names_the_file(tmp_path):
    path = tmp_path / "notes.pt"
    path.write_text("these are not weights\n")
    with pytest.raises(CheckpointError, match="notes.pt"):
        load_model("chexzero", checkpoint=str(path))


@pytest.mark.parametrize("source", ["finetuned", "openai"])
def test_truncated_checkpoint_names_the_file(tmp_path, checkpoints, source):
    path = tmp_path / f"truncated_{checkpoints[source].name}"
    data = checkpoints[source].read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=path.name) as err:
        load_model("clip", checkpoint=str(path))
    assert "clip" in str(err.value)


def test_another_family_checkpoint_is_refused(tmp_path):
    other = {  # a HF-style (MedCLIP / CXR-CLIP-like) dual-encoder layout
        "vision_model.model.embeddings.patch_embeddings.projection.weight": torch.zeros(8, 3, 4, 4),
        "text_model.model.embeddings.word_embeddings.weight": torch.zeros(10, 8),
        "logit_scale": torch.tensor(1.0),
    }
    path = tmp_path / "medclip_like.bin"
    torch.save(other, path)
    with pytest.raises(CheckpointError, match="another model's checkpoint") as err:
        load_model("cxr_repair", checkpoint=str(path))
    assert "medclip_like.bin" in str(err.value)


def test_archive_with_foreign_objects_is_refused(tmp_path):
    import pickle
    import zipfile

    path = tmp_path / "evil.pt"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("evil/data.pkl", pickle.dumps(Path("/etc/passwd")))
        zf.writestr("evil/constants.pkl", pickle.dumps(()))
    with pytest.raises(CheckpointError, match="refusing to load global"):
        load_model("clip", checkpoint=str(path))


@pytest.mark.parametrize("name", ["clip", "cxr_repair", "chexzero"])
def test_missing_setting_raises_weights_not_available(name):
    with pytest.raises(WeightsNotAvailable, match=f"CXRBENCH_{name.upper()}_CHECKPOINT") as err:
        load_model(name)
    assert get_spec(name).how_to_get in str(err.value)  # and where the released weights come from


def test_unknown_option_or_setting_is_a_config_error(checkpoints):
    archive = checkpoints["openai"]
    with pytest.raises(ConfigError, match="preprocessing"):
        variant("clip", archive, preprocessing="imagenet")
    with pytest.raises(ConfigError, match="unknown options"):
        variant("clip", archive, colour=True)
    with pytest.raises(ConfigError, match="text_encoder"):
        load_model("clip", checkpoint=str(archive), text_encoder="x")
