"""GLoRIA (Huang et al., ICCV 2021; github.com/marshuang80/gloria): global image and report embeddings.

Loads the ORIGINAL release ``chexpert_resnet50.ckpt``, a PyTorch Lightning 1.1 checkpoint:

* ``state_dict``: upstream's ``PretrainModel`` (a LightningModule) whose ``gloria`` attribute holds the model, so
  every key starts with ``gloria.``: ``gloria.img_encoder.model.*`` (torchvision ResNet-50, ``fc`` replaced by an
  identity), ``gloria.img_encoder.global_embedder`` (Linear 2048 -> 768) and ``local_embedder`` (1x1 conv, used
  only for the local, word-region similarities), ``gloria.text_encoder.model.*`` (Bio_ClinicalBERT, with pooler);
* ``hyper_parameters``: the training config as an omegaconf ``DictConfig`` (and ``hparams_type`` naming its class),
  ``callbacks`` keyed by the ``ModelCheckpoint`` / ``EarlyStopping`` classes, optimizer and scheduler state. It
  is read with ``torch.load(weights_only=True)`` and an allow-list of exactly the names such a file pickles (the
  omegaconf stand-ins of :mod:`cxrbench.models.pickled_config` and the two callback classes as inert
  references); anything else is refused.

The architecture comes from ``hyper_parameters``: ``model.vision.model_name`` (``resnet_50``; ``resnet_18`` /
``resnet_34`` load the same way), ``model.text`` (``bert_type``, ``last_n_layers``, ``aggregate_method``,
``agg_tokens``, ``embedding_dim``), ``data.text.word_num`` (97 tokens), ``data.image.imsize`` (256) and
``transforms`` (centre crop 224, ``norm: half``).

What upstream does (``GLoRIA.process_img`` / ``image_encoder_forward`` / ``process_text`` /
``text_encoder_forward``), and the split used here:

* image: read as 8-bit grayscale; OpenCV INTER_AREA resize of the longest side to ``imsize`` (the other side
  ``int()``-truncated), zero padding to a square (floor before, ceil after); ``convert("RGB")``;
  ``CenterCrop(224)``; ``ToTensor``; ``Normalize(0.5, 0.5)``; in the model a bilinear ``Upsample`` to 299 x 299
  (``align_corners=True``) -> ResNet -> global average pool -> ``global_embedder``. ``geometry`` is the grayscale
  resize, pad and crop (uint8, 1 x 224 x 224; :mod:`cxrbench.models.cv_area` reproduces OpenCV's resize
  bit for bit); ``intensity`` is the scaling, normalisation, channel copies and the upsampling to 299, so an
  occlusion covers the 224 x 224 frame upstream's transform produces.
* text: newlines to spaces; split at numbered points (``[0-9]+\\.``) and at full stops; in each piece, lower
  case, words of ``\\w+`` (NLTK's ``RegexpTokenizer``), pieces of one word or less dropped, non-ASCII characters
  removed; pieces joined with spaces. Bio_ClinicalBERT's tokenizer (lower-casing, as ``AutoTokenizer`` loads the
  hub repo), padded and truncated to ``word_num``. The global text embedding (``agg_tokens``, ``sum``) is the sum
  over the last ``last_n_layers`` hidden states of the mean over ``word_num`` positions of the word vectors, where
  word pieces are summed into words and everything after the first ``[SEP]`` is zero: i.e. the sum over those
  layers and over the tokens ``[CLS] .. [SEP]``, divided by ``word_num``. No projection (``emb_global`` is None).
* Similarity is cosine (``get_global_similarities``), so the L2-normalised embeddings give the same ranking.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from cxrbench.errors import CheckpointError, ConfigError, WeightsNotAvailable
from cxrbench.models import sources
from cxrbench.models.base import Encoder, ModelInfo, l2_normalise
from cxrbench.models.checkpoint import build_without_random_init, load_checked, load_state_file, sha256_file
from cxrbench.models.cv_area import resize_area
from cxrbench.models.hf_compat import DERIVED_BUFFERS
from cxrbench.models.hub import offline, split_setting
from cxrbench.models.pickled_config import OMEGACONF_STANDINS, plain_config, type_standins
from cxrbench.models.registry import env_var

FAMILY = "gloria"
UPSAMPLE = 299  # ImageEncoder.resnet_forward: nn.Upsample(size=(299, 299), mode="bilinear", align_corners=True)
PREFIX = "gloria."
#: Exactly the classes a pytorch-lightning 1.1 checkpoint of GLoRIA names besides omegaconf's: the callback
#: classes used as keys of checkpoint["callbacks"].
LIGHTNING_STANDINS = type_standins(
    "pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint",
    "pytorch_lightning.callbacks.early_stopping.EarlyStopping",
)
_RESNETS = {"resnet_18": ("resnet18", 512), "resnet_34": ("resnet34", 512), "resnet_50": ("resnet50", 2048)}
_NORMS = {"half": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
          "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))}
_POINTS = re.compile(r"[0-9]+\.")
_WORDS = re.compile(r"\w+")


# -- the checkpoint ------------------------------------------------------------------------------------------------
def read_checkpoint(path: str | Path, *, adapter: str = FAMILY) -> tuple[dict[str, torch.Tensor], dict]:
    """(state dict with the ``gloria.`` prefix removed, plain training config) of a GLoRIA Lightning checkpoint."""
    obj = load_state_file(path, adapter=adapter, safe_globals=(*OMEGACONF_STANDINS, *LIGHTNING_STANDINS))
    if not isinstance(obj, Mapping) or "state_dict" not in obj or "hyper_parameters" not in obj:
        found = sorted(map(str, obj))[:10] if isinstance(obj, Mapping) else type(obj).__name__
        raise CheckpointError(f"{adapter}: {path} is not a GLoRIA PyTorch Lightning checkpoint: expected "
                              f"'state_dict' and 'hyper_parameters', found {found}. Use {sources.GLORIA_CHECKPOINT_NAME}.")
    state = obj["state_dict"]
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{adapter}: {path}: 'state_dict' is not a state dict of tensors.")
    foreign = sorted(k for k in state if not k.startswith(PREFIX))
    if foreign:
        raise CheckpointError(f"{adapter}: {path}: keys outside the 'gloria.' module: {', '.join(foreign[:10])}; "
                              "is this GLoRIA's pretraining checkpoint (not a fine-tuned classifier)?")
    config = plain_config(obj["hyper_parameters"], adapter=adapter, source=path)
    if not isinstance(config, dict):
        raise CheckpointError(f"{adapter}: {path}: 'hyper_parameters' is not a mapping.")
    return {k[len(PREFIX):]: v for k, v in state.items()}, config


@dataclass(frozen=True)
class Architecture:
    vision: str
    bert_type: str
    last_n_layers: int
    aggregate: str
    agg_tokens: bool
    embedding_dim: int
    word_num: int
    imsize: int
    crop: int | None
    norm: str | None


def _get(config: Mapping, dotted: str, adapter: str, source) -> object:
    node: object = config
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            raise CheckpointError(f"{adapter}: {source}: the stored hyper_parameters have no '{dotted}'.")
        node = node[part]
    return node


def parse_architecture(config: Mapping, *, adapter: str = FAMILY, source: str | Path = "") -> Architecture:
    def get(key):
        return _get(config, key, adapter, source)

    vision = str(get("model.vision.model_name"))
    if vision not in _RESNETS:
        raise CheckpointError(f"{adapter}: {source}: image model {vision!r} is not one GLoRIA's global image "
                              f"path runs (its forward is the ResNet one); supported: {sorted(_RESNETS)}.")
    aggregate = str(get("model.text.aggregate_method"))
    if aggregate not in ("sum", "mean"):
        raise CheckpointError(f"{adapter}: {source}: text aggregate_method {aggregate!r} is not 'sum' or 'mean'.")
    crop = config.get("transforms", {}).get("random_crop")
    norm = config.get("transforms", {}).get("norm")
    if norm is not None and norm not in _NORMS:
        raise CheckpointError(f"{adapter}: {source}: transforms.norm {norm!r} is not 'half' or 'imagenet'.")
    return Architecture(
        vision=vision, bert_type=str(get("model.text.bert_type")), last_n_layers=int(get("model.text.last_n_layers")),
        aggregate=aggregate, agg_tokens=bool(get("model.text.agg_tokens")),
        embedding_dim=int(get("model.text.embedding_dim")), word_num=int(get("data.text.word_num")),
        imsize=int(get("data.image.imsize")), crop=int(crop["crop_size"]) if crop else None, norm=norm,
    )


# -- modules with upstream's parameter names ------------------------------------------------------------------------
class ImageEncoder(nn.Module):
    """Upstream ImageEncoder: ``model`` (torchvision ResNet, fc = identity), ``global_embedder``,
    ``local_embedder`` (kept for the exact key check; the global embedding does not use it)."""

    def __init__(self, vision: str, embedding_dim: int) -> None:
        super().__init__()
        import torchvision

        name, width = _RESNETS[vision]
        self.model = build_without_random_init(lambda: getattr(torchvision.models, name)(weights=None))
        self.model.fc = nn.Identity()
        self.global_embedder = nn.Linear(width, embedding_dim)
        # upstream's cnn_backbones give every ResNet an 'intermediate feature dim' of 1024
        self.local_embedder = nn.Conv2d(1024, embedding_dim, kernel_size=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = self.model
        x = m.maxpool(m.relu(m.bn1(m.conv1(x))))
        x = m.layer4(m.layer3(m.layer2(m.layer1(x))))
        return self.global_embedder(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class TextEncoder(nn.Module):
    """Upstream BertEncoder: ``model`` is the BertModel (pooler included)."""

    def __init__(self, bert_config) -> None:
        super().__init__()
        from transformers import BertModel

        self.model = BertModel(bert_config)


class GloriaModel(nn.Module):
    def __init__(self, arch: Architecture, bert_config) -> None:
        super().__init__()
        self.text_encoder = TextEncoder(bert_config)
        self.img_encoder = ImageEncoder(arch.vision, arch.embedding_dim)


def clean_report(text: str) -> str:
    """``GLoRIA.process_text``'s cleaning of one report (see the module docstring)."""
    pieces = [s for point in _POINTS.split(text.replace("\n", " ")) for s in point.split(".")]
    sentences = []
    for piece in pieces:
        words = _WORDS.findall(piece.replace("\ufffd\ufffd", " ").lower())
        if len(words) <= 1:
            continue
        kept = [w.encode("ascii", "ignore").decode("ascii") for w in words]
        sentences.append(" ".join(w for w in kept if w))
    return " ".join(sentences)


def pool_text(hidden_states: tuple[torch.Tensor, ...], pooled: torch.Tensor, input_ids: torch.Tensor,
              sep_id: int, arch: Architecture) -> torch.Tensor:
    """BertEncoder's global (sentence) embedding from the BERT outputs (module docstring)."""
    if arch.last_n_layers <= 1:
        return pooled  # upstream uses outputs[1], the pooler output
    layers = torch.stack(hidden_states[-arch.last_n_layers:], dim=1)  # (B, L, T, H)
    if arch.agg_tokens:
        is_sep = (input_ids == sep_id).long()
        first_sep = torch.where(is_sep.any(1), is_sep.argmax(1), torch.full_like(is_sep[:, 0], input_ids.shape[1] - 1))
        keep = (torch.arange(input_ids.shape[1], device=input_ids.device)[None] <= first_sep[:, None]).to(layers.dtype)
        per_layer = (layers * keep[:, None, :, None]).sum(2) / input_ids.shape[1]
    else:
        per_layer = layers.mean(2)
    return per_layer.sum(1) if arch.aggregate == "sum" else per_layer.mean(1)


# -- the encoder ---------------------------------------------------------------------------------------------------
class GloriaEncoder(Encoder):
    def __init__(self, model: GloriaModel, tokenizer, arch: Architecture, info: ModelInfo,
                 device: str | torch.device = "cpu") -> None:
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.tokenizer = tokenizer
        self.arch = arch
        self.info = info
        mean, std = _NORMS.get(arch.norm or "", ((0.0,) * 3, (1.0,) * 3))
        self._mean = torch.tensor(mean, device=self.device).view(1, 3, 1, 1)
        self._std = torch.tensor(std, device=self.device).view(1, 3, 1, 1)
        self._sep_id = tokenizer.sep_token_id

    @property
    def geometry_key(self) -> str:
        return f"gray-cvarea-longest{self.arch.imsize}-zeropad-crop{self.arch.crop}"

    def decode_need(self) -> tuple[str, int]:
        """INTER_AREA resize of the longer side to imsize."""
        return ("longer", int(self.arch.imsize))

    def text_settings(self) -> dict:
        return {**super().text_settings(), "max_length": self.arch.word_num}

    def geometry(self, image: Image.Image) -> torch.Tensor:
        """Grayscale, OpenCV INTER_AREA resize of the longest side to imsize, zero pad to a square, centre crop:
        uint8 (1, crop, crop)."""
        gray = np.asarray(image.convert("L") if image.mode != "L" else image, dtype=np.uint8)
        size = self.arch.imsize
        h, w = gray.shape
        if h >= w:  # upstream: max(shape) found at index 0 first, so a square image counts as "higher"
            resized = resize_area(gray, int(w * (size / float(h))), size)
            pad = size - resized.shape[1]
            padded = np.pad(resized, [(0, 0), (pad // 2, pad - pad // 2)])
        else:
            resized = resize_area(gray, size, int(h * (size / float(w))))
            pad = size - resized.shape[0]
            padded = np.pad(resized, [(pad // 2, pad - pad // 2), (0, 0)])
        if self.arch.crop:
            c = self.arch.crop
            top, left = int(round((size - c) / 2.0)), int(round((size - c) / 2.0))
            padded = padded[top:top + c, left:left + c]
        return torch.from_numpy(np.ascontiguousarray(padded))[None]

    def intensity(self, pixels: torch.Tensor) -> torch.Tensor:
        """ToTensor's /255, Normalize, gray copied to 3 channels, then the model's bilinear Upsample to 299."""
        x = pixels.to(self.device, torch.float32) / 255.0
        x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
        x = (x - self._mean) / self._std
        return F.interpolate(x, size=(UPSAMPLE, UPSAMPLE), mode="bilinear", align_corners=True)

    @torch.no_grad()
    def embed_pixels(self, model_input: torch.Tensor) -> torch.Tensor:
        return l2_normalise(self.model.img_encoder(model_input.to(self.device, torch.float32)))

    def tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        return self.tokenizer([clean_report(t) for t in texts], return_tensors="pt", truncation=True,
                              padding="max_length", max_length=self.arch.word_num)

    @torch.no_grad()
    def embed_text_batch(self, texts: list[str]) -> torch.Tensor:
        tokens = {k: v.to(self.device) for k, v in self.tokenize(texts).items()}
        out = self.model.text_encoder.model(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"],
                                            token_type_ids=tokens["token_type_ids"], output_hidden_states=True)
        return pool_text(out.hidden_states, out.pooler_output, tokens["input_ids"], self._sep_id, self.arch)


# -- building ------------------------------------------------------------------------------------------------------
def _text_side(spec, source: str):
    from transformers import BertConfig, BertTokenizer

    value = split_setting(source)[0]
    try:
        with offline():
            config = BertConfig.from_pretrained(value, local_files_only=True, attn_implementation="eager")
            tokenizer = BertTokenizer.from_pretrained(value, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise WeightsNotAvailable(
            f"{spec.name}: the text encoder files for {value!r} are not available offline ({type(exc).__name__}). "
            f"Set {env_var(spec.name, 'text_encoder')} (or text_encoder= / models.yaml) to a folder holding "
            f"config.json and vocab.txt of {sources.BIO_CLINICALBERT_ID}. {spec.how_to_get}") from exc
    if config.model_type != "bert":
        raise ConfigError(f"{spec.name}: {value} is a {config.model_type!r} config, not BERT.")
    return config, tokenizer


def _describe(arch: Architecture) -> str:
    return (f"grayscale, OpenCV INTER_AREA resize longest side to {arch.imsize}, zero pad to square, centre crop "
            f"{arch.crop}, /255, norm {arch.norm}, 3 channels, bilinear upsample to {UPSAMPLE} (align_corners); "
            f"text: GLoRIA report cleaning, Bio_ClinicalBERT {arch.word_num} tokens, {arch.aggregate} of the last "
            f"{arch.last_n_layers} layers over [CLS]..[SEP]")


def build(spec, device: str = "cpu", checkpoint: str | Path | None = None,
          text_encoder: str | Path | None = None) -> GloriaEncoder:
    """Build GLoRIA from its released Lightning checkpoint (``checkpoint``) and Bio_ClinicalBERT's config and
    vocabulary (``text_encoder``: a folder, or the hub id in the local cache; default: the checkpoint's bert_type)."""
    if not checkpoint:
        raise WeightsNotAvailable(f"{spec.name}: no checkpoint configured. Set {env_var(spec.name, 'checkpoint')} "
                                  f"(or checkpoint= / models.yaml). Weights: {spec.how_to_get}")
    path = Path(checkpoint).expanduser()
    if not path.is_file():
        raise WeightsNotAvailable(f"{spec.name}: checkpoint {path} does not exist "
                                  f"({env_var(spec.name, 'checkpoint')}). Weights: {spec.how_to_get}")
    state, config = read_checkpoint(path, adapter=spec.name)
    arch = parse_architecture(config, adapter=spec.name, source=path)
    bert_config, tokenizer = _text_side(spec, str(text_encoder or arch.bert_type))
    if bert_config.hidden_size != arch.embedding_dim:
        raise CheckpointError(f"{spec.name}: {path}: embedding_dim {arch.embedding_dim} differs from the text "
                              f"encoder's hidden size {bert_config.hidden_size}; wrong text_encoder config?")
    model = GloriaModel(arch, bert_config)
    load_checked(model, state, adapter=spec.name, source=path, allow_unexpected=DERIVED_BUFFERS)
    info = ModelInfo(
        name=spec.name, family=FAMILY, checkpoint=str(path), checkpoint_sha256=sha256_file(path),
        embed_dim=arch.embedding_dim, preprocessing=_describe(arch),
        extra={"vision": arch.vision, "text_encoder": str(text_encoder or arch.bert_type),
               "last_n_layers": arch.last_n_layers, "aggregate": arch.aggregate, "word_num": arch.word_num},
    )
    return GloriaEncoder(model, tokenizer, arch, info, device=device)
