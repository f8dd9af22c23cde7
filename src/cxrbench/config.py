"""What one sweep runs: :class:`SweepConfig` and its validation, the one place where sweep options are checked.

The command line and the pytest plugin build a SweepConfig from the same option table (:mod:`cxrbench.options`);
tests and benchmarks build one directly. :meth:`SweepConfig.validate` runs before any data is read, so a bad
option fails at once with a :class:`~cxrbench.errors.ConfigError` naming the value and what to give instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from cxrbench import corruptions as corruption_registry
from cxrbench import metrics
from cxrbench.decode import DECODE_MODES
from cxrbench.errors import ConfigError
from cxrbench.provenance import resolve_device

#: the models of ``cxrbench run`` without ``--models``: the packaged reference pair and the untrained chance floor
DEFAULT_MODELS = ("reference", "reference_occaug", "random")
#: precision name -> autocast dtype (None: plain fp32); ``auto`` (:mod:`cxrbench.precision`) resolves to one of them
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}

ON_BAD_IMAGE = ("error", "skip")


@dataclass
class SweepConfig:
    dataset: str = "iu-phantom"
    split: str | None = None
    policy: str | None = None
    dataset_options: dict = field(default_factory=dict)
    models: Sequence[str] = DEFAULT_MODELS
    model_settings: dict = field(default_factory=dict)  # {model: {checkpoint: ..., ...}}
    models_config: str | None = None  # models.yaml
    #: ``.py`` files that register models (``--model-module``), imported by :meth:`validate`
    model_modules: Sequence[str] = ()
    corruptions: Sequence[str] = ("pixels",)
    fill: str = "zero"
    patch_size: int = 16
    levels: Sequence[float] = corruption_registry.PAPER_LEVELS
    seed: int = 0
    ks: Sequence[int] = metrics.DEFAULT_KS
    device: str = "auto"
    #: fp32 (default: the exact comparison), bf16, fp16, or auto (bf16/fp16 where the device runs it natively;
    #: resolved by the runner, :func:`cxrbench.precision.resolve_precision`)
    precision: str = "fp32"
    #: exact (default) or fast: JPEGs decoded reduced in the DCT domain (CPU) or with nvjpeg (CUDA)
    decode: str = "exact"
    batch_size: int | None = None
    bootstrap: int = 1000
    max_studies: int | None = None
    use_cache: bool = True
    #: channels-last memory format for image towers: 1.5x faster for the reference CNN on this CPU (oneDNN);
    #: a no-op for models without convolutions after the patch embedding.
    channels_last: bool = True
    #: the named protocol this run follows (``--protocol``): ``{"name", "overridden", "reconstructed"}`` as
    #: :func:`cxrbench.protocols.apply_protocol` returns it; None for a run without one
    protocol: dict | None = None

    def validate(self) -> None:
        """Check every option (cheaply: no data, no weights); normalises ``levels`` to a tuple of floats."""
        from cxrbench.data import available as available_datasets
        from cxrbench.models import get_spec, load_plugins
        from cxrbench.models.registry import refuse_remote_code

        self.levels = tuple(corruption_registry.check_level(x) for x in self.levels)
        if not self.levels:
            raise ConfigError("no occlusion levels given")
        if self.dataset not in available_datasets():
            raise ConfigError(f"unknown dataset {self.dataset!r}; available: {', '.join(available_datasets())}")
        bad = self.dataset_options.get("on_bad_image")
        if bad is not None and bad not in ON_BAD_IMAGE:
            raise ConfigError(f"on_bad_image must be one of {', '.join(ON_BAD_IMAGE)}, not {bad!r}")
        load_plugins(model_modules=self.model_modules)  # the models they register are checked below
        for name in self.models:
            # unknown names: ConfigError with the list of available models; remote code refused before any work
            refuse_remote_code(get_spec(name, self.models_config))
        for name in self.model_settings:
            get_spec(name, self.models_config)
        if not self.corruptions:
            raise ConfigError("no corruption given; choose from " + ", ".join(corruption_registry.available()))
        for name in self.corruptions:
            corruption_registry.get(name, fill=self.fill, patch_size=self.patch_size)
        if not self.models:
            raise ConfigError("no model given; choose from `cxrbench models` (or 'all')")
        resolve_device(self.device)  # an unknown or unusable device: one line, before any work
        if self.precision not in (*PRECISIONS, "auto"):
            raise ConfigError(f"unknown precision {self.precision!r}; choose one of {', '.join(PRECISIONS)}, auto")
        if self.decode not in DECODE_MODES:
            raise ConfigError(f"unknown decode mode {self.decode!r}; choose one of {', '.join(DECODE_MODES)}")
        if any(int(k) < 1 for k in self.ks):
            raise ConfigError(f"k must be >= 1, got {list(self.ks)}")
        for what, value, least in (("batch size", self.batch_size, 1), ("max studies", self.max_studies, 1),
                                   ("bootstrap resamples", self.bootstrap, 0)):
            if value is not None and (not isinstance(value, int) or value < least):
                raise ConfigError(f"{what} must be an integer >= {least}, got {value!r}")
        if not isinstance(self.seed, int):
            raise ConfigError(f"seed must be an integer, got {self.seed!r}")
