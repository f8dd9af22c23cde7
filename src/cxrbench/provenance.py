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
    """The torch device for ``--device`` (auto: CUDA when available, else the CPU); a ConfigError in one line for
    a name torch does not know or a device this build or machine cannot use (tpu, meta, mps off macOS, cuda
    without a GPU, cuda:N past the last GPU)."""
    from cxrbench.errors import ConfigError

    if device in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ConfigError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N") from None
    if dev.type == "cpu":
        return dev
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {device!r} requested but CUDA is not available here; use --device cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ConfigError(f"device {device!r}: this machine has {torch.cuda.device_count()} CUDA device(s), "
                              f"cuda:0 to cuda:{torch.cuda.device_count() - 1}")
        return dev
    if dev.type == "mps" and torch.backends.mps.is_available():
        return dev
    raise ConfigError(f"device {device!r} cannot be used by this build of torch ({torch.__version__}) on this "
                      "machine; use --device cpu, cuda or auto")


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
