"""OpenAI-CLIP-architecture adapters: ``clip`` (OpenAI ViT-B/32), ``cxr_repair`` (CXR-RePaiR), ``chexzero``.

All three are the OpenAI CLIP ViT (QuickGELU activations, argmax/EOT text pooling, CLIP BPE tokenizer, context
77). The model is built with open_clip (``open_clip.model.CLIP`` with ``quick_gelu=True``, the configuration
``open_clip.model.build_model_from_openai_state_dict`` derives) from shapes read off the state dict, so any
width / depth / patch size in OpenAI's key layout loads, including the tiny random test checkpoints.

Checkpoint containers accepted (all read without unpickling arbitrary objects):

* OpenAI's release ``ViT-B-32.pt``: a TorchScript archive with fp16 weights plus three int64 entries
  (``input_resolution``, ``context_length``, ``vocab_size``) at the root. We do not call ``torch.jit.load``
  (deprecated, and it compiles the archive's code): :func:`read_torchscript_tensors` reads ``data.pkl`` with a
  restricted unpickler that only rebuilds tensors and attribute dictionaries, so the archive's code is never
  compiled or run.
* Plain ``torch.save(model.state_dict())`` files as CXR-RePaiR and CheXzero save them (their models come from
  ``clip.load("ViT-B/32", jit=False)``; on a GPU that model is partially fp16, so the saved dict mixes fp16 and
  fp32 tensors). Read with ``torch.load(weights_only=True)``.
* open_clip training checkpoints: ``{"state_dict": {"module.visual...": ...}, "epoch": ..., ...}``; the
  wrapper and a ``module.`` prefix (DataParallel / DDP) are removed.

Every float tensor is upcast to fp32 on the CPU before it is loaded; keys are checked loudly.

Preprocessing (``spec.options["preprocessing"]``, default chosen by model name):

* ``openai`` (``clip``): OpenAI's ``clip.load`` transform. geometry = PIL bicubic resize of the shorter side
  to the model's input size (224), centre crop, convert to RGB (uint8, 3 x 224 x 224); intensity = /255 and
  CLIP mean/std.
* ``cxr_pad320`` (``cxr_repair``, ``chexzero``): both repos' ``preprocess``: resize the longest side to 320
  with PIL LANCZOS (``Image.ANTIALIAS``), sizes truncated with ``int()``, pasted at ((320-w)//2, (320-h)//2) on
  a black 320 x 320 ``L`` canvas (pasting converts RGB to L). geometry = that canvas (uint8, 1 x 320 x 320);
  intensity = normalise on the 0..255 scale (mean 101.48761, std 83.43944), repeat to 3 channels, THEN a
  bicubic tensor resize to the model's input size (224 for the released ViT-B/32 checkpoints; skipped for a
  320 px model, as upstream does when ``pretrained=False``). ``spec.options["antialias"]`` (default False)
  picks the resize: upstream was written against torchvision <= 0.11, whose tensor ``Resize`` did not
  antialias, so False reproduces upstream as written; True is what the same code does on torchvision >= 0.17.

Text: :func:`clip_tokenize` (OpenAI's tokenisation; long texts are cut to 77 tokens with the end-of-text token
kept, as ``clip.tokenize(truncate=True)``, CXR-RePaiR's ``clip.tokenize`` and CheXzero's training-time
``preprocess_text`` do; CheXzero's inference ``clip.tokenize`` raises instead: ``options["truncate"]=False``).
"""

from __future__ import annotations

import pickle
import re
import zipfile
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image

from cxrbench.errors import CheckpointError, ConfigError, WeightsNotAvailable
from cxrbench.models import sources
from cxrbench.models.base import Encoder, ModelInfo, l2_normalise, pil_to_uint8
from cxrbench.models.checkpoint import load_checked, load_state_file, sha256_file, unwrap_state_dict
from cxrbench.models.registry import env_var

# ----------------------------------------------------------------------------------------------------------
# Constants
# ----------------------------------------------------------------------------------------------------------
#: OpenAI CLIP's image mean / std (0..1 scale), as in clip.load's Normalize and open_clip's OPENAI_DATASET_*.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
#: CXR-RePaiR / CheXzero normalisation on the 0..255 scale (their "cxr_stats" notebook values).
CXR_MEAN = 101.48761
CXR_STD = 83.43944
CXR_CANVAS = 320

SOT_TOKEN = "<|startoftext|>"
EOT_TOKEN = "<|endoftext|>"
SOT_ID = 49406
EOT_ID = 49407
DEFAULT_CONTEXT_LENGTH = 77

#: Entries of OpenAI's TorchScript archives that are not model weights: the three root int64 buffers
#: (clip.model.build_model deletes them too) and, should an archive keep it as a tensor attribute, the causal
#: attention mask open_clip rebuilds itself.
_ARCHIVE_EXTRAS = (r"^input_resolution$", r"^context_length$", r"^vocab_size$", r"(^|\.)attn_mask$")

_PREPROCESSING_BY_NAME = {"clip": "openai", "cxr_repair": "cxr_pad320", "chexzero": "cxr_pad320"}
_PREPROCESSINGS = ("openai", "cxr_pad320")



# ----------------------------------------------------------------------------------------------------------
# Tokenizer
# ----------------------------------------------------------------------------------------------------------
#: OpenAI's pre-tokenisation pattern (clip/simple_tokenizer.py). open_clip's differs in the special-token
#: alternatives ('<start_of_text>' / '<end_of_text>'), so a report containing the literal '<|endoftext|>'
#: would be tokenised differently by open_clip than by OpenAI, CXR-RePaiR and CheXzero.
_PRETOKEN = r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""


@lru_cache(maxsize=1)
def _bpe():
    """open_clip's SimpleTokenizer: only its BPE tables and merge routine are used (same vocabulary file,
    bpe_simple_vocab_16e6.txt.gz, as OpenAI's)."""
    from open_clip.tokenizer import SimpleTokenizer

    return SimpleTokenizer()


@lru_cache(maxsize=1)
def _pretoken_pattern():
    import regex

    return regex.compile(_PRETOKEN, regex.IGNORECASE)


def _clean(text: str) -> str:
    """OpenAI's cleaning: ftfy.fix_text, double html.unescape, collapse whitespace, lower-case."""
    from open_clip.tokenizer import basic_clean, whitespace_clean

    return whitespace_clean(basic_clean(text)).lower()


def clip_encode(text: str) -> list[int]:
    """BPE ids of ``text`` without start/end tokens, exactly as OpenAI's ``SimpleTokenizer.encode``."""
    bpe = _bpe()
    ids: list[int] = []
    for piece in _pretoken_pattern().findall(_clean(text)):
        if piece == SOT_TOKEN:
            ids.append(SOT_ID)
        elif piece == EOT_TOKEN:
            ids.append(EOT_ID)
        else:
            mapped = "".join(bpe.byte_encoder[b] for b in piece.encode("utf-8"))
            ids.extend(bpe.encoder[t] for t in bpe.bpe(mapped).split(" "))
    return ids


def clip_tokenize(texts: str | Sequence[str], context_length: int = DEFAULT_CONTEXT_LENGTH,
                  truncate: bool = True) -> torch.Tensor:
    """OpenAI CLIP tokenisation: ``[SOT] + BPE + [EOT]``, zero-padded to ``context_length`` (int64).

    Too-long texts are cut to ``context_length`` tokens whose last one is replaced by EOT (so the argmax/EOT
    pooling still finds it), as ``clip.tokenize(truncate=True)``, CXR-RePaiR's ``clip.tokenize`` and
    CheXzero's ``train.preprocess_text`` do. With ``truncate=False`` a too-long text raises ConfigError, like
    OpenAI's default ``clip.tokenize`` and CheXzero's inference ``clip.tokenize``.
    """
    if isinstance(texts, str):
        texts = [texts]
    out = torch.zeros(len(texts), context_length, dtype=torch.long)
    for row, text in enumerate(texts):
        tokens = [SOT_ID, *clip_encode(text), EOT_ID]
        if len(tokens) > context_length:
            if not truncate:
                raise ConfigError(f"text is {len(tokens)} tokens long, more than the context length "
                                  f"{context_length}: {text[:80]!r}...")
            tokens = tokens[:context_length]
            tokens[-1] = EOT_ID
        out[row, : len(tokens)] = torch.tensor(tokens, dtype=torch.long)
    return out


# ----------------------------------------------------------------------------------------------------------
# Reading checkpoints
# ----------------------------------------------------------------------------------------------------------
_STORAGE_DTYPES = {
    "HalfStorage": torch.float16, "FloatStorage": torch.float32, "DoubleStorage": torch.float64,
    "BFloat16Storage": torch.bfloat16, "LongStorage": torch.int64, "IntStorage": torch.int32,
    "ShortStorage": torch.int16, "CharStorage": torch.int8, "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool,
}


class _ScriptObject:
    """Stand-in for an instance of a TorchScript class (``__torch__.*``): it only keeps its attributes."""

    def __setstate__(self, state) -> None:
        self.attributes = state


def _rebuild_tensor(storage: torch.Tensor, offset: int, size, stride, *_unused) -> torch.Tensor:
    return torch.as_strided(storage, tuple(size), tuple(stride), offset).clone()


class _TensorOnlyUnpickler(pickle.Unpickler):
    """Unpickler for a TorchScript archive's ``data.pkl`` that can build nothing but tensors, containers
    and attribute holders. Any other global is refused."""

    _SAFE = {
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
        ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
        ("collections", "OrderedDict"): OrderedDict,
        ("torch.jit._pickle", "restore_type_tag"): lambda value, _type: value,
        ("torch.jit._pickle", "build_intlist"): list,
        ("torch.jit._pickle", "build_doublelist"): list,
        ("torch.jit._pickle", "build_boollist"): list,
        ("torch.jit._pickle", "build_tensorlist"): list,
    }

    def __init__(self, data: bytes, archive: zipfile.ZipFile, prefix: str):
        import io

        super().__init__(io.BytesIO(data))
        self._archive, self._prefix = archive, prefix
        self._storages: dict[str, torch.Tensor] = {}
        self._classes: dict[str, type] = {}

    def find_class(self, module: str, name: str):
        if (module, name) in self._SAFE:
            return self._SAFE[(module, name)]
        if module == "torch" and name in _STORAGE_DTYPES:
            return _STORAGE_DTYPES[name]
        if module.startswith("__torch__"):
            key = f"{module}.{name}"
            return self._classes.setdefault(key, type(name, (_ScriptObject,), {"qualname": key}))
        raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")
        _, dtype, key, _location, numel = pid
        if key not in self._storages:
            raw = bytearray(self._archive.read(f"{self._prefix}data/{key}"))
            storage = torch.frombuffer(raw, dtype=dtype) if raw else torch.empty(0, dtype=dtype)
            if storage.numel() < numel:
                raise pickle.UnpicklingError(f"storage {key} holds {storage.numel()} values, expected {numel}")
            self._storages[key] = storage
        return self._storages[key]


def is_torchscript_archive(path: str | Path) -> bool:
    """True for a zip whose layout is TorchScript's (a ``constants.pkl`` or ``code/`` beside ``data.pkl``)."""
    if not zipfile.is_zipfile(path):
        return False
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
    except (zipfile.BadZipFile, OSError):
        return False
    return any(n.endswith("constants.pkl") or "/code/" in n for n in names)


def _collect_tensors(obj, prefix: str, out: dict[str, torch.Tensor]) -> None:
    attributes = getattr(obj, "attributes", None)
    if not isinstance(attributes, Mapping):
        return
    for name, value in attributes.items():
        if isinstance(value, torch.Tensor):
            out[prefix + name] = value
        elif isinstance(value, _ScriptObject):
            _collect_tensors(value, f"{prefix}{name}.", out)


def read_torchscript_tensors(path: str | Path, *, adapter: str) -> dict[str, torch.Tensor]:
    """The parameters and buffers of a TorchScript archive, keyed like ``ScriptModule.state_dict()``.

    Only ``data.pkl`` and the tensor storages are read, with :class:`_TensorOnlyUnpickler`; TorchScript code
    in the archive is never compiled or run (unlike ``torch.jit.load``).
    """
    try:
        with zipfile.ZipFile(path) as zf:
            pkl = [n for n in zf.namelist() if n.endswith("data.pkl") and n.count("/") <= 1]
            if len(pkl) != 1:
                raise CheckpointError(f"{adapter}: {path} is a zip archive without one data.pkl; not a "
                                      f"TorchScript archive or PyTorch checkpoint.")
            prefix = pkl[0][: -len("data.pkl")]
            root = _TensorOnlyUnpickler(zf.read(pkl[0]), zf, prefix).load()
    except CheckpointError:
        raise
    except (pickle.UnpicklingError, zipfile.BadZipFile, KeyError, EOFError, OSError, ValueError,
            RuntimeError, TypeError, AttributeError) as exc:
        raise CheckpointError(f"{adapter}: could not read TorchScript archive {path}: {exc}. The file may be "
                              f"truncated or not the released checkpoint; check its SHA-256.") from exc
    state: dict[str, torch.Tensor] = {}
    _collect_tensors(root, "", state)
    if not state:
        raise CheckpointError(f"{adapter}: TorchScript archive {path} holds no tensors.")
    return state


def load_clip_state(path: str | Path, *, adapter: str) -> dict[str, torch.Tensor]:
    """Tensors of an OpenAI-layout CLIP checkpoint in any of the accepted containers (module docstring)."""
    if is_torchscript_archive(path):
        return read_torchscript_tensors(path, adapter=adapter)
    return unwrap_state_dict(load_state_file(path, adapter=adapter), adapter=adapter, source=path)


# ----------------------------------------------------------------------------------------------------------
# Building the model
# ----------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ClipArch:
    """Hyper-parameters of an OpenAI CLIP ViT, as read from its state dict (same rules as
    ``clip.model.build_model`` / ``open_clip.model.build_model_from_openai_state_dict``)."""

    embed_dim: int
    image_size: int
    patch_size: int
    vision_width: int
    vision_layers: int
    context_length: int
    vocab_size: int
    text_width: int
    text_layers: int


_ARCH_KEYS = ("visual.conv1.weight", "visual.positional_embedding", "visual.proj", "text_projection",
              "positional_embedding", "token_embedding.weight", "ln_final.weight")


def _count_blocks(state: Mapping[str, torch.Tensor], prefix: str) -> int:
    pattern = re.compile(re.escape(prefix) + r"(\d+)\.")
    return len({m.group(1) for k in state if (m := pattern.match(k))})


def infer_arch(state: Mapping[str, torch.Tensor], *, adapter: str, source: str | Path) -> ClipArch:
    """Read the architecture off the tensor shapes; a checkpoint of another model fails here, loudly."""
    missing = [k for k in _ARCH_KEYS if k not in state]
    if missing:
        hint = (" It looks like a ResNet CLIP, which these adapters do not support."
                if "visual.attnpool.positional_embedding" in state else
                " This is probably another model's checkpoint.")
        raise CheckpointError(f"{adapter}: checkpoint {source} is not an OpenAI-layout CLIP ViT: missing "
                              f"{', '.join(missing)}.{hint}")
    conv = state["visual.conv1.weight"]
    n_pos = state["visual.positional_embedding"].shape[0]
    grid = round((n_pos - 1) ** 0.5)
    arch = ClipArch(
        embed_dim=int(state["text_projection"].shape[1]), image_size=int(conv.shape[-1]) * grid,
        patch_size=int(conv.shape[-1]), vision_width=int(conv.shape[0]),
        vision_layers=_count_blocks(state, "visual.transformer.resblocks."),
        context_length=int(state["positional_embedding"].shape[0]),
        vocab_size=int(state["token_embedding.weight"].shape[0]), text_width=int(state["ln_final.weight"].shape[0]),
        text_layers=_count_blocks(state, "transformer.resblocks."),
    )
    if grid * grid + 1 != n_pos or arch.vision_width % 64 or arch.text_width % 64 or not (
            arch.vision_layers and arch.text_layers):
        raise CheckpointError(f"{adapter}: checkpoint {source} has shapes no OpenAI CLIP ViT has: {arch}")
    return arch


def build_open_clip_model(arch: ClipArch, quick_gelu: bool = True) -> torch.nn.Module:
    """open_clip's CLIP with OpenAI's configuration (heads = width // 64) and, by default, QuickGELU.

    open_clip >= 2.29 builds ViT-B-32 with nn.GELU unless asked for QuickGELU; OpenAI-trained weights (and
    CXR-RePaiR / CheXzero, fine-tuned from them in openai/CLIP's code) use QuickGELU.
    """
    from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg

    vision = CLIPVisionCfg(layers=arch.vision_layers, width=arch.vision_width, patch_size=arch.patch_size,
                           image_size=arch.image_size)
    text = CLIPTextCfg(context_length=arch.context_length, vocab_size=arch.vocab_size, width=arch.text_width,
                       heads=arch.text_width // 64, layers=arch.text_layers)
    return CLIP(arch.embed_dim, vision_cfg=vision, text_cfg=text, quick_gelu=quick_gelu).float().eval()


# ----------------------------------------------------------------------------------------------------------
# Image preprocessing
# ----------------------------------------------------------------------------------------------------------
def openai_geometry(image: Image.Image, size: int = 224) -> torch.Tensor:
    """``clip.load``'s Resize(size, BICUBIC) + CenterCrop(size) + convert("RGB") on a PIL image.

    As torchvision does for PIL input: the shorter side becomes ``size`` and the longer ``int(size * long /
    short)``, PIL's bicubic filter (which widens its support when shrinking), crop offsets
    ``int(round((dim - size) / 2))`` (Python rounding), and RGB conversion after the crop.
    """
    w, h = image.size
    new_w, new_h = (size, int(size * h / w)) if w <= h else (int(size * w / h), size)
    if (new_w, new_h) != (w, h):
        image = image.resize((new_w, new_h), Image.Resampling.BICUBIC)
    w, h = image.size
    if w < size or h < size:
        raise ConfigError(f"image of size {image.size} cannot be centre-cropped to {size}")
    top, left = int(round((h - size) / 2.0)), int(round((w - size) / 2.0))
    image = image.crop((left, top, left + size, top + size)).convert("RGB")
    return pil_to_uint8(image)


def cxr_pad_geometry(image: Image.Image, size: int = CXR_CANVAS) -> torch.Tensor:
    """CXR-RePaiR / CheXzero ``preprocess(img, desired_size=320)``: aspect-preserving LANCZOS resize of the
    longest side to ``size`` (``int()``-truncated sizes), pasted centred (``//2`` offsets) on a black ``L``
    canvas; pasting converts the resized image to ``L`` (ITU-R 601 luma for RGB). Returns (1, size, size)."""
    ratio = float(size) / max(image.size)
    new_size = tuple(int(x * ratio) for x in image.size)
    resized = image.resize(new_size, Image.Resampling.LANCZOS)
    canvas = Image.new("L", (size, size))
    canvas.paste(resized, ((size - new_size[0]) // 2, (size - new_size[1]) // 2))
    return pil_to_uint8(canvas)


# ----------------------------------------------------------------------------------------------------------
# The encoder
# ----------------------------------------------------------------------------------------------------------
class OpenAIClipEncoder(Encoder):
    """An OpenAI-architecture CLIP with either OpenAI's or the CXR-RePaiR/CheXzero preprocessing."""

    #: a ViT: contiguous input and weights (channels-last gained nothing in fp32 and cost speed in bf16; measured in
    #: docs/performance.md, "Memory format")
    channels_last_tower = False

    def __init__(self, model: torch.nn.Module, arch: ClipArch, info: ModelInfo, *, preprocessing: str,
                 antialias: bool, truncate: bool, device: str | torch.device = "cpu"):
        self.model = model
        self.arch = arch
        self.info = info
        self.preprocessing = preprocessing
        self.antialias = antialias
        self.truncate = truncate
        self.device = torch.device(device)
        self.model.to(self.device).eval()
        self._mean = torch.tensor(CLIP_MEAN, device=self.device).view(1, 3, 1, 1)
        self._std = torch.tensor(CLIP_STD, device=self.device).view(1, 3, 1, 1)

    # -- image path --------------------------------------------------------------------------
    @property
    def geometry_key(self) -> str:
        """cxr_repair and chexzero share the 320 canvas; the antialias option acts later, in intensity()."""
        if self.preprocessing == "openai":
            return f"rgb-short{self.arch.image_size}-pil-bicubic-centrecrop"
        return f"gray-canvas{CXR_CANVAS}-lanczos"

    def geometry(self, image: Image.Image) -> torch.Tensor:
        if self.preprocessing == "openai":
            return openai_geometry(image, self.arch.image_size)
        return cxr_pad_geometry(image, CXR_CANVAS)

    def decode_need(self) -> tuple[str, int]:
        """openai: the shorter side resized to the input size; cxr_pad320: the longer side to the canvas."""
        if self.preprocessing == "openai":
            return ("shorter", int(self.arch.image_size))
        return ("longer", CXR_CANVAS)

    def intensity(self, pixels: torch.Tensor) -> torch.Tensor:
        pixels = pixels.float()
        if self.preprocessing == "openai":
            return (pixels / 255.0 - self._mean.to(pixels.device)) / self._std.to(pixels.device)
        x = (pixels - CXR_MEAN) / CXR_STD
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if x.shape[-1] != self.arch.image_size or x.shape[-2] != self.arch.image_size:
            x = F.interpolate(x, size=(self.arch.image_size, self.arch.image_size), mode="bicubic",
                              align_corners=False, antialias=self.antialias)
        return x.contiguous()

    @torch.no_grad()
    def embed_pixels(self, model_input: torch.Tensor) -> torch.Tensor:
        return l2_normalise(self.model.encode_image(model_input.to(self.device)))

    # -- text path ---------------------------------------------------------------------------
    def text_settings(self) -> dict:
        return {"family": self.info.family, "tokenizer": "openai-clip-bpe", "context_length": self.arch.context_length,
                "truncate": self.truncate, "text_batch_size": self.text_batch_size}

    @torch.no_grad()
    def embed_text_batch(self, texts: list[str]) -> torch.Tensor:
        tokens = clip_tokenize(texts, self.arch.context_length, truncate=self.truncate)
        return self.model.encode_text(tokens.to(self.device))


def _describe(preprocessing: str, arch: ClipArch, antialias: bool) -> str:
    if preprocessing == "openai":
        return (f"OpenAI CLIP: bicubic resize shorter side to {arch.image_size}, centre crop, RGB, "
                f"CLIP mean/std")
    resize = (f", bicubic resize to {arch.image_size} (antialias={antialias})"
              if arch.image_size != CXR_CANVAS else "")
    return (f"grayscale, LANCZOS aspect-preserving pad to {CXR_CANVAS}x{CXR_CANVAS} black canvas, "
            f"normalise 0..255 with mean {CXR_MEAN} std {CXR_STD}, 3 channels{resize}")


def _options(spec) -> tuple[str, bool, bool]:
    options = dict(spec.options or {})
    preprocessing = options.pop("preprocessing", _PREPROCESSING_BY_NAME.get(spec.name))
    antialias = bool(options.pop("antialias", False))
    truncate = bool(options.pop("truncate", True))
    if preprocessing not in _PREPROCESSINGS:
        raise ConfigError(f"{spec.name}: options['preprocessing'] must be one of {list(_PREPROCESSINGS)}, "
                          f"got {preprocessing!r}")
    if options:
        raise ConfigError(f"{spec.name}: unknown options {sorted(options)}; known: preprocessing, "
                          f"antialias, truncate")
    return preprocessing, antialias, truncate


def build(spec, device: str = "cpu", checkpoint: str | Path | None = None, **settings) -> OpenAIClipEncoder:
    """Builder for ``clip``, ``cxr_repair`` and ``chexzero`` (``spec.options`` pick the preprocessing)."""
    if settings:
        raise ConfigError(f"{spec.name}: takes only the 'checkpoint' setting, not {sorted(settings)}")
    preprocessing, antialias, truncate = _options(spec)
    if checkpoint is None:
        how = spec.how_to_get or sources.HOW_TO_GET.get(spec.name, "the released checkpoint")
        raise WeightsNotAvailable(
            f"{spec.name}: no checkpoint configured. Set {env_var(spec.name, 'checkpoint')} (or pass "
            f"checkpoint=..., or add '{spec.name}: {{checkpoint: ...}}' to models.yaml). Weights: {how}.")
    path = Path(checkpoint).expanduser()
    state = load_clip_state(path, adapter=spec.name)
    arch = infer_arch(state, adapter=spec.name, source=path)
    model = build_open_clip_model(arch, quick_gelu=True)
    load_checked(model, state, adapter=spec.name, source=path, allow_unexpected=_ARCHIVE_EXTRAS)
    info = ModelInfo(
        name=spec.name, family=spec.family, checkpoint=str(path), checkpoint_sha256=sha256_file(path),
        embed_dim=arch.embed_dim, preprocessing=_describe(preprocessing, arch, antialias),
        extra={"arch": arch.__dict__, "antialias": antialias, "truncate": truncate,
               "container": "torchscript" if is_torchscript_archive(path) else "state_dict"},
    )
    return OpenAIClipEncoder(model, arch, info, preprocessing=preprocessing, antialias=antialias,
                             truncate=truncate, device=device)
