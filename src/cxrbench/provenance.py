"""What a results record says about the code and machine that produced it."""

from __future__ import annotations

import platform
import subprocess
from functools import lru_cache
from pathlib import Path

import torch

import cxrbench


@lru_cache(maxsize=1)
def code_version() -> str:
    """cxrbench version, plus the git commit (and '-dirty') when running from a checkout."""
    version = cxrbench.__version__
    root = Path(__file__).resolve().parents[2]
    if (root / ".git").exists():
        try:
            commit = subprocess.run(["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"], capture_output=True,
                                    text=True, timeout=5, check=True).stdout.strip()
            dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                                   capture_output=True, text=True, timeout=5).stdout.strip()
            version += f"+g{commit}" + ("-dirty" if dirty else "")
        except (OSError, subprocess.SubprocessError):
            pass
    return version


def resolve_device(device: str | None) -> torch.device:
    if device in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        from cxrbench.errors import ConfigError

        raise ConfigError(f"device {device!r} requested but CUDA is not available here; use --device cpu")
    return dev


def device_description(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    return f"cpu:{platform.processor() or platform.machine()} x{torch.get_num_threads()} threads"


def environment() -> dict:
    return {
        "cxrbench": code_version(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(),
    }
