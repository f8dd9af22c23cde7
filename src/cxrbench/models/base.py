"""The one interface every model adapter implements.

An adapter splits the model's upstream preprocessing into two stages so that the runner can corrupt images
in the model's own input frame:

* ``geometry(image)``: PIL image -> tensor (C, H, W) on the 0..255 scale, usually ``uint8``: the model's
  resize / crop / pad, done once per image and cacheable.
* ``intensity(pixels)``: batch (B, C, H, W) float on the 0..255 scale, on any device -> the tensor the image
  tower takes (scaling, mean/std normalisation, channel repeat, any resize that upstream applies after
  normalisation).

``embed_pixels`` runs the image tower on the output of ``intensity`` and returns L2-normalised float32
embeddings; ``embed_text_batch`` tokenises and embeds one batch of report texts with the model's own tokenizer
and pooling, and ``encode_texts`` batches, normalises and concatenates (an adapter with its own text cache, like
the reference models', overrides ``encode_texts`` instead).
``encode_images`` chains the three image stages and is what a user calls on PIL images.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image


@dataclass
class ModelInfo:
    """What a result record needs to say about the model that produced it."""

    name: str
    family: str
    checkpoint: str | None = None
    checkpoint_sha256: str | None = None
    embed_dim: int = 0
    preprocessing: str = ""
    extra: dict = field(default_factory=dict)


class Encoder:
    """Base class for image/text encoders. Subclasses implement geometry, intensity, embed_pixels and
    embed_text_batch."""

    info: ModelInfo
    device: torch.device
    #: Default batch sizes used by encode_images / encode_texts when the caller gives none.
    image_batch_size: int = 64
    text_batch_size: int = 64

    # -- image path --------------------------------------------------------------------------
    def geometry(self, image: Image.Image) -> torch.Tensor:
        """Resize / crop / pad one PIL image into the model's input frame: (C, H, W), 0..255 scale."""
        raise NotImplementedError

    def intensity(self, pixels: torch.Tensor) -> torch.Tensor:
        """Map a float batch (B, C, H, W) on the 0..255 scale to the image tower's input."""
        raise NotImplementedError

    def embed_pixels(self, model_input: torch.Tensor) -> torch.Tensor:
        """Run the image tower; return (B, D) float32, L2-normalised."""
        raise NotImplementedError

    # -- text path ---------------------------------------------------------------------------
    def embed_text_batch(self, texts: list[str]) -> torch.Tensor:
        """Tokenise and embed one batch with the model's own tokenizer and pooling: (B, D), not yet normalised."""
        raise NotImplementedError

    @torch.no_grad()
    def encode_texts(self, texts: Sequence[str], batch_size: int | None = None) -> torch.Tensor:
        """Embed report texts in batches; return (M, D) float32, L2-normalised, on the CPU."""
        texts = list(texts)
        batch_size = batch_size or self.text_batch_size
        out = [l2_normalise(self.embed_text_batch(texts[start : start + batch_size])).cpu()
               for start in range(0, len(texts), batch_size)]
        return torch.cat(out) if out else torch.empty(0, self.info.embed_dim)

    def clear_caches(self) -> None:
        """Forget memoised text embeddings (used by the naive baseline so that it really re-embeds)."""

    # -- conveniences ------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.info.name

    @property
    def geometry_key(self) -> str:
        """Models whose geometry stages are identical share one key, so the runner computes it once."""
        return self.info.name

    @torch.no_grad()
    def encode_images(self, images: Sequence[Image.Image], batch_size: int | None = None) -> torch.Tensor:
        """Embed PIL images with the full upstream preprocessing; (N, D) float32 L2-normalised on the CPU."""
        batch_size = batch_size or self.image_batch_size
        out = []
        for start in range(0, len(images), batch_size):
            pixels = torch.stack([self.geometry(im) for im in images[start : start + batch_size]])
            pixels = pixels.to(self.device, non_blocking=True).float()
            out.append(self.embed_pixels(self.intensity(pixels)).float().cpu())
        if not out:
            return torch.empty(0, self.info.embed_dim)
        return torch.cat(out)


def pil_to_uint8(image: Image.Image) -> torch.Tensor:
    """(C, H, W) uint8 from an 8-bit ``L`` (C = 1) or ``RGB`` (C = 3) PIL image: what geometry stages return."""
    arr = np.asarray(image, dtype=np.uint8)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous()


def l2_normalise(x: torch.Tensor) -> torch.Tensor:
    """Float32 L2 normalisation along the last dimension (zero vectors stay zero)."""
    return F.normalize(x.float(), dim=-1)
