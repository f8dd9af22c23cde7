"""``--precision auto``: bf16/fp16 only where the device runs it natively; a one-line warning for bf16 on a CPU
without it; ``cxrbench run`` stays fp32 by default and records the precision it used."""

from __future__ import annotations

import warnings

import pytest
import torch

import cxrbench.precision as precision
from cxrbench.config import SweepConfig
from cxrbench.errors import ConfigError
from cxrbench.results import records
from cxrbench.runner import run_sweep

CPU = torch.device("cpu")


@pytest.fixture
def cpu_formats(monkeypatch):
    def set_formats(*formats):
        monkeypatch.setattr(precision, "cpu_native_formats", lambda: frozenset(formats))

    return set_formats


def test_auto_picks_bf16_only_on_a_cpu_that_runs_it(cpu_formats):
    cpu_formats("bf16")
    assert precision.resolve_precision("auto", CPU) == "bf16"
    cpu_formats()
    assert precision.resolve_precision("auto", CPU) == "fp32"
    cpu_formats("fp16")  # fp16 alone is not picked on a CPU
    assert precision.resolve_precision("auto", CPU) == "fp32"


def test_auto_on_cuda_prefers_bf16_then_fp16(monkeypatch):
    cuda = torch.device("cuda")
    monkeypatch.setattr(precision, "native_formats", lambda device: frozenset({"bf16", "fp16"}))
    assert precision.resolve_precision("auto", cuda) == "bf16"
    monkeypatch.setattr(precision, "native_formats", lambda device: frozenset({"fp16"}))
    assert precision.resolve_precision("auto", cuda) == "fp16"
    monkeypatch.setattr(precision, "native_formats", lambda device: frozenset())
    assert precision.resolve_precision("auto", cuda) == "fp32"


def test_bf16_on_a_cpu_without_it_warns_in_one_line_and_still_runs_it(cpu_formats):
    cpu_formats()
    with pytest.warns(UserWarning, match="no native bf16") as caught:
        assert precision.resolve_precision("bf16", CPU) == "bf16"
    assert len(caught) == 1 and "\n" not in str(caught[0].message)
    cpu_formats("bf16")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert precision.resolve_precision("bf16", CPU) == "bf16"
        assert precision.resolve_precision("fp32", CPU) == "fp32"


def test_this_machines_cpu_flags_agree_with_torch():
    """The /proc/cpuinfo flags and torch's own checks name the same bf16 support (where both exist)."""
    flags = precision._cpuinfo_flags()
    check = getattr(torch.cpu, "_is_avx512_bf16_supported", None)
    if not flags or check is None:
        pytest.skip("no /proc/cpuinfo flags or no torch CPU feature check here")
    assert ("bf16" in precision.cpu_native_formats()) == bool(flags & {"avx512_bf16", "amx_bf16"})


def test_run_default_is_fp32_and_auto_is_recorded_resolved(tiny_dataset, cpu_formats):
    from cxrbench.models import load_model

    assert SweepConfig().precision == "fp32"
    cpu_formats()
    enc = load_model("random")
    cfg = SweepConfig(models=["random"], levels=(0.0,), bootstrap=0, device="cpu", precision="auto",
                      use_cache=False)
    result = run_sweep(cfg, progress=False, dataset=tiny_dataset, encoders={"random": enc})
    assert result.config.precision == "fp32" and {r["precision"] for r in records(result)} == {"fp32"}
    with pytest.raises(ConfigError, match="auto"):
        SweepConfig(precision="fp8").validate()
    with pytest.raises(ConfigError, match="decode"):
        SweepConfig(decode="quick").validate()
