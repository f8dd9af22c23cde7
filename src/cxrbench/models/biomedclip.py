"""BiomedCLIP (microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224), loaded from its open_clip release.

The release is an open_clip "hf-hub" folder:

* ``open_clip_config.json``: ``model_cfg`` (embed_dim 512; vision_cfg: timm ``vit_base_patch16_224``,
  ``timm_pool=""`` so the ViT keeps its own class-token pooling, ``timm_proj="linear"`` without bias;
  text_cfg: Hugging Face ``microsoft/BiomedNLP-BiomedBERT-base-uncased-abstract``,
  ``hf_pooler_type="cls_last_hidden_state_pooler"``, ``hf_proj_type="mlp"``, context length 256) and
  ``preprocess_cfg`` (OpenAI CLIP mean/std; open_clip defaults for the rest: size = image_size, bicubic,
  resize mode "shortest");
* ``open_clip_pytorch_model.bin``: a plain dict of fp32 tensors named ``visual.trunk.*`` (timm ViT),
  ``visual.head.proj.weight``, ``text.transformer.*`` (a BertModel without pooler), ``text.proj.{0,2}.weight``
  (Linear-GELU-Linear, no biases), ``logit_scale``; written with transformers 4.2x, so it also holds the
  ``text.transformer.embeddings.position_ids`` buffer that current transformers recompute;
* the tokenizer files (vocab.txt, tokenizer_config.json, ...).

open_clip builds the text tower's BERT from ``AutoConfig.from_pretrained(hf_model_name)``, i.e. from a second
hub repo. Here that config and the tokenizer resolve offline: from folders given as settings
(``text_config``, ``tokenizer``), else from the checkpoint folder (tokenizer) or the local Hugging Face cache
(``HF_HUB_OFFLINE``-style ``local_files_only`` look-ups).

What upstream does, and what this adapter does the same way:

* image: ``Resize(shortest side -> 224, bicubic on the PIL image)``, ``CenterCrop(224)``, ``convert("RGB")``,
  ``to_tensor`` (/255), ``Normalize(mean, std)`` -> ViT-B/16 -> class token after the final LayerNorm ->
  ``Linear(768, 512, bias=False)``. ``geometry`` is everything up to and including ``convert("RGB")`` (uint8),
  ``intensity`` the scaling and normalisation.
* text: open_clip's ``HFTokenizer`` cleans the text (``ftfy.fix_text``, ``html.unescape`` twice, whitespace
  collapsed), runs the BERT tokenizer with ``max_length=256, padding="max_length", truncation=True``; the tower
  masks tokens equal to ``pad_token_id``, takes the last hidden state of [CLS] and applies the MLP projection.
  Every text is padded to the full context, so batch composition never changes an embedding.
* ``encode_image/encode_text(normalize=True)``: L2 normalisation.
"""

from __future__ import annotations

import html
import json
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
from PIL import Image

from cxrbench.errors import CheckpointError, ConfigError, WeightsNotAvailable
from cxrbench.models import sources
from cxrbench.models.base import Encoder, ModelInfo, l2_normalise, pil_to_uint8
from cxrbench.models.checkpoint import (
    build_without_random_init,
    load_checked,
    load_state_file,
    sha256_file,
    unwrap_state_dict,
)
from cxrbench.models.hf_compat import DERIVED_BUFFERS
from cxrbench.models.hub import OPEN_CLIP_WEIGHT_FILES, snapshot_folder, split_setting
from cxrbench.models.registry import ModelSpec, env_var

ADAPTER = "biomedclip"
HUB_ID = sources.BIOMEDCLIP_HUB_ID
CONFIG_FILE = "open_clip_config.json"
#: The weight files open_clip looks for in a model folder, in its order of preference.
WEIGHT_FILES = OPEN_CLIP_WEIGHT_FILES
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt")
#: open_clip's PreprocessCfg defaults, overridden by the config's preprocess_cfg.
DEFAULT_PREPROCESS = {
    "mean": (0.48145466, 0.4578275, 0.40821073),
    "std": (0.26862954, 0.26130258, 0.27577711),
    "interpolation": "bicubic",
    "resize_mode": "shortest",
    "mode": "RGB",
}
HOW_TO_GET = sources.HOW_TO_GET["biomedclip"]


def _env(key: str) -> str:
    return env_var(ADAPTER, key)


# -- locating the files ------------------------------------------------------------------------------------------
def _hub_snapshot(repo_id: str, filename: str) -> Path | None:
    """The local Hugging Face cache folder holding ``filename`` of ``repo_id``, or None (never downloads)."""
    return snapshot_folder(repo_id, filename)


def _model_folder(setting: str | None) -> Path:
    """The folder holding open_clip_config.json; the checkpoint setting may name it, its weights or a hub id."""
    if setting is None:
        folder = _hub_snapshot(HUB_ID, CONFIG_FILE)
        if folder is None:
            raise WeightsNotAvailable(
                f"{ADAPTER}: no checkpoint configured and {HUB_ID} is not in the local Hugging Face cache. "
                f"Set {_env('checkpoint')} (or checkpoint= / models.yaml) to the BiomedCLIP folder. {HOW_TO_GET}"
            )
        return folder
    value, is_hub = split_setting(setting)
    if is_hub:
        folder = _hub_snapshot(value, CONFIG_FILE)
        if folder is None:
            raise WeightsNotAvailable(
                f"{ADAPTER}: {value} is not in the local Hugging Face cache (offline look-up). Set "
                f"{_env('checkpoint')} to a local BiomedCLIP folder instead. {HOW_TO_GET}"
            )
        return folder
    path = Path(value)
    if path.is_dir():
        return path
    if path.is_file():
        return path.parent
    raise WeightsNotAvailable(f"{ADAPTER}: checkpoint path {path} does not exist ({_env('checkpoint')}). {HOW_TO_GET}")


def _weights_file(setting: str | None, folder: Path) -> Path:
    if setting is not None:
        value, is_hub = split_setting(setting)
        if not is_hub and Path(value).is_file():
            return Path(value)
    for name in WEIGHT_FILES:
        if (folder / name).is_file():
            return folder / name
    raise CheckpointError(
        f"{ADAPTER}: {folder} holds {CONFIG_FILE} but no weights file ({', '.join(WEIGHT_FILES[:3])}, ...)."
    )


def _read_config(folder: Path) -> dict:
    path = folder / CONFIG_FILE
    if not path.is_file():
        raise CheckpointError(f"{ADAPTER}: {folder} has no {CONFIG_FILE}; is it an open_clip model folder?")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{ADAPTER}: {path} is not valid JSON ({exc}).") from exc
    if not isinstance(config, dict) or "model_cfg" not in config:
        raise CheckpointError(f"{ADAPTER}: {path} has no 'model_cfg'; not an open_clip hub config.")
    return config


# -- the architecture described by the config -------------------------------------------------------------------
@dataclass(frozen=True)
class Architecture:
    embed_dim: int
    timm_name: str
    image_size: int
    hf_name: str
    hf_tokenizer: str
    context_length: int
    tokenizer_kwargs: dict


def _architecture(config: dict, source: Path) -> Architecture:
    """Read model_cfg; refuse settings this adapter does not implement (it mirrors BiomedCLIP's only)."""
    cfg = config["model_cfg"]
    vision, text = cfg.get("vision_cfg", {}), cfg.get("text_cfg", {})
    expected = {
        ("vision_cfg", "timm_pool"): (vision.get("timm_pool", "avg"), ""),
        ("vision_cfg", "timm_proj"): (vision.get("timm_proj", "linear"), "linear"),
        ("vision_cfg", "timm_proj_bias"): (vision.get("timm_proj_bias", False), False),
        ("text_cfg", "hf_proj_type"): (text.get("hf_proj_type", "mlp"), "mlp"),
        ("text_cfg", "hf_pooler_type"): (text.get("hf_pooler_type"), "cls_last_hidden_state_pooler"),
    }
    bad = [f"{a}.{b}={got!r} (expected {want!r})" for (a, b), (got, want) in expected.items() if got != want]
    if not vision.get("timm_model_name") or not text.get("hf_model_name"):
        bad.append("vision_cfg.timm_model_name and text_cfg.hf_model_name are required")
    if cfg.get("quick_gelu") or text.get("tokenizer_mode"):
        bad.append("quick_gelu / tokenizer_mode are not BiomedCLIP settings")
    if bad:
        raise ConfigError(f"{ADAPTER}: {source / CONFIG_FILE} describes a model this adapter does not "
                          f"implement: {'; '.join(bad)}")
    size = vision.get("image_size", 224)
    if isinstance(size, (list, tuple)):
        if len(set(size)) != 1:
            raise ConfigError(f"{ADAPTER}: non-square image_size {size} is not supported")
        size = size[0]
    return Architecture(
        embed_dim=int(cfg["embed_dim"]), timm_name=vision["timm_model_name"], image_size=int(size),
        hf_name=text["hf_model_name"], hf_tokenizer=text.get("hf_tokenizer_name") or text["hf_model_name"],
        context_length=int(text.get("context_length", 77)), tokenizer_kwargs=dict(text.get("tokenizer_kwargs", {})),
    )


def _preprocess(config: dict, image_size: int) -> dict:
    pre = dict(DEFAULT_PREPROCESS)
    pre.update({k: v for k, v in config.get("preprocess_cfg", {}).items() if k in pre})
    if pre["resize_mode"] != "shortest" or pre["mode"] != "RGB":
        raise ConfigError(f"{ADAPTER}: preprocess resize_mode={pre['resize_mode']!r} mode={pre['mode']!r} "
                          "is not supported (BiomedCLIP uses 'shortest' / 'RGB')")
    if pre["interpolation"] not in ("bicubic", "bilinear", "nearest"):
        raise ConfigError(f"{ADAPTER}: unknown interpolation {pre['interpolation']!r}")
    pre["size"] = image_size
    return pre


class VisionTower(nn.Module):
    """open_clip's TimmModel with pool='' and proj='linear': timm trunk (own pooling, no classifier) + Linear."""

    def __init__(self, timm_name: str, embed_dim: int):
        super().__init__()
        import timm

        try:
            self.trunk = build_without_random_init(lambda: timm.create_model(timm_name, pretrained=False, num_classes=0))
        except (RuntimeError, TypeError) as exc:  # unknown model name / argument
            raise ConfigError(f"{ADAPTER}: timm cannot build {timm_name!r}: {exc}") from exc
        self.head = nn.Sequential(OrderedDict(
            drop=nn.Dropout(0.0), proj=nn.Linear(self.trunk.num_features, embed_dim, bias=False),
        ))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.trunk(x))


class TextTower(nn.Module):
    """open_clip's HFTextEncoder for BERT: no BERT pooler, [CLS] last hidden state, Linear-GELU-Linear."""

    def __init__(self, config, embed_dim: int):
        super().__init__()
        from transformers import AutoModel

        self.transformer = AutoModel.from_config(config, add_pooling_layer=False)
        self.pad_token_id = config.pad_token_id
        width = config.hidden_size
        hidden = (width + embed_dim) // 2
        self.proj = nn.Sequential(
            nn.Linear(width, hidden, bias=False), nn.GELU(), nn.Linear(hidden, embed_dim, bias=False),
        )

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        mask = (input_ids != self.pad_token_id).long()
        out = self.transformer(input_ids=input_ids, attention_mask=mask)
        return self.proj(out.last_hidden_state[:, 0, :])


class BiomedClipModel(nn.Module):
    """Same module names as open_clip's CustomTextCLIP, so the release's keys load one to one."""

    def __init__(self, arch: Architecture, text_config):
        super().__init__()
        self.visual = VisionTower(arch.timm_name, arch.embed_dim)
        self.text = TextTower(text_config, arch.embed_dim)
        self.logit_scale = nn.Parameter(torch.tensor(float(np.log(1 / 0.07))))


# -- text config and tokenizer -----------------------------------------------------------------------------------
def _text_config(setting: str | None, arch: Architecture):
    from transformers import AutoConfig

    source = split_setting(setting)[0] if setting else arch.hf_name
    try:
        config = AutoConfig.from_pretrained(source, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise WeightsNotAvailable(
            f"{ADAPTER}: the text tower's config {source!r} is not available offline ({exc.__class__.__name__}). "
            f"Set {_env('text_config')} to a folder holding the config.json of {arch.hf_name}, or put that repo "
            f"in the Hugging Face cache. {HOW_TO_GET}"
        ) from exc
    if config.model_type != "bert":
        raise ConfigError(f"{ADAPTER}: text config {source!r} is model_type {config.model_type!r}, expected 'bert'")
    return config, source


def _tokenizer(setting: str | None, folder: Path, arch: Architecture):
    from transformers import AutoTokenizer

    if setting:
        source = split_setting(setting)[0]
    elif any((folder / name).is_file() for name in TOKENIZER_FILES):
        source = str(folder)  # open_clip's local-dir behaviour: the tokenizer lives in the model folder
    else:
        source = arch.hf_tokenizer
    try:
        return AutoTokenizer.from_pretrained(source, local_files_only=True, **arch.tokenizer_kwargs), source
    except (OSError, ValueError) as exc:
        raise WeightsNotAvailable(
            f"{ADAPTER}: tokenizer {source!r} is not available offline ({exc.__class__.__name__}). Set "
            f"{_env('tokenizer')} to a folder with vocab.txt / tokenizer files of {arch.hf_tokenizer}. {HOW_TO_GET}"
        ) from exc


def clean_text(text: str) -> str:
    """open_clip's 'whitespace' cleaning: ftfy, HTML entities (twice), collapsed whitespace."""
    import ftfy

    text = html.unescape(html.unescape(ftfy.fix_text(text))).strip()
    return " ".join(text.split()).strip()


# -- the checkpoint ----------------------------------------------------------------------------------------------
class BiomedClip(Encoder):
    """BiomedCLIP image/text encoder (ViT-B/16 + PubMedBERT, 512-d)."""

    def __init__(self, spec: ModelSpec, device: str = "cpu", checkpoint: str | None = None,
                 text_config: str | None = None, tokenizer: str | None = None):
        self.device = torch.device(device)
        folder = _model_folder(checkpoint)
        config = _read_config(folder)
        weights = _weights_file(checkpoint, folder)
        arch = _architecture(config, folder)
        self.preprocess = _preprocess(config, arch.image_size)
        bert_config, text_source = _text_config(text_config, arch)
        self.tokenizer, tokenizer_source = _tokenizer(tokenizer, folder, arch)
        self.context_length = arch.context_length
        state = unwrap_state_dict(load_state_file(weights, adapter=ADAPTER), adapter=ADAPTER,
                                  source=weights)
        self.model = BiomedClipModel(arch, bert_config)
        load_checked(self.model, state, adapter=ADAPTER, source=weights, allow_unexpected=DERIVED_BUFFERS)
        self.model.to(self.device).eval()
        self.mean = torch.tensor(self.preprocess["mean"], dtype=torch.float32).view(1, -1, 1, 1).to(self.device)
        self.std = torch.tensor(self.preprocess["std"], dtype=torch.float32).view(1, -1, 1, 1).to(self.device)
        self.info = ModelInfo(
            name=spec.name, family=spec.family, checkpoint=str(weights), checkpoint_sha256=sha256_file(weights),
            embed_dim=arch.embed_dim,
            preprocessing=(f"resize shortest side to {arch.image_size} ({self.preprocess['interpolation']}, PIL), "
                           f"center crop {arch.image_size}, RGB, /255, normalise mean/std "
                           f"{tuple(self.preprocess['mean'])}/{tuple(self.preprocess['std'])}"),
            extra={"config": str(folder / CONFIG_FILE), "text_config": text_source,
                   "tokenizer": tokenizer_source, "context_length": arch.context_length,
                   "timm_model": arch.timm_name},
        )

    def geometry(self, image: Image.Image) -> torch.Tensor:
        import torchvision.transforms.functional as TF
        from torchvision.transforms import InterpolationMode

        size = self.preprocess["size"]
        image = TF.resize(image, size, interpolation=InterpolationMode(self.preprocess["interpolation"]))
        image = TF.center_crop(image, [size, size])
        return pil_to_uint8(image.convert("RGB"))

    def decode_need(self) -> tuple[str, int]:
        """Resize mode "shortest": the shorter side to the input size."""
        return ("shorter", int(self.preprocess["size"]))

    def text_settings(self) -> dict:
        return {**super().text_settings(), "context_length": self.context_length}

    def intensity(self, pixels: torch.Tensor) -> torch.Tensor:
        return (pixels.float() / 255.0 - self.mean.to(pixels.device)) / self.std.to(pixels.device)

    @torch.no_grad()
    def embed_pixels(self, model_input: torch.Tensor) -> torch.Tensor:
        return l2_normalise(self.model.visual(model_input.to(self.device, torch.float32)))

    def tokenize(self, texts: Sequence[str]) -> torch.Tensor:
        """open_clip HFTokenizer ids: cleaned text, padded / truncated to the context length."""
        return self.tokenizer(
            [clean_text(t) for t in texts], return_tensors="pt", max_length=self.context_length,
            padding="max_length", truncation=True,
        ).input_ids

    @torch.no_grad()
    def embed_text_batch(self, texts: list[str]) -> torch.Tensor:
        return self.model.text(self.tokenize(texts).to(self.device))


def build(spec: ModelSpec, device: str = "cpu", checkpoint: str | None = None, text_config: str | None = None,
          tokenizer: str | None = None) -> BiomedClip:
    """Registry builder: settings ``checkpoint`` (folder / weights file / hf-hub id), ``text_config``,
    ``tokenizer`` (folders or hub ids, resolved offline)."""
    return BiomedClip(spec, device=device, checkpoint=checkpoint, text_config=text_config, tokenizer=tokenizer)
