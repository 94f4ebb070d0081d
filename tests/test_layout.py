"""The house's rules, read from the code itself: imports run one way (mlp_core <- results <-
search, the entry points above them), only search imports Ray, and modules and functions stay a
size a reader takes in."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("mlp_core", "results", "search")
# what each package may import of the project's own, and whether it may import Ray
MAY_IMPORT = {"mlp_core": set(), "results": {"mlp_core"}, "search": {"mlp_core", "results"}}
RAY = {"mlp_core": False, "results": False, "search": True}


def modules(package: str):
    return sorted((ROOT / package).glob("*.py"))


def imported(path: Path) -> set[str]:
    """The top-level names of everything `path` imports, at any depth of its code (a function's
    late import counts too); relative imports as its own package."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            names.add(path.parent.name if node.level else node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", PACKAGES)
def test_imports_run_one_way(package):
    for path in modules(package):
        found = imported(path)
        own = found & set(PACKAGES) - {package}
        assert own <= MAY_IMPORT[package], f"{path.relative_to(ROOT)} imports {sorted(own - MAY_IMPORT[package])}"
        if not RAY[package]:
            assert "ray" not in found, f"{path.relative_to(ROOT)} imports Ray"


def test_the_imports_test_can_fail(tmp_path):
    bad = tmp_path / "results" / "x.py"
    bad.parent.mkdir()
    bad.write_text("def f():\n    from search import api\n    from . import table\n")
    assert imported(bad) == {"search", "results"}


@pytest.mark.parametrize("package", ["results", "search"])
def test_modules_are_at_most_300_lines(package):
    for path in modules(package):
        lines = len(path.read_text().splitlines())
        assert lines <= 300, f"{path.relative_to(ROOT)}: {lines} lines"


@pytest.mark.parametrize("package", PACKAGES)
def test_functions_are_at_most_60_lines(package):
    for path in modules(package):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                assert n <= 60, f"{path.relative_to(ROOT)}:{node.lineno} {node.name}: {n} lines"
