"""End-to-end fixtures: the SaaS example under uvicorn, over real HTTP.

One uvicorn process per test session serves ``examples.saas.app:app`` against the local
DynamoDB server of lift-asgi's pytest plugin, with tables of its own (unique names, so
two runs never share state) and ``SAAS_RATE_FREE=10/minute`` so the rate-limit test can
exhaust a free tenant quickly. Every other test speaks as a fresh ``pro`` tenant
(1000/minute), so no budget is ever shared between tests.

The server runs with ``SAAS_ENV=dev`` and no ``SAAS_JWT_SECRET``: the contract's dev
default key signs the tokens, exactly as ``make run`` does.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from examples.saas.settings import DEV_SECRET, Settings
from examples.saas.setup import create_tables
from examples.saas.token import mint
from lift_asgi.testing.plugin import delete_local_table

REPO_ROOT = Path(__file__).resolve().parents[2]
FREE_LIMIT = 10
STARTUP_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
PROBLEM_JSON = "application/problem+json"
RATE_HEADERS = ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset")

# Variables of the outer environment that would change what the server does.
_SCRUBBED = ("SAAS_", "AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL")


# -- the server process ----------------------------------------------------------------


@dataclass
class Server:
    base_url: str
    env: dict[str, str]
    process: subprocess.Popen[bytes]
    log_path: Path
    tables: tuple[str, str]

    def log_tail(self, lines: int = 40) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return "(no log)"


def unique_name(kind: str) -> str:
    return f"e2e-{uuid.uuid4().hex[:12]}-{kind}"


def child_env(endpoint: str, **extra: str) -> dict[str, str]:
    """The environment of a child process (server or CLI) talking to the local server."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUBBED)}
    env.update(
        AWS_ENDPOINT_URL_DYNAMODB=endpoint,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_REGION="us-east-1",
        AWS_DEFAULT_REGION="us-east-1",
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")])),
    )
    env.update(extra)
    return env


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    """Linux: the child gets SIGTERM if the test run dies, so no uvicorn is orphaned."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def run_module(
    module: str, *args: str, env: Mapping[str, str], timeout: float = 60.0
) -> subprocess.CompletedProcess[str]:
    """``python -m module args`` from the repository root; killed on timeout."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=REPO_ROOT,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def start_server(env: dict[str, str], tables: tuple[str, str]) -> Server:
    """uvicorn on a free loopback port; returns once ``/health`` answers 200."""
    last_error = "not started"
    for _attempt in range(3):  # a free port can be taken between probe and bind
        port = _free_port()
        log = Path(tempfile.mkstemp(prefix="lift-e2e-uvicorn-", suffix=".log")[1])
        with log.open("wb") as sink:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "examples.saas.app:app",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--no-access-log",
                ],
                cwd=REPO_ROOT,
                env=env,
                stdout=sink,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,
            )
        server = Server(f"http://127.0.0.1:{port}", env, process, log, tables)
        deadline = time.monotonic() + STARTUP_TIMEOUT
        with httpx.Client(base_url=server.base_url, timeout=2.0) as probe:
            while time.monotonic() < deadline and process.poll() is None:
                try:
                    if probe.get("/health").status_code == 200:
                        return server
                except httpx.TransportError:
                    pass
                time.sleep(0.05)
        stop_server(server)
        last_error = server.log_tail()
        if "address already in use" not in last_error.lower():
            break
    raise RuntimeError(f"the example app did not start under uvicorn:\n{last_error}")


def stop_server(server: Server) -> None:
    """SIGTERM, wait, SIGKILL on timeout; never leaves the process behind."""
    process = server.process
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=STOP_TIMEOUT)


@pytest.fixture(scope="session")
async def saas_server(dynamodb_endpoint: str) -> AsyncIterator[Server]:
    tables = (unique_name("data"), unique_name("rate"))
    env = child_env(
        dynamodb_endpoint,
        SAAS_ENV="dev",
        SAAS_TABLE=tables[0],
        SAAS_RATE_TABLE=tables[1],
        SAAS_RATE_FREE=f"{FREE_LIMIT}/minute",
        SAAS_LOG_FORMAT="json",  # tests/e2e/test_request_logs.py reads the lines
        # The local server answers one call at a time: a burst of 50 requests can queue
        # a rate-limit call past the default 1 s on a loaded machine (a 503 by the
        # contract's failure rule, which tests/test_example_faults.py tests on its own).
        SAAS_RATE_TIMEOUT="5",
    )
    await create_tables(Settings.from_env(env))
    server = start_server(env, tables)
    try:
        yield server
    finally:
        stop_server(server)
        server.log_path.unlink(missing_ok=True)
        for name in tables:
            delete_local_table(dynamodb_endpoint, name)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """A failed test's report carries the server's last log lines (its warnings say
    which DynamoDB call failed, and how), so a failure in CI can be read afterwards."""
    outcome = yield
    report = outcome.get_result()
    server = getattr(item, "funcargs", {}).get("saas_server")  # the fixture closure's values
    if report.failed and isinstance(server, Server):
        report.sections.append(("the example server's log (last lines)", server.log_tail()))


@pytest.fixture(scope="session")
async def client(saas_server: Server) -> AsyncIterator[httpx.AsyncClient]:
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
    async with httpx.AsyncClient(
        base_url=saas_server.base_url, timeout=30.0, limits=limits
    ) as http:
        yield http


# -- tenants and tokens ----------------------------------------------------------------


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def encode(claims: Mapping[str, Any], secret: str = DEV_SECRET) -> str:
    return jwt.encode(dict(claims), secret, algorithm="HS256")


def claims_for(tenant_id: str, **extra: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"tenant_id": tenant_id, "sub": "e2e", "iat": now, "exp": now + 3600, **extra}


def unsigned(claims: Mapping[str, Any]) -> str:
    """An ``alg: none`` JWT (header.payload. with an empty signature)."""

    def part(data: Mapping[str, Any]) -> str:
        raw = json.dumps(data, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


@dataclass
class Tenant:
    id: str
    plan: str
    headers: dict[str, str] = field(repr=False)


def new_tenant_id(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:16]}"


def make_tenant(plan: str = "pro", prefix: str = "t") -> Tenant:
    tenant_id = new_tenant_id(prefix)
    return Tenant(tenant_id, plan, bearer(mint(tenant_id, plan=plan, secret=DEV_SECRET)))


@pytest.fixture
def tenant() -> Tenant:
    """A fresh ``pro`` tenant: empty data, a budget of its own."""
    return make_tenant()


@pytest.fixture
def other_tenant() -> Tenant:
    return make_tenant(prefix="other")


# -- assertions ------------------------------------------------------------------------

PROJECT_FIELDS = {"id", "name", "created_at", "version"}
TASK_FIELDS = {"id", "project_id", "title", "status", "created_at", "version"}


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    """An RFC 9457 problem whose ``status`` field is the HTTP status."""
    assert response.status_code == status, (response.status_code, response.text)
    content_type = response.headers.get("content-type", "")
    assert content_type.split(";")[0].strip() == PROBLEM_JSON, (content_type, response.text)
    body: dict[str, Any] = response.json()
    assert body.get("status") == status, body
    assert isinstance(body.get("title"), str) and body["title"], body
    assert isinstance(body.get("type"), str) and body["type"], body
    return body


def assert_validation_error(response: httpx.Response, *loc: str) -> None:
    """FastAPI's own 422: ``{"detail": [{"loc": [...], "msg", "type"}, ...]}``."""
    assert response.status_code == 422, (response.status_code, response.text)
    assert response.headers.get("content-type", "").startswith("application/json")
    detail = response.json()["detail"]
    assert isinstance(detail, list) and detail, detail
    for error in detail:
        assert {"loc", "msg", "type"} <= error.keys(), error
    if loc:
        assert any(tuple(error["loc"][: len(loc)]) == loc for error in detail), detail


def assert_invalid_parameters(response: httpx.Response, *loc: str) -> None:
    """A query or path parameter's validation error: a 422 problem whose ``errors`` is
    FastAPI's list (the contract keeps FastAPI's shape for body errors only)."""
    body = assert_problem(response, 422)
    errors = body["errors"]
    assert isinstance(errors, list) and errors, body
    for error in errors:
        assert {"loc", "msg", "type"} <= error.keys(), error
    if loc:
        assert any(tuple(error["loc"][: len(loc)]) == loc for error in errors), errors


def assert_rate_headers(response: httpx.Response, limit: int) -> int:
    """The three X-RateLimit headers, well formed; returns Remaining."""
    for name in RATE_HEADERS:
        assert name in response.headers, (name, dict(response.headers))
    assert response.headers["x-ratelimit-limit"] == str(limit), dict(response.headers)
    remaining = int(response.headers["x-ratelimit-remaining"])
    assert 0 <= remaining < limit
    reset = response.headers["x-ratelimit-reset"]
    assert reset.isdigit(), reset  # epoch seconds, an integer
    now = time.time()
    assert now - 5 <= int(reset) <= now + 61 + 5, (reset, now)  # within a minute window
    return remaining


def assert_project(body: Any, name: str | None = None, version: int | None = None) -> None:
    assert isinstance(body, dict) and body.keys() == PROJECT_FIELDS, body
    assert isinstance(body["id"], str) and body["id"]
    assert isinstance(body["created_at"], str) and body["created_at"]
    assert isinstance(body["version"], int)
    if name is not None:
        assert body["name"] == name
    if version is not None:
        assert body["version"] == version


def assert_task(
    body: Any,
    *,
    project_id: str | None = None,
    title: str | None = None,
    status: str | None = None,
    version: int | None = None,
) -> None:
    assert isinstance(body, dict) and body.keys() == TASK_FIELDS, body
    assert isinstance(body["id"], str) and body["id"]
    assert isinstance(body["created_at"], str) and body["created_at"]
    assert body["status"] in ("open", "in_progress", "done")
    assert isinstance(body["version"], int)
    for key, want in (
        ("project_id", project_id),
        ("title", title),
        ("status", status),
        ("version", version),
    ):
        if want is not None:
            assert body[key] == want, (key, body)


# -- small API helpers -----------------------------------------------------------------


async def create_project(
    client: httpx.AsyncClient, tenant: Tenant, name: str = "project"
) -> dict[str, Any]:
    response = await client.post("/projects", json={"name": name}, headers=tenant.headers)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def create_task(
    client: httpx.AsyncClient, tenant: Tenant, project_id: str, **task: Any
) -> dict[str, Any]:
    task.setdefault("title", "task")
    response = await client.post(f"/projects/{project_id}/tasks", json=task, headers=tenant.headers)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def pages(
    client: httpx.AsyncClient, path: str, tenant: Tenant, **params: Any
) -> list[list[dict[str, Any]]]:
    """Every page of a listing, following ``next_cursor`` until it is null."""
    result: list[list[dict[str, Any]]] = []
    cursor: str | None = None
    for _ in range(1000):
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = await client.get(path, params=query, headers=tenant.headers)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body.keys() == {"items", "next_cursor"}, body
        result.append(body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            return result
        assert isinstance(cursor, str) and cursor
    raise AssertionError(f"{path}: the cursor never reached null")


async def list_all(
    client: httpx.AsyncClient, path: str, tenant: Tenant, **params: Any
) -> list[dict[str, Any]]:
    return [item for page in await pages(client, path, tenant, **params) for item in page]


async def summary(client: httpx.AsyncClient, tenant: Tenant) -> dict[str, Any]:
    response = await client.get("/analytics/summary", headers=tenant.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def tampered(cursor: str) -> str:
    """The cursor with its first character changed (changes the signed bytes)."""
    return ("B" if cursor[0] != "B" else "C") + cursor[1:]
