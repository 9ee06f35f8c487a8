"""The top level is a small, lazy public face: exactly ``__all__``, nothing heavy imported
until a name is used, and the same names visible to type checkers."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import lift_asgi

HEAVY = ("aiohttp", "aiodynamo", "jwt", "limits", "mangum", "botocore", "fastapi")


def _fresh(code: str) -> str:
    """Run ``code`` in a fresh interpreter; its stdout."""
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout


def test_import_loads_no_heavy_dependency() -> None:
    out = _fresh(
        "import sys, json, lift_asgi\n"
        f"print(json.dumps([m for m in {list(HEAVY)!r} if m in sys.modules]))"
    )
    assert json.loads(out) == []


def test_a_name_imports_only_what_it_needs() -> None:
    out = _fresh(
        "import sys, json\n"
        "from lift_asgi import install, LiftError\n"
        f"print(json.dumps([m for m in {list(HEAVY)!r} if m in sys.modules]))"
    )
    assert json.loads(out) == []


def test_the_top_level_exposes_exactly_all() -> None:
    out = _fresh(
        "import json, lift_asgi\n"
        "print(json.dumps([n for n in vars(lift_asgi) if not n.startswith('_')]))"
    )
    public = set(json.loads(out))
    assert public == set()  # nothing public but what __getattr__ resolves from __all__
    assert len(lift_asgi.__all__) <= 25


@pytest.mark.parametrize("name", lift_asgi.__all__)
def test_every_public_name_resolves(name: str) -> None:
    assert getattr(lift_asgi, name) is not None


@pytest.mark.parametrize("name", ["ConfigurationError", "DynamoTable", "require_tenant", "Rule"])
def test_the_rest_lives_in_its_submodule(name: str) -> None:
    with pytest.raises(AttributeError, match=name):
        getattr(lift_asgi, name)


def test_type_checkers_see_the_same_names() -> None:
    """The ``TYPE_CHECKING`` imports (what mypy and IDEs read) name exactly ``__all__``."""
    imported = _type_checking_names(lift_asgi.__file__)
    assert imported == set(lift_asgi.__all__) - {"__version__"}


def _type_checking_names(path: str | None) -> set[str]:
    """The names a module's ``if _typing.TYPE_CHECKING:`` block imports."""
    assert path is not None
    tree = ast.parse(Path(path).read_text())
    (block,) = [
        node
        for node in tree.body
        if isinstance(node, ast.If) and ast.unparse(node.test) == "_typing.TYPE_CHECKING"
    ]
    imported = {
        alias.asname or alias.name
        for node in block.body
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }
    return imported


def test_install_is_the_function_even_after_its_module_is_imported() -> None:
    import lift_asgi.installer

    assert callable(lift_asgi.install)
    assert lift_asgi.install is lift_asgi.installer.install


def test_the_readme_module_map_matches_the_tree() -> None:
    """Every module of the package is in the README's map, and nothing else is."""
    root = Path(lift_asgi.__file__).parent
    readme = (root.parent / "README.md").read_text()
    development = readme[readme.index("## Development") :]
    block = development[development.index("```text\n") + 8 :]
    block = block[: block.index("```")]
    listed: set[str] = set()
    stack: list[tuple[int, str]] = []
    for line in block.splitlines():
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        name = line.split()[0]
        while stack and stack[-1][0] >= indent:
            stack.pop()
        path = "".join(part for _, part in stack) + name
        if name.endswith("/"):
            stack.append((indent, name))
        listed.add(path)
    present = {"lift_asgi/"}
    for file in root.rglob("*.py"):
        relative = file.relative_to(root.parent)
        if file.parent != root and file.name in ("__init__.py", "__main__.py"):
            present.add(f"{relative.parent}/")
            continue
        present.add(str(relative))
    assert listed == present


# What each import may load: a leaf, a package or a stage loads neither aiohttp nor
# aiodynamo (only a transport that calls DynamoDB does), nor what its stage never uses.
@pytest.mark.parametrize(
    ("code", "loaded"),
    [
        ("import lift_asgi.dynamo", []),
        ("import lift_asgi.dynamo.limits", []),
        ("from lift_asgi.dynamo import TableSpec, Attr, SK", []),
        ("import lift_asgi.ratelimit", ["limits"]),  # the storages register with limits
        ("from lift_asgi.ratelimit.sync_storage import DynamoDBStorage", ["limits"]),
        ("import lift_asgi.idempotency", []),
        (
            # the annotations of the table helpers resolve without the transport's aiohttp
            "import typing\n"
            "from lift_asgi.dynamo.tables import create_table\n"
            "from lift_asgi.ratelimit.table import create_rate_limit_table\n"
            "from lift_asgi.dynamo.protocol import DynamoTransport\n"
            "assert typing.get_type_hints(create_table)['transport'] == DynamoTransport | None\n"
            "assert typing.get_type_hints(create_rate_limit_table)['transport']",
            ["limits"],  # the rate-limit package's own; no aiohttp
        ),
        (
            "import fastapi, lift_asgi\n"
            "lift_asgi.install(fastapi.FastAPI(), observe={},"
            " tenant={'resolvers': [lift_asgi.HeaderResolver()]})",
            ["fastapi"],
        ),
        (
            "import lift_asgi, starlette.applications\n"
            "lift_asgi.install(starlette.applications.Starlette(), observe={},"
            " tenant={'resolvers': [lift_asgi.HeaderResolver()]},"
            " rate_limit={'limit': '5/second', 'key': 'tenant'})",
            ["limits"],
        ),
    ],
)
def test_subpackages_load_only_what_they_use(code: str, loaded: list[str]) -> None:
    out = _fresh(
        f"import sys, json\n{code}\n"
        f"print(json.dumps([m for m in {list(HEAVY)!r} if m in sys.modules]))"
    )
    assert json.loads(out) == loaded


def test_dynamo_exports_resolve_and_type_checkers_see_them() -> None:
    import lift_asgi.dynamo as dynamo

    for name in dynamo.__all__:
        assert getattr(dynamo, name) is not None
    with pytest.raises(AttributeError, match="no_such_name"):
        dynamo.no_such_name  # noqa: B018
    imported = _type_checking_names(dynamo.__file__)
    assert imported == set(dynamo.__all__) == set(dynamo._WHERE)
