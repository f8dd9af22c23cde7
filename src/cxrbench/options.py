"""The sweep's options, declared once for both front-ends: ``cxrbench run`` (argparse) and the pytest plugin.

:data:`SWEEP_OPTIONS` is the table; :func:`add_sweep_options` adds it to an ``argparse`` parser or a pytest option
group (both take the same keywords), and :func:`sweep_config` turns the parsed values into a checked
:class:`~cxrbench.config.SweepConfig`. An option left unset (None) takes the SweepConfig default, so defaults
live in one place. The pytest plugin keeps four defaults of its own on purpose (:data:`PYTEST_DEFAULTS`):
``--models all`` (every registered model; models without weights skip), ``--bootstrap 0`` (the gate compares
point values, and intervals would cost minutes), and ``--corruption`` :data:`PYTEST_CORRUPTIONS` with
``--levels`` :data:`PYTEST_LEVELS` (a representative set that keeps CI within its time; ``--corruption all
--levels paper`` for a nightly run).

This module imports nothing heavy, so the command line stays quick to start.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cxrbench.errors import ConfigError

if TYPE_CHECKING:
    from cxrbench.config import SweepConfig

ALL_MODELS = "all"


@dataclass(frozen=True)
class Option:
    """One command-line option: its flag and the keywords ``add_argument`` / ``addoption`` take."""

    flag: str
    kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def dest(self) -> str:
        return self.kwargs.get("dest") or self.flag.lstrip("-").replace("-", "_")


def _opt(flag: str, **kwargs: Any) -> Option:
    return Option(flag, kwargs)


#: every option of ``cxrbench run`` that says what to run (the results folder, run name, progress bars and the
#: threshold check are the command line's own)
SWEEP_OPTIONS: tuple[Option, ...] = (
    _opt("--protocol", help="a named preset of dataset, sections, levels and k (`paper`: arXiv 2501.09134 on "
                            "MIMIC-CXR; docs/datasets.md); options it fixes may not be changed"),
    _opt("--dataset", help="dataset name (default iu-phantom; `cxrbench datasets list`)"),
    _opt("--split", help="dataset split (iu-phantom: test)"),
    _opt("--policy", help="report text: findings | impression | findings+impression | longest"),
    _opt("--root", help="dataset root folder (real datasets; manifest: the manifest file)"),
    _opt("--on-bad-image", choices=["error", "skip"],
         help="a missing or undecodable image: stop naming it (default), or warn, leave it out and count it"),
    _opt("--data-option", action="append", metavar="KEY=VALUE",
         help="loader option, repeatable (e.g. views=[PA,AP], reports=/path/reports.zip, format=dcm)"),
    _opt("--models", help="comma-separated model names, or 'all' (`cxrbench run` default: reference,reference_occaug,random)"),
    _opt("--checkpoint", action="append", metavar="MODEL=PATH", help="checkpoint for a model (repeatable)"),
    _opt("--models-config", help="models.yaml: per-model paths, and models defined by a 'family:' entry "
                                 "(or $CXRBENCH_MODELS)"),
    _opt("--model-module", action="append", metavar="PATH",
         help="a .py file that registers models (repeatable; docs/your-model.md), imported before models are "
              "listed or checked"),
    _opt("--trust-remote-code", action="store_true", default=False,
         help="let hf models whose models.yaml entry sets trust_remote_code run the Python files shipped with "
              "their weights"),
    _opt("--corruption", help="comma-separated corruption names, or 'all' (default pixels; `cxrbench corruptions` "
                              "lists them): occlusion modes pixels, block, patches, center, periphery, lungs and "
                              "severity families such as motion_blur, gaussian_noise, jpeg"),
    _opt("--fill", choices=["zero", "mean", "noise"], help="value of blocked pixels (default zero)"),
    _opt("--patch-size", type=int, help="patch side in pixels for 'patches' (default 16)"),
    _opt("--levels", help="'paper' (default: the 8 paper fractions for occlusion, severities 0-5 for the other "
                          "families), one comma-separated list for every corruption (fractions in [0, 1) or "
                          "severities 0-5), or per kind: 'fraction=0,0.25,0.49;severity=0,1,3,5'"),
    _opt("--seed", type=int, help="seed of the corruptions' randomness and the bootstrap (default 0)"),
    _opt("--device", help="auto (default) | cpu | cuda | cuda:N"),
    _opt("--precision", choices=["fp32", "bf16", "fp16", "auto"],
         help="image and text towers (default fp32; auto: bf16/fp16 only where the device runs it natively)"),
    _opt("--decode", choices=["exact", "fast"],
         help="exact (default) or fast: JPEGs decoded reduced to each model's input size (Pillow draft mode; "
              "nvjpeg on CUDA); embeddings move slightly, see docs/performance.md"),
    _opt("--batch-size", type=int, help="images per batch (default: each model's own)"),
    _opt("--no-channels-last", dest="channels_last", action="store_false", default=True,
         help="keep every image tower in contiguous (NCHW) memory format (default: channels-last for "
              "convolutional towers, contiguous for ViTs)"),
    _opt("--bootstrap", type=int, help="bootstrap resamples for 95%% intervals (`cxrbench run` default: 1000; 0: none)"),
    _opt("--max-studies", type=int, help="use only the first N studies (smoke runs)"),
    _opt("--no-cache", action="store_true", default=False,
         help="do not read or write the embedding and geometry caches"),
)

#: the pytest plugin's own defaults (see the module docstring)
#: the pytest suite's corruptions: one structured occlusion mode (with per-image lung masks), one blur and one
#: digital artefact beside the paper's pixel occlusion, at the 8 paper fractions and severities 0, 3 and 5, so
#: that CI stays within its time (a nightly run: ``--corruption all --levels paper``; docs/corruptions.md)
PYTEST_CORRUPTIONS = "pixels,lungs,motion_blur,jpeg"
PYTEST_LEVELS = "fraction=paper;severity=0,3,5"
PYTEST_DEFAULTS: dict[str, Any] = {"models": ALL_MODELS, "bootstrap": 0, "corruption": PYTEST_CORRUPTIONS,
                                   "levels": PYTEST_LEVELS}


#: the loader options alone (``cxrbench datasets describe``, ``cxrbench bench``)
DATA_OPTIONS = ("root", "on_bad_image", "data_option")
#: the options that decide which models exist and what they may run (``cxrbench bench``; ``cxrbench models`` takes
#: the first two)
MODEL_OPTIONS = ("models_config", "model_module", "trust_remote_code")


def add_sweep_options(add: Callable[..., Any], defaults: dict[str, Any] | None = None,
                      only: Iterable[str] | None = None) -> None:
    """``add(flag, **keywords)`` for every sweep option: ``parser.add_argument`` or pytest's ``group.addoption``.

    ``defaults`` (dest -> value) overrides an option's default for this front-end; ``only`` (dests) restricts the
    options added.
    """
    defaults = defaults or {}
    for opt in SWEEP_OPTIONS:
        if only is not None and opt.dest not in only:
            continue
        kwargs = dict(opt.kwargs)
        kwargs.setdefault("default", None)
        if opt.dest in defaults:
            kwargs["default"] = defaults[opt.dest]
            kwargs["help"] = f"{kwargs.get('help', '')} [default here: {defaults[opt.dest]}]".strip()
        add(opt.flag, **kwargs)


def csv(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def parse_checkpoints(items: Iterable[str] | None, option: str = "--checkpoint") -> dict[str, dict]:
    """``MODEL=PATH`` items -> ``{model: {"checkpoint": PATH}}`` (model names canonical)."""
    from cxrbench.models import canonical_name

    out: dict[str, dict] = {}
    for item in items or []:
        model, sep, path = item.partition("=")
        if not sep or not model.strip() or not path.strip():
            raise ConfigError(f"{option} expects MODEL=PATH, got {item!r}")
        out.setdefault(canonical_name(model), {})["checkpoint"] = path.strip()
    return out


def parse_data_options(items: Iterable[str] | None = None, root: str | None = None,
                       on_bad_image: str | None = None) -> dict:
    """Loader options: repeatable ``KEY=VALUE`` (VALUE parsed as YAML: 1, true, [PA, AP]), ``root``,
    ``on_bad_image``."""
    import yaml

    options: dict = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--data-option expects KEY=VALUE, got {item!r}")
        options[key.strip().replace("-", "_")] = yaml.safe_load(value)
    if root:
        options["root"] = root
    if on_bad_image:
        options["on_bad_image"] = on_bad_image
    return options


def load_model_sources(get: Callable[[str], Any]) -> None:
    """Apply the :data:`MODEL_OPTIONS`: allow remote code (``--trust-remote-code``) and import the installed
    ``cxrbench.models`` plugins and every ``--model-module`` file, so that the models they register can be listed
    and checked. A file already imported is not imported again.

    Each process applies them itself: under torchrun every worker parses the same command line, so every worker
    loads the same files.
    """
    from cxrbench.models import load_plugins, set_trust_remote_code

    if get("trust_remote_code"):
        set_trust_remote_code(True)
    load_plugins(model_modules=get("model_module") or ())


def _dedupe(items: list, option: str) -> list:
    """``items`` without repeats (first occurrence kept), with a note naming what was removed."""
    import warnings

    from cxrbench.errors import Note

    out = list(dict.fromkeys(items))
    if len(out) != len(items):
        repeated = [x for x in out if items.count(x) > 1]
        warnings.warn(f"{option} lists {', '.join(map(str, repeated))} more than once; each is run once", Note,
                      stacklevel=3)
    return out


#: ``--corruption all``
ALL_CORRUPTIONS = "all"


def _corruptions(text: str) -> list[str]:
    """``--corruption``: names (repeats run once, with a note), or ``all``: every registered corruption."""
    from cxrbench.corruptions import available

    names = csv(text)
    if names == [ALL_CORRUPTIONS]:
        return available()
    return _dedupe(names, "--corruption")


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ConfigError(f"--levels: level {text!r} is not a number; give fractions in [0, 1) for occlusion, "
                          "severities 0-5 for the other families, or 'paper'") from None


def _levels(spec: str) -> str | tuple | dict:
    """``--levels``: a preset name (kept as the name: each corruption kind has its own standard levels), a
    comma-separated list whose repeats are removed with a note (checked per kind by ``SweepConfig.validate``),
    or the per-kind form ``fraction=...;severity=...`` as ``{kind: levels}``."""
    from cxrbench.corruptions import LEVEL_KINDS
    from cxrbench.corruptions.levels import PRESETS

    text = spec.strip()
    if "=" not in text:
        if text in PRESETS["fraction"]:
            return text
        return tuple(_dedupe([_number(x) for x in text.replace(" ", "").split(",") if x], "--levels"))
    parts: dict[str, str | tuple] = {}
    for part in (p.strip() for p in text.split(";")):
        if not part:
            continue
        kind, sep, levels = (x.strip() for x in part.partition("="))
        if not sep or kind not in LEVEL_KINDS:
            raise ConfigError(f"--levels part {part!r}: write kind=levels with kind one of {', '.join(LEVEL_KINDS)}, "
                              "e.g. 'fraction=0,0.25,0.5;severity=0,3,5'")
        if kind in parts:
            raise ConfigError(f"--levels gives the {kind} levels twice in {spec!r}")
        parts[kind] = levels if levels in PRESETS[kind] else _levels(levels)
    return parts


def check_run_name(name: str) -> str:
    """A run name is one plain folder name: it cannot leave the results folder (``../x``, ``/abs``, ``a/b``)."""
    if (not name or name in (".", "..") or any(c in name for c in "/\\\0") or name.startswith(".")
            or name != name.strip()):
        raise ConfigError(f"--run-name {name!r} must be a plain folder name (no '/', '\\', '..', leading '.' "
                          "or surrounding spaces), e.g. baseline-2024")
    return name


def sweep_config(get: Callable[[str], Any]) -> SweepConfig:
    """A checked SweepConfig from option values: ``get(dest)`` is ``vars(args).get`` or pytest's ``getoption``.

    The model plugins are loaded first (:func:`load_model_sources`), and ``--models all`` lists the models of
    ``--models-config`` too. Repeated models, corruptions and levels are run once (with a note); an empty
    ``--models`` or ``--corruption`` and a ``--checkpoint`` for a model that is not selected are errors.
    """
    from cxrbench.config import SweepConfig
    from cxrbench.models import available, canonical_name

    for opt in SWEEP_OPTIONS:  # a NUL byte names no file and no model: one clear line instead of a ValueError
        values = get(opt.dest)
        for value in values if isinstance(values, list) else [values]:
            if isinstance(value, str) and "\x00" in value:
                raise ConfigError(f"{opt.flag} {value!r} contains a NUL byte (shown as \\x00); fix the value")
    load_model_sources(get)
    kwargs: dict[str, Any] = {}
    for dest in ("dataset", "split", "policy", "models_config", "fill", "patch_size", "seed", "device", "precision",
                 "decode", "batch_size", "bootstrap", "max_studies"):
        if get(dest) is not None:
            kwargs[dest] = get(dest)
    models = get("models")
    if models is not None:
        if not csv(models):
            raise ConfigError(f"--models {models!r} names no model; give names from `cxrbench models`, or 'all'")
        kwargs["models"] = (available(get("models_config")) if models.strip() == ALL_MODELS
                            else _dedupe([canonical_name(m) for m in csv(models)], "--models"))
    if get("model_module"):
        kwargs["model_modules"] = tuple(get("model_module"))
    if get("corruption") is not None:
        if not csv(get("corruption")):
            raise ConfigError(f"--corruption {get('corruption')!r} names no corruption; e.g. --corruption pixels")
        kwargs["corruptions"] = _corruptions(get("corruption"))
    if get("levels") is not None:
        kwargs["levels"] = _levels(get("levels"))
    dataset_options = parse_data_options(get("data_option"), get("root"), get("on_bad_image"))
    if get("protocol"):
        kwargs, dataset_options = _with_protocol(get("protocol"), kwargs, dataset_options)
    settings = parse_checkpoints(get("checkpoint"))
    cfg = SweepConfig(dataset_options=dataset_options, model_settings=settings, use_cache=not get("no_cache"),
                      channels_last=bool(get("channels_last")), **kwargs)
    cfg.validate()
    stray = [m for m in settings if m not in cfg.models]
    if stray:
        raise ConfigError(f"--checkpoint names {', '.join(stray)}, which is not among the selected models "
                          f"({', '.join(cfg.models)}); add it to --models or fix the name")
    return cfg


def _with_protocol(name: str, kwargs: dict[str, Any], dataset_options: dict) -> tuple[dict[str, Any], dict]:
    """The protocol's settings merged with the options given (:func:`cxrbench.protocols.apply_protocol`): a fixed
    setting given differently is a ConfigError; the merged options record the protocol and what was overridden."""
    from dataclasses import fields

    from cxrbench.config import SweepConfig
    from cxrbench.protocols import apply_protocol

    given = kwargs.get("levels")
    user = {**kwargs, "dataset_options": dataset_options}
    if isinstance(given, dict):  # a protocol's levels are occlusion fractions: its fraction part is compared
        user["levels"] = given.get("fraction", "paper")
    merged = apply_protocol(name, user)
    known = {f.name for f in fields(SweepConfig)} - {"dataset_options"}
    out = {k: v for k, v in merged.items() if k in known}
    if "levels" in out and not isinstance(out["levels"], (str, dict)):
        # the fixed levels are the occlusion levels; severity families selected beside them keep their own
        out["levels"] = {**(given if isinstance(given, dict) else {}), "fraction": tuple(out["levels"])}
        if set(out["levels"]) == {"fraction"} and not _has_severity(out.get("corruptions") or ("pixels",)):
            out["levels"] = out["levels"]["fraction"]
    return out, dict(merged.get("dataset_options") or {})


def _has_severity(names) -> bool:
    from cxrbench.corruptions import level_kind

    return any(level_kind(n) == "severity" for n in names)


def protocol_dataset_options(name: str, dataset: str | None, split: str | None, policy: str | None,
                             dataset_options: dict) -> dict:
    """``cxrbench datasets describe --protocol NAME``: the dataset, split, policy and loader options of the
    protocol merged with those given (same rules as a run), plus ``protocol``."""
    from cxrbench.protocols import apply_protocol

    return apply_protocol(name, {"dataset": dataset, "split": split, "policy": policy,
                                 "dataset_options": dataset_options})
