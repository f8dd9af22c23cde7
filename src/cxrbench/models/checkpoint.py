"""Safe, loud checkpoint loading shared by every adapter.

* Only ``torch.load(weights_only=True)`` or safetensors: never unpickle arbitrary objects.
* Key sets are compared exactly. Missing or unexpected keys are an error that lists them, unless they match a
  named allow-list of known-harmless patterns that the adapter passes in (for example ``position_ids``
  buffers that newer transformers no longer store).
* Tensors whose dtype cannot hold the model's weights (int8, bool or any integer where the model has floating
  point, floating point where it has integers, complex numbers) are refused: a quantised or damaged checkpoint
  would otherwise be cast silently into the model.
* Every checkpoint is identified in results by its SHA-256.
* :func:`raise_all`: an adapter that checks several files (checkpoint, tokenizer) reports every problem at once.
"""

from __future__ import annotations

import hashlib
import re
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path

import torch

from cxrbench.errors import CheckpointError, CxrBenchError, WeightsNotAvailable

_SHA_CACHE: dict[tuple[str, int, int], str] = {}


def sha256_file(path: str | Path) -> str:
    """SHA-256 hex digest of a file (memoised on path, size and mtime)."""
    p = Path(path)
    st = p.stat()
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _SHA_CACHE:
        h = hashlib.sha256()
        with open(p, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        _SHA_CACHE[key] = h.hexdigest()
    return _SHA_CACHE[key]


def sha256_dir(path: str | Path, pattern: str = "*") -> str:
    """A stable digest of the files in a directory (names and contents), for HF-style model folders."""
    p = Path(path)
    h = hashlib.sha256()
    for f in sorted(x for x in p.rglob(pattern) if x.is_file()):
        h.update(str(f.relative_to(p)).encode())
        h.update(sha256_file(f).encode())
    return h.hexdigest()


def load_state_file(path: str | Path, *, adapter: str, safe_globals: Iterable[type] = ()) -> object:
    """Load a ``.pt/.pth/.bin/.tar/.ckpt`` (weights_only) or ``.safetensors`` file.

    Raises CheckpointError naming the file and the adapter when the file is missing, truncated, not a
    checkpoint, or holds objects that are not plain tensors/containers.
    """
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(
            f"{adapter}: checkpoint file {p} does not exist. Point the adapter at the released checkpoint "
            f"(see README, 'Models')."
        )
    if p.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(p))
        except (SafetensorError, OSError, ValueError) as exc:
            raise CheckpointError(f"{adapter}: {p} is not a readable safetensors file ({exc}).") from exc
    try:
        with torch.serialization.safe_globals(list(safe_globals)):
            return torch.load(p, map_location="cpu", weights_only=True)
    except RuntimeError as exc:
        text = str(exc)
        if "TorchScript" in text or "constants.pkl" in text:
            raise  # callers that accept TorchScript archives handle this themselves
        raise CheckpointError(_describe_load_failure(p, adapter, exc)) from exc
    except (EOFError, OSError, ValueError, zipfile.BadZipFile) as exc:
        raise CheckpointError(_describe_load_failure(p, adapter, exc)) from exc
    except Exception as exc:  # pickle.UnpicklingError and friends: refused object types
        raise CheckpointError(_describe_load_failure(p, adapter, exc)) from exc


def _describe_load_failure(p: Path, adapter: str, exc: BaseException) -> str:
    size = p.stat().st_size
    msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if "Weights only load failed" in str(exc):
        return (
            f"{adapter}: {p} holds Python objects that are not tensors, so it was not loaded "
            f"(cxrbench never unpickles arbitrary objects). Is this really a {adapter} checkpoint? "
            f"Detail: {msg}"
        )
    return (
        f"{adapter}: could not read checkpoint {p} ({size} bytes): {msg}. The file may be truncated or not a "
        f"PyTorch checkpoint; re-download it and check its SHA-256."
    )


def _matches(key: str, patterns: Iterable[str]) -> bool:
    return any(re.search(pat, key) for pat in patterns)


def check_keys(
    expected: Iterable[str],
    found: Iterable[str],
    *,
    adapter: str,
    source: str | Path,
    allow_missing: Iterable[str] = (),
    allow_unexpected: Iterable[str] = (),
    max_listed: int = 40,
) -> None:
    """Fail with a message listing every key that is missing from / unexpected in a checkpoint.

    ``allow_missing`` and ``allow_unexpected`` are regular expressions naming known-harmless differences.
    """
    expected, found = set(expected), set(found)
    missing = sorted(k for k in expected - found if not _matches(k, allow_missing))
    unexpected = sorted(k for k in found - expected if not _matches(k, allow_unexpected))
    if not missing and not unexpected:
        return
    lines = [f"{adapter}: checkpoint {source} does not match the model it should load."]
    if not (expected & found):
        lines.append("No key matches at all: this is probably another model's checkpoint.")
    for label, keys in (("missing", missing), ("unexpected", unexpected)):
        if keys:
            shown = ", ".join(keys[:max_listed])
            more = f" ... and {len(keys) - max_listed} more" if len(keys) > max_listed else ""
            lines.append(f"{len(keys)} {label} key(s): {shown}{more}")
    lines.append("Check that the file is the released checkpoint this adapter expects (README, 'Models').")
    raise CheckpointError("\n".join(lines))


def check_shapes(model_state: Mapping[str, torch.Tensor], ckpt: Mapping[str, torch.Tensor], *, adapter: str,
                 source: str | Path) -> None:
    """Fail with a list of keys whose tensor shapes differ between model and checkpoint."""
    bad = [
        f"{k}: checkpoint {tuple(ckpt[k].shape)} vs model {tuple(v.shape)}"
        for k, v in model_state.items()
        if k in ckpt and tuple(ckpt[k].shape) != tuple(v.shape)
    ]
    if bad:
        raise CheckpointError(
            f"{adapter}: checkpoint {source} has tensors of the wrong shape (another architecture?):\n  "
            + "\n  ".join(bad[:40])
        )


def check_dtypes(model_state: Mapping[str, torch.Tensor], ckpt: Mapping[str, torch.Tensor], *, adapter: str,
                 source: str | Path) -> None:
    """Fail naming the keys whose checkpoint dtype cannot hold the model's values (see the module docstring)."""
    bad = []
    for k, v in model_state.items():
        c = ckpt.get(k)
        if not isinstance(c, torch.Tensor):
            continue
        if c.is_complex() or v.is_floating_point() != c.is_floating_point():
            bad.append(f"{k} ({str(c.dtype).removeprefix('torch.')}, model "
                       f"{str(v.dtype).removeprefix('torch.')})")
    if bad:
        more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
        raise CheckpointError(
            f"{adapter}: checkpoint {source} holds tensors of the wrong dtype: {', '.join(bad[:5])}{more}. A "
            "quantised (int8), boolean or damaged checkpoint cannot be loaded into this model; use the released "
            "floating-point checkpoint")


def raise_all(problems: Iterable[CxrBenchError], adapter: str) -> None:
    """Raise every problem found while checking an adapter's files, at once: one of them as it is, several as
    one error listing them all (a CheckpointError if any is one, so a bad checkpoint is never reported as
    'weights not available' and skipped)."""
    problems = list(problems)
    if not problems:
        return
    if len(problems) == 1:
        raise problems[0]
    kinds = {type(p) for p in problems}
    cls = (CheckpointError if any(issubclass(k, CheckpointError) for k in kinds) else
           WeightsNotAvailable if kinds == {WeightsNotAvailable} else type(problems[0]))
    text = " ".join(f"({i}) {' '.join(str(p).split())}" for i, p in enumerate(problems, start=1))
    raise cls(f"{adapter}: {len(problems)} problems: {text}")


def load_checked(module: torch.nn.Module, state: Mapping[str, torch.Tensor], *, adapter: str,
                 source: str | Path, allow_missing: Iterable[str] = (),
                 allow_unexpected: Iterable[str] = ()) -> None:
    """Check keys and shapes loudly, then load ``state`` into ``module`` (float tensors upcast to fp32)."""
    allow_missing = tuple(allow_missing)
    model_state = module.state_dict()
    check_keys(model_state.keys(), state.keys(), adapter=adapter, source=source,
               allow_missing=allow_missing, allow_unexpected=allow_unexpected)
    check_shapes(model_state, state, adapter=adapter, source=source)
    check_dtypes(model_state, state, adapter=adapter, source=source)
    clean = {}
    for k, v in state.items():
        if k not in model_state:
            continue  # allowed unexpected key
        clean[k] = v.float() if v.is_floating_point() else v
    result = module.load_state_dict(clean, strict=False)
    leftover = [k for k in result.missing_keys if not _matches(k, allow_missing)]
    if leftover or result.unexpected_keys:  # pragma: no cover - guarded by check_keys above
        raise CheckpointError(f"{adapter}: internal key mismatch loading {source}: {leftover}")


def build_without_random_init(factory) -> torch.nn.Module:
    """Build a module on the meta device and give it uninitialised storage.

    A large tower's random initialisation is wasted work when a checkpoint fills every tensor (which the loud key
    check guarantees). Modules with non-persistent buffers, or that cannot be built on the meta device, are built
    normally.
    """
    try:
        with torch.device("meta"):
            module = factory()
    except (RuntimeError, NotImplementedError):
        return factory()
    persistent = set(module.state_dict())
    if any(name not in persistent for name, _ in module.named_buffers()):
        return factory()
    return module.to_empty(device="cpu")


def unwrap_state_dict(obj: object, *, adapter: str, source: str | Path) -> dict[str, torch.Tensor]:
    """A plain ``{key: tensor}`` dict from a state dict, or an open_clip ``{"state_dict": ...}`` wrapper,
    without a DataParallel ``module.`` prefix."""
    if isinstance(obj, Mapping) and "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping) or not obj:
        raise CheckpointError(f"{adapter}: {source} does not hold a state dict (found {type(obj).__name__}).")
    bad = [str(k) for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"{adapter}: {source} is not a state dict of tensors; non-tensor entries: "
                              f"{', '.join(bad[:10])}")
    state = dict(obj)
    if all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state
