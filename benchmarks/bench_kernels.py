"""pytest-benchmark timings of the sweep's kernels (run with ``pytest benchmarks/bench_kernels.py
--benchmark-enable``; without it each runs once as a smoke test).

Sizes follow the iu-phantom test split (about 1,000 unique texts, 1,900 images) and the reference model
(128x128 grayscale input, 256-d embeddings).
"""

from __future__ import annotations

import pytest
import torch

from cxrbench.corruptions import Occlusion, get, image_keys
from cxrbench.engine import inference_context
from cxrbench.metrics import retrieval_metrics
from cxrbench.models import load_model
from cxrbench.provenance import resolve_device

N_IMAGES, N_TEXTS, DIM = 1900, 1000, 256


@pytest.fixture(scope="module")
def device(pytestconfig):
    return resolve_device(pytestconfig.getoption("--device"))


@pytest.fixture(scope="module")
def encoder(device):
    return load_model("reference", device=str(device))


def test_image_embedding_per_batch(benchmark, encoder, device):
    pixels = torch.randint(0, 256, (256, 1, 128, 128), dtype=torch.uint8).to(device)

    def run():
        with inference_context(device, "fp32"):
            return encoder.embed_pixels(encoder.intensity(pixels.float()))

    out = benchmark(run)
    assert out.shape == (256, 256)


def test_text_embedding_per_batch(benchmark, encoder):
    texts = [f"Report {i}: the heart is normal in size; small left pleural effusion." for i in range(64)]

    def run():  # bypass the per-text memo so every round embeds for real
        with torch.no_grad():
            return encoder.net.text(encoder.minilm._embed(texts).to(encoder.device))

    out = benchmark(run)
    assert out.shape == (64, 256)


@pytest.fixture
def batch(device) -> tuple[torch.Tensor, torch.Tensor]:
    """256 random uint8 128x128 images and their image keys, on the device."""
    x = torch.randint(0, 256, (256, 1, 128, 128), dtype=torch.uint8).to(device)
    return x, image_keys([f"img{i}" for i in range(256)], 0).to(device)


@pytest.mark.parametrize("mode", ["pixels", "block", "patches", "center", "periphery", "lungs"])
def test_occlusion_of_a_batch(benchmark, mode, batch):
    x, keys = batch
    occ = Occlusion(mode)

    def run():
        return occ.apply(x, keys, 0.49)

    out = benchmark(run)
    assert out.shape == x.shape


@pytest.mark.parametrize("name", ["gaussian_noise", "motion_blur", "zoom_blur", "jpeg", "quantum_noise", "rotation"])
def test_severity_corruption_of_a_batch(benchmark, name, batch):
    """One batch at severity 3, its randomness drawn once (``prepare``) as in the sweep."""
    x, keys = batch
    corr = get(name)

    def run():
        return corr.apply(x, keys, 3, state=corr.prepare(x, keys))

    out = benchmark(run)
    assert out.shape == x.shape and out.dtype == torch.float32 and not torch.equal(out, x.float())


def test_similarity_and_topk_full_test_split(benchmark, device):
    g = torch.Generator().manual_seed(0)
    img = torch.randn(N_IMAGES, DIM, generator=g).to(device)
    txt = torch.randn(N_TEXTS, DIM, generator=g).to(device)
    labels = torch.randint(0, N_TEXTS, (N_IMAGES,), generator=g)
    labels[:N_TEXTS] = torch.arange(N_TEXTS)  # every text has an image

    out = benchmark(retrieval_metrics, img, txt, labels)
    assert out["image_to_text"]["n_queries"] == N_IMAGES
