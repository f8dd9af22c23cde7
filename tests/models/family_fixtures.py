"""Seeded tiny open_clip and Hugging Face model folders and non-square inputs for the generic-family tests (not a
test module).

The folders are written the way the releases are laid out (config.json, weights, preprocessor_config.json,
tokenizer files), with the tiny tokenizers of tests/fixtures/families (see make_tokenizers.py there).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "families"
CLIP_BPE = FIXTURES / "clip_bpe"
SIGLIP_SPM = FIXTURES / "siglip_spm" / "spiece.model"

TEXTS = [
    "No acute cardiopulmonary process.",
    "Mild cardiomegaly with small bilateral pleural effusions &amp; bibasilar atelectasis.",
    " ".join(["Stable postoperative changes of the mediastinum, no pneumothorax."] * 12),  # truncated
]

#: MedSigLIP's preprocessor_config.json (google/medsiglip-448): SiglipImageProcessor, 448 x 448 bicubic (3),
#: rescale 1/255, mean = std = 0.5, no centre crop.
MEDSIGLIP_PREPROCESSOR = {
    "do_normalize": True, "do_rescale": True, "do_resize": True, "image_mean": [0.5, 0.5, 0.5],
    "image_processor_type": "SiglipImageProcessor", "image_std": [0.5, 0.5, 0.5], "processor_class": "SiglipProcessor",
    "resample": 3, "rescale_factor": 0.00392156862, "size": {"height": 448, "width": 448},
}
#: PubMedCLIP's preprocessor_config.json (flaviagiammarino/pubmed-clip-vit-base-patch32): the legacy
#: CLIPFeatureExtractor format (int sizes, no image_processor_type).
PUBMEDCLIP_PREPROCESSOR = {
    "crop_size": 224, "do_center_crop": True, "do_normalize": True, "do_resize": True,
    "feature_extractor_type": "CLIPFeatureExtractor", "image_mean": [0.48145466, 0.4578275, 0.40821073],
    "image_std": [0.26862954, 0.26130258, 0.27577711], "resample": 3, "size": 224,
}


def images() -> list[Image.Image]:
    """Non-square seeded inputs: a portrait grayscale and a landscape RGB image with some structure."""
    rng = np.random.default_rng(20250101)
    yy, xx = np.mgrid[0:310, 0:250]
    gray = (120 + 80 * np.sin(xx / 17.0) * np.cos(yy / 23.0) + rng.normal(0, 20, xx.shape)).clip(0, 255)
    rgb = rng.integers(0, 256, (190, 330, 3)).astype(np.float64)
    rgb[40:150, 60:270] *= 0.4
    return [Image.fromarray(gray.astype(np.uint8), "L"), Image.fromarray(rgb.astype(np.uint8), "RGB")]


def _write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=2) + "\n")


def write_clip_folder(folder: Path, *, seed: int, legacy: bool = False) -> Path:
    """A tiny CLIPModel folder. ``legacy``: as a transformers-4.2x release like PubMedCLIP (pytorch_model.bin with
    the position_ids buffers, old preprocessor and tokenizer configs without model_max_length)."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = CLIPTokenizer(str(CLIP_BPE / "vocab.json"), str(CLIP_BPE / "merges.txt"), model_max_length=77)
    vocab = json.loads((CLIP_BPE / "vocab.json").read_text())
    config = CLIPConfig(
        text_config={"vocab_size": len(vocab), "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                     "num_attention_heads": 2, "max_position_embeddings": 77,
                     "bos_token_id": vocab["<|startoftext|>"], "eos_token_id": 2 if legacy else vocab["<|endoftext|>"],
                     "pad_token_id": 1 if legacy else vocab["<|endoftext|>"]},
        vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
                       "image_size": 224, "patch_size": 32},
        projection_dim=16,
    )
    torch.manual_seed(seed)
    model = CLIPModel(config).eval()
    if legacy:
        config.save_pretrained(folder)
        state = dict(model.state_dict())
        state["text_model.embeddings.position_ids"] = torch.arange(77).unsqueeze(0)
        state["vision_model.embeddings.position_ids"] = torch.arange(50).unsqueeze(0)
        torch.save(state, folder / "pytorch_model.bin")
        _write_json(folder / "preprocessor_config.json", PUBMEDCLIP_PREPROCESSOR)
        for name in ("vocab.json", "merges.txt"):
            (folder / name).write_bytes((CLIP_BPE / name).read_bytes())
        _write_json(folder / "tokenizer_config.json", {
            "unk_token": "<|endoftext|>", "bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>",
            "pad_token": "<|endoftext|>", "add_prefix_space": False, "errors": "replace", "do_lower_case": True})
        _write_json(folder / "special_tokens_map.json", {
            "bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>",
            "pad_token": "<|endoftext|>"})
    else:
        model.save_pretrained(folder)
        CLIPImageProcessor().save_pretrained(folder)  # transformers' CLIP defaults, as openai/clip-vit-base-*
        tokenizer.save_pretrained(folder)
    return folder


#: a tiny open_clip CLIP (non-square 96 x 128 input, 16-d embeddings)
TINY_OPEN_CLIP_CFG = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": [96, 128], "layers": 2, "width": 64, "head_width": 32, "patch_size": 16},
    "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}


def write_open_clip_folder(folder: Path, preprocess_cfg: dict, quick_gelu: bool = False, seed: int = 3) -> Path:
    """A tiny open_clip ``local-dir:`` folder (open_clip_config.json with ``preprocess_cfg``, and
    open_clip_model.safetensors from a seeded random model), as open_clip's hub releases are laid out."""
    import open_clip
    from safetensors.torch import save_file

    folder.mkdir(parents=True)
    cfg = dict(TINY_OPEN_CLIP_CFG, quick_gelu=quick_gelu)
    _write_json(folder / "open_clip_config.json", {"model_cfg": cfg, "preprocess_cfg": preprocess_cfg})
    torch.manual_seed(seed)
    model = open_clip.CLIP(**cfg)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / "open_clip_model.safetensors"))
    return folder


def write_siglip_folder(folder: Path, *, seed: int, preprocessor: dict | None = None, image_size: int = 448,
                        patch_size: int = 14) -> Path:
    """A tiny SiglipModel folder with MedSigLIP's processor settings (by default) and the SigLIP tokenizer's
    (model_max_length 64, input_ids only, lower-casing)."""
    from transformers import SiglipConfig, SiglipModel, SiglipTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    config = SiglipConfig(
        text_config={"vocab_size": 180, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                     "num_attention_heads": 2, "max_position_embeddings": 64, "bos_token_id": None,
                     "eos_token_id": 1, "pad_token_id": 1},
        vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
                       "image_size": image_size, "patch_size": patch_size},
    )
    torch.manual_seed(seed)
    SiglipModel(config).eval().save_pretrained(folder)
    _write_json(folder / "preprocessor_config.json", preprocessor or MEDSIGLIP_PREPROCESSOR)
    SiglipTokenizer(str(SIGLIP_SPM), model_max_length=64, model_input_names=["input_ids"],
                    do_lower_case=True).save_pretrained(folder)
    return folder


def library_embeddings(folder: Path, ims, texts, padding) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """transformers' own end-to-end pipeline, as the model cards use it: AutoProcessor + AutoModel, then
    get_image_features / get_text_features; returns (image embeddings, text embeddings, input_ids), L2-normalised."""
    from transformers import AutoModel, AutoProcessor

    processor = AutoProcessor.from_pretrained(folder, local_files_only=True)
    model = AutoModel.from_pretrained(folder, local_files_only=True).float().eval()
    inputs = processor(text=texts, images=ims, padding=padding, truncation=True, return_tensors="pt")
    text_inputs = {k: v for k, v in inputs.items() if k != "pixel_values"}
    with torch.no_grad():
        img = model.get_image_features(pixel_values=inputs["pixel_values"])
        txt = model.get_text_features(**text_inputs)
    img = img if isinstance(img, torch.Tensor) else img.pooler_output
    txt = txt if isinstance(txt, torch.Tensor) else txt.pooler_output
    norm = torch.nn.functional.normalize
    return norm(img, dim=-1), norm(txt, dim=-1), inputs["input_ids"]
