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

Two optional hooks serve the sweep's speed-ups: ``decode_need`` says which side of the image the geometry stage
resizes to how many pixels, so ``--decode fast`` may decode JPEGs reduced in the DCT domain to no less than that,
and ``text_settings`` names what, besides the checkpoint, decides the text embeddings (the key of the on-disk
text-embedding cache).
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
    #: Whether the image tower runs in channels-last memory format when the run asks for it (``cfg.channels_last``,
    #: the default): the faster format per family, measured in docs/performance.md ("Memory format"). Convolutional
    #: towers gain from it on the CPU (oneDNN); a ViT, whose only convolution is the patch embedding, does not, and
    #: ran slower with it under bf16, so its family sets False.
    channels_last_tower: bool = True

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

    def decode_need(self) -> tuple[str, int] | None:
        """What the geometry stage resizes: ``("shorter", n)`` (the shorter side to n pixels) or ``("longer", n)``
        (the longer side, e.g. before padding to a square). ``--decode fast`` decodes no smaller than that, so the
        geometry still downsamples and never upsamples (:mod:`cxrbench.decode`). None (the default): the geometry
        needs the full-size image."""
        return None

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

    def text_settings(self) -> dict:
        """What decides the text embeddings besides the checkpoint (its hash is keyed separately): the text batch
        size (padding depends on it), the preprocessing description, ``info.extra`` (where adapters name parts
        loaded from elsewhere, such as a separate text tower's hash) and, when the adapter keeps a Hugging Face
        tokenizer as ``self.tokenizer``, that tokenizer's identity (:func:`tokenizer_fingerprint`). Adapters
        override it to add their tokenizer settings; one whose text tower is not named by any of these must, for
        the text-embedding cache to tell its settings apart."""
        out: dict = {"family": self.info.family, "text_batch_size": self.text_batch_size,
                     "preprocessing": self.info.preprocessing, "extra": self.info.extra}
        tokenizer = getattr(self, "tokenizer", None)
        if tokenizer is not None:
            out["tokenizer"] = tokenizer_fingerprint(tokenizer)
        return out

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


def tokenizer_fingerprint(tokenizer) -> dict:
    """A Hugging Face tokenizer's identity for cache keys: its class, a hash of its vocabulary, lower-casing,
    maximum length and special tokens (not its folder, so a moved copy keeps its entries)."""
    import hashlib
    import json

    vocab = tokenizer.get_vocab() if hasattr(tokenizer, "get_vocab") else {}
    digest = hashlib.sha256(json.dumps(sorted(vocab.items()), ensure_ascii=False).encode()).hexdigest()[:16]
    init = getattr(tokenizer, "init_kwargs", {}) or {}
    return {"class": type(tokenizer).__name__, "vocab": digest, "vocab_size": len(vocab),
            "lower_case": init.get("do_lower_case", getattr(tokenizer, "do_lower_case", None)),
            "model_max_length": int(min(getattr(tokenizer, "model_max_length", 0) or 0, 10**9)),
            "special": [str(t) for t in getattr(tokenizer, "all_special_tokens", [])]}


def pil_to_uint8(image: Image.Image) -> torch.Tensor:
    """(C, H, W) uint8 from an 8-bit ``L`` (C = 1) or ``RGB`` (C = 3) PIL image: what geometry stages return."""
    arr = np.asarray(image, dtype=np.uint8)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous()


def l2_normalise(x: torch.Tensor) -> torch.Tensor:
    """Float32 L2 normalisation along the last dimension (zero vectors stay zero)."""
    return F.normalize(x.float(), dim=-1)
