"""Shared pytest options and session fixtures for tests/ and benchmarks/.

The sweep options are those of ``cxrbench run``, from the same table (``cxrbench.options.SWEEP_OPTIONS``):
--dataset --split --policy --root --on-bad-image --data-option KEY=VALUE (repeatable) --models --checkpoint
MODEL=PATH (repeatable) --models-config --model-module PATH (repeatable) --trust-remote-code --corruption --fill
--patch-size --levels --seed --device --precision --batch-size --no-channels-last --bootstrap --max-studies
--no-cache. Two defaults differ from ``cxrbench run`` on purpose: ``--models all`` (every registered model,
plugins and --models-config entries included; those without weights skip) and ``--bootstrap 0``. The model
plugins (--model-module files, installed ``cxrbench.models`` entry points) are loaded when the benchmark cases are
generated, before the models are listed.

Options of the suite alone:
  --thresholds PATH             thresholds file (default thresholds.yaml at the repo root); a missing or invalid
                                file stops the session before any sweep
  --allow-empty                 pass even if no benchmark case had a stored threshold (otherwise a session whose
                                threshold gate checked nothing fails)
  --records-out PATH            write the benchmark sweeps' records there (JSON Lines, as records.jsonl)
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cxrbench.options import PYTEST_DEFAULTS, add_sweep_options

ROOT = Path(__file__).resolve().parent
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("cxrbench")
    add_sweep_options(g.addoption, defaults=PYTEST_DEFAULTS)
    g.addoption("--thresholds", default=str(ROOT / "thresholds.yaml"), help="thresholds file for benchmarks/")
    g.addoption("--allow-empty", action="store_true", default=False,
                help="benchmarks/: pass even if no case had a stored threshold (a gate that checked nothing)")
    g.addoption("--records-out", default=None, metavar="PATH",
                help="write the records of the benchmark sweeps to PATH (JSON Lines)")


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT
