"""The ``hf`` family: Hugging Face dual encoders (``get_image_features`` / ``get_text_features``) by configuration.

A models.yaml entry ``mymodel: {family: hf, checkpoint: /models/medsiglip-448}`` (``path:`` is an alias of
``checkpoint``) builds a CLIPModel, SiglipModel or any other transformers class with both methods, from a local
folder or a hub id looked up in the local Hugging Face cache only. Optional settings:

* ``trust_remote_code: true``: the model's classes come from Python files shipped with its weights. Running
  that code is refused unless the user also allows it for the run (``--trust-remote-code``,
  :func:`cxrbench.models.set_trust_remote_code`, or ``CXRBENCH_TRUST_REMOTE_CODE=1``);
* ``padding`` (``max_length`` / ``longest``) and ``max_length``: the text padding. Defaults: the model's own
  convention, which for SigLIP models is padding to ``max_length`` (64; the text tower pools the last
  position, so shorter padding changes every embedding) and for the others the longest text of the batch with
  an attention mask; ``max_length`` defaults to the tokenizer's ``model_max_length`` (else the text config's
  ``max_position_embeddings``). Longer texts are truncated.

Weights are loaded by ``from_pretrained`` (``weights_only`` / safetensors) and its loading report is checked:
any missing, unexpected or mismatched key fails, except derived buffers that newer transformers recompute
(``position_ids``). Images go through the model's own image processor (``AutoImageProcessor``), split in two:
``geometry`` is the processor's ``process_image`` (RGB conversion), ``resize`` and ``center_crop`` on uint8
pixels, ``intensity`` its rescale and normalisation. Processors with their own ``_preprocess`` (patching, tiling)
or padding are refused with a pointer to the plugin route. Text goes through the model's tokenizer; the
tokenizer's outputs that ``get_text_features`` accepts are passed on, as its processor would.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import torch
from PIL import Image

from cxrbench.errors import CheckpointError, ConfigError, WeightsNotAvailable
from cxrbench.models.base import Encoder, ModelInfo, l2_normalise
from cxrbench.models.checkpoint import sha256_dir
from cxrbench.models.hf_compat import DERIVED_BUFFERS
from cxrbench.models.hub import offline, snapshot_folder, split_setting
from cxrbench.models.registry import env_var, refuse_remote_code

FAMILY = "hf"
OPTIONS = ("trust_remote_code", "padding", "max_length", "default_checkpoint")
#: Text padding by config.model_type where it is not "longest": SigLIP's text tower pools the LAST position and
#: was trained on texts padded to 64 tokens without an attention mask.
PADDING_BY_MODEL_TYPE = {"siglip": "max_length", "siglip2": "max_length"}
_LARGE = 10**6  # tokenizers without a model_max_length report ~1e30


def _where(spec) -> str:
    return (f"Set {env_var(spec.name, 'checkpoint')} or the 'checkpoint' of '{spec.name}' in models.yaml. "
            f"{spec.how_to_get or ''}").strip()


def _options(spec) -> dict:
    options = dict(spec.options or {})
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise ConfigError(f"{spec.name}: unknown hf settings {unknown}; known: checkpoint (or path), "
                          "trust_remote_code, padding, max_length")
    if options.get("padding") not in (None, "max_length", "longest"):
        raise ConfigError(f"{spec.name}: padding must be 'max_length' or 'longest', got {options['padding']!r}")
    if options.get("max_length") is not None and (not isinstance(options["max_length"], int)
                                                  or options["max_length"] < 1):
        raise ConfigError(f"{spec.name}: max_length must be a positive integer, got {options['max_length']!r}")
    if not isinstance(options.get("trust_remote_code", False), bool):
        raise ConfigError(f"{spec.name}: trust_remote_code must be true or false")
    return options


def locate(spec, checkpoint: str | Path | None) -> Path:
    """The model folder for a folder path, ``local-dir:`` / ``hf-hub:`` value or bare hub id (cache only)."""
    if checkpoint is None:
        raise WeightsNotAvailable(f"{spec.name}: no checkpoint configured. {_where(spec)}")
    value, is_hub = split_setting(checkpoint)
    if is_hub:
        folder = snapshot_folder(value, "config.json")
        if folder is None:
            raise WeightsNotAvailable(f"{spec.name}: {value} is not in the local Hugging Face cache (looked up "
                                      f"offline; nothing is downloaded). {_where(spec)}")
        return folder
    folder = Path(value)
    if folder.is_file():
        folder = folder.parent
    if not (folder / "config.json").is_file():
        if not folder.exists():
            raise WeightsNotAvailable(f"{spec.name}: {folder} does not exist. {_where(spec)}")
        raise ConfigError(f"{spec.name}: {folder} has no config.json; point 'checkpoint' at a Hugging Face model "
                          "folder (config.json, weights, preprocessor_config.json, tokenizer files).")
    return folder


def _remote_code_hint(spec, folder: Path, exc: Exception) -> ConfigError:
    return ConfigError(
        f"{spec.name}: transformers cannot build {folder} with its own classes ({type(exc).__name__}: "
        f"{str(exc).splitlines()[0] if str(exc) else ''}). If the model ships its own code (config.json 'auto_map'), "
        "add 'trust_remote_code: true' to its models.yaml entry and pass --trust-remote-code; only do so if you "
        "trust that code. Otherwise write an adapter plugin (docs/your-model.md).")


def _check_loading(spec, folder: Path, report: dict) -> None:
    def bad(keys):
        return sorted(k for k in keys if not any(re.search(p, k) for p in DERIVED_BUFFERS))

    missing, unexpected = bad(report.get("missing_keys", ())), bad(report.get("unexpected_keys", ()))
    mismatched = [str(m) for m in report.get("mismatched_keys", ())]
    if missing or unexpected or mismatched:
        lines = [f"{spec.name}: the weights in {folder} do not match the model its config.json describes."]
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("mismatched", mismatched)):
            if keys:
                lines.append(f"{len(keys)} {label} key(s): {', '.join(keys[:40])}")
        raise CheckpointError("\n".join(lines))


def _load_model(spec, folder: Path, trust: bool):
    from transformers import AutoModel

    try:
        model, report = AutoModel.from_pretrained(folder, local_files_only=True, trust_remote_code=trust,
                                                  output_loading_info=True)
    except (ValueError, KeyError) as exc:
        raise _remote_code_hint(spec, folder, exc) from exc
    except OSError as exc:
        raise CheckpointError(f"{spec.name}: could not load the weights in {folder}: {exc}") from exc
    _check_loading(spec, folder, report)
    for method in ("get_image_features", "get_text_features"):
        if not callable(getattr(model, method, None)):
            raise ConfigError(f"{spec.name}: {type(model).__name__} (from {folder}) has no {method}; the hf family "
                              "needs a dual encoder such as CLIPModel or SiglipModel.")
    return model.float().eval()


# -- the image processor, split --------------------------------------------------------------------------------------
def _image_processor(spec, folder: Path, trust: bool):
    from transformers import AutoImageProcessor

    try:
        from transformers.image_processing_backends import PilBackend, TorchvisionBackend
    except ImportError as exc:  # transformers 4.x
        raise ConfigError(f"{spec.name}: the hf family needs transformers >= 5 (its image processor backends).") \
            from exc
    try:
        processor = AutoImageProcessor.from_pretrained(folder, local_files_only=True, trust_remote_code=trust)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{spec.name}: no usable image processor in {folder} (preprocessor_config.json): "
                          f"{exc}") from exc
    own = type(processor)._preprocess
    if own not in (TorchvisionBackend._preprocess, PilBackend._preprocess):
        raise ConfigError(f"{spec.name}: {type(processor).__name__} has its own preprocessing steps, which the hf "
                          "family cannot split into geometry and intensity; write an adapter plugin "
                          "(docs/your-model.md).")
    kwargs = processor._merge_and_standardize_kwargs()
    if kwargs.get("do_pad"):
        raise ConfigError(f"{spec.name}: {type(processor).__name__} pads images (do_pad); not supported by the hf "
                          "family; write an adapter plugin (docs/your-model.md).")
    return processor, kwargs


def _tokenizer(spec, folder: Path, trust: bool):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(folder, local_files_only=True, trust_remote_code=trust)
    except (ImportError, ValueError, OSError, AttributeError) as exc:
        hint = (" SigLIP's tokenizer needs the sentencepiece and protobuf packages (pip install sentencepiece "
                "protobuf)." if "sentencepiece" in str(exc).lower() or "protobuf" in str(exc).lower()
                or not str(exc) else "")
        raise ConfigError(f"{spec.name}: the tokenizer in {folder} cannot be loaded: {type(exc).__name__}: "
                          f"{str(exc).splitlines()[0] if str(exc) else ''}.{hint}") from exc


def _features(output) -> torch.Tensor:
    """transformers 5 returns a model output whose ``pooler_output`` is the projected feature; 4.x a tensor."""
    if isinstance(output, torch.Tensor):
        return output
    pooled = getattr(output, "pooler_output", None)
    if isinstance(pooled, torch.Tensor):
        return pooled
    raise ConfigError(f"get_*_features returned {type(output).__name__} without pooler_output")


class HfDualEncoder(Encoder):
    """A transformers dual encoder with its own image processor (split) and tokenizer."""

    def __init__(self, model, processor, processor_kwargs: dict, tokenizer, *, padding: str, max_length: int,
                 info: ModelInfo, device: str | torch.device = "cpu"):
        self.device = torch.device(device)
        self.model = model.to(self.device)
        self.processor = processor
        self.kw = processor_kwargs
        self.tokenizer = tokenizer
        self.padding = padding
        self.max_length = max_length
        self.info = info
        accepted = inspect.signature(model.get_text_features).parameters
        self._text_inputs = [k for k in tokenizer.model_input_names if k in accepted]
        mean = torch.tensor(self.kw["image_mean"] or (0.0,), dtype=torch.float32).view(1, -1, 1, 1)
        std = torch.tensor(self.kw["image_std"] or (1.0,), dtype=torch.float32).view(1, -1, 1, 1)
        scale = float(self.kw["rescale_factor"] or 1.0)
        # the processor's fused rescale + normalise: (x - mean / scale) / (std / scale)
        if self.kw["do_rescale"] and self.kw["do_normalize"]:
            self._shift, self._div = mean / scale, std / scale
        elif self.kw["do_rescale"]:
            self._shift, self._div = torch.zeros(1), torch.full((1,), 1.0 / scale)
        elif self.kw["do_normalize"]:
            self._shift, self._div = mean, std
        else:
            self._shift, self._div = torch.zeros(1), torch.ones(1)

    @property
    def geometry_key(self) -> str:
        kw = self.kw
        size = {k: v for k, v in dict(kw["size"] or {}).items() if v is not None} if kw["do_resize"] else None
        crop = {k: v for k, v in dict(kw["crop_size"] or {}).items() if v is not None} if kw["do_center_crop"] else None
        return (f"hf-{self.processor.backend}-rgb{bool(kw['do_convert_rgb'])}-resize{size}-{kw['resample']}-"
                f"crop{crop}")

    def geometry(self, image: Image.Image) -> torch.Tensor:
        """``process_image`` (RGB conversion, channels first), ``resize`` and ``center_crop`` of the model's own
        image processor, on uint8 pixels."""
        kw, p = self.kw, self.processor
        pixels = p.process_image(image, do_convert_rgb=kw["do_convert_rgb"])
        if kw["do_resize"]:
            pixels = p.resize(image=pixels, size=kw["size"], resample=kw["resample"])
        if kw["do_center_crop"]:
            pixels = p.center_crop(pixels, kw["crop_size"])
        pixels = torch.as_tensor(pixels)
        if pixels.dtype != torch.uint8:
            raise ConfigError(f"{self.name}: the image processor's geometry gave {pixels.dtype}, not uint8 "
                              "(an 8-bit L or RGB image is expected)")
        return pixels.contiguous()

    def intensity(self, pixels: torch.Tensor) -> torch.Tensor:
        """The processor's rescale and normalisation on the 0..255 scale."""
        pixels = pixels.float()
        return (pixels - self._shift.to(pixels.device)) / self._div.to(pixels.device)

    @torch.no_grad()
    def embed_pixels(self, model_input: torch.Tensor) -> torch.Tensor:
        out = self.model.get_image_features(pixel_values=model_input.to(self.device, torch.float32))
        return l2_normalise(_features(out))

    def text_settings(self) -> dict:
        return {**super().text_settings(), "padding": self.padding, "max_length": self.max_length}

    def tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        """The tokenizer with the model's padding, truncated at max_length; only the inputs the text tower takes."""
        tokens = self.tokenizer(list(texts), padding=self.padding, truncation=True, max_length=self.max_length,
                                return_tensors="pt")
        return {k: tokens[k] for k in self._text_inputs if k in tokens}

    @torch.no_grad()
    def embed_text_batch(self, texts: list[str]) -> torch.Tensor:
        tokens = {k: v.to(self.device) for k, v in self.tokenize(texts).items()}
        return _features(self.model.get_text_features(**tokens))


def _max_length(options: dict, tokenizer, config) -> int:
    if options.get("max_length"):
        return int(options["max_length"])
    if 0 < int(getattr(tokenizer, "model_max_length", _LARGE) or _LARGE) < _LARGE:
        return int(tokenizer.model_max_length)
    text_config = getattr(config, "text_config", config)
    return int(getattr(text_config, "max_position_embeddings", 0) or 77)


def _embed_dim(config) -> int:
    if getattr(config, "projection_dim", None):
        return int(config.projection_dim)
    text = getattr(config, "text_config", None)
    return int(getattr(text, "projection_size", None) or getattr(text, "hidden_size", 0) or 0)


def _describe(processor, kw: dict, padding: str, max_length: int) -> str:
    parts = [type(processor).__name__, f"backend {processor.backend}"]
    if kw["do_resize"]:
        parts.append(f"resize {dict((k, v) for k, v in dict(kw['size']).items() if v)} ({kw['resample']})")
    if kw["do_center_crop"]:
        parts.append(f"centre crop {dict((k, v) for k, v in dict(kw['crop_size']).items() if v)}")
    if kw["do_rescale"]:
        parts.append(f"x {kw['rescale_factor']:.8g}")
    if kw["do_normalize"]:
        parts.append(f"mean {tuple(kw['image_mean'])} std {tuple(kw['image_std'])}")
    return "; ".join(parts) + f"; text padding {padding}, max {max_length} tokens"


def build(spec, device: str = "cpu", checkpoint: str | Path | None = None) -> HfDualEncoder:
    """Builder of the ``hf`` family and of the catalogue entries made of it (medsiglip, pubmedclip)."""
    options = _options(spec)
    folder = locate(spec, checkpoint if checkpoint is not None else options.get("default_checkpoint"))
    trust = bool(options.get("trust_remote_code", False))
    refuse_remote_code(spec, folder)
    with offline():
        from transformers import AutoConfig

        try:
            config = AutoConfig.from_pretrained(folder, local_files_only=True, trust_remote_code=trust)
        except (ValueError, KeyError) as exc:
            raise _remote_code_hint(spec, folder, exc) from exc
        model = _load_model(spec, folder, trust)
        processor, kwargs = _image_processor(spec, folder, trust)
        tokenizer = _tokenizer(spec, folder, trust)
    padding = options.get("padding") or PADDING_BY_MODEL_TYPE.get(config.model_type, "longest")
    max_length = _max_length(options, tokenizer, config)
    info = ModelInfo(
        name=spec.name, family=FAMILY, checkpoint=str(folder), checkpoint_sha256=sha256_dir(folder),
        embed_dim=_embed_dim(config), preprocessing=_describe(processor, kwargs, padding, max_length),
        extra={"model_class": type(model).__name__, "model_type": config.model_type,
               "image_processor": type(processor).__name__, "tokenizer": type(tokenizer).__name__,
               "padding": padding, "max_length": max_length, "trust_remote_code": trust},
    )
    return HfDualEncoder(model, processor, kwargs, tokenizer, padding=padding, max_length=max_length, info=info,
                         device=device)
