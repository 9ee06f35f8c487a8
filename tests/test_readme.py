"""Every code block of the README is exercised here, so the docs cannot rot.

Python blocks run for real (against the local DynamoDB server where they need one) and
the apps they define answer requests; the pytest example runs as a user's own test
suite; shell blocks name make targets, extras, modules and files that exist, and the
commands that are quick to run are run.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from lift_asgi.dynamo.tables import TableSpec
from lift_asgi.ratelimit import rate_limit_table_spec
from lift_asgi.testing.plugin import create_local_table, delete_local_table

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
BLOCKS = re.findall(r"^```(\w+)\n(.*?)^```$", README, flags=re.S | re.M)
PYTHON = [body for lang, body in BLOCKS if lang == "python"]
SHELL = [body for lang, body in BLOCKS if lang == "bash"]


def _block(marker: str) -> str:
    found = [body for body in PYTHON if marker in body]
    assert len(found) == 1, f"exactly one README python block should contain {marker!r}"
    return found[0]


def test_every_python_block_is_exercised_here() -> None:
    markers = [
        "add_note",
        "async def whoami",
        "examples/saas/lambda_handler.py",
        "LocalDynamoDB() as db",
        "test_commit_survives_a_throttle",
        'api_gateway_v2_event("GET", "/hello"',
    ]
    assert len(PYTHON) == len(markers), "a README python block has no test: add its marker"
    for marker in markers:
        _block(marker)


def _run(block: str) -> dict[str, Any]:
    namespace: dict[str, Any] = {"__name__": "readme"}
    exec(compile(block, "README.md", "exec"), namespace)
    return namespace


async def test_fastapi_quick_start(dynamodb_env: str) -> None:
    create_local_table(dynamodb_env, TableSpec.standard("app-data"))
    create_local_table(dynamodb_env, rate_limit_table_spec("app-rate-limits"))
    try:
        app = _run(_block("add_note"))["app"]
        token = jwt.encode(
            {"tenant_id": "acme", "sub": "ann", "plan": "pro", "exp": int(time.time()) + 60},
            "a-shared-secret-of-at-least-32-bytes!",
            algorithm="HS256",
        )
        auth = {"authorization": f"Bearer {token}"}
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            assert (await client.get("/health")).json() == {"status": "ok"}
            created = await client.post("/notes/n1", json={"text": "hi"}, headers=auth)
            assert created.status_code == 201, created.text
            assert created.headers["x-ratelimit-limit"] == "1000"
            read = await client.get("/notes/n1", headers=auth)
            assert read.json() == {"id": "n1", "text": "hi"}
            missing = await client.get("/notes/nope", headers=auth)
            assert missing.status_code == 404
            assert missing.headers["content-type"] == "application/problem+json"
            assert (await client.get("/notes/n1")).status_code == 401
    finally:
        delete_local_table(dynamodb_env, "app-data")
        delete_local_table(dynamodb_env, "app-rate-limits")


async def test_starlette_quick_start() -> None:
    app = _run(_block("async def whoami"))["app"]
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        answer = await client.get("/whoami", headers={"x-tenant-id": "acme"})
        assert answer.json() == {"tenant": "acme"}
        assert answer.headers["x-ratelimit-limit"] == "10"
        assert (await client.get("/whoami")).status_code == 401


def test_lambda_handler_block(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAAS_ENV", "dev")
    import examples.saas.app

    monkeypatch.setattr(examples.saas.app, "_app", None)
    from lift_asgi.aws import LambdaHandler

    assert isinstance(_run(_block("examples/saas/lambda_handler.py"))["handler"], LambdaHandler)


def test_local_dynamodb_block(capsys: pytest.CaptureFixture[str]) -> None:
    _run(_block("LocalDynamoDB() as db"))
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+\n", capsys.readouterr().out)


def test_lambda_events_block() -> None:
    namespace = _run(_block('api_gateway_v2_event("GET", "/hello"'))
    namespace["lambda_handler"].shutdown()


def test_plugin_example_runs_as_a_users_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_commit=_block("test_commit_survives_a_throttle"))
    env = os.environ.pop("LIFT_ASGI_DYNAMODB_ENDPOINT", None)
    try:
        result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-o", "asyncio_mode=auto")
    finally:
        if env is not None:
            os.environ["LIFT_ASGI_DYNAMODB_ENDPOINT"] = env
    result.assert_outcomes(passed=1)


# -- shell blocks ------------------------------------------------------------------------


def _commands() -> list[list[str]]:
    commands = []
    for body in SHELL:
        for line in body.splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                commands.append(shlex.split(line))
    return commands


def test_shell_blocks_name_things_that_exist() -> None:
    makefile = (ROOT / "Makefile").read_text()
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    seen = set()
    for words in _commands():
        tool = words[0]
        seen.add(tool)
        if tool == "make":
            assert re.search(rf"^{words[1]}:", makefile, flags=re.M), words
        elif tool == "pip":
            spec = words[-1]
            extra = re.fullmatch(r"lift-asgi(?:\[(\w+)\])?", spec)
            assert extra, spec
            assert extra.group(1) is None or extra.group(1) in extras, spec
        elif tool == "python":
            assert words[1] == "-m"
            assert importlib.util.find_spec(words[2]) is not None, words
        elif tool == "cd":
            assert (ROOT / words[1]).is_dir()
        elif tool == "sam":
            assert (ROOT / "examples/saas/template.yaml").is_file()
        else:
            pytest.fail(f"the README runs {tool!r}: teach this test about it")
    assert {"make", "pip", "python"} <= seen


def test_token_command_mints_a_token_the_example_accepts() -> None:
    (command,) = [w for w in _commands() if w[:3] == ["python", "-m", "examples.saas.token"]]
    out = subprocess.run(
        [sys.executable, *command[1:]],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        timeout=60,
    ).stdout.strip()
    claims = jwt.decode(out, "dev-only-secret-not-for-production-use", algorithms=["HS256"])
    assert claims["tenant_id"] == "acme" and claims["plan"] == "pro"


def test_local_command_parses(dynamodb_endpoint: str) -> None:
    (command,) = [w for w in _commands() if w[:3] == ["python", "-m", "lift_asgi.local"]]
    help_text = subprocess.run(
        [sys.executable, "-m", "lift_asgi.local", "--help"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    for flag in (w for w in command if w.startswith("--")):
        assert flag in help_text
