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


# results/'s rooms, bottom up: a module may import its own room and the rooms below it
# (columns.py and errors.py import nothing; run.py is the façade over the rest)
RESULTS_ORDER = {"columns": 0, "errors": 0, "sweep": 1, "folder": 2, "views": 3, "model": 4, "trackers": 5,
                 "run": 6}


def modules(package: str, root: Path = ROOT):
    """Every module of the package, its subpackages' too."""
    return sorted((root / package).rglob("*.py"))


def dotted_imports(path: Path, root: Path = ROOT) -> set[str]:
    """The dotted names of everything `path` imports, at any depth of its code (a function's late
    import counts too, an `if TYPE_CHECKING:` block's does not), relative imports made absolute
    (`from . import x` names the package.x)."""
    here = list(path.relative_to(root).with_suffix("").parts)[:-1]  # the module's package
    names = set()
    tree = ast.parse(path.read_text(), str(path))
    typing_only = {id(n) for block in ast.walk(tree) if isinstance(block, ast.If)
                   and ast.unparse(block.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING")
                   for n in ast.walk(block)}  # annotations' names, never imported when it runs
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = here[:len(here) - node.level + 1] if node.level else []
            module = [*base, *(node.module.split(".") if node.module else [])]
            if node.module is None:  # from . import a, b: modules of that package
                names.update(".".join([*module, a.name]) for a in node.names)
            else:
                names.add(".".join(module))
    return names


def imported(path: Path, root: Path = ROOT) -> set[str]:
    """The top-level names of everything `path` imports."""
    return {name.split(".")[0] for name in dotted_imports(path, root)}


@pytest.mark.parametrize("package", PACKAGES)
def test_imports_run_one_way(package):
    for path in modules(package):
        found = imported(path)
        own = found & set(PACKAGES) - {package}
        assert own <= MAY_IMPORT[package], f"{path.relative_to(ROOT)} imports {sorted(own - MAY_IMPORT[package])}"
        if not RAY[package]:
            assert "ray" not in found, f"{path.relative_to(ROOT)} imports Ray"


def room(dotted: str) -> str:
    """The room of results.X.Y, or the module at results/'s root: X."""
    parts = dotted.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_results_rooms_import_downwards_only():
    found = []
    for path in modules("results"):
        mine = room(".".join(path.relative_to(ROOT).with_suffix("").parts))
        for name in dotted_imports(path):
            if name.startswith("results.") and RESULTS_ORDER[room(name)] > RESULTS_ORDER.get(mine, 5):
                found.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not found, found
    rooms = ({p.stem for p in (ROOT / "results").glob("*.py")}
             | {p.parent.name for p in (ROOT / "results").glob("*/__init__.py")})
    assert rooms - {"__init__"} == set(RESULTS_ORDER)  # every room has its place in the order


def test_the_imports_test_can_fail(tmp_path):
    bad = tmp_path / "results" / "views" / "x.py"
    bad.parent.mkdir(parents=True)
    bad.write_text("def f():\n    from search import api\n    from . import compare\n"
                   "    from ..model import report\n    from ..columns import STATUS\n")
    assert imported(bad, tmp_path) == {"search", "results"}
    # (`from ..model import report` names the room: what the order is about)
    assert dotted_imports(bad, tmp_path) == {"search", "results.views.compare", "results.model", "results.columns"}
    assert RESULTS_ORDER[room("results.model.report")] > RESULTS_ORDER[room("results.views.x")]


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    """Each of the project's modules (dotted) and the project's modules it imports, late imports
    too (a package imported by name stands for its __init__)."""
    paths = {".".join(p.relative_to(root).with_suffix("").parts).removesuffix(".__init__"): p
             for package in PACKAGES for p in modules(package, root)}
    return {name: {n for n in dotted_imports(path, root) if n in paths and n != name}
            for name, path in paths.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Import cycles: each one as the path that closes it."""
    found, state = [], {}  # state: 1 on the current path, 2 done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                found.append(path[path.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return found


def test_no_modules_import_each_other():
    """Not even through a function's late import: a reader follows each import one way."""
    assert cycles(import_graph()) == []
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]


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
