"""What one sweep runs: :class:`SweepConfig` and its validation, the one place where sweep options are checked.

The command line and the pytest plugin build a SweepConfig from the same option table (:mod:`cxrbench.options`);
tests and benchmarks build one directly. :meth:`SweepConfig.validate` runs before any data is read, so a bad
option fails at once with a :class:`~cxrbench.errors.ConfigError` naming the value and what to give instead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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
    #: corruption names (``cxrbench corruptions``): occlusion modes and severity families
    corruptions: Sequence[str] = ("pixels",)
    #: occlusion options, passed to every corruption that takes them (``corruptions.build``)
    fill: str = "zero"
    patch_size: int = 16
    #: the levels: a preset (``paper``: each kind's standard levels), one list for every selected corruption, a
    #: mapping level kind -> levels, or a per-kind string (``fraction=0,0.5;severity=0,3``); :meth:`validate`
    #: normalises it to one tuple when every corruption gets the same levels, else to ``{kind: levels}``, and
    #: :meth:`levels_for` gives one corruption's levels
    levels: Sequence[float] | Mapping[str, Sequence] | str = "paper"
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
    #: channels-last memory format for image towers whose family is faster so (``Encoder.channels_last_tower``:
    #: 1.4x for the reference CNN on this CPU, oneDNN); ViT towers stay contiguous (docs/performance.md).
    channels_last: bool = True
    #: the named protocol this run follows (``--protocol``): ``{"name", "overridden", "reconstructed"}`` as
    #: :func:`cxrbench.protocols.apply_protocol` returns it; None for a run without one
    protocol: dict | None = None

    # -- corruptions and their levels ---------------------------------------------------------------------
    def corruption_options(self, lung_masks: bool | None = None) -> dict:
        """The sweep-wide corruption options (each corruption takes the ones it knows, ``corruptions.build``).
        ``lungs`` uses per-image masks when the dataset has them (``lung_masks``; default: what the configured
        dataset provides, :func:`cxrbench.data.provides_lung_masks`), else the fixed template."""
        if lung_masks is None:
            lung_masks = self.lung_masks_available()
        return {"fill": self.fill, "patch_size": self.patch_size,
                "lung_fields": "masks" if lung_masks else "template"}

    def lung_masks_available(self) -> bool:
        from cxrbench.data import provides_lung_masks

        return provides_lung_masks(self.dataset, self.dataset_options)

    def corruption(self, name: str, lung_masks: bool | None = None) -> corruption_registry.Corruption:
        """The corruption called ``name`` with this sweep's options (``lungs`` becomes ``lungs(masks)`` or
        ``lungs(template)``: see :meth:`corruption_options`)."""
        return corruption_registry.build(name, self.corruption_options(lung_masks))

    def level_sets(self) -> dict[str, tuple]:
        """``{level kind: levels}`` for the kinds of the selected corruptions (ConfigError for bad levels)."""
        kinds = [corruption_registry.level_kind(n) for n in self.corruptions]
        spec = self.levels
        if isinstance(spec, Mapping):
            unknown = [k for k in spec if k not in corruption_registry.LEVEL_KINDS]
            if unknown:
                raise ConfigError(f"levels for unknown kind(s) {', '.join(map(repr, unknown))}; kinds are "
                                  f"{', '.join(corruption_registry.LEVEL_KINDS)}")
            out = {k: corruption_registry.parse_kind_levels(k, spec.get(k, "paper")) for k in dict.fromkeys(kinds)}
        else:
            out = corruption_registry.parse_level_spec(spec, kinds)
        for kind, levels in out.items():
            if not levels:
                raise ConfigError(f"no {'occlusion' if kind == 'fraction' else kind} levels given")
        return out

    def levels_for(self, corruption: str | corruption_registry.Corruption) -> tuple:
        """The levels of one corruption (by name or object): fractions for occlusion, severities otherwise."""
        name = corruption if isinstance(corruption, str) else corruption.name
        kind = corruption_registry.level_kind(name)
        sets = self.level_sets()
        if kind not in sets:  # a corruption that is not selected: its kind's levels from the same spec
            return corruption_registry.parse_level_spec(self.levels if not isinstance(self.levels, Mapping)
                                                        else self.levels.get(kind, "paper"), [kind])[kind]
        return sets[kind]

    def validate(self) -> None:
        """Check every option (cheaply: no data, no weights). Normalises ``levels``: one tuple (floats for
        fractions, integers for severities) when every selected corruption gets the same levels, else
        ``{kind: levels}``."""
        from cxrbench.data import available as available_datasets
        from cxrbench.data import lung_masks
        from cxrbench.models import get_spec, load_plugins
        from cxrbench.models.registry import refuse_remote_code

        if self.dataset not in available_datasets():
            raise ConfigError(f"unknown dataset {self.dataset!r}; available: {', '.join(available_datasets())}")
        bad = self.dataset_options.get("on_bad_image")
        if bad is not None and bad not in ON_BAD_IMAGE:
            raise ConfigError(f"on_bad_image must be one of {', '.join(ON_BAD_IMAGE)}, not {bad!r}")
        if self.dataset_options.get(lung_masks.OPTION) is not None:
            lung_masks.check_folder(self.dataset_options[lung_masks.OPTION])
        if not self.corruptions:
            raise ConfigError("no corruption given; choose from " + ", ".join(corruption_registry.available()))
        for name in self.corruptions:
            corr = self.corruption(name)  # unknown names and options: ConfigError listing the names
            if corr.uses_masks and not self.lung_masks_available():
                raise ConfigError(f"{name} needs per-image lung masks, and dataset {self.dataset!r} has none: pass "
                                  "--data-option lung_masks=DIR (PNG masks named <image id>.png), or use 'lungs' "
                                  "(the fixed template, recorded as lungs(template))")
        sets = self.level_sets()
        values = list(sets.values())
        self.levels = values[0] if all(v == values[0] for v in values) else dict(sets)
        load_plugins(model_modules=self.model_modules)  # the models they register are checked below
        for name in self.models:
            # unknown names: ConfigError with the list of available models; remote code refused before any work
            refuse_remote_code(get_spec(name, self.models_config))
        for name in self.model_settings:
            get_spec(name, self.models_config)
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
