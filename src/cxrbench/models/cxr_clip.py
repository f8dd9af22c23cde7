"""CXR-CLIP (Kakao Brain, MICCAI 2023; github.com/kakaobrain/cxr-clip) adapters.

``cxr_clip`` is the Swin-Tiny release and ``cxr_clip_r50`` the ResNet-50 release. Both load the ORIGINAL
``.tar`` files that upstream's trainer writes with ``torch.save``: a dict with ``model`` (the state dict of
upstream's ``CXRClip`` module), ``config`` (the whole Hydra training config), plus optimizer / scheduler state
that we ignore. The architecture is read from ``config``:

* ``config.model.image_encoder``: ``source: huggingface, model_type: swin`` (a ``SwinModel`` named by a Hugging
  Face id) or ``name: resnet`` (torchvision ``resnet50`` without ``fc``). Upstream downloads the Swin weights
  by name and then overwrites all of them with the checkpoint, so only the Swin *shape* matters; we read it
  from the checkpoint's tensor shapes (embed dim, depths, heads, window, patch size) and keep the Hugging Face
  defaults for the rest (GELU, LayerNorm eps 1e-5), which is what swin-tiny-patch4-window7-224 uses.
* ``config.model.text_encoder``: a Hugging Face BERT (``emilyalsentzer/Bio_ClinicalBERT``) and its
  ``pooling`` (``eos``: the hidden state at index ``attention_mask.sum() - 1``, i.e. the last attended token,
  [SEP]; ``bos``: index 0; ``mean``: masked mean). Its config.json and tokenizer files come from the
  ``text_encoder`` setting (a local folder or a Hugging Face id resolved offline); by default the id stored
  in the checkpoint.
* ``config.model.projection_head`` (optional): ``linear`` (one Linear) or ``mlp`` (Linear -> GELU -> Linear ->
  dropout, plus the first Linear's output, then LayerNorm), ``proj_dim`` wide, one for each tower.
* ``config.base.text_max_length`` (256 in the releases): the tokenizer's truncation length.

Embeddings follow upstream's ``Evaluator.encode_image`` / ``encode_text``: image feature = the FIRST token of
Swin's ``last_hidden_state`` (upstream calls it "[CLS]", but Swin has none: it is the top-left token of the
last stage; not the pooled output) or ResNet's global-average-pooled 2048-d vector; then the projection head,
then division by the L2 norm.

Image preprocessing is that of upstream's evaluation dataset: ``Image.open(...).convert("RGB")``, torchvision
``Resize(224)`` (shorter side, on the PIL image: PIL bilinear with antialiasing) and ``CenterCrop(224)``, then
``ToTensor`` and ``Normalize``: mean = std = 0.5 for Swin, ImageNet statistics when the image encoder is a
ResNet (the evaluator switches ``normalize`` to ``"imagenet"`` for it). Our ``geometry`` is convert + resize +
crop (uint8, 3 channels), ``intensity`` is /255 and the normalisation.

Checkpoint-format quirks handled here:
* ``config`` is a dict made by upstream's ``convert_dictconfig_to_dict``, which leaves omegaconf ``ListConfig``
  objects (and through their parent links whole ``DictConfig`` trees) in it. ``torch.load(weights_only=True)``
  refuses those. We never unpickle them for real: inert stand-in classes are registered under the omegaconf
  names for the duration of the load, keep only the pickled state, and are turned into plain lists / dicts.
  Anything else that is not a tensor or a plain container is still refused (no fallback to full unpickling).
* The state dict was written with transformers 4.2x (Swin keys ``attention.self.query`` ...);
  :func:`cxrbench.models.hf_compat.translate_state_dict` renames them and drops the derived buffers
  (``relative_position_index``, ``position_ids``). Keys are then checked exactly: upstream's own loader uses
  ``strict=False`` and would silently run a half-random model under transformers 5.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
import torchvision
import torchvision.transforms.functional as TF
from PIL import Image
from torch import nn
from torchvision.transforms import InterpolationMode

from cxrbench.errors import CheckpointError, ConfigError, WeightsNotAvailable
from cxrbench.models import sources
from cxrbench.models.base import Encoder, ModelInfo, l2_normalise, pil_to_uint8
from cxrbench.models.checkpoint import build_without_random_init, load_checked, load_state_file, sha256_file
from cxrbench.models.hf_compat import DERIVED_BUFFERS, translate_state_dict
from cxrbench.models.pickled_config import OMEGACONF_STANDINS, plain_config
from cxrbench.models.registry import env_var

FAMILY = "cxr_clip"
IMAGE_SIZE = 224  # evaluation transform: Resize(224) + CenterCrop(224) (configs/transform/default.yaml)
HF_MEAN, HF_STD = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
DEFAULT_TEXT_MAX_LENGTH = 256
RELEASES = sources.CXR_CLIP_RELEASES
TEXT_ENCODER_HELP = sources.CXR_CLIP_TEXT_ENCODER_HELP


# -- reading the .tar: omegaconf objects without omegaconf (cxrbench.models.pickled_config) -------------------
def read_checkpoint(path: str | Path, *, adapter: str) -> tuple[dict[str, torch.Tensor], dict]:
    """Load a CXR-CLIP training .tar safely; return (model state dict, plain training config)."""
    obj = load_state_file(path, adapter=adapter, safe_globals=OMEGACONF_STANDINS)
    if not isinstance(obj, Mapping) or "model" not in obj or "config" not in obj:
        found = sorted(map(str, obj))[:8] if isinstance(obj, Mapping) else type(obj).__name__
        raise CheckpointError(
            f"{adapter}: {path} is not a CXR-CLIP training checkpoint: expected a dict with 'model' (state "
            f"dict) and 'config' (training config) as upstream's trainer saves it, found {found}. "
            f"Use {RELEASES}."
        )
    state = obj["model"]
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{adapter}: {path}: 'model' is not a state dict of tensors.")
    config = plain_config(obj["config"], adapter=adapter, source=path)
    if not isinstance(config, dict):
        raise CheckpointError(f"{adapter}: {path}: 'config' is not a mapping.")
    return dict(state), config


# -- architecture from the stored config ---------------------------------------------------------------------
@dataclass(frozen=True)
class Architecture:
    """What upstream's build_model reads from ``config['model']`` (plus the evaluator's text length)."""

    image_encoder: str  # "swin" | "resnet"
    image_encoder_name: str  # HF id for Swin, "resnet" for ResNet-50
    text_encoder_name: str
    pooling: str  # "eos" | "bos" | "mean"
    projection: str | None  # "linear" | "mlp" | None
    proj_dim: int | None
    temperature: float | None
    text_max_length: int = DEFAULT_TEXT_MAX_LENGTH


def _section(config: Mapping, key: str, adapter: str, source: str | Path) -> Mapping:
    value = config.get(key)
    if not isinstance(value, Mapping):
        raise CheckpointError(f"{adapter}: {source}: stored config has no '{key}' section.")
    return value


def _image_encoder_kind(image_cfg: Mapping, adapter: str, source: str | Path) -> str:
    """Upstream's load_image_encoder: source 'huggingface' first (model_type default 'vit'), then 'resnet'."""
    if str(image_cfg.get("source", "")).lower() == "huggingface":
        model_type = image_cfg.get("model_type", "vit")
        if model_type == "swin":
            return "swin"
        raise CheckpointError(f"{adapter}: {source}: image encoder model_type {model_type!r} is not a "
                              "released CXR-CLIP architecture (swin or resnet).")
    if image_cfg.get("name") == "resnet":
        return "resnet"
    raise CheckpointError(f"{adapter}: {source}: unsupported image encoder {dict(image_cfg)}.")


def parse_architecture(config: Mapping, *, adapter: str, source: str | Path) -> Architecture:
    """Read the model description from a CXR-CLIP training config (see the module docstring)."""
    model = _section(config, "model", adapter, source)
    if str(model.get("name", "")).lower() != "clip_custom":
        raise CheckpointError(f"{adapter}: {source} holds a {model.get('name')!r} model, not the CXR-CLIP "
                              "image-text model ('clip_custom'); fine-tuned classifiers are not supported.")
    image_cfg = _section(model, "image_encoder", adapter, source)
    text_cfg = _section(model, "text_encoder", adapter, source)
    kind = _image_encoder_kind(image_cfg, adapter, source)
    if str(text_cfg.get("source", "")).lower() != "huggingface":
        raise CheckpointError(f"{adapter}: {source}: unsupported text encoder {dict(text_cfg)}.")
    pooling = text_cfg.get("pooling")
    if pooling not in ("eos", "bos", "mean"):
        raise CheckpointError(f"{adapter}: {source}: unsupported text pooling {pooling!r}.")
    head = model.get("projection_head")
    projection = proj_dim = None
    if head is not None:
        projection, proj_dim = str(head.get("name", "")).lower(), int(head["proj_dim"])
        if projection not in ("linear", "mlp"):
            raise CheckpointError(f"{adapter}: {source}: unsupported projection head {projection!r}.")
    base = config.get("base") or {}
    return Architecture(
        image_encoder=kind, image_encoder_name=str(image_cfg.get("name")),
        text_encoder_name=str(text_cfg.get("name")),
        pooling=pooling, projection=projection, proj_dim=proj_dim,
        temperature=model.get("temperature") or None,
        text_max_length=int(base.get("text_max_length", DEFAULT_TEXT_MAX_LENGTH)),
    )


# -- Swin shape from the checkpoint --------------------------------------------------------------------------
_BIAS_TABLE = re.compile(r"encoder\.layers\.(\d+)\.blocks\.(\d+)\..*relative_position_bias_table$")
_FC1 = re.compile(r"encoder\.layers\.0\.blocks\.0\.(intermediate\.dense|mlp\.fc1)\.weight$")


def swin_config_from_state(state: Mapping[str, torch.Tensor], prefix: str, *, adapter: str,
                           source: str | Path):
    """A transformers SwinConfig whose tensor shapes are those stored under ``prefix``."""
    from transformers import SwinConfig

    sub = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    patch = sub.get("embeddings.patch_embeddings.projection.weight")
    if patch is None or patch.ndim != 4:
        raise CheckpointError(f"{adapter}: {source}: no Swin patch embedding under '{prefix}'.")
    blocks: dict[int, int] = {}
    heads: dict[int, int] = {}
    window = None
    for key, value in sub.items():
        m = _BIAS_TABLE.search(key)
        if m:
            layer, block = int(m.group(1)), int(m.group(2))
            blocks[layer] = max(blocks.get(layer, 0), block + 1)
            heads[layer] = int(value.shape[1])
            window = (math.isqrt(int(value.shape[0])) + 1) // 2
    if not blocks or sorted(blocks) != list(range(len(blocks))):
        raise CheckpointError(f"{adapter}: {source}: cannot read the Swin stages from the checkpoint.")
    embed_dim = int(patch.shape[0])
    fc1 = next((v for k, v in sub.items() if _FC1.search(k)), None)
    return SwinConfig(
        image_size=IMAGE_SIZE, patch_size=int(patch.shape[-1]), num_channels=int(patch.shape[1]),
        embed_dim=embed_dim, depths=[blocks[i] for i in range(len(blocks))],
        num_heads=[heads[i] for i in range(len(heads))], window_size=window,
        mlp_ratio=(int(fc1.shape[0]) / embed_dim) if fc1 is not None else 4.0,
        qkv_bias=any(k.endswith(("query.bias", "q_proj.bias")) for k in sub),
        use_absolute_embeddings="embeddings.position_embeddings" in sub,
        hidden_act="gelu", layer_norm_eps=1e-5,
    )


# -- modules with upstream's parameter names -----------------------------------------------------------------
class SwinTower(nn.Module):
    """Upstream HuggingfaceImageEncoder(model_type='swin'): feature = last_hidden_state[:, 0]."""

    def __init__(self, swin_config) -> None:
        super().__init__()
        from transformers import SwinModel

        self.image_encoder = SwinModel(swin_config)
        self.out_dim = int(swin_config.hidden_size)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.image_encoder(pixel_values=pixels).last_hidden_state[:, 0]


class ResNet50Tower(nn.Module):
    """Upstream ResNet50: torchvision resnet50 without ``fc``; feature = flattened global average pool."""

    def __init__(self) -> None:
        super().__init__()
        self.resnet = build_without_random_init(lambda: torchvision.models.resnet50(weights=None))  # ckpt fills it
        del self.resnet.fc
        self.out_dim = 2048

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = self.resnet
        x = r.maxpool(r.relu(r.bn1(r.conv1(x))))
        x = r.layer4(r.layer3(r.layer2(r.layer1(x))))
        return torch.flatten(r.avgpool(x), 1)


class TextTower(nn.Module):
    """Upstream HuggingfaceTextEncoder: a BertModel (pooler included in the state dict, unused)."""

    def __init__(self, bert_config) -> None:
        super().__init__()
        from transformers import BertModel

        self.text_encoder = BertModel(bert_config)
        self.out_dim = int(bert_config.hidden_size)

    def forward(self, tokens: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return self.text_encoder(**tokens).last_hidden_state


class LinearHead(nn.Module):
    def __init__(self, dim_in: int, dim_out: int) -> None:
        super().__init__()
        self.projection = nn.Linear(dim_in, dim_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.projection(x)


class MLPHead(nn.Module):
    """Upstream MLPProjectionHead: LayerNorm(fc(gelu(p)) + p) with p = projection(x) (dropout: eval no-op)."""

    def __init__(self, dim_in: int, dim_out: int) -> None:
        super().__init__()
        self.projection = nn.Linear(dim_in, dim_out)
        self.gelu = nn.GELU()
        self.fc = nn.Linear(dim_out, dim_out)
        self.layer_norm = nn.LayerNorm(dim_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        projected = self.projection(x)
        return self.layer_norm(self.fc(self.gelu(projected)) + projected)


def _head(kind: str | None, dim_in: int, dim_out: int | None) -> nn.Module:
    if kind == "linear":
        return LinearHead(dim_in, dim_out)
    if kind == "mlp":
        return MLPHead(dim_in, dim_out)
    return nn.Identity()


class CxrClipModel(nn.Module):
    """Same attribute tree as upstream's CXRClip, so the released state dict loads key for key."""

    def __init__(self, arch: Architecture, image_tower: nn.Module, text_tower: TextTower) -> None:
        super().__init__()
        self.image_encoder = image_tower
        self.text_encoder = text_tower
        if arch.projection is None and image_tower.out_dim != text_tower.out_dim:
            raise ConfigError("CXR-CLIP without projection head needs equal image and text widths")
        self.image_projection = _head(arch.projection, image_tower.out_dim, arch.proj_dim)
        self.text_projection = _head(arch.projection, text_tower.out_dim, arch.proj_dim)
        if arch.temperature:
            self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / arch.temperature)))


def pool_text(hidden: torch.Tensor, attention_mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """Upstream CXRClip.encode_text pooling ('eos' indexes attention_mask.sum(-1) - 1)."""
    if pooling == "eos":
        last = attention_mask.sum(dim=-1) - 1
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
    if pooling == "bos":
        return hidden[:, 0]
    mask = attention_mask.unsqueeze(-1).expand(hidden.size()).float()
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)


# -- the encoder ---------------------------------------------------------------------------------------------
class CxrClipEncoder(Encoder):
    """cxrbench Encoder around a loaded CXR-CLIP model."""

    def __init__(self, model: CxrClipModel, tokenizer, arch: Architecture, info: ModelInfo,
                 device: str | torch.device = "cpu") -> None:
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.tokenizer = tokenizer
        self.arch = arch
        self.info = info
        imagenet = arch.image_encoder == "resnet"
        mean, std = (IMAGENET_MEAN, IMAGENET_STD) if imagenet else (HF_MEAN, HF_STD)
        self._mean = torch.tensor(mean, device=self.device).view(1, 3, 1, 1)
        self._std = torch.tensor(std, device=self.device).view(1, 3, 1, 1)

    @property
    def geometry_key(self) -> str:
        """Swin and ResNet-50 share the geometry; only intensity() differs (mean/std)."""
        return f"rgb-then-short{IMAGE_SIZE}-tv-bilinear-centrecrop"

    def geometry(self, image: Image.Image) -> torch.Tensor:
        """convert('RGB'), Resize(224) on the shorter side (PIL bilinear), CenterCrop(224): uint8 (3, 224, 224)."""
        image = image.convert("RGB")
        image = TF.resize(image, IMAGE_SIZE, interpolation=InterpolationMode.BILINEAR)
        image = TF.center_crop(image, IMAGE_SIZE)
        return pil_to_uint8(image)

    def decode_need(self) -> tuple[str, int]:
        """The shorter side is resized to IMAGE_SIZE."""
        return ("shorter", IMAGE_SIZE)

    def text_settings(self) -> dict:
        return {**super().text_settings(), "max_length": self.arch.text_max_length, "padding": "longest",
                "pooling": self.arch.pooling}

    def intensity(self, pixels: torch.Tensor) -> torch.Tensor:
        """ToTensor's /255 then Normalize (0.5/0.5 for Swin, ImageNet statistics for ResNet)."""
        x = pixels.to(self.device, torch.float32) / 255.0
        return (x - self._mean) / self._std

    @torch.no_grad()
    def embed_pixels(self, model_input: torch.Tensor) -> torch.Tensor:
        features = self.model.image_encoder(model_input.to(self.device, torch.float32))
        return l2_normalise(self.model.image_projection(features))

    @torch.no_grad()
    def embed_text_batch(self, texts: list[str]) -> torch.Tensor:
        """Tokenise like the evaluator (padding='longest', truncation at text_max_length), pool, project."""
        tokens = self.tokenizer(texts, padding="longest", truncation=True, max_length=self.arch.text_max_length,
                                return_tensors="pt")
        tokens = {k: v.to(self.device) for k, v in tokens.items()}
        hidden = self.model.text_encoder(tokens)
        return self.model.text_projection(pool_text(hidden, tokens["attention_mask"], self.arch.pooling))


# -- building ------------------------------------------------------------------------------------------------
def _text_side(source: str, spec):
    """BERT config and tokenizer from a local folder or an HF id (offline); missing -> WeightsNotAvailable."""
    from transformers import BertConfig, BertTokenizer

    try:
        bert_config = BertConfig.from_pretrained(source, local_files_only=True, attn_implementation="eager")
        tokenizer = BertTokenizer.from_pretrained(source, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise WeightsNotAvailable(
            f"{spec.name}: the text encoder files for {source!r} are not available offline ({exc}). Set "
            f"{env_var(spec.name, 'text_encoder')} (or text_encoder= / models.yaml) to {TEXT_ENCODER_HELP}."
        ) from exc
    if getattr(bert_config, "model_type", "bert") != "bert":
        raise ConfigError(f"{spec.name}: {source} is a {bert_config.model_type!r} config, not BERT.")
    return bert_config, tokenizer


def _image_tower(arch: Architecture, state: Mapping[str, torch.Tensor], adapter: str,
                 source: str | Path) -> nn.Module:
    if arch.image_encoder == "resnet":
        return ResNet50Tower()
    return SwinTower(swin_config_from_state(state, "image_encoder.image_encoder.", adapter=adapter,
                                            source=source))


def load_weights(model: nn.Module, state: Mapping[str, torch.Tensor], *, adapter: str,
                 source: str | Path) -> None:
    """transformers-4.x key translation, then an exact (loud) key and shape check."""
    translated, _dropped = translate_state_dict(state, model.state_dict().keys())
    load_checked(model, translated, adapter=adapter, source=source, allow_missing=DERIVED_BUFFERS)


def _describe(arch: Architecture) -> str:
    norm = "ImageNet mean/std" if arch.image_encoder == "resnet" else "mean=std=0.5"
    return (f"RGB; Resize shorter side {IMAGE_SIZE} (PIL bilinear) + CenterCrop {IMAGE_SIZE}; /255; {norm}; "
            f"text: Bio_ClinicalBERT tokenizer, max {arch.text_max_length} tokens, {arch.pooling} pooling")


def build(spec, device: str = "cpu", checkpoint: str | Path | None = None,
          text_encoder: str | Path | None = None) -> CxrClipEncoder:
    """Build a CXR-CLIP encoder from a released .tar (``spec.options['image_encoder']``: swin / resnet)."""
    adapter = spec.name
    if not checkpoint:
        raise WeightsNotAvailable(
            f"{adapter}: no checkpoint configured. Set {env_var(spec.name, 'checkpoint')} (or checkpoint= / "
            f"models.yaml) to the released .tar. Weights: {spec.how_to_get or RELEASES}."
        )
    path = Path(checkpoint).expanduser()
    state, config = read_checkpoint(path, adapter=adapter)
    arch = parse_architecture(config, adapter=adapter, source=path)
    wanted = spec.options.get("image_encoder")
    if wanted and wanted != arch.image_encoder:
        raise CheckpointError(f"{adapter}: {path} holds a {arch.image_encoder} image encoder, but this adapter "
                              f"is for the {wanted} release; use the adapter for {arch.image_encoder}.")
    bert_config, tokenizer = _text_side(str(text_encoder or arch.text_encoder_name), spec)
    model = CxrClipModel(arch, _image_tower(arch, state, adapter, path), TextTower(bert_config))
    load_weights(model, state, adapter=adapter, source=path)
    info = ModelInfo(
        name=spec.name, family=FAMILY, checkpoint=str(path), checkpoint_sha256=sha256_file(path),
        embed_dim=arch.proj_dim or model.image_encoder.out_dim, preprocessing=_describe(arch),
        extra={"image_encoder": arch.image_encoder_name, "text_encoder": str(text_encoder or
               arch.text_encoder_name), "pooling": arch.pooling, "projection": arch.projection,
               "text_max_length": arch.text_max_length},
    )
    return CxrClipEncoder(model, tokenizer, arch, info, device=device)
