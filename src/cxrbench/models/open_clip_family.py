"""The ``open_clip`` family: any open_clip model, defined by configuration alone.

A models.yaml entry ``mymodel: {family: open_clip, ...}`` takes

* ``checkpoint``: an open_clip checkpoint file (``.pt/.pth/.bin`` read with ``weights_only``, ``.safetensors``,
  an open_clip training checkpoint ``{"state_dict": ...}``, or OpenAI's TorchScript release archive), together
  with ``arch`` (an open_clip architecture name, ``open_clip.list_models()``); or a ``local-dir:`` folder /
  plain folder holding ``open_clip_config.json`` and its weights; or an ``hf-hub:org/name`` id, looked up in
  the local Hugging Face cache only (never downloaded);
* ``arch`` (with a checkpoint file): e.g. ``ViT-B-16``, ``RN50``, ``ViT-B-32-quickgelu``;
* ``quick_gelu`` (optional, true / false): OpenAI-trained weights and models fine-tuned from them were trained
  with QuickGELU, which open_clip's plain ``ViT-B-32`` / ``ViT-B-16`` / ``RN50`` configs (>= 2.29) do not
  use: set ``quick_gelu: true`` (or use the ``-quickgelu`` arch) for them, otherwise the embeddings are
  silently wrong. Default: the architecture's own setting, and true for OpenAI's TorchScript archives (only
  OpenAI-trained weights come in that container);
* ``preprocess`` (optional mapping): overrides of the model's preprocess config (``size``, ``mean``, ``std``,
  ``interpolation``, ``resize_mode``, ``fill_color``), as open_clip's ``force_preprocess_cfg``.

The model is built by open_clip itself (``create_model``, no weights), then the checkpoint is loaded with
cxrbench's safe reader and an exact key check (open_clip's own conversions of older checkpoint layouts are
applied first). Preprocessing is open_clip's evaluation transform for the model's preprocess config
(``image_transform_v2``), split in two: ``geometry`` runs every step before ``ToTensor`` (resize / crop / pad
and the RGB conversion) and returns uint8; ``intensity`` is ``ToTensor``'s /255 and ``Normalize``. The tokenizer
is ``open_clip.get_tokenizer`` for the same architecture or folder; text and image features are
``encode_text`` / ``encode_image``, L2-normalised.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping
from pathlib import Path

import torch
from PIL import Image

from cxrbench.errors import CheckpointError, ConfigError, WeightsNotAvailable
from cxrbench.models.base import Encoder, ModelInfo, l2_normalise, pil_to_uint8
from cxrbench.models.checkpoint import load_checked, load_state_file, sha256_file, unwrap_state_dict
from cxrbench.models.hf_compat import DERIVED_BUFFERS
from cxrbench.models.hub import OPEN_CLIP_WEIGHT_FILES, offline, snapshot_folder, split_setting
from cxrbench.models.registry import env_var

FAMILY = "open_clip"
CONFIG_FILE = "open_clip_config.json"
OPTIONS = ("arch", "quick_gelu", "preprocess")
#: Keys open_clip's loader would drop or fill: derived buffers, OpenAI archive extras, SigLIP's logit_bias
#: (absent from non-SigLIP checkpoints; neither it nor logit_scale affects an embedding).
_ALLOW_UNEXPECTED = (*DERIVED_BUFFERS, r"^input_resolution$", r"^context_length$", r"^vocab_size$",
                     r"(^|\.)attn_mask$")
_ALLOW_MISSING = (r"^logit_bias$",)


# -- where the files are -------------------------------------------------------------------------------------------
def _where(spec) -> str:
    return (f"Set {env_var(spec.name, 'checkpoint')} or the 'checkpoint' of '{spec.name}' in models.yaml "
            f"({spec.how_to_get or 'an open_clip checkpoint'})")


def _weights_in(folder: Path) -> Path:
    for name in OPEN_CLIP_WEIGHT_FILES:
        if (folder / name).is_file():
            return folder / name
    raise WeightsNotAvailable(f"{folder} holds {CONFIG_FILE} but none of the weight files "
                              f"{', '.join(OPEN_CLIP_WEIGHT_FILES)}.")


def _hub_folder(spec, repo_id: str) -> tuple[Path, Path]:
    folder = snapshot_folder(repo_id, CONFIG_FILE)
    if folder is None:
        raise WeightsNotAvailable(f"{spec.name}: hf-hub:{repo_id} is not in the local Hugging Face cache (looked up "
                                  f"offline; nothing is downloaded). Download it on a machine with internet, or "
                                  f"point 'checkpoint' at a local folder. {_where(spec)}.")
    for name in OPEN_CLIP_WEIGHT_FILES:
        if (folder / name).is_file():
            return folder, folder / name
    found = next((snapshot_folder(repo_id, n) for n in OPEN_CLIP_WEIGHT_FILES if snapshot_folder(repo_id, n)), None)
    if found is None:
        raise WeightsNotAvailable(f"{spec.name}: the cached hf-hub:{repo_id} has {CONFIG_FILE} but no weights file.")
    return folder, next(found / n for n in OPEN_CLIP_WEIGHT_FILES if (found / n).is_file())


def locate(spec, checkpoint: str | Path, arch: str | None) -> tuple[str, Path, Path | None]:
    """(open_clip model name, weights file, model folder or None) for the ``checkpoint`` / ``arch`` settings."""
    value, is_hub = split_setting(checkpoint)
    folder = None
    if is_hub:
        folder, weights = _hub_folder(spec, value)
    else:
        path = Path(value)
        if path.is_dir():
            if not (path / CONFIG_FILE).is_file():
                raise ConfigError(f"{spec.name}: folder {path} has no {CONFIG_FILE}; point 'checkpoint' at the "
                                  "weights file and name the architecture with 'arch'.")
            folder, weights = path, _weights_in(path)
        elif path.is_file():
            weights = path
        else:
            raise WeightsNotAvailable(f"{spec.name}: checkpoint {path} does not exist. {_where(spec)}.")
    if folder is not None:
        if arch:
            raise ConfigError(f"{spec.name}: 'arch: {arch}' given with the model folder {folder}, whose {CONFIG_FILE} "
                              "already defines the architecture; remove 'arch'.")
        return f"local-dir:{folder}", weights, folder
    if not arch:
        raise ConfigError(f"{spec.name}: a checkpoint file needs 'arch' (an open_clip architecture such as "
                          "ViT-B-16, RN50 or ViT-B-32-quickgelu; see open_clip.list_models()).")
    return str(arch), weights, None


def _check_arch(name: str, arch: str) -> dict:
    import open_clip

    cfg = open_clip.get_model_config(arch)
    if cfg is None:
        close = difflib.get_close_matches(arch, open_clip.list_models(), n=5)
        raise ConfigError(f"{name}: open_clip has no architecture {arch!r}"
                          + (f"; did you mean {', '.join(close)}?" if close else "; see open_clip.list_models()."))
    return cfg


def _model_cfg(name: str, model_name: str, folder: Path | None) -> dict:
    if folder is None:
        return _check_arch(name, model_name)
    try:
        config = json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{name}: {folder / CONFIG_FILE} is not readable JSON ({exc}).") from exc
    if not isinstance(config, dict) or not isinstance(config.get("model_cfg"), dict):
        raise ConfigError(f"{name}: {folder / CONFIG_FILE} has no 'model_cfg'; not an open_clip model folder.")
    return config["model_cfg"]


# -- options -------------------------------------------------------------------------------------------------------
def _options(spec) -> tuple[str | None, bool | None, dict | None]:
    options = dict(spec.options or {})
    arch = options.pop("arch", None)
    quick_gelu = options.pop("quick_gelu", None)
    preprocess = options.pop("preprocess", None)
    if options:
        raise ConfigError(f"{spec.name}: unknown open_clip settings {sorted(options)}; known: checkpoint, "
                          f"{', '.join(OPTIONS)}")
    if quick_gelu is not None and not isinstance(quick_gelu, bool):
        raise ConfigError(f"{spec.name}: quick_gelu must be true or false, got {quick_gelu!r}")
    if preprocess is not None:
        from open_clip.transform import PreprocessCfg

        known = set(PreprocessCfg.__dataclass_fields__)
        if not isinstance(preprocess, Mapping) or set(preprocess) - known:
            raise ConfigError(f"{spec.name}: preprocess must map some of {sorted(known)} to values, got {preprocess!r}")
        preprocess = dict(preprocess)
    return (str(arch) if arch is not None else None), quick_gelu, preprocess


# -- weights -------------------------------------------------------------------------------------------------------
def read_weights(path: Path, *, adapter: str) -> tuple[dict[str, torch.Tensor], str]:
    """The checkpoint's tensors and its container ("torchscript" / "state_dict")."""
    from cxrbench.models.openai_clip import is_torchscript_archive, read_torchscript_tensors

    if path.suffix != ".safetensors" and is_torchscript_archive(path):
        return read_torchscript_tensors(path, adapter=adapter), "torchscript"
    return unwrap_state_dict(load_state_file(path, adapter=adapter), adapter=adapter, source=path), "state_dict"


def adapt_state(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """open_clip's own conversions of older / third-party layouts, as its ``load_checkpoint`` applies them
    (position-embedding resizing excepted: a size mismatch is reported by the shape check instead)."""
    from open_clip.model import convert_to_custom_text_state_dict

    try:
        from open_clip.convert import convert_state_dict
    except ImportError:  # older open_clip
        convert_state_dict = None
    if convert_state_dict is not None:
        state = convert_state_dict(model, state)
    if "positional_embedding" in state and not hasattr(model, "positional_embedding"):
        state = convert_to_custom_text_state_dict(state)
    for key in ("logit_scale", "logit_bias"):
        target = getattr(model, key, None)
        if key in state and isinstance(target, torch.Tensor) and state[key].ndim != target.ndim:
            state[key] = state[key].reshape(target.shape)
    return state


# -- preprocessing -------------------------------------------------------------------------------------------------
def split_transform(preprocess_cfg: Mapping) -> tuple[list, tuple[float, ...], tuple[float, ...]]:
    """open_clip's evaluation transform for ``preprocess_cfg``, split at ``ToTensor``: (geometry steps, mean, std)."""
    from open_clip.transform import PreprocessCfg, image_transform_v2
    from torchvision.transforms import Normalize, ToTensor

    steps = list(image_transform_v2(PreprocessCfg(**preprocess_cfg), is_train=False).transforms)
    if len(steps) < 2 or not isinstance(steps[-1], Normalize) or not isinstance(steps[-2], ToTensor):
        raise ConfigError(f"open_clip's evaluation transform {steps} does not end in ToTensor + Normalize; this "
                          "open_clip version is not supported by the open_clip family.")
    norm = steps[-1]
    return steps[:-2], tuple(float(m) for m in norm.mean), tuple(float(s) for s in norm.std)


class OpenClipEncoder(Encoder):
    """An open_clip model with its own preprocessing (split into geometry / intensity) and tokenizer."""

    def __init__(self, model: torch.nn.Module, tokenizer, preprocess_cfg: dict, info: ModelInfo,
                 device: str | torch.device = "cpu"):
        self.device = torch.device(device)
        self.model = model.float().eval().to(self.device)
        self.tokenizer = tokenizer
        self.preprocess_cfg = preprocess_cfg
        self.geometry_steps, mean, std = split_transform(preprocess_cfg)
        self._mean = torch.tensor(mean, device=self.device).view(1, -1, 1, 1) * 255.0
        self._std = torch.tensor(std, device=self.device).view(1, -1, 1, 1) * 255.0
        self.info = info

    @property
    def geometry_key(self) -> str:
        c = self.preprocess_cfg
        return (f"open_clip-{c['size']}-{c['resize_mode']}-{c['interpolation']}-fill{c['fill_color']}-"
                f"{c['mode']}")

    def geometry(self, image: Image.Image) -> torch.Tensor:
        for step in self.geometry_steps:
            image = step(image)
        return pil_to_uint8(image)

    def intensity(self, pixels: torch.Tensor) -> torch.Tensor:
        """``ToTensor``'s /255 then ``Normalize``, as one affine map on the 0..255 scale."""
        pixels = pixels.float()
        return (pixels - self._mean.to(pixels.device)) / self._std.to(pixels.device)

    @torch.no_grad()
    def embed_pixels(self, model_input: torch.Tensor) -> torch.Tensor:
        return l2_normalise(self.model.encode_image(model_input.to(self.device, torch.float32)))

    def tokenize(self, texts: list[str]) -> torch.Tensor:
        return self.tokenizer(texts)

    @torch.no_grad()
    def embed_text_batch(self, texts: list[str]) -> torch.Tensor:
        return self.model.encode_text(self.tokenize(texts).to(self.device))


def _describe(cfg: Mapping, quick_gelu: bool) -> str:
    return (f"open_clip eval transform: {cfg['resize_mode']} resize to {cfg['size']} ({cfg['interpolation']}), "
            f"crop/pad (fill {cfg['fill_color']}), RGB, /255, mean {tuple(cfg['mean'])} std {tuple(cfg['std'])}; "
            f"{'QuickGELU' if quick_gelu else 'GELU'}")


def build(spec, device: str = "cpu", checkpoint: str | Path | None = None) -> OpenClipEncoder:
    """Builder of the ``open_clip`` family (see the module docstring for the settings)."""
    import open_clip

    arch, quick_gelu, preprocess = _options(spec)
    if checkpoint is None:
        raise WeightsNotAvailable(f"{spec.name}: no checkpoint configured. {_where(spec)}.")
    model_name, weights, folder = locate(spec, checkpoint, arch)
    model_cfg = _model_cfg(spec.name, model_name, folder)
    state, container = read_weights(weights, adapter=spec.name)
    if quick_gelu is None:
        quick_gelu = True if container == "torchscript" else bool(model_cfg.get("quick_gelu", False))
    try:
        with offline():
            model = open_clip.create_model(model_name, pretrained=None, load_weights=False, pretrained_text=False,
                                           pretrained_image=False, force_preprocess_cfg=preprocess,
                                           quick_gelu=quick_gelu)
            tokenizer = open_clip.get_tokenizer(model_name)
    except (OSError, ValueError, RuntimeError) as exc:
        raise WeightsNotAvailable(f"{spec.name}: open_clip could not build {model_name} offline: {exc}. A text "
                                  "tower or tokenizer from the Hugging Face hub must be in the local cache.") from exc
    state = adapt_state(model, state)
    load_checked(model, state, adapter=spec.name, source=weights, allow_missing=_ALLOW_MISSING,
                 allow_unexpected=_ALLOW_UNEXPECTED)
    preprocess_cfg = dict(open_clip.get_model_preprocess_cfg(model))
    if preprocess_cfg.get("mode", "RGB") != "RGB":
        raise CheckpointError(f"{spec.name}: preprocess mode {preprocess_cfg['mode']!r} is not supported (RGB only).")
    info = ModelInfo(
        name=spec.name, family=FAMILY, checkpoint=str(weights), checkpoint_sha256=sha256_file(weights),
        embed_dim=int(model_cfg.get("embed_dim", 0)), preprocessing=_describe(preprocess_cfg, quick_gelu),
        extra={"open_clip_model": model_name, "quick_gelu": quick_gelu, "container": container,
               "preprocess_cfg": {k: (list(v) if isinstance(v, tuple) else v) for k, v in preprocess_cfg.items()},
               "tokenizer": type(tokenizer).__name__, "open_clip_version": open_clip.__version__},
    )
    return OpenClipEncoder(model, tokenizer, preprocess_cfg, info, device=device)
