"""The benchmark suite: one case per (model, corruption, level), embeddings computed once per session."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from cxrbench import thresholds
from cxrbench.config import SweepConfig
from cxrbench.corruptions import parse_levels
from cxrbench.errors import ConfigError
from cxrbench.models import available, canonical_name, get_spec
from cxrbench.prepared import Prepared, prepare
from cxrbench.results import SweepResult
from cxrbench.runner import run_sweep


@dataclass(frozen=True)
class Case:
    model: str
    corruption: str
    level: float

    @property
    def id(self) -> str:
        return f"{self.model}-{self.corruption}-{self.level:g}"


def _cases(config: pytest.Config) -> list[Case]:
    models = config.getoption("--models")
    names = [canonical_name(m) for m in models.split(",")] if models else available()
    for n in names:
        get_spec(n)  # unknown names fail collection with the list of available ones
    levels = parse_levels(config.getoption("--levels"))
    corrs = [c.strip() for c in config.getoption("--corruption").split(",") if c.strip()]
    return [Case(m, c, lv) for m in names for c in corrs for lv in levels]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "case" in metafunc.fixturenames:
        cases = _cases(metafunc.config)
        metafunc.parametrize("case", cases, ids=[c.id for c in cases])


class Sweeps:
    """Runs each model's whole sweep (every corruption and level) the first time a case asks for it."""

    def __init__(self, config: pytest.Config):
        self.config = config
        self._prepared: Prepared | None = None
        self._results: dict[str, SweepResult] = {}

    def _cfg(self, model: str) -> SweepConfig:
        o = self.config.getoption
        return SweepConfig(
            dataset=o("--dataset"), split=o("--split"), policy=o("--policy"),
            dataset_options={"root": o("--root")} if o("--root") else {},
            models=[model], models_config=o("--models-config"),
            corruptions=[c.strip() for c in o("--corruption").split(",") if c.strip()],
            levels=parse_levels(o("--levels")), device=o("--device"), precision=o("--precision"), bootstrap=0,
            max_studies=o("--max-studies"),
        )

    def prepared(self, cfg: SweepConfig) -> Prepared:
        """The dataset, its decoded images and geometry tensors: shared by every model of the session."""
        if self._prepared is None:
            self._prepared = prepare(cfg, progress=False)
        return self._prepared

    def result(self, model: str) -> SweepResult:
        if model not in self._results:
            cfg = self._cfg(model)
            self._results[model] = run_sweep(cfg, progress=False, prepared=self.prepared(cfg))
        res = self._results[model]
        if model in res.skipped:
            pytest.skip(f"{model}: {res.skipped[model]}")
        return res


@pytest.fixture(scope="session")
def sweeps(pytestconfig: pytest.Config) -> Sweeps:
    return Sweeps(pytestconfig)


@pytest.fixture(scope="session")
def stored_thresholds(pytestconfig: pytest.Config) -> dict:
    path = pytestconfig.getoption("--thresholds")
    try:
        return thresholds.load(path)
    except ConfigError as exc:
        pytest.fail(str(exc))
