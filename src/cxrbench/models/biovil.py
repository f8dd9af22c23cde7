"""BioViL (Boecking et al., ECCV 2022): ResNet-50 image model + CXR-BERT, both projected to 128-d.

Released files (microsoft/hi-ml, package hi-ml-multimodal, which fetches them from the Hugging Face repo
microsoft/BiomedVLP-CXR-BERT-specialized at tag v1.1):

* ``biovil_image_resnet50_proj_size_128.pt``: ``ImageModel.state_dict()`` saved with ``torch.save``:
  ``encoder.encoder.*`` = a torchvision ResNet-50 (its unused ``fc`` included), ``projector.model.{0,1,3}`` =
  1x1 conv 2048->128 (no bias), BatchNorm2d(128), [ReLU], 1x1 conv 128->128 (bias).
* the CXR-BERT repo: ``config.json`` (``model_type: "cxr-bert"``, a BERT config plus ``projection_size``),
  ``pytorch_model.bin`` of ``CXRBertModel`` (a ``BertForMaskedLM``: ``bert.*`` without pooler, the MLM head
  ``cls.predictions.*``, and ``cls_projection_head.{dense_to_hidden, LayerNorm, dense_to_output}``; written
  with transformers 4.x, so it still holds ``bert.embeddings.position_ids``), ``vocab.txt`` + tokenizer
  config.

What upstream does (hi-ml-multimodal 0.2.2) and what this adapter does the same way:

* image (``get_image_inference(ImageModelType.BIOVIL)`` + ``ImageInferenceEngine``): ``load_image`` reads
  the file (skimage), stretches its values to 0..255 (``(x - min) / max * 255`` in float64, truncated to
  uint8) and converts to PIL "L"; ``Resize(512)`` (shorter side, bilinear), ``CenterCrop(480)`` (480 for
  BioViL; 448 is BioViL-T's), ``ToTensor`` (/255), ``ExpandChannels`` (1 -> 3 channels), no mean/std. The
  model maps the layer4 feature map through the projector and averages it over space; the engine
  L2-normalises. ``geometry`` here = stretch + "L" + resize + crop (uint8, one channel), ``intensity`` = /255
  and the channel copy. A PIL image is treated as the array skimage would read from its file ("P" images
  are expanded to RGB/RGBA first, as readers do).
* text (``get_bert_inference(BertEncoderType.CXR_BERT)``): strip trailing ``!?.`` from each prompt, BERT
  tokenizer with special tokens, pad to the longest prompt, ``CXRBertModel.get_projected_text_embeddings``:
  [CLS] of the last layer -> Linear -> GELU -> LayerNorm(eps 1e-12) -> Linear -> L2 normalisation.
  Upstream raises for prompts longer than ``max_position_embeddings`` (512) tokens; this adapter truncates
  them to 512 (the rest of the pipeline is unchanged), so long reports still get an embedding.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
from PIL import Image

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
from cxrbench.models.hf_compat import DERIVED_BUFFERS
from cxrbench.models.hub import cached_file, split_setting
from cxrbench.models.registry import ModelSpec, env_var

ADAPTER = "biovil"
HUB_ID = sources.BIOVIL_HUB_ID
HUB_REVISIONS = ("v1.1", "main")  # upstream pins v1.1
IMAGE_FILE = sources.BIOVIL_IMAGE_FILE
TEXT_WEIGHT_FILES = ("pytorch_model.bin", "model.safetensors")
JOINT_DIM = 128
RESIZE, CROP = 512, 480
#: CXRBertModel is a BertForMaskedLM: its MLM head is in the file but plays no part in the embeddings.
TEXT_UNUSED = (r"^cls\.predictions\.",)
HOW_TO_GET = sources.HOW_TO_GET["biovil"]


def _env(key: str) -> str:
    return env_var(ADAPTER, key)


# -- locating the files ------------------------------------------------------------------------------------------
def _hub_file(repo_id: str, filename: str) -> Path | None:
    """A file of ``repo_id`` in the local Hugging Face cache (revision v1.1, else main), or None."""
    return cached_file(repo_id, filename, HUB_REVISIONS)


def _hub_id(value: str) -> str | None:
    """The hub id named by 'hf-hub:ID' or a bare 'org/name' that is not an existing path."""
    value, is_hub = split_setting(value)
    return value if is_hub else None


def _image_checkpoint(setting: str | None) -> Path:
    if setting is None:
        found = _hub_file(HUB_ID, IMAGE_FILE)
        if found is None:
            raise WeightsNotAvailable(
                f"{ADAPTER}: no image checkpoint configured and {IMAGE_FILE} of {HUB_ID} is not in the local "
                f"Hugging Face cache. Set {_env('checkpoint')} (or checkpoint= / models.yaml) to {IMAGE_FILE}. "
                f"{HOW_TO_GET}"
            )
        return found
    hub = _hub_id(setting)
    if hub is not None:
        found = _hub_file(hub, IMAGE_FILE)
        if found is None:
            raise WeightsNotAvailable(f"{ADAPTER}: {IMAGE_FILE} of {hub} is not in the local Hugging Face "
                                      f"cache; set {_env('checkpoint')} to the file. {HOW_TO_GET}")
        return found
    path = Path(setting).expanduser()
    if path.is_dir():
        path = path / IMAGE_FILE
    if not path.exists():
        raise WeightsNotAvailable(f"{ADAPTER}: image checkpoint {path} does not exist ({_env('checkpoint')}). "
                                  f"{HOW_TO_GET}")
    return path


def _text_folder(setting: str | None) -> Path:
    hub = HUB_ID if setting is None else _hub_id(setting)
    if hub is not None:
        found = _hub_file(hub, "config.json")
        if found is None:
            raise WeightsNotAvailable(
                f"{ADAPTER}: the CXR-BERT text encoder {hub} is not in the local Hugging Face cache. Set "
                f"{_env('text_encoder')} (or text_encoder= / models.yaml) to its folder. {HOW_TO_GET}"
            )
        return found.parent
    path = Path(setting).expanduser()
    if not path.is_dir():
        raise WeightsNotAvailable(f"{ADAPTER}: text encoder folder {path} does not exist "
                                  f"({_env('text_encoder')}). {HOW_TO_GET}")
    return path


# -- image model -------------------------------------------------------------------------------------------------
class _ResNetTrunk(nn.Module):
    """``encoder.encoder``: torchvision's ResNet-50 run up to layer4 (patch features, no pooling / fc)."""

    def __init__(self):
        super().__init__()
        from torchvision.models import resnet50

        self.encoder = build_without_random_init(lambda: resnet50(weights=None))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = self.encoder
        x = r.maxpool(r.relu(r.bn1(r.conv1(x))))
        return r.layer4(r.layer3(r.layer2(r.layer1(x))))


class _Projector(nn.Module):
    """``projector.model``: 1x1 conv (no bias), BatchNorm, ReLU, 1x1 conv (bias)."""

    def __init__(self, in_dim: int = 2048, dim: int = JOINT_DIM):
        super().__init__()
        self.model = nn.Sequential(
            nn.Conv2d(in_dim, dim, 1, bias=False), nn.BatchNorm2d(dim), nn.ReLU(inplace=True),
            nn.Conv2d(dim, dim, 1, bias=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class BioVilImageModel(nn.Module):
    """Same module names as hi-ml's ImageModel(RESNET50, joint_feature_size=128)."""

    def __init__(self):
        super().__init__()
        self.encoder = _ResNetTrunk()
        self.projector = _Projector()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Projected global embedding: mean over the grid of the projected patch features (not normalised)."""
        return self.projector(self.encoder(x)).mean(dim=(2, 3))


# -- text model --------------------------------------------------------------------------------------------------
def _read_text_config(folder: Path):
    """CXR-BERT's config.json as a BertConfig + projection size (no remote code: the fields are BERT's)."""
    from transformers import BertConfig

    path = folder / "config.json"
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{ADAPTER}: cannot read the CXR-BERT config {path} ({exc}).") from exc
    if raw.get("model_type") not in ("cxr-bert", "bert"):
        raise CheckpointError(f"{ADAPTER}: {path} has model_type {raw.get('model_type')!r}, expected 'cxr-bert'.")
    projection = int(raw.get("projection_size", JOINT_DIM))
    fields = {k: v for k, v in raw.items() if k not in ("model_type", "auto_map", "architectures", "projection_size")}
    return BertConfig(**fields), projection


class _ProjectionHead(nn.Module):
    """``cls_projection_head``: Linear -> GELU -> LayerNorm(1e-12) -> Linear on the [CLS] state."""

    def __init__(self, hidden: int, projection: int):
        super().__init__()
        self.dense_to_hidden = nn.Linear(hidden, projection)
        self.LayerNorm = nn.LayerNorm(projection, eps=1e-12)
        self.dense_to_output = nn.Linear(projection, projection)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dense_to_output(self.LayerNorm(nn.functional.gelu(self.dense_to_hidden(x))))


class CxrBertText(nn.Module):
    """``bert`` (BertModel without pooler) + ``cls_projection_head``, named as in CXRBertModel."""

    def __init__(self, config, projection: int):
        super().__init__()
        from transformers import BertModel

        self.bert = BertModel(config, add_pooling_layer=False)
        self.cls_projection_head = _ProjectionHead(config.hidden_size, projection)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return self.cls_projection_head(hidden[:, 0, :])


def _text_weights(folder: Path) -> Path:
    for name in TEXT_WEIGHT_FILES:
        if (folder / name).is_file():
            return folder / name
    raise CheckpointError(f"{ADAPTER}: CXR-BERT folder {folder} has no {' or '.join(TEXT_WEIGHT_FILES)}.")


def _tokenizer(folder: Path):
    from transformers import BertTokenizer

    try:
        return BertTokenizer.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError, TypeError) as exc:
        raise CheckpointError(f"{ADAPTER}: cannot read the CXR-BERT tokenizer in {folder} ({exc}).") from exc


# -- image geometry ----------------------------------------------------------------------------------------------
def _file_array(image: Image.Image) -> np.ndarray:
    """The array an image reader returns for this image's file (palette images come out as colours)."""
    if image.mode in ("P", "PA"):
        image = image.convert("RGBA" if image.mode == "PA" or "transparency" in image.info else "RGB")
    return np.asarray(image)


def stretch_to_uint8(array: np.ndarray) -> np.ndarray:
    """hi-ml's remap_to_uint8 without percentiles: float64, minus min, divided by the new max, x255,
    truncated. A constant image (max 0) maps to zeros (upstream divides by zero)."""
    values = array.astype(np.float64)
    values -= values.min()
    top = values.max()
    if top == 0:
        return np.zeros(values.shape, dtype=np.uint8)
    values /= top
    values *= 255
    return values.astype(np.uint8)


class BioVil(Encoder):
    """BioViL image/text encoder (128-d joint space)."""

    def __init__(self, spec: ModelSpec, device: str = "cpu", checkpoint: str | None = None,
                 text_encoder: str | None = None):
        self.device = torch.device(device)
        problems: list[CxrBenchError] = []  # a bad image checkpoint and a missing text encoder are reported together
        try:
            image_path = _image_checkpoint(checkpoint)
            state = load_state_file(image_path, adapter=ADAPTER)
            if not isinstance(state, dict):
                raise CheckpointError(f"{ADAPTER}: {image_path} is not a state dict.")
        except CxrBenchError as exc:
            problems.append(exc)
        try:
            text_dir = _text_folder(text_encoder)
            bert_config, projection = _read_text_config(text_dir)
            if projection != JOINT_DIM:
                raise ConfigError(f"{ADAPTER}: CXR-BERT projection_size {projection} != image joint size "
                                  f"{JOINT_DIM}")
            self.tokenizer = _tokenizer(text_dir)
            text_path = _text_weights(text_dir)
        except CxrBenchError as exc:
            problems.append(exc)
        raise_all(problems, ADAPTER)
        self.max_length = int(bert_config.max_position_embeddings)

        self.image_model = BioVilImageModel()
        load_checked(self.image_model, state, adapter=ADAPTER, source=image_path)
        self.text_model = CxrBertText(bert_config, projection)
        text_state = load_state_file(text_path, adapter=ADAPTER)
        if not isinstance(text_state, dict):
            raise CheckpointError(f"{ADAPTER}: {text_path} is not a state dict.")
        load_checked(self.text_model, text_state, adapter=ADAPTER, source=text_path,
                     allow_unexpected=(*DERIVED_BUFFERS, *TEXT_UNUSED))
        self.image_model.to(self.device).eval()
        self.text_model.to(self.device).eval()
        self.info = ModelInfo(
            name=spec.name, family=spec.family, checkpoint=str(image_path),
            checkpoint_sha256=sha256_file(image_path), embed_dim=JOINT_DIM,
            preprocessing=(f"stretch min..max to 0..255 (uint8), grayscale, resize shorter side to {RESIZE} "
                           f"(bilinear, PIL), center crop {CROP}, /255, 1->3 channels, no mean/std"),
            extra={"text_encoder": str(text_dir), "text_weights": str(text_path),
                   "text_weights_sha256": sha256_file(text_path)},
        )

    def geometry(self, image: Image.Image) -> torch.Tensor:
        import torchvision.transforms.functional as TF
        from torchvision.transforms import InterpolationMode

        gray = Image.fromarray(stretch_to_uint8(_file_array(image))).convert("L")
        gray = TF.resize(gray, RESIZE, interpolation=InterpolationMode.BILINEAR)
        gray = TF.center_crop(gray, [CROP, CROP])
        return pil_to_uint8(gray)

    def intensity(self, pixels: torch.Tensor) -> torch.Tensor:
        x = pixels.float() / 255.0
        return x.expand(-1, 3, -1, -1).contiguous() if x.shape[1] == 1 else x

    @torch.no_grad()
    def embed_pixels(self, model_input: torch.Tensor) -> torch.Tensor:
        return l2_normalise(self.image_model(model_input.to(self.device, torch.float32)))

    def tokenize(self, texts: Sequence[str]):
        """Upstream's TextInput: trailing '!?.' stripped, special tokens, padded to the longest prompt
        (and, unlike upstream, truncated to the model's 512 positions)."""
        return self.tokenizer([t.rstrip("!?.") for t in texts], add_special_tokens=True, padding="longest",
                              truncation=True, max_length=self.max_length, return_tensors="pt")

    @torch.no_grad()
    def embed_text_batch(self, texts: list[str]) -> torch.Tensor:
        tokens = self.tokenize(texts)
        return self.text_model(tokens.input_ids.to(self.device), tokens.attention_mask.to(self.device))


def build(spec: ModelSpec, device: str = "cpu", checkpoint: str | None = None,
          text_encoder: str | None = None) -> BioVil:
    """Registry builder: ``checkpoint`` = biovil_image_resnet50_proj_size_128.pt (file, folder or hub id),
    ``text_encoder`` = the CXR-BERT folder or hub id (resolved offline)."""
    return BioVil(spec, device=device, checkpoint=checkpoint, text_encoder=text_encoder)
