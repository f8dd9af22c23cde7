"""The benchmark suite: one case per (model, corruption, level), embeddings computed once per session.

The sweep is configured from the pytest options by :func:`cxrbench.options.sweep_config`, exactly as
``cxrbench run`` is from its command line; ``--records-out PATH`` writes the session's records. The thresholds
file is loaded and checked before any sweep (a missing or invalid file stops the session), and a session in which
benchmark cases ran but none had a stored threshold fails: its gate checked nothing (``--allow-empty`` lets it
pass).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import pytest

from cxrbench import thresholds
from cxrbench.config import SweepConfig
from cxrbench.errors import ConfigError
from cxrbench.options import sweep_config
from cxrbench.prepared import Prepared, prepare
from cxrbench.report import write_records
from cxrbench.results import SweepResult, records
from cxrbench.runner import run_sweep

_CONFIG = pytest.StashKey[SweepConfig]()
_SWEEPS = pytest.StashKey["Sweeps"]()
_THRESHOLDS = pytest.StashKey[dict]()
#: benchmark case node id -> "checked" (passed or failed against a threshold) or "unchecked" (its sweep ran but no
#: threshold is stored for it), this session; cases skipped for want of weights are not counted
_GATE: dict[str, str] = {}
NO_THRESHOLDS = "no thresholds stored"
_EMPTY = pytest.StashKey[str]()
GATE_TEST = "test_recall_at_or_above_thresholds"


@dataclass(frozen=True)
class Case:
    """One benchmark case: ``reference-pixels-0.49``, ``reference_occaug-motion_blur-3``,
    ``reference-lungs(masks)-0.25`` (the level: a blocked fraction for occlusion, a severity otherwise)."""

    model: str
    corruption: str
    level: float

    @property
    def id(self) -> str:
        return f"{self.model}-{self.corruption}-{self.level:g}"


def session_config(config: pytest.Config) -> SweepConfig:
    """The session's SweepConfig from the options (checked once; a bad option fails collection with its message)."""
    if _CONFIG not in config.stash:
        try:
            config.stash[_CONFIG] = sweep_config(config.getoption)
        except ConfigError as exc:
            raise pytest.UsageError(str(exc)) from None
    return config.stash[_CONFIG]


def session_thresholds(config: pytest.Config) -> dict:
    """The thresholds file, loaded and checked once; a missing or invalid file is a usage error (the session
    stops before any sweep)."""
    if _THRESHOLDS not in config.stash:
        try:
            config.stash[_THRESHOLDS] = thresholds.load(config.getoption("--thresholds"))
        except ConfigError as exc:
            raise pytest.UsageError(str(exc)) from None
    return config.stash[_THRESHOLDS]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "case" in metafunc.fixturenames:
        cfg = session_config(metafunc.config)
        if "stored_thresholds" in metafunc.fixturenames:
            session_thresholds(metafunc.config)
        # recorded names (``lungs`` on a dataset with masks is ``lungs(masks)``), each with its own kind's levels
        corrs = [cfg.corruption(c) for c in cfg.corruptions]
        cases = [Case(m, c.name, lv) for m in cfg.models for c in corrs for lv in cfg.levels_for(c)]
        metafunc.parametrize("case", cases, ids=[c.id for c in cases])


class Sweeps:
    """Runs each model's whole sweep (every corruption and level) the first time a case asks for it."""

    def __init__(self, cfg: SweepConfig):
        self.cfg = cfg
        self._prepared: Prepared | None = None
        self._results: dict[str, SweepResult] = {}

    def prepared(self) -> Prepared:
        """The dataset, its decoded images and geometry tensors: shared by every model of the session."""
        if self._prepared is None:
            self._prepared = prepare(self.cfg, progress=False)
        return self._prepared

    def result(self, model: str) -> SweepResult:
        if model not in self._results:
            cfg = replace(self.cfg, models=[model])
            self._results[model] = run_sweep(cfg, progress=False, prepared=self.prepared())
        res = self._results[model]
        if model in res.skipped:
            pytest.skip(f"{model}: {res.skipped[model]}")
        return res

    def records(self, run_id: str = "") -> list[dict]:
        """Every record of the sweeps run so far, models in --models order (as ``cxrbench run`` writes them)."""
        return [r for m in self.cfg.models if m in self._results for r in records(self._results[m], run_id)]


@pytest.fixture(scope="session")
def sweeps(pytestconfig: pytest.Config) -> Sweeps:
    pytestconfig.stash[_SWEEPS] = Sweeps(session_config(pytestconfig))
    return pytestconfig.stash[_SWEEPS]


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Count the benchmark cases whose thresholds were checked (passed or failed) and those that had none."""
    if GATE_TEST not in report.nodeid or report.when != "call":
        return
    if not report.skipped:
        _GATE[report.nodeid] = "checked"
    elif NO_THRESHOLDS in str(report.longrepr):
        _GATE[report.nodeid] = "unchecked"


def pytest_sessionfinish(session: pytest.Session) -> None:
    path = session.config.getoption("--records-out")
    if path and _SWEEPS in session.config.stash:
        write_records(session.config.stash[_SWEEPS].records("pytest"), path)
    gate = _GATE
    if gate and "checked" not in gate.values() and not session.config.getoption("--allow-empty"):
        session.config.stash[_EMPTY] = (f"the threshold gate checked nothing: none of the {len(gate)} benchmark "
                                        "case(s) that ran has a stored threshold; store thresholds with "
                                        "`cxrbench thresholds update`, or pass --allow-empty")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus, config: pytest.Config) -> None:
    if _EMPTY in config.stash:
        terminalreporter.write_line(f"FAILED: {config.stash[_EMPTY]}", red=True)


@pytest.fixture(scope="session")
def stored_thresholds(pytestconfig: pytest.Config) -> dict:
    return session_thresholds(pytestconfig)
