"""MedCLIP adapters (Wang et al., EMNLP 2022; github.com/RyanWangZf/MedCLIP): ``medclip`` (Swin-T vision
tower, "MedCLIP-ViT") and ``medclip_resnet`` (ResNet-50 vision tower).

Checkpoint format
    Both releases are one ``pytorch_model.bin``: the ``state_dict()`` of upstream's ``MedCLIPModel``, written
    with transformers 4.2x. Key layout::

        vision_model.model.*              Swin-T: a Hugging Face ``SwinModel`` (4.x module names)
                                          ResNet: a torchvision ``resnet50`` whose ``fc`` (2048 -> 512, no bias)
                                          *is* the projection head
        vision_model.projection_head.weight   Swin only: Linear(768 -> 512, no bias) on ``pooler_output``
        text_model.model.*                a Hugging Face ``BertModel`` (Bio_ClinicalBERT, pooler included)
        text_model.projection_head.weight Linear(768 -> 512, no bias)
        logit_scale                       scalar temperature (unused for embeddings)

    Keys and derived buffers of transformers 4.x (Swin ``attention.self.query`` ..., ``relative_position_index``,
    BERT ``embeddings.position_ids``) are mapped to the installed transformers by
    :func:`cxrbench.models.hf_compat.translate_state_dict`; anything it cannot map is named by the loud key check.

Architecture (no download, no ``.cuda()``)
    Upstream's constructors download Bio_ClinicalBERT and microsoft/swin-tiny-patch4-window7-224 (and the
    ImageNet ResNet-50) and later call ``.cuda()`` on the inputs. Here the architectures are built from data:

    * text: the ``config.json`` of the Bio_ClinicalBERT folder given as the ``tokenizer`` setting (the hub repo
      ships it beside ``vocab.txt``; upstream reads the same file through ``AutoModel.from_pretrained``), or the
      known Bio_ClinicalBERT config stored below when the folder has none. Sizes are not guessed: a config that
      does not fit the checkpoint fails the shape check.
    * vision: the known swin-tiny config / torchvision's ResNet-50, with every size that the checkpoint's tensor
      shapes determine read from them (Swin embed dim, depths, heads, window, patch, MLP ratio; ResNet blocks per
      stage, bottleneck width and expansion; projection sizes). The released checkpoints give swin-tiny and
      resnet50 exactly; the tiny test checkpoints give tiny variants of the same code.

Image preprocessing (upstream ``MedCLIPFeatureExtractor``, run with transformers 4.24 to check)
    geometry: paste the image, converted to 8-bit grayscale ("L", ITU-R 601 luma for RGB), at offset
    ((S-w)//2, (S-h)//2) on a black square of side S = max(224, w, h) -- smaller images are padded, not
    enlarged -- then PIL bicubic resize to 224x224 and centre crop 224 (a no-op). Output (1, 224, 224) uint8.
    intensity: x / 255, (x - 0.5862785803043838) / 0.27950088968644304, the one channel repeated to three
    (upstream repeats inside the vision model's forward). Upstream's extractor passes its arguments
    positionally in the order of transformers <= 4.24's ``CLIPFeatureExtractor``; with newer transformers they
    shift, so it is not called here.

Text
    Bio_ClinicalBERT's tokenizer as ``AutoTokenizer`` loads it from the hub repo: that repo has no
    tokenizer_config.json, so the default ``do_lower_case=True`` applies although the vocabulary is cased.
    Upstream pools ``mean over tokens`` of hidden states 1, 2 and the last (outputs of the first, second and last
    transformer layer), then the mean over these three, and projects. The token mean includes padded positions,
    so upstream's embedding of a text depends on how far its batch was padded. Here every text is truncated and
    padded to 77 tokens (upstream sets ``model_max_length = 77`` and truncates when training), so an embedding
    never depends on the batch; this equals upstream exactly whenever upstream's batch holds a text of >= 77
    tokens (the golden test's batch does).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from PIL import Image
from torch import nn

from cxrbench.errors import CheckpointError, ConfigError, CxrBenchError, WeightsNotAvailable
from cxrbench.models import sources
from cxrbench.models.base import Encoder, ModelInfo, l2_normalise, pil_to_uint8
from cxrbench.models.checkpoint import (
    build_without_random_init,
    load_checked,
    load_state_file,
    raise_all,
    sha256_file,
)
from cxrbench.models.hf_compat import DERIVED_BUFFERS, translate_state_dict
from cxrbench.models.hub import split_setting
from cxrbench.models.registry import env_var

WEIGHTS_NAME = sources.MEDCLIP_WEIGHTS_NAME
BERT_ID = sources.BIO_CLINICALBERT_ID
IMAGE_SIZE = 224
IMAGE_MEAN = 0.5862785803043838
IMAGE_STD = 0.27950088968644304
TEXT_MAX_LENGTH = 77
#: hidden_states indices pooled by upstream (0 is the embedding output)
POOLED_HIDDEN_STATES = (1, 2, -1)

#: where the released zips are (upstream's medclip/medclip_*_weight.txt point at these)
RELEASES = sources.MEDCLIP_RELEASES

#: config.json of emilyalsentzer/Bio_ClinicalBERT (used when the tokenizer folder has none)
BIO_CLINICALBERT_CONFIG = {
    "attention_probs_dropout_prob": 0.1,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1,
    "hidden_size": 768,
    "initializer_range": 0.02,
    "intermediate_size": 3072,
    "layer_norm_eps": 1e-12,
    "max_position_embeddings": 512,
    "model_type": "bert",
    "num_attention_heads": 12,
    "num_hidden_layers": 12,
    "pad_token_id": 0,
    "type_vocab_size": 2,
    "vocab_size": 28996,
}

#: config.json of microsoft/swin-tiny-patch4-window7-224 (classification labels left out)
SWIN_TINY_CONFIG = {
    "attention_probs_dropout_prob": 0.0,
    "depths": [2, 2, 6, 2],
    "drop_path_rate": 0.1,
    "embed_dim": 96,
    "encoder_stride": 32,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.0,
    "image_size": 224,
    "initializer_range": 0.02,
    "layer_norm_eps": 1e-05,
    "mlp_ratio": 4.0,
    "model_type": "swin",
    "num_channels": 3,
    "num_heads": [3, 6, 12, 24],
    "patch_size": 4,
    "qkv_bias": True,
    "use_absolute_embeddings": False,
    "window_size": 7,
}

#: torchvision resnet50: blocks per stage, bottleneck width per group, bottleneck expansion
RESNET50 = {"layers": [3, 4, 6, 3], "width_per_group": 64, "expansion": 4}

PROJ_DIM = 512
VISION_PREFIX = "vision_model.model."
TEXT_PREFIX = "text_model.model."


# ------------------------------------------------------------------------------------------------ images
def pad_to_square_gray(image: Image.Image, min_size: int = IMAGE_SIZE) -> Image.Image:
    """Upstream ``pad_img``: the image as "L", centred (floor offsets) on a black square of side
    max(min_size, w, h). Pasting a non-"L" image onto an "L" canvas converts it with ``convert("L")``."""
    w, h = image.size
    side = max(min_size, w, h)
    canvas = Image.new("L", (side, side), 0)
    canvas.paste(image if image.mode == "L" else image.convert("L"), ((side - w) // 2, (side - h) // 2))
    return canvas


def medclip_geometry(image: Image.Image, size: int = IMAGE_SIZE) -> torch.Tensor:
    """Pad to a black square, bicubic resize to ``size`` x ``size``, centre crop ``size``: (1, H, W) uint8."""
    square = pad_to_square_gray(image, min_size=size).resize((size, size), resample=Image.BICUBIC)
    left = (square.width - size) // 2
    top = (square.height - size) // 2
    square = square.crop((left, top, left + size, top + size))
    return pil_to_uint8(square)


def medclip_intensity(pixels: torch.Tensor) -> torch.Tensor:
    """(B, 1, H, W) on 0..255 -> normalised (B, 3, H, W): x/255, (x - mean)/std, gray repeated to 3."""
    x = (pixels.float() / 255.0 - IMAGE_MEAN) / IMAGE_STD
    if x.shape[1] == 1:
        x = x.repeat(1, 3, 1, 1)
    return x


# --------------------------------------------------------------------------------------- shape inference
def _shape(state: Mapping[str, torch.Tensor], key: str) -> tuple[int, ...] | None:
    t = state.get(key)
    return tuple(t.shape) if isinstance(t, torch.Tensor) else None


def _first_shape(state: Mapping[str, torch.Tensor], pattern: str) -> tuple[int, ...] | None:
    rx = re.compile(pattern)
    for key in sorted(state):
        if rx.fullmatch(key) and isinstance(state[key], torch.Tensor):
            return tuple(state[key].shape)
    return None


def _indexed_counts(keys: Sequence[str], pattern: str) -> dict[int, int]:
    """For keys matching ``pattern`` with groups (outer, inner): outer index -> number of inner indices."""
    rx = re.compile(pattern)
    counts: dict[int, int] = {}
    for key in keys:
        m = rx.match(key)
        if m:
            outer, inner = int(m.group(1)), int(m.group(2))
            counts[outer] = max(counts.get(outer, 0), inner + 1)
    return counts


def infer_swin_config(state: Mapping[str, torch.Tensor]) -> dict:
    """swin-tiny's config with every size that the checkpoint's Swin tensors determine read from them.

    Accepts transformers 4.x and 5.x key names; keys that are absent leave the swin-tiny value (the key check
    then names them)."""
    cfg = json.loads(json.dumps(SWIN_TINY_CONFIG))
    p = re.escape(VISION_PREFIX)
    patch = _shape(state, VISION_PREFIX + "embeddings.patch_embeddings.projection.weight")
    if patch is not None and len(patch) == 4:
        cfg["embed_dim"], cfg["num_channels"], cfg["patch_size"] = patch[0], patch[1], patch[2]
    depths = _indexed_counts(list(state), p + r"encoder\.layers\.(\d+)\.blocks\.(\d+)\.")
    if depths:
        cfg["depths"] = [depths.get(i, 1) for i in range(max(depths) + 1)]
    heads, window = [], cfg["window_size"]
    for i in range(len(cfg["depths"])):
        table = _first_shape(state, p + rf"encoder\.layers\.{i}\.blocks\.\d+\.attention\."
                             r"(self\.|relative_position_bias\.)relative_position_bias_table")
        default = SWIN_TINY_CONFIG["num_heads"][min(i, 3)]
        heads.append(table[1] if table is not None and len(table) == 2 else default)
        if table is not None and i == 0:
            window = (round(table[0] ** 0.5) + 1) // 2
    cfg["num_heads"], cfg["window_size"] = heads, window
    fc1 = _first_shape(state, p + r"encoder\.layers\.0\.blocks\.0\.(intermediate\.dense|mlp\.fc1)\.weight")
    if fc1 is not None:
        cfg["mlp_ratio"] = fc1[0] / cfg["embed_dim"]
    cfg["use_absolute_embeddings"] = VISION_PREFIX + "embeddings.position_embeddings" in state
    has_q = _first_shape(state, p + r"encoder\.layers\.0\.blocks\.0\.attention\.(self\.query|q_proj)\.weight")
    has_qb = _first_shape(state, p + r"encoder\.layers\.0\.blocks\.0\.attention\.(self\.query|q_proj)\.bias")
    cfg["qkv_bias"] = has_q is None or has_qb is not None
    return cfg


def infer_resnet_layout(state: Mapping[str, torch.Tensor]) -> dict:
    """torchvision resnet50's layout with blocks per stage, bottleneck width and expansion read from the
    checkpoint (stage widths are torchvision's 64, 128, 256, 512 times the expansion)."""
    out = dict(RESNET50)
    counts = _indexed_counts(list(state), re.escape(VISION_PREFIX) + r"layer([1-4])\.(\d+)\.conv1\.weight")
    if counts:
        out["layers"] = [counts.get(i, RESNET50["layers"][i - 1]) for i in range(1, 5)]
    conv1 = _shape(state, VISION_PREFIX + "layer1.0.conv1.weight")
    if conv1 is not None:
        out["width_per_group"] = conv1[0]
    conv3 = _shape(state, VISION_PREFIX + "layer1.0.conv3.weight")
    if conv3 is not None and conv3[0] >= 64:
        out["expansion"] = conv3[0] // 64
    return out


def _projection(state: Mapping[str, torch.Tensor], key: str, in_features: int) -> nn.Linear:
    """Upstream's heads are Linear(hidden, 512, bias=False); the output size is read from the checkpoint."""
    shape = _shape(state, key + ".weight")
    out_features = shape[0] if shape is not None and len(shape) == 2 else PROJ_DIM
    return nn.Linear(in_features, out_features, bias=key + ".bias" in state)


# ------------------------------------------------------------------------------------------------ modules
class TextTower(nn.Module):
    """``text_model``: Bio_ClinicalBERT + projection; pooling as upstream (see module docstring)."""

    def __init__(self, bert_config, state: Mapping[str, torch.Tensor]):
        super().__init__()
        from transformers import BertModel

        self.model = BertModel(bert_config)
        self.projection_head = _projection(state, "text_model.projection_head", bert_config.hidden_size)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True)
        layers = torch.stack([out.hidden_states[i] for i in POOLED_HIDDEN_STATES], dim=1)  # (B, 3, T, H)
        pooled = layers.mean(dim=2).mean(dim=1)  # every position, padding included, as upstream
        return self.projection_head(pooled)


class SwinTower(nn.Module):
    """``vision_model`` of MedCLIP-ViT: SwinModel ``pooler_output`` -> projection_head."""

    def __init__(self, swin_config: dict, state: Mapping[str, torch.Tensor]):
        super().__init__()
        from transformers import SwinConfig, SwinModel

        config = SwinConfig(**swin_config)
        self.model = SwinModel(config, add_pooling_layer=True)
        self.projection_head = _projection(state, "vision_model.projection_head", config.hidden_size)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.projection_head(self.model(pixel_values=pixel_values).pooler_output)


class ResNetTower(nn.Module):
    """``vision_model`` of MedCLIP-ResNet: torchvision ResNet-50 whose ``fc`` is the projection head."""

    def __init__(self, layout: dict, state: Mapping[str, torch.Tensor]):
        super().__init__()
        from torchvision.models.resnet import Bottleneck, ResNet

        block = Bottleneck
        if layout["expansion"] != Bottleneck.expansion:
            block = type(f"Bottleneck{layout['expansion']}", (Bottleneck,), {"expansion": layout["expansion"]})
        self.model = build_without_random_init(  # the checkpoint fills every tensor (loud key check)
            lambda: ResNet(block, layout["layers"], width_per_group=layout["width_per_group"]))
        self.model.fc = _projection(state, VISION_PREFIX + "fc", self.model.fc.in_features)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.model(pixel_values)


class MedCLIPNetwork(nn.Module):
    """Mirrors the module tree of upstream's ``MedCLIPModel`` so that its state_dict keys match."""

    def __init__(self, vision_model: nn.Module, text_model: TextTower):
        super().__init__()
        self.vision_model = vision_model
        self.text_model = text_model
        self.logit_scale = nn.Parameter(torch.log(torch.tensor(1 / 0.07)))


# ------------------------------------------------------------------------------------------------ encoder
class MedCLIPEncoder(Encoder):
    image_batch_size = 32
    text_batch_size = 64

    def __init__(self, network: MedCLIPNetwork, tokenizer, info: ModelInfo, device: torch.device):
        self.network = network
        self.tokenizer = tokenizer
        self.info = info
        self.device = device

    @property
    def geometry_key(self) -> str:
        """Both MedCLIP variants share one image pipeline."""
        return f"gray-padsquare-bicubic{IMAGE_SIZE}"

    def geometry(self, image: Image.Image) -> torch.Tensor:
        return medclip_geometry(image)

    def decode_need(self) -> tuple[str, int]:
        """Padded to a square of the longer side, then resized to IMAGE_SIZE."""
        return ("longer", IMAGE_SIZE)

    def text_settings(self) -> dict:
        return {**super().text_settings(), "max_length": TEXT_MAX_LENGTH, "padding": "max_length"}

    def intensity(self, pixels: torch.Tensor) -> torch.Tensor:
        return medclip_intensity(pixels)

    @torch.no_grad()
    def embed_pixels(self, model_input: torch.Tensor) -> torch.Tensor:
        return l2_normalise(self.network.vision_model(model_input.to(self.device, torch.float32)))

    @torch.no_grad()
    def embed_text_batch(self, texts: list[str]) -> torch.Tensor:
        tokens = self.tokenizer(texts, max_length=TEXT_MAX_LENGTH, padding="max_length", truncation=True,
                                return_tensors="pt")
        return self.network.text_model(tokens["input_ids"].to(self.device), tokens["attention_mask"].to(self.device))


# ------------------------------------------------------------------------------------------------ loading
def _vision_kind(spec) -> str:
    kind = spec.options.get("vision") or ("resnet" if "resnet" in spec.name else "swin")
    if kind not in RELEASES:
        raise ConfigError(f"{spec.name}: option vision={kind!r}; expected one of {sorted(RELEASES)}")
    return kind


def _how_to_get(spec, kind: str) -> str:
    return spec.how_to_get or (
        f"download and unzip {RELEASES[kind]} (the MedCLIP release) and point at its {WEIGHTS_NAME}"
    )


def resolve_checkpoint(spec, kind: str, checkpoint: str | Path | None) -> Path:
    if not checkpoint:
        raise WeightsNotAvailable(
            f"{spec.name}: no checkpoint configured. Set {env_var(spec.name, 'checkpoint')} (or pass "
            f"checkpoint=..., or add it to models.yaml) to the released {WEIGHTS_NAME} or the folder holding "
            f"it: {_how_to_get(spec, kind)}."
        )
    path = Path(checkpoint).expanduser()
    return path / WEIGHTS_NAME if path.is_dir() else path


def resolve_bert_folder(spec, tokenizer: str | Path | None) -> Path:
    """The Bio_ClinicalBERT folder: a local directory, or an HF id found in the local HF cache (offline)."""
    value, is_hub = split_setting(tokenizer or BERT_ID)
    if not is_hub:
        if Path(value).is_dir():
            return Path(value)
        raise ConfigError(f"{spec.name}: tokenizer setting {value!r} is neither a folder nor a Hugging Face id.")
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(value, local_files_only=True))
    except (OSError, ValueError) as exc:  # LocalEntryNotFoundError (not cached), HFValidationError
        raise WeightsNotAvailable(
            f"{spec.name}: the text tokenizer {value!r} is not in the local Hugging Face cache. Set "
            f"{env_var(spec.name, 'tokenizer')} (or tokenizer=...) to a folder holding its vocab.txt "
            f"(and config.json), or cache {BERT_ID} (vocab.txt, config.json) on a machine with internet."
        ) from exc


def load_tokenizer(spec, folder: Path):
    import transformers

    cls = getattr(transformers, "BertTokenizerFast", None) or transformers.BertTokenizer
    if not (folder / "vocab.txt").is_file() and not (folder / "tokenizer.json").is_file():
        raise ConfigError(f"{spec.name}: tokenizer folder {folder} has no vocab.txt / tokenizer.json.")
    return cls.from_pretrained(str(folder))


def bert_config(folder: Path):
    """The folder's config.json when it is a BERT config (as in the hub repo), else Bio_ClinicalBERT's.

    Only absolute position embeddings are accepted: transformers 5's BertModel dropped the relative kinds and
    would ignore the setting silently (Bio_ClinicalBERT uses absolute ones)."""
    from transformers import BertConfig

    data = dict(BIO_CLINICALBERT_CONFIG)
    cfg_file = folder / "config.json"
    if cfg_file.is_file():
        found = json.loads(cfg_file.read_text())
        if found.get("model_type", "bert") == "bert":
            data = found
    if data.get("position_embedding_type", "absolute") != "absolute":
        raise ConfigError(f"{cfg_file}: position_embedding_type {data['position_embedding_type']!r} is not "
                          "supported (MedCLIP's Bio_ClinicalBERT uses 'absolute').")
    data = {k: v for k, v in data.items() if k not in ("architectures", "_name_or_path", "transformers_version")}
    return BertConfig(**data)


def _check_is_medclip(spec, kind: str, state: object, source: Path) -> dict:
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{spec.name}: {source} is not a MedCLIP state_dict (a flat mapping of tensors).")
    if not any(k.startswith((VISION_PREFIX, TEXT_PREFIX)) for k in state):
        first = ", ".join(sorted(state)[:5])
        raise CheckpointError(
            f"{spec.name}: {source} is not a MedCLIP checkpoint: no vision_model.model.* / text_model.model.* "
            f"keys (first keys: {first}). {_how_to_get(spec, kind)}."
        )
    found = {
        "resnet": any(k.startswith(VISION_PREFIX + "layer1.") for k in state),
        "swin": any(k.startswith(VISION_PREFIX + "encoder.layers.") for k in state),
    }
    other = "resnet" if kind == "swin" else "swin"
    if found[other] and not found[kind]:
        raise CheckpointError(
            f"{spec.name}: {source} is a MedCLIP checkpoint with a {other} vision tower, but this adapter "
            f"loads the {kind} one; use {'medclip_resnet' if other == 'resnet' else 'medclip'} instead."
        )
    return state


def build_network(kind: str, state: Mapping[str, torch.Tensor], text_config) -> MedCLIPNetwork:
    vision = SwinTower(infer_swin_config(state), state) if kind == "swin" else ResNetTower(
        infer_resnet_layout(state), state)
    return MedCLIPNetwork(vision, TextTower(text_config, state))


def build(spec, device: str = "cpu", checkpoint: str | Path | None = None,
          tokenizer: str | Path | None = None) -> MedCLIPEncoder:
    """Build ``medclip`` / ``medclip_resnet`` from the released ``pytorch_model.bin`` and Bio_ClinicalBERT."""
    kind = _vision_kind(spec)
    path = resolve_checkpoint(spec, kind, checkpoint)
    problems: list[CxrBenchError] = []  # a bad checkpoint and a missing tokenizer are reported together
    try:
        state = _check_is_medclip(spec, kind, load_state_file(path, adapter=spec.name), path)
    except CxrBenchError as exc:
        problems.append(exc)
    try:
        folder = resolve_bert_folder(spec, tokenizer)
        tok = load_tokenizer(spec, folder)
    except CxrBenchError as exc:
        problems.append(exc)
    raise_all(problems, spec.name)

    network = build_network(kind, state, bert_config(folder))
    translated, dropped = translate_state_dict(state, network.state_dict().keys())
    load_checked(network, translated, adapter=spec.name, source=path, allow_unexpected=DERIVED_BUFFERS)
    dev = torch.device(device)
    network = network.to(dev).float().eval()

    embed_dim = network.text_model.projection_head.out_features
    info = ModelInfo(
        name=spec.name, family=spec.family, checkpoint=str(path), checkpoint_sha256=sha256_file(path),
        embed_dim=embed_dim,
        preprocessing=f"pad to black square (gray L) -> bicubic resize {IMAGE_SIZE} -> centre crop {IMAGE_SIZE}; "
                      f"/255, (x-{IMAGE_MEAN:.4f})/{IMAGE_STD:.4f}, gray->3ch; text: lower-cased Bio_ClinicalBERT "
                      f"wordpieces padded/truncated to {TEXT_MAX_LENGTH}",
        extra={"vision": kind, "tokenizer": str(folder), "text_max_length": TEXT_MAX_LENGTH,
               "logit_scale": float(network.logit_scale.detach()), "dropped_buffers": len(dropped)},
    )
    return MedCLIPEncoder(network, tok, info, dev)
