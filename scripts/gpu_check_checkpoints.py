"""Helpers of scripts/gpu_check.py: logging, atomic writes, and section 2 of the check, the full-size randomly
initialised checkpoints in each upstream file format (see gpu_check.py's docstring).

Key names are checked against the golden fixtures' upstream-written checkpoints (block indices collapsed), and
tensor values come from the golden fixtures' indexed recipe (tests/fixtures/golden/recipes.py).
"""

from __future__ import annotations

import importlib.util
import json
import re
import time
from collections import Counter
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

REPO = Path(__file__).resolve().parents[1]
GOLDEN = REPO / "tests" / "fixtures" / "golden"
MODELS = ("clip", "cxr_clip", "medclip")
SEED = 20250601  # recipe seed of the random checkpoints


def log(msg: str) -> None:
    print(f"[gpu_check {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def atomic_write(path: Path, write) -> None:
    """``write(tmp_path)`` then rename into place (a crash never leaves a half-written file at ``path``)."""
    from cxrbench.io import atomic_path

    with atomic_path(path) as tmp:
        write(tmp)


def load_recipes() -> ModuleType:
    """tests/fixtures/golden/recipes.py (not a package: loaded by path, as tests/models/conftest.py does)."""
    path = GOLDEN / "recipes.py"
    if not path.is_file():
        raise SystemExit(f"{path} is missing: the GPU check needs the golden fixtures' recipes (run from the repo)")
    spec = importlib.util.spec_from_file_location("cxrbench_golden_recipes", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def collapse(key: str) -> str:
    """A state-dict key with block / layer indices replaced by N (compares layouts of different depths)."""
    return re.sub(r"\.\d+(?=\.|$)", ".N", key)


def check_layout(ours: list[str], upstream: list[str], what: str) -> None:
    """Our full-size key names, indices collapsed, must be exactly those of the upstream-written fixture."""
    a, b = {collapse(k) for k in ours}, {collapse(k) for k in upstream}
    if a != b:
        raise SystemExit(f"{what}: key layout differs from the upstream-written golden fixture:\n"
                         f"  only ours: {sorted(a - b)[:20]}\n  only upstream: {sorted(b - a)[:20]}")


# --------------------------------------------------------------------------------------------------------------
# 2. full-size random checkpoints in the upstream formats
# --------------------------------------------------------------------------------------------------------------


def _values(recipes: ModuleType, keys_shapes: list[tuple[str, tuple[int, ...]]],
            ints: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Float tensors from the indexed recipe (variance 1/fan_in matrices, norm scales 1 +- 0.2, small biases,
    logit_scale log(1/0.07)); integer buffers as given."""
    out = {}
    for index, (key, shape) in enumerate(keys_shapes):
        if key in ints:
            out[key] = ints[key]
        else:
            out[key] = recipes.indexed_tensor(SEED, index, key, list(shape), "torch.float32")
    return out


def _relative_position_index(window: int) -> torch.Tensor:
    """The Swin buffer transformers 4.x stored (``relative_position_index``), for a ``window`` x ``window`` window."""
    import torch

    coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")).flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0).contiguous()
    rel[:, :, 0] += window - 1
    rel[:, :, 1] += window - 1
    rel[:, :, 0] *= 2 * window - 1
    return rel.sum(-1)


def _to_transformers4(state: dict[str, torch.Tensor], swin_prefix: str, bert_prefix: str,
                      window: int) -> list[tuple[str, torch.Tensor]]:
    """Keys as transformers 4.2x wrote them (upstream's releases): old Swin block names, plus the stored
    derived buffers (Swin ``relative_position_index``, BERT ``embeddings.position_ids``)."""
    import torch

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


def write_bert_folder(folder: Path) -> Path:
    """A Bio_ClinicalBERT-shaped folder: its config.json and a WordPiece vocab.txt of its size (28,996 tokens:
    BERT's special tokens at BERT's ids, characters, IU report words, then filler tokens)."""
    from cxrbench.data.iu_reports import load_reports
    from cxrbench.models.medclip import BIO_CLINICALBERT_CONFIG

    vocab_file, config_file = folder / "vocab.txt", folder / "config.json"
    if vocab_file.is_file() and config_file.is_file():
        return folder
    size = int(BIO_CLINICALBERT_CONFIG["vocab_size"])
    tokens = ["[PAD]", *(f"[unused{i}]" for i in range(1, 100)), "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    chars = [chr(c) for c in range(33, 127)]
    tokens += chars + [f"##{c}" for c in chars if c.isalnum()]
    words: Counter[str] = Counter()
    for r in load_reports():
        words.update(re.findall(r"[a-z]+|\d+", f"{r.findings} {r.impression}".lower()))
    seen = set(tokens)
    for word, _ in words.most_common():
        if len(tokens) >= size:
            break
        if word not in seen:
            tokens.append(word)
            seen.add(word)
    tokens += [f"filler{i:05d}" for i in range(size - len(tokens))]
    assert len(tokens) == size
    atomic_write(vocab_file, lambda tmp: tmp.write_text("\n".join(tokens) + "\n", encoding="utf-8"))
    config = {"architectures": ["BertModel"], **BIO_CLINICALBERT_CONFIG}
    atomic_write(config_file, lambda tmp: tmp.write_text(json.dumps(config, indent=2)))
    return folder


def write_clip(path: Path, recipes: ModuleType) -> dict:
    """OpenAI's ViT-B/32 release container: TorchScript archive, fp16 tensors, OpenAI key layout and order."""
    import torch

    from cxrbench.models.openai_clip import ClipArch, build_open_clip_model

    arch = ClipArch(embed_dim=512, image_size=224, patch_size=32, vision_width=768, vision_layers=12,
                    context_length=77, vocab_size=49408, text_width=512, text_layers=12)
    model_state = build_open_clip_model(arch).state_dict()
    manifest = recipes.load_manifest(GOLDEN / "openai_clip" / "checkpoint_manifest.json")["openai"]
    golden_keys = [e["key"] for e in manifest["tensors"]]
    roots = {"input_resolution": arch.image_size, "context_length": arch.context_length,
             "vocab_size": arch.vocab_size}
    order = {collapse(k): i for i, k in enumerate(golden_keys)}  # OpenAI's key order, from the fixture
    keys = sorted(model_state, key=lambda k: (order.get(collapse(k), len(order)),
                                              [int(x) for x in re.findall(r"\.(\d+)\.", k)]))
    check_layout(keys + list(roots), golden_keys, "clip (OpenAI ViT-B/32 layout)")
    state = _values(recipes, [(k, tuple(model_state[k].shape)) for k in keys], {})
    tensors = {k: v.half() for k, v in state.items()}  # the release stores every float tensor in fp16
    tensors.update({k: torch.tensor(v, dtype=torch.int64) for k, v in roots.items()})
    try:
        atomic_write(path, lambda tmp: recipes.write_torchscript_archive(tensors, tmp))
        container = "torchscript"
    except Exception as exc:  # torch.jit unavailable: the adapter reads plain state dicts of this layout too
        log(f"clip: could not write a TorchScript archive ({type(exc).__name__}: {exc}); writing a state dict")
        atomic_write(path, lambda tmp: torch.save(tensors, tmp))
        container = "state_dict"
    return {"container": container, "tensors": len(tensors)}


def _swin_bert(window_cfg: dict) -> tuple[Any, Any]:
    from transformers import BertConfig, SwinConfig

    from cxrbench.models.medclip import BIO_CLINICALBERT_CONFIG

    return SwinConfig(**window_cfg), BertConfig(**BIO_CLINICALBERT_CONFIG)


def write_cxr_clip(path: Path, recipes: ModuleType) -> dict:
    """A CXR-CLIP trainer .tar: {'model': state dict (transformers-4.x names), 'config': training config, ...}."""
    import torch

    from cxrbench.models.cxr_clip import Architecture, CxrClipModel, SwinTower, TextTower, read_checkpoint
    from cxrbench.models.medclip import BERT_ID, SWIN_TINY_CONFIG

    golden_state, config = read_checkpoint(GOLDEN / "cxr_clip" / "cxr_clip_swin_tiny.tar", adapter="cxr_clip")
    config = json.loads(json.dumps(config))
    config["model"]["projection_head"]["proj_dim"] = 512  # the releases' projection (the fixture shrank it)
    swin_cfg, bert_cfg = _swin_bert(SWIN_TINY_CONFIG)
    arch = Architecture(image_encoder="swin", image_encoder_name=config["model"]["image_encoder"]["name"],
                        text_encoder_name=BERT_ID, pooling="eos", projection="linear",
                        proj_dim=512, temperature=0.07)
    model_state = CxrClipModel(arch, SwinTower(swin_cfg), TextTower(bert_cfg)).state_dict()
    pairs = _to_transformers4(model_state, "image_encoder.", "text_encoder.text_encoder.",
                              SWIN_TINY_CONFIG["window_size"])
    check_layout([k for k, _ in pairs], list(golden_state), "cxr_clip (CXR-CLIP Swin-Tiny release layout)")
    ints = {k: v for k, v in pairs if not v.is_floating_point()}
    state = _values(recipes, [(k, tuple(v.shape)) for k, v in pairs], ints)
    atomic_write(path, lambda tmp: torch.save({"model": state, "config": config, "epoch": 0}, tmp))
    return {"container": "torch.save dict (model, config, epoch)", "tensors": len(state)}


def write_medclip(path: Path, recipes: ModuleType, bert_folder: Path) -> dict:
    """MedCLIP-ViT's pytorch_model.bin: the MedCLIPModel state dict (transformers-4.x names)."""
    import torch

    from cxrbench.models.medclip import bert_config, build_network

    network = build_network("swin", {}, bert_config(bert_folder))  # swin-tiny, BERT-base, 768 -> 512 heads
    golden_state = torch.load(GOLDEN / "medclip" / "vit" / "pytorch_model.bin", weights_only=True)
    window = network.vision_model.model.config.window_size
    pairs = _to_transformers4(network.state_dict(), "vision_model.model.", "text_model.model.", window)
    check_layout([k for k, _ in pairs], list(golden_state), "medclip (MedCLIP-ViT release layout)")
    ints = {k: v for k, v in pairs if not v.is_floating_point()}
    state = _values(recipes, [(k, tuple(v.shape)) for k, v in pairs], ints)
    atomic_write(path, lambda tmp: torch.save(state, tmp))
    return {"container": "torch.save state dict", "tensors": len(state)}


def write_checkpoints(models: list[str], folder: Path) -> tuple[dict[str, dict], dict]:
    """Write (or reuse) every needed checkpoint; return load_model settings per model and what was written."""
    from cxrbench.models.checkpoint import sha256_file

    recipes = None
    settings: dict[str, dict] = {}
    info: dict[str, dict] = {}
    bert = folder / "bio_clinicalbert_shape"
    for name in models:
        if name == "clip":
            path, extra = folder / "clip" / "ViT-B-32-random.pt", {}
        elif name == "cxr_clip":
            path, extra = folder / "cxr_clip" / "swint_random.tar", {"text_encoder": str(bert)}
        elif name == "medclip":
            path, extra = folder / "medclip" / "pytorch_model.bin", {"tokenizer": str(bert)}
        else:
            raise SystemExit(f"--models: {name!r} is not one of {', '.join(MODELS)}")
        if extra:
            write_bert_folder(bert)
        t0 = time.perf_counter()
        if path.is_file():
            written = {"reused": True}
        else:
            recipes = recipes or load_recipes()
            log(f"checkpoints: writing full-size random {name} to {path}")
            if name == "clip":
                written = write_clip(path, recipes)
            elif name == "cxr_clip":
                written = write_cxr_clip(path, recipes)
            else:
                written = write_medclip(path, recipes, bert)
        info[name] = {"path": str(path), "bytes": path.stat().st_size, "sha256": sha256_file(path),
                      "write_s": round(time.perf_counter() - t0, 2), **written, **extra}
        settings[name] = {"checkpoint": str(path), **extra}
    return settings, info
