"""The package's shape: providers/ is a leaf, and no module imports itself round a circle.

Read from the source with `ast`, never by importing: an import inside a function counts as
much as one at the top (it runs on the first call, and a cycle through it is a cycle still).
Imports under `if TYPE_CHECKING:` never run: the cycle check leaves them out, the leaf check
does not (a leaf that needs the app's types to be read is no leaf).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

PACKAGE = "{{ cookiecutter.package_name }}"
SOURCE = Path(__file__).resolve().parent.parent / "src" / PACKAGE
LEAF = f"{PACKAGE}.providers"


def module_name(path: Path) -> str:
    parts = path.relative_to(SOURCE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_modules() -> dict[str, Path]:
    """Every module of the package by dotted name (Alembic's migrations are no part of it)."""
    paths = (p for p in SOURCE.rglob("*.py") if "migrations" not in p.parts)
    return {module_name(path): path for path in sorted(paths)}


def is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports(tree: ast.AST, runtime_only: bool) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement, at any depth; with `runtime_only`, none under TYPE_CHECKING."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif runtime_only and isinstance(node, ast.If) and is_type_checking(node):
            yield from imports(ast.Module(body=node.orelse, type_ignores=[]), runtime_only)
        else:
            yield from imports(node, runtime_only)


def imported(node: ast.Import | ast.ImportFrom, importer: str, is_package: bool) -> list[str]:
    """Absolute names a statement imports: the module, and each name that may be a module."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level == 0:
        base = node.module or ""
    else:
        anchor = importer.split(".")
        if not is_package:
            anchor = anchor[:-1]
        anchor = anchor[: len(anchor) - (node.level - 1)]
        base = ".".join(anchor + ([node.module] if node.module else []))
    return [base] + [f"{base}.{alias.name}" for alias in node.names]


def edges(runtime_only: bool) -> dict[str, dict[str, int]]:
    """module -> {module of this package it imports: line of the first such import}."""
    modules = package_modules()
    graph: dict[str, dict[str, int]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        targets: dict[str, int] = {}
        for node in imports(tree, runtime_only):
            for target in imported(node, name, path.name == "__init__.py"):
                if target in modules and target != name:
                    targets.setdefault(target, node.lineno)
        graph[name] = targets
    return graph


def test_providers_import_nothing_else_of_the_package() -> None:
    """Adapters know Authlib and requests, never the app's stores, errors or blueprints."""
    outside = [
        f"{name.removeprefix(PACKAGE + '.')} (line {line}) imports {target}"
        for name, targets in edges(runtime_only=False).items()
        if name == LEAF or name.startswith(LEAF + ".")
        for target, line in targets.items()
        if not (target == LEAF or target.startswith(LEAF + "."))
    ]
    assert not outside, "providers/ must be a leaf:\n  " + "\n  ".join(outside)


def find_cycle(graph: dict[str, dict[str, int]]) -> list[str] | None:
    """One import cycle as [a, b, ..., a], or None (depth-first search, colouring)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = 1
        path.append(module)
        for target in sorted(graph.get(module, {})):
            if state.get(target) == 1:
                return path[path.index(target) :] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        path.pop()
        state[module] = 2
        return None

    for module in sorted(graph):
        if module not in state and (cycle := visit(module)):
            return cycle
    return None


def test_find_cycle_finds_one() -> None:
    """The search itself: a cycle through a deferred import is found; a tree is no cycle."""
    assert find_cycle({"a": {"b": 1}, "b": {"c": 1}, "c": {}}) is None
    assert find_cycle({"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1}}) == ["a", "b", "c", "a"]
    tree = ast.parse("def late():\n    from .c import x\n")
    found = [imported(node, "p.b", False) for node in imports(tree, runtime_only=True)]
    assert found == [["p.c", "p.c.x"]]
    guarded = ast.parse("if TYPE_CHECKING:\n    from .c import x\nelse:\n    import p.d\n")
    assert [imported(n, "p.b", False) for n in imports(guarded, True)] == [["p.d"]]
    assert len(list(imports(guarded, runtime_only=False))) == 2


def test_no_import_cycle() -> None:
    graph = edges(runtime_only=True)
    cycle = find_cycle(graph)
    if cycle:
        steps = [
            f"{a.removeprefix(PACKAGE + '.')} (line {graph[a][b]})"
            for a, b in zip(cycle, cycle[1:], strict=False)
        ]
        shown = " -> ".join([*steps, cycle[-1].removeprefix(PACKAGE + ".")])
        raise AssertionError(f"import cycle: {shown}")
