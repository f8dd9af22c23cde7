"""Structure of the dataset loaders: no loader module imports another (shared code lives in
cxrbench.data.common, records, iu_reports, iu_split...), and every dataset's options go through the same
signature check in cxrbench.data.load_dataset."""

from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path

import pytest

import cxrbench.data as data
from cxrbench.data import available, load_dataset
from cxrbench.errors import ConfigError

DATA_DIR = Path(data.__file__).parent
LOADER_MODULES = {target.partition(":")[0] for target, _ in data._DATASETS.values()}


def imported_modules(source: str, package: str = "cxrbench.data") -> set[str]:
    """Every module ``source`` imports, absolute (relative imports resolved against ``package``); for
    ``from X import name`` both X and X.name (name may be a submodule)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def _loader(name: str):
    module, _, fn = data._DATASETS[name][0].partition(":")
    return getattr(importlib.import_module(module), fn)


def test_imported_modules_sees_every_import_form():
    source = ("import cxrbench.data.manifest\nfrom cxrbench.data import iu_phantom\n"
              "from cxrbench.data.mimic_cxr import load\nfrom .chexpert_plus import NAME\n"
              "def f():\n    from cxrbench.data.iu_xray import load\n")
    assert imported_modules(source) >= LOADER_MODULES


def test_the_registry_names_five_loader_modules():
    expected = {f"cxrbench.data.{m}" for m in ("iu_phantom", "iu_xray", "mimic_cxr", "chexpert_plus", "manifest")}
    assert expected == LOADER_MODULES


def test_no_module_of_the_data_package_imports_a_loader_but_itself():
    offenders = {}
    for path in sorted(DATA_DIR.rglob("*.py")):
        if path.name == "__init__.py" and path.parent == DATA_DIR:
            continue  # the registry names the loaders as strings and imports them on demand
        module = "cxrbench." + ".".join(path.relative_to(DATA_DIR.parent).with_suffix("").parts)
        bad = (imported_modules(path.read_text()) & LOADER_MODULES) - {module}
        if bad:
            offenders[module] = sorted(bad)
    assert offenders == {}


# --- options ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", available())
def test_an_unknown_option_gives_the_same_error_for_every_dataset(name, tmp_path):
    params = inspect.signature(_loader(name)).parameters
    assert not any(p.kind is p.VAR_KEYWORD for p in params.values()), f"{name}: a catch-all bypasses the check"
    accepted = [p for p in params if p != "progress"]
    assert accepted[:1] == ["root"] or name == "iu-phantom"
    assert {"split", "policy", "on_bad_image"} <= set(accepted)
    options = {"root": str(tmp_path / "nowhere")} if "root" in params else {}
    with pytest.raises(ConfigError) as exc:
        load_dataset(name, colour="blue", **options)  # refused before the loader runs (no root error)
    assert str(exc.value) == f"dataset {name!r}: unknown option(s) 'colour'; it accepts {', '.join(accepted)}"


@pytest.mark.parametrize("name", [n for n in available() if n != "iu-phantom"])
def test_a_missing_root_gives_the_same_error_for_every_real_dataset(name):
    with pytest.raises(ConfigError, match=rf"^dataset '{name}' needs root \(on the command line: --root PATH\); "
                                          r"it accepts root, split, policy, on_bad_image, "):
        load_dataset(name)
