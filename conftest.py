"""Shared pytest options and session fixtures for tests/ and benchmarks/.

Options (all optional):
  --device auto|cpu|cuda        where embeddings run (auto: cuda when present)
  --dataset NAME                dataset for benchmarks/ (default iu-phantom)
  --split / --policy / --root   dataset split, report-text policy, root folder for real datasets
  --models a,b                  models for benchmarks/ (default: every registered model; missing weights skip)
  --corruption pixels[,block]   occlusion modes (default pixels)
  --levels paper|0,0.25         occlusion levels (default: the paper's 8)
  --precision fp32|bf16|fp16    (default fp32)
  --thresholds PATH             thresholds file (default thresholds.yaml at the repo root)
  --models-config PATH          models.yaml with checkpoint paths (or $CXRBENCH_MODELS)
  --max-studies N               benchmarks/ on the first N studies of the split only (smoke runs)
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("cxrbench")
    g.addoption("--device", default="auto")
    g.addoption("--dataset", default="iu-phantom")
    g.addoption("--split", default=None)
    g.addoption("--policy", default=None)
    g.addoption("--root", default=None)
    g.addoption("--models", default=None)
    g.addoption("--corruption", default="pixels")
    g.addoption("--levels", default="paper")
    g.addoption("--precision", default="fp32")
    g.addoption("--thresholds", default=str(ROOT / "thresholds.yaml"))
    g.addoption("--models-config", default=None)
    g.addoption("--max-studies", type=int, default=None)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT
