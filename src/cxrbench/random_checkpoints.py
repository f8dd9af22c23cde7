"""Randomly initialised checkpoints of the paper's four models, in each release's own file format.

``cxrbench bench --paper-size`` and ``scripts/gpu_check.py`` time the real architectures at full size without the
released weights (which cannot be redistributed): these files have the releases' containers, key names and tensor
shapes, and are loaded through :func:`cxrbench.models.load_model` exactly as the released files are.

* ``clip``: OpenAI's ViT-B/32 release container: a TorchScript archive with fp16 tensors in OpenAI's key layout
  plus the three int64 root entries (``input_resolution``, ``context_length``, ``vocab_size``);
* ``cxr_repair``: CXR-RePaiR's ``torch.save(model.state_dict())`` of an OpenAI-layout ViT-B/32 (a model from
  ``clip.load(jit=False)``, so weight matrices fp16 and the rest fp32);
* ``medclip``: MedCLIP-ViT's ``pytorch_model.bin``: Swin-Tiny + BERT-base (Bio_ClinicalBERT sizes) with
  transformers-4.x key names;
* ``cxr_clip``: a CXR-CLIP trainer ``.tar`` (``model``, ``config``, ``epoch``): Swin-Tiny + BERT-base and a 512-d
  linear projection, transformers-4.x key names, the training config's model section as in the releases;
* a Bio_ClinicalBERT-shaped tokenizer folder for the two BERT models (``config.json`` and a WordPiece
  ``vocab.txt`` of its size built from IU report words plus filler tokens).

``size="tiny"`` writes the same formats with small widths and depths (tests). Tensor values follow a seeded recipe
keyed by each tensor's index and name (matrices with variance 1/fan_in, norm scales near 1, small biases,
``logit_scale`` log(1/0.07)), so the same call writes the same files. The key layouts are checked against the
upstream-written golden fixtures by the tests (tests/test_paper_size.py) and by scripts/gpu_check_checkpoints.py.
"""

from __future__ import annotations

import json
import math
import re
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cxrbench.errors import ConfigError
from cxrbench.io import atomic_path

PAPER_MODELS = ("clip", "cxr_repair", "medclip", "cxr_clip")
SIZES = ("full", "tiny")
SEED = 20250601
#: the text side of the tiny BERT models (tests): far smaller than BERT-base, same format
TINY_BERT = {"hidden_size": 32, "intermediate_size": 64, "num_attention_heads": 2, "num_hidden_layers": 2,
             "vocab_size": 2000}
TINY_SWIN = {"embed_dim": 24, "depths": [1, 1, 2, 1], "num_heads": [1, 2, 2, 4]}


def recipe_tensor(seed: int, index: int, name: str, shape: tuple[int, ...]) -> torch.Tensor:
    """Float32 values of tensor number ``index`` called ``name``: by rules on the name (see module docstring)."""
    n = int(np.prod(shape)) if shape else 1
    if name.endswith("logit_scale"):
        return torch.full(shape, math.log(1 / 0.07), dtype=torch.float32)
    u = np.random.Generator(np.random.PCG64([seed, index])).random(n, dtype=np.float32)
    if name.endswith(("running_mean", "bias")):
        values = (2 * u - 1) * 0.1
    elif len(shape) <= 1:  # norm scales and other vectors
        values = 1 + (2 * u - 1) * 0.2
    else:  # linear / conv / embedding: variance 1 / fan_in
        values = (2 * u - 1) * math.sqrt(3.0 / int(np.prod(shape[1:])))
    return torch.from_numpy(values.astype(np.float32).reshape(shape))


def _recipe_state(pairs: Iterable[tuple[str, torch.Tensor]], seed: int = SEED) -> dict[str, torch.Tensor]:
    """Float tensors from the recipe, integer buffers kept as they are."""
    return {k: recipe_tensor(seed, i, k, tuple(v.shape)) if v.is_floating_point() else v.clone()
            for i, (k, v) in enumerate(pairs)}


def _write(path: Path, write: Callable[[Path], Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        write(Path(tmp))


# --- containers -----------------------------------------------------------------------------------------------
def write_torchscript_archive(tensors: Mapping[str, torch.Tensor], path: str | Path) -> None:
    """A TorchScript archive whose ``state_dict()`` is ``tensors`` (OpenAI's release container): a module tree
    mirroring the dotted names, float tensors as parameters, integer ones as buffers, no methods."""
    root = torch.nn.Module()
    for key, value in tensors.items():
        *parents, leaf = key.split(".")
        module = root
        for name in parents:
            if not hasattr(module, name):
                module.add_module(name, torch.nn.Module())
            module = getattr(module, name)
        if value.is_floating_point():
            module.register_parameter(leaf, torch.nn.Parameter(value.clone(), requires_grad=False))
        else:
            module.register_buffer(leaf, value.clone())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit is deprecated; the release format is not
        torch.jit.save(torch.jit.script(root.eval()), str(path))


def _relative_position_index(window: int) -> torch.Tensor:
    """The Swin buffer transformers 4.x stored (``relative_position_index``) for a ``window`` x ``window`` window."""
    coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")).flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0).contiguous()
    rel[:, :, 0] += window - 1
    rel[:, :, 1] += window - 1
    rel[:, :, 0] *= 2 * window - 1
    return rel.sum(-1)


def transformers4_layout(state: Mapping[str, torch.Tensor], swin_prefix: str, bert_prefix: str,
                         window: int) -> list[tuple[str, torch.Tensor]]:
    """Keys as transformers 4.2x wrote them (the releases): old Swin block names, plus the stored derived buffers
    (Swin ``relative_position_index``, BERT ``embeddings.position_ids``)."""
    from cxrbench.models.hf_compat import _rename_swin_key

    out: list[tuple[str, torch.Tensor]] = []
    for key, value in state.items():
        old = _rename_swin_key(key, old_to_new=False) if key.startswith(swin_prefix) else key
        out.append((old, value))
        if old.endswith("attention.self.relative_position_bias_table"):
            out.append((old.replace("relative_position_bias_table", "relative_position_index"),
                        _relative_position_index(window)))
        if old == bert_prefix + "embeddings.position_embeddings.weight":
            out.append((bert_prefix + "embeddings.position_ids",
                        torch.arange(value.shape[0], dtype=torch.int64).unsqueeze(0)))
    return out


# --- the models --------------------------------------------------------------------------------------------------
def clip_arch(size: str):
    from cxrbench.models.openai_clip import ClipArch

    if size == "tiny":
        return ClipArch(embed_dim=32, image_size=224, patch_size=32, vision_width=64, vision_layers=2,
                        context_length=77, vocab_size=49408, text_width=64, text_layers=2)
    return ClipArch(embed_dim=512, image_size=224, patch_size=32, vision_width=768, vision_layers=12,
                    context_length=77, vocab_size=49408, text_width=512, text_layers=12)


def openai_layout_state(size: str, seed: int = SEED) -> dict[str, torch.Tensor]:
    """An OpenAI-layout CLIP ViT-B/32 state dict (fp32) with recipe values."""
    from cxrbench.models.openai_clip import build_open_clip_model

    model_state = build_open_clip_model(clip_arch(size)).state_dict()
    return _recipe_state(sorted(model_state.items()), seed)


def write_clip(path: Path, size: str) -> dict:
    """OpenAI's ViT-B/32 release container: TorchScript archive, fp16 tensors, the three int64 root entries."""
    arch = clip_arch(size)
    tensors = {k: v.half() for k, v in openai_layout_state(size).items()}
    tensors.update({"input_resolution": torch.tensor(arch.image_size), "context_length":
                    torch.tensor(arch.context_length), "vocab_size": torch.tensor(arch.vocab_size)})
    try:
        _write(path, lambda tmp: write_torchscript_archive(tensors, tmp))
        container = "torchscript"
    except Exception as exc:  # noqa: BLE001  torch.jit unavailable: the adapter reads plain state dicts too
        warnings.warn(f"clip: could not write a TorchScript archive ({type(exc).__name__}: {exc}); wrote a state "
                      "dict of the same layout", stacklevel=2)
        _write(path, lambda tmp: torch.save(tensors, tmp))
        container = "state_dict"
    return {"container": container, "tensors": len(tensors)}


def write_cxr_repair(path: Path, size: str) -> dict:
    """CXR-RePaiR's saved state dict: OpenAI layout, weight matrices fp16 (clip.load on a GPU), the rest fp32."""
    state = openai_layout_state(size, seed=SEED + 1)
    tensors = {k: v.half() if v.dim() >= 2 else v for k, v in state.items()}
    _write(path, lambda tmp: torch.save(tensors, tmp))
    return {"container": "torch.save state dict (fp16 matrices, fp32 vectors)", "tensors": len(tensors)}


def _swin_config(size: str):
    from transformers import SwinConfig

    from cxrbench.models.medclip import SWIN_TINY_CONFIG

    return SwinConfig(**{**SWIN_TINY_CONFIG, **(TINY_SWIN if size == "tiny" else {})})


def _bert_config(size: str):
    from transformers import BertConfig

    from cxrbench.models.medclip import BIO_CLINICALBERT_CONFIG

    return BertConfig(**{**BIO_CLINICALBERT_CONFIG, **(TINY_BERT if size == "tiny" else {})})


def cxr_clip_config(proj_dim: int = 512) -> dict:
    """The parts of a CXR-CLIP training config (Hydra, stored in the release .tar) that describe the model."""
    return {
        "base": {"seed": 1234, "image_size": 224, "text_max_length": 256},
        "tokenizer": {"source": "huggingface", "pretrained_model_name_or_path": "emilyalsentzer/Bio_ClinicalBERT"},
        "transform": {"test": {"Resize": {"size": 224}, "CenterCrop": {"size": 224}}},
        "model": {
            "name": "clip_custom", "temperature": 0.07,
            "image_encoder": {"source": "huggingface", "name": "microsoft/swin-tiny-patch4-window7-224",
                              "pretrained": True, "model_type": "swin"},
            "text_encoder": {"source": "huggingface", "name": "emilyalsentzer/Bio_ClinicalBERT", "pretrained": True,
                             "pooling": "eos", "mlm_head": True},
            "projection_head": {"name": "linear", "dropout": 0.1, "proj_dim": proj_dim},
        },
    }


def cxr_clip_state(size: str) -> list[tuple[str, torch.Tensor]]:
    from cxrbench.models.cxr_clip import CxrClipModel, SwinTower, TextTower, parse_architecture

    config = cxr_clip_config(32 if size == "tiny" else 512)
    arch = parse_architecture(config, adapter="cxr_clip", source="random checkpoint")
    swin = _swin_config(size)
    model_state = CxrClipModel(arch, SwinTower(swin), TextTower(_bert_config(size))).state_dict()
    return transformers4_layout(model_state, "image_encoder.", "text_encoder.text_encoder.", swin.window_size)


def write_cxr_clip(path: Path, size: str) -> dict:
    """A CXR-CLIP trainer .tar: {'model': state dict (transformers-4.x names), 'config': training config, 'epoch'}."""
    state = _recipe_state(cxr_clip_state(size), SEED + 2)
    config = cxr_clip_config(32 if size == "tiny" else 512)
    _write(path, lambda tmp: torch.save({"model": state, "config": config, "epoch": 0}, tmp))
    return {"container": "torch.save dict (model, config, epoch)", "tensors": len(state)}


def medclip_state(size: str) -> list[tuple[str, torch.Tensor]]:
    from cxrbench.models.medclip import MedCLIPNetwork, SwinTower, TextTower

    swin = _swin_config(size)
    network = MedCLIPNetwork(SwinTower(swin.to_dict(), {}), TextTower(_bert_config(size), {}))
    return transformers4_layout(network.state_dict(), "vision_model.model.", "text_model.model.", swin.window_size)


def write_medclip(path: Path, size: str) -> dict:
    """MedCLIP-ViT's pytorch_model.bin: the MedCLIPModel state dict (transformers-4.x names)."""
    state = _recipe_state(medclip_state(size), SEED + 3)
    _write(path, lambda tmp: torch.save(state, tmp))
    return {"container": "torch.save state dict", "tensors": len(state)}


def write_bert_folder(folder: Path, size: str) -> Path:
    """A Bio_ClinicalBERT-shaped folder: config.json and a WordPiece vocab.txt of its vocabulary size (BERT's
    special tokens at BERT's ids, characters, IU report words by frequency, then filler tokens)."""
    vocab_file, config_file = folder / "vocab.txt", folder / "config.json"
    if vocab_file.is_file() and config_file.is_file():
        return folder
    from cxrbench.data.iu_reports import load_reports

    config = _bert_config(size).to_dict()
    n = int(config["vocab_size"])
    tokens = ["[PAD]", *(f"[unused{i}]" for i in range(1, 100)), "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    chars = [chr(c) for c in range(33, 127)]
    tokens += chars + [f"##{c}" for c in chars if c.isalnum()]
    words: Counter[str] = Counter()
    for r in load_reports():
        words.update(re.findall(r"[a-z]+|\d+", f"{r.findings} {r.impression}".lower()))
    seen = set(tokens)
    for word, _ in words.most_common():
        if len(tokens) >= n:
            break
        if word not in seen:
            tokens.append(word)
            seen.add(word)
    tokens += [f"filler{i:05d}" for i in range(n - len(tokens))]
    _write(vocab_file, lambda tmp: tmp.write_text("\n".join(tokens[:n]) + "\n", encoding="utf-8"))
    keep = {"architectures": ["BertModel"], **{k: v for k, v in config.items() if k in _BERT_CONFIG_KEYS}}
    _write(config_file, lambda tmp: tmp.write_text(json.dumps(keep, indent=2)))
    return folder


_BERT_CONFIG_KEYS = ("attention_probs_dropout_prob", "hidden_act", "hidden_dropout_prob", "hidden_size",
                     "initializer_range", "intermediate_size", "layer_norm_eps", "max_position_embeddings",
                     "model_type", "num_attention_heads", "num_hidden_layers", "pad_token_id", "type_vocab_size",
                     "vocab_size")
_WRITERS = {"clip": ("clip/ViT-B-32-random.pt", write_clip),
            "cxr_repair": ("cxr_repair/clip_weights-random.pt", write_cxr_repair),
            "medclip": ("medclip/pytorch_model.bin", write_medclip),
            "cxr_clip": ("cxr_clip/swint_random.tar", write_cxr_clip)}


def write_checkpoints(folder: str | Path, models: Iterable[str] = PAPER_MODELS, size: str = "full",
                      progress: Callable[[str], None] | None = None) -> tuple[dict[str, dict], dict[str, dict]]:
    """Write (or reuse, when present) the checkpoints of ``models`` under ``folder/size``; return the
    :func:`cxrbench.models.load_model` settings per model and what was written."""
    from cxrbench.models.checkpoint import sha256_file

    if size not in SIZES:
        raise ConfigError(f"checkpoint size {size!r}: use one of {', '.join(SIZES)}")
    root = Path(folder) / size
    bert = root / "bio_clinicalbert_shape"
    settings: dict[str, dict] = {}
    info: dict[str, dict] = {}
    for name in models:
        if name not in _WRITERS:
            raise ConfigError(f"no random checkpoint writer for {name!r}; choose from {', '.join(PAPER_MODELS)}")
        rel, writer = _WRITERS[name]
        path = root / rel
        extra = {"text_encoder": str(bert)} if name == "cxr_clip" else {"tokenizer": str(bert)} \
            if name == "medclip" else {}
        if extra:
            write_bert_folder(bert, size)
        t0 = time.perf_counter()
        if path.is_file():
            written: dict = {"reused": True}
        else:
            if progress:
                progress(f"writing a {size}-size random {name} checkpoint to {path}")
            written = writer(path, size)
        info[name] = {"path": str(path), "bytes": path.stat().st_size, "sha256": sha256_file(path),
                      "write_s": round(time.perf_counter() - t0, 2), **written, **extra}
        settings[name] = {"checkpoint": str(path), **extra}
    return settings, info


__all__ = ["PAPER_MODELS", "SIZES", "cxr_clip_config", "cxr_clip_state", "medclip_state", "openai_layout_state",
           "recipe_tensor", "transformers4_layout", "write_checkpoints", "write_torchscript_archive"]
