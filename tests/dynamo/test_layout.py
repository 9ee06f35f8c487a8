"""The data layer's module graph: no import cycles (not even behind function-local
imports) and DynamoDB's limits in a leaf module."""

from __future__ import annotations

import ast
from pathlib import Path

import lift_asgi.dynamo

PACKAGE = Path(lift_asgi.dynamo.__file__).parent


def _imports() -> dict[str, set[str]]:
    """module -> the lift_asgi.dynamo modules it imports at run time (anywhere in it)."""
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.glob("*.py"):
        name = path.stem
        tree = ast.parse(path.read_text())
        found: set[str] = set()
        type_only: set[int] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                type_only.update(id(child) for child in ast.walk(node))
        for node in ast.walk(tree):
            if id(node) in type_only or not isinstance(node, ast.ImportFrom):
                continue
            module = node.module or ""
            if module == "lift_asgi.dynamo":
                found.update(alias.name for alias in node.names)
            elif module.startswith("lift_asgi.dynamo."):
                found.add(module.split(".")[2])
        graph[name] = found - {name}
    return graph


def test_no_import_cycles_in_the_data_layer() -> None:
    graph = _imports()
    graph.pop("__init__")
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for target in sorted(graph.get(node, ())):
            assert state.get(target) != 1, " -> ".join([*path, node, target])
            if target not in state:
                visit(target, [*path, node])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [])


def test_limits_and_error_codes_are_leaves() -> None:
    graph = _imports()
    assert graph["limits"] == set()
    assert graph["error_codes"] == set()
    assert graph["retry"] == set()
