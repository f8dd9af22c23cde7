"""Result folders for the `cxrbench diff` and nightly tests, made once per session (``nightly_runs`` in
tests/conftest.py) with `cxrbench run` on the first 300 iu-phantom test studies, models reference and random,
clean and at 49% pixel occlusion, 1000 study resamples:

* ``base``: the packaged weights;
* ``same``: the same command again (it reads the embeddings the first run cached, as a nightly on a runner that
  keeps its cache does; that a recomputed run gives the same records is tested in tests/reliability);
* ``perturbed``: ``--checkpoint reference=<copy>``, a copy of the packaged reference weights with Gaussian noise
  of 0.08 times each image-tower tensor's standard deviation added (seeded). Measured on these studies, this costs
  the reference model about 5 points of clean Recall@10 image_to_text (37.9% -> 32.8%) and is significant there,
  while at 49% occlusion, where the model is near chance, nothing moves significantly. ``random`` is unchanged.

The embedding and geometry caches go to a folder of their own under ``root`` (the session fixture is set up
before the per-test cache isolation of tests/conftest.py, and nothing here may touch the user's cache); the
rendered phantoms stay shared.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from cxrbench import cli

NOISE = 0.08
RUN = ["--dataset", "iu-phantom", "--max-studies", "300", "--models", "reference,random", "--levels", "0,0.49",
       "--bootstrap", "1000", "--device", "cpu", "--no-progress", "--no-report"]


def reference_weights() -> Path:
    import cxrbench

    return Path(cxrbench.__file__).parent / "weights" / "reference.safetensors"


def noisy_copy(src: Path, dst: Path, scale: float = NOISE, seed: int = 0) -> Path:
    """``src`` with N(0, (scale * std)^2) noise added to every floating image-tower weight and bias (batch-norm
    running statistics untouched); the metadata is kept."""
    g = torch.Generator().manual_seed(seed)
    with safe_open(str(src), "pt") as f:
        meta, names = f.metadata(), f.keys()  # a safe_open handle is not iterable
        tensors = {k: f.get_tensor(k) for k in names}
    for key, t in tensors.items():
        if key.startswith("image.") and t.is_floating_point() and "running" not in key and t.numel() > 1:
            x = t.float()
            tensors[key] = (x + scale * x.std() * torch.randn(x.shape, generator=g)).to(t.dtype)
    save_file(tensors, str(dst), metadata=meta)
    return dst


@contextlib.contextmanager
def private_cache(folder: Path) -> Iterator[None]:
    """Embedding and geometry cache entries go to ``folder`` meanwhile (as tests/conftest.py's isolation does)."""
    import cxrbench.embed_cache as embed_cache
    import cxrbench.prepared as prepared

    saved = embed_cache.cache_root, prepared.cache_root
    embed_cache.cache_root = prepared.cache_root = lambda: folder
    try:
        yield
    finally:
        embed_cache.cache_root, prepared.cache_root = saved


def make_runs(root: Path) -> dict[str, Path]:
    out = {name: root / name for name in ("base", "same", "perturbed")}
    weights = noisy_copy(reference_weights(), root / "reference-noisy.safetensors")
    with private_cache(root / "cache"):
        for name, extra in (("base", []), ("same", []), ("perturbed", ["--checkpoint", f"reference={weights}"])):
            assert cli.main(["run", *RUN, *extra, "--out", str(out[name]), "--run-name", name]) == 0, name
    return out
