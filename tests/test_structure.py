"""The layering that docs/architecture.md promises, checked on the source: the runner only orchestrates (it stays
short), no module grows past the size where it starts doing several jobs, and the runner's modules never import
the report or the command line (results flow down to report/, never back up)."""

from __future__ import annotations

import ast
from pathlib import Path

import cxrbench

SRC = Path(cxrbench.__file__).parent
#: the modules the sweep runs on (docs/architecture.md, "Orchestration"): none may import report/ or cli
RUNNER_MODULES = ("runner", "config", "prepared", "plan", "engine", "embed_cache", "scoring", "examples", "results",
                  "mask_geometry")


def _lines(path: Path) -> int:
    return len(path.read_text(encoding="utf-8").splitlines())


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
    return found


def test_the_runner_only_orchestrates():
    assert _lines(SRC / "runner.py") < 150


def test_no_source_file_over_600_lines():
    big = {str(p.relative_to(SRC)): _lines(p) for p in SRC.rglob("*.py") if _lines(p) > 600}
    assert not big, f"split these modules along their seams: {big}"


def test_the_runners_modules_never_import_report_or_cli():
    for name in RUNNER_MODULES:
        upward = {m for m in _imports(SRC / f"{name}.py")
                  if m.startswith(("cxrbench.report", "cxrbench.cli")) or m in ("cxrbench.report", "cxrbench.cli")}
        assert not upward, f"{name}.py imports {sorted(upward)}"
