"""The README's pytest example in a fresh project exactly as written: no pytest
configuration at all (pytest-asyncio in its default strict mode, function-scoped event
loops), the plugin loaded from its entry point, the project's own Python."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _readme_pytest_example() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Testing your app: the pytest plugin", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"^```python\n(.*?)^```$", section, flags=re.S | re.M)
    (example,) = [block for block in blocks if "async def test_" in block]
    return example


def _pytest(project: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "AWS_"))}
    env.pop("LIFT_ASGI_DYNAMODB_ENDPOINT", None)
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            # Any warning fails the run, except pytest-asyncio's own note that a fresh
            # project has not chosen a fixture loop scope (nothing of ours).
            "-W",
            "error",
            "-W",
            "ignore:The configuration option:pytest.PytestDeprecationWarning",
        ],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_readme_example_passes_in_a_project_without_configuration(tmp_path: Path) -> None:
    project = tmp_path / "fresh"
    project.mkdir()
    (project / "test_commit.py").write_text(_readme_pytest_example())
    result = _pytest(project)
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"^1 passed", result.stdout, flags=re.M), result.stdout


def test_the_fixtures_work_under_pytest_asyncios_default_loop_scopes(tmp_path: Path) -> None:
    """Each async test gets its own event loop by default; the session's server and the
    per-test proxy and tables (synchronous fixtures, the proxy on a loop of its own) serve
    every one of them, in strict mode and in auto mode."""
    project = tmp_path / "loops"
    project.mkdir()
    tests = """
import pytest
from lift_asgi.dynamo.transport import AiodynamoTransport

async def _round_trip(endpoint, table):
    transport = AiodynamoTransport.static(endpoint)
    try:
        item = {"pk": {"S": "a"}, "sk": {"S": "b"}}
        await transport.request("PutItem", {"TableName": table.name, "Item": item})
        got = await transport.request(
            "GetItem", {"TableName": table.name, "Key": item, "ConsistentRead": True}
        )
        assert got["Item"] == item
    finally:
        await transport.close()

@pytest.mark.asyncio
@pytest.mark.parametrize("run", range(3))
async def test_through_the_proxy(run, dynamodb_fault_proxy, dynamodb_table):
    await _round_trip(dynamodb_fault_proxy.endpoint, dynamodb_table)
    assert dynamodb_fault_proxy.operations() == ["PutItem", "GetItem"]

@pytest.mark.asyncio
async def test_direct(dynamodb_endpoint, dynamodb_table_factory):
    await _round_trip(dynamodb_endpoint, dynamodb_table_factory())
"""
    (project / "test_loops.py").write_text(tests)
    strict = _pytest(project)
    assert strict.returncode == 0, strict.stdout + strict.stderr
    assert re.search(r"^4 passed", strict.stdout, flags=re.M), strict.stdout
    (project / "pytest.ini").write_text("[pytest]\nasyncio_mode = auto\n")
    auto = _pytest(project)
    assert auto.returncode == 0, auto.stdout + auto.stderr
    assert re.search(r"^4 passed", auto.stdout, flags=re.M), auto.stdout
