"""The optimised sweep against the naive per-level loop, in the same run (``cxrbench bench`` on a subset).

With ``--benchmark-enable`` pytest-benchmark times both; the assertion is that they agree: every Recall@k equal
(to 1e-6) in fp32. The speed-up figure for the full split comes from ``cxrbench bench`` (docs/performance.md).
"""

from __future__ import annotations

import pytest

from cxrbench.bench import compare
from cxrbench.models import load_model


@pytest.fixture(scope="module")
def encoder():
    return load_model("reference", device="cpu")


def test_naive_and_optimised_sweeps_agree(encoder):
    report = compare(encoder=encoder, max_studies=40, levels=(0.0, 0.25, 0.64), device="cpu")
    assert report["images"] > 40
    assert report["max_recall_abs_diff"] <= 1e-6
    print(f"\nnaive {report['naive_s']} s, optimised {report['optimised_s']} s, speed-up {report['speedup']}x "
          f"(40 studies, 3 levels)")


@pytest.mark.parametrize("pipeline", ["naive", "optimised"])
def test_pipeline_timing(benchmark, encoder, pipeline):
    """Timed with --benchmark-enable: the same subset through each pipeline."""
    from cxrbench.bench import naive_sweep
    from cxrbench.config import SweepConfig
    from cxrbench.data import load_dataset
    from cxrbench.prepared import Prepared
    from cxrbench.runner import run_sweep

    ds = load_dataset("iu-phantom", progress=False).subset(20)
    levels = (0.0, 0.49)

    def naive():
        encoder.clear_caches()
        return naive_sweep(encoder, ds, levels)[0]

    def optimised():
        encoder.clear_caches()
        cfg = SweepConfig(models=["reference"], levels=levels, bootstrap=0, use_cache=False, device="cpu")
        return run_sweep(cfg, progress=False, prepared=Prepared(ds), encoders={"reference": encoder})

    out = benchmark.pedantic(naive if pipeline == "naive" else optimised, rounds=1, iterations=1)
    assert out is not None
