"""The Lambda handler: the SaaS example invoked with each event kind against the local
DynamoDB server, plus lifespan, client address, cookies and binary bodies.

A Lambda container runs one invocation at a time on one thread; each test drives its
handler from one dedicated thread (a fresh thread has no event loop, as on Python 3.12+
in Lambda's runtime), so the pytest event loop is never touched.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from examples.saas.app import create_app
from examples.saas.settings import Settings
from examples.saas.setup import create_tables
from examples.saas.token import mint
from lift_asgi.aws import LambdaHandler, handler
from lift_asgi.errors import ConfigurationError
from lift_asgi.testing import (
    FaultProxy,
    alb_event,
    api_gateway_v1_event,
    api_gateway_v2_event,
    function_url_event,
    lambda_context,
)

Invoke = Callable[[dict[str, Any]], dict[str, Any]]


@pytest.fixture
def container() -> Iterator[Callable[[LambdaHandler], Invoke]]:
    """One thread = one Lambda container: every invocation of a handler runs on it."""
    pool = ThreadPoolExecutor(max_workers=1)
    handlers: list[LambdaHandler] = []

    def bind(lambda_handler: LambdaHandler) -> Invoke:
        handlers.append(lambda_handler)

        def invoke(event: dict[str, Any], **context: Any) -> dict[str, Any]:
            return pool.submit(lambda_handler, event, lambda_context(**context)).result(60)

        return invoke

    yield bind
    for lambda_handler in handlers:  # as a container's end would: lifespan shutdown
        pool.submit(lambda_handler.shutdown).result(30)
    pool.shutdown(wait=True)


@pytest.fixture
async def saas(dynamodb_env: str) -> Callable[..., Settings]:
    """Fresh tables for the example; returns ``settings(endpoint=None, **env)`` for apps
    that use them (``endpoint``: e.g. a fault proxy in front of the server)."""
    suffix = uuid.uuid4().hex[:8]
    tables = {"SAAS_TABLE": f"lambda-data-{suffix}", "SAAS_RATE_TABLE": f"lambda-rate-{suffix}"}

    def settings(endpoint: str | None = None, **env: str) -> Settings:
        return Settings.from_env(
            {
                "SAAS_ENV": "dev",
                "AWS_ENDPOINT_URL_DYNAMODB": endpoint or dynamodb_env,
                "AWS_REGION": "us-east-1",
                **tables,
                **env,
            }
        )

    await create_tables(settings())
    return settings


def _bearer(tenant: str, plan: str = "enterprise") -> dict[str, str]:
    return {"authorization": f"Bearer {mint(tenant, plan=plan)}"}


def _json(response: dict[str, Any]) -> Any:
    body = response["body"]
    if response.get("isBase64Encoded"):
        body = base64.b64decode(body)
    return json.loads(body)


def _header(response: dict[str, Any], name: str) -> str | None:
    for key, value in (response.get("headers") or {}).items():
        if key.lower() == name:
            return str(value)
    for key, values in (response.get("multiValueHeaders") or {}).items():
        if key.lower() == name:
            return str(values[-1])
    return None


EVENT_KINDS = {
    "rest-v1": api_gateway_v1_event,
    "http-v2": api_gateway_v2_event,
    "function-url": function_url_event,
    "alb": alb_event,
}


@pytest.mark.parametrize("kind", sorted(EVENT_KINDS))
def test_create_and_read_a_project_with_each_event_kind(
    kind: str, saas: Callable[..., Settings], container: Callable[[LambdaHandler], Invoke]
) -> None:
    build = EVENT_KINDS[kind]
    invoke = container(handler(create_app(saas())))
    created = invoke(build("POST", "/projects", json_body={"name": kind}, headers=_bearer("acme")))
    assert created["statusCode"] == 201, created
    project = _json(created)
    assert project["name"] == kind and project["version"] == 1

    read = invoke(build("GET", f"/projects/{project['id']}", headers=_bearer("acme")))
    assert read["statusCode"] == 200
    assert _json(read) == project

    foreign = invoke(build("GET", f"/projects/{project['id']}", headers=_bearer("globex")))
    assert foreign["statusCode"] == 404
    assert _header(foreign, "content-type") == "application/problem+json"

    anonymous = invoke(build("GET", f"/projects/{project['id']}"))
    assert anonymous["statusCode"] == 401


def test_tenant_from_authorizer_claims_v1_and_v2(
    saas: Callable[..., Settings], container: Callable[[LambdaHandler], Invoke]
) -> None:
    invoke = container(handler(create_app(saas())))
    claims = {"tenant_id": "initech", "sub": "peter", "plan": "pro"}
    created = invoke(
        api_gateway_v2_event("POST", "/projects", json_body={"name": "p"}, jwt_claims=claims)
    )
    assert created["statusCode"] == 201
    # the plan claim the authorizer verified picks the limit (pro: 1000/minute)
    assert _header(created, "x-ratelimit-limit") == "1000"
    project_id = _json(created)["id"]
    # The same tenant through a REST API Cognito authorizer and a Lambda authorizer.
    via_v1 = invoke(api_gateway_v1_event("GET", f"/projects/{project_id}", claims=claims))
    assert via_v1["statusCode"] == 200
    assert _header(via_v1, "x-ratelimit-limit") == "1000"
    via_lambda = invoke(
        api_gateway_v2_event(
            "GET", f"/projects/{project_id}", lambda_authorizer={"tenant_id": "initech"}
        )
    )
    assert via_lambda["statusCode"] == 200
    assert _header(via_lambda, "x-ratelimit-limit") == "100"  # no plan claim: free
    other = invoke(
        api_gateway_v1_event("GET", f"/projects/{project_id}", authorizer={"tenant_id": "hooli"})
    )
    assert other["statusCode"] == 404
    bad = invoke(api_gateway_v2_event("GET", "/projects", jwt_claims={"tenant_id": "a#b"}))
    assert bad["statusCode"] == 400


def test_rate_limit_headers_and_429_in_lambda_format(
    saas: Callable[..., Settings], container: Callable[[LambdaHandler], Invoke]
) -> None:
    invoke = container(handler(create_app(saas(SAAS_RATE_FREE="3/minute"))))
    tenant = f"free-{uuid.uuid4().hex[:6]}"
    statuses = []
    last: dict[str, Any] = {}
    for _ in range(4):
        last = invoke(api_gateway_v1_event("GET", "/projects", headers=_bearer(tenant, "free")))
        statuses.append(last["statusCode"])
        # REST v1 answers carry multiValueHeaders too
        assert "multiValueHeaders" in last
        assert _header(last, "x-ratelimit-limit") == "3"
    assert statuses == [200, 200, 200, 429]
    assert _header(last, "content-type") == "application/problem+json"
    retry_after = _header(last, "retry-after")
    assert retry_after is not None and retry_after.isdigit() and int(retry_after) >= 1
    assert _json(last)["status"] == 429
    # HTTP API v2: the same refusal, in its own format (plain headers, no multi-value)
    refused = invoke(api_gateway_v2_event("GET", "/projects", headers=_bearer(tenant, "free")))
    assert refused["statusCode"] == 429
    assert "multiValueHeaders" not in refused
    assert refused["headers"]["x-ratelimit-remaining"] == "0"
    # another tenant is unaffected
    other = invoke(api_gateway_v2_event("GET", "/projects", headers=_bearer(tenant + "x", "free")))
    assert other["statusCode"] == 200


def test_base64_request_body(
    saas: Callable[..., Settings], container: Callable[[LambdaHandler], Invoke]
) -> None:
    invoke = container(handler(create_app(saas())))
    event = api_gateway_v2_event(
        "POST",
        "/projects",
        json_body={"name": "encoded"},
        base64_encode=True,
        headers=_bearer("acme"),
    )
    assert event["isBase64Encoded"] is True
    created = invoke(event)
    assert created["statusCode"] == 201
    assert _json(created)["name"] == "encoded"


def test_failed_commit_becomes_409_and_503(
    saas: Callable[..., Settings],
    container: Callable[[LambdaHandler], Invoke],
    dynamodb_fault_proxy: FaultProxy,
) -> None:
    invoke = container(handler(create_app(saas(dynamodb_fault_proxy.endpoint))))
    created = invoke(
        api_gateway_v2_event("POST", "/projects", json_body={"name": "p"}, headers=_bearer("acme"))
    )
    project_id = _json(created)["id"]
    task = {"title": "t", "id": "same"}
    first = invoke(
        api_gateway_v2_event(
            "POST", f"/projects/{project_id}/tasks", json_body=task, headers=_bearer("acme")
        )
    )
    assert first["statusCode"] == 201
    again = invoke(
        api_gateway_v2_event(
            "POST", f"/projects/{project_id}/tasks", json_body=task, headers=_bearer("acme")
        )
    )
    assert again["statusCode"] == 409
    assert _json(again)["status"] == 409

    dynamodb_fault_proxy.reset()
    dynamodb_fault_proxy.throttle(times=None, operation="TransactWriteItems")
    throttled = invoke(
        api_gateway_v2_event("POST", "/projects", json_body={"name": "q"}, headers=_bearer("acme"))
    )
    assert throttled["statusCode"] == 503
    assert int(throttled["headers"]["retry-after"]) >= 1
    tokens = {
        c.payload["ClientRequestToken"] for c in dynamodb_fault_proxy.calls_of("TransactWriteItems")
    }
    assert len(dynamodb_fault_proxy.calls_of("TransactWriteItems")) > 1, "it was retried"
    assert len(tokens) == 1, "every retry of one commit reuses its ClientRequestToken"
    dynamodb_fault_proxy.reset()
    listing = invoke(api_gateway_v2_event("GET", "/projects", headers=_bearer("acme")))
    assert [p["name"] for p in _json(listing)["items"]] == ["p"]


def test_example_module_exposes_handler(
    saas: Callable[..., Settings],
    monkeypatch: pytest.MonkeyPatch,
    container: Callable[[LambdaHandler], Invoke],
) -> None:
    settings = saas()
    monkeypatch.setenv("SAAS_ENV", "dev")
    monkeypatch.setenv("SAAS_TABLE", settings.table)
    monkeypatch.setenv("SAAS_RATE_TABLE", settings.rate_table)
    import importlib

    import examples.saas.app
    import examples.saas.lambda_handler as module

    importlib.reload(examples.saas.app)
    importlib.reload(module)
    assert isinstance(module.handler, LambdaHandler)
    invoke = container(module.handler)
    assert invoke(api_gateway_v2_event("GET", "/health"))["statusCode"] == 200
    created = invoke(
        api_gateway_v2_event("POST", "/projects", json_body={"name": "x"}, headers=_bearer("acme"))
    )
    assert created["statusCode"] == 201


# -- the handler itself, on small apps ------------------------------------------------


def _lifespan_app() -> tuple[Starlette, dict[str, int]]:
    counts = {"startup": 0, "shutdown": 0}

    @asynccontextmanager
    async def lifespan(app: Starlette) -> Any:
        counts["startup"] += 1
        yield {"started": counts["startup"]}
        counts["shutdown"] += 1

    async def state(request: Request) -> Response:
        return JSONResponse(
            {
                "started": request.state.started,
                "client": request.client.host if request.client else None,
            }
        )

    async def cookies(request: Request) -> Response:
        response = JSONResponse({"ok": True})
        response.set_cookie("a", "1")
        response.set_cookie("b", "2")
        return response

    async def binary(request: Request) -> Response:
        return Response(bytes(range(256)), media_type="application/octet-stream")

    app = Starlette(
        routes=[Route("/state", state), Route("/cookies", cookies), Route("/binary", binary)],
        lifespan=lifespan,
    )
    return app, counts


def test_lifespan_runs_once_per_container_and_its_state_reaches_requests(
    container: Callable[[LambdaHandler], Invoke],
) -> None:
    app, counts = _lifespan_app()
    lambda_handler = handler(app)
    invoke = container(lambda_handler)
    for _ in range(5):
        answer = invoke(api_gateway_v2_event("GET", "/state"))
        assert _json(answer)["started"] == 1
    assert counts == {"startup": 1, "shutdown": 0}
    assert lambda_handler.startups == 1
    lambda_handler.shutdown()
    assert counts["shutdown"] == 1


def test_lifespan_on_fails_loudly_for_an_app_without_one(
    container: Callable[[LambdaHandler], Invoke],
) -> None:
    async def plain(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            raise RuntimeError("no lifespan here")
        await JSONResponse({"ok": True})(scope, receive, send)

    assert container(handler(plain))(function_url_event("GET", "/"))["statusCode"] == 200
    with pytest.raises(RuntimeError, match="no lifespan here"):
        container(handler(plain, lifespan="on"))(function_url_event("GET", "/"))


def _failing_startup_app() -> tuple[Starlette, dict[str, int]]:
    counts = {"startup": 0, "served": 0}

    @asynccontextmanager
    async def lifespan(app: Starlette) -> Any:
        counts["startup"] += 1
        raise RuntimeError("cannot reach the secrets store")
        yield  # pragma: no cover

    async def route(request: Request) -> Response:
        counts["served"] += 1
        return JSONResponse({"served": "without its startup"})

    return Starlette(routes=[Route("/", route)], lifespan=lifespan), counts


@pytest.mark.parametrize("mode", ["auto", "on"])
def test_a_failed_lifespan_startup_stops_the_handler_in_every_mode(
    container: Callable[[LambdaHandler], Invoke], mode: str
) -> None:
    """Starlette answers lifespan.startup.failed, then re-raises; "auto" took the raise
    for "no lifespan support" and served requests without the startup. Like uvicorn
    and Mangum, a startup the app says failed is raised, and tried again next time."""
    app, counts = _failing_startup_app()
    invoke = container(handler(app, lifespan=mode))
    for attempt in (1, 2):
        with pytest.raises(RuntimeError, match="cannot reach the secrets store"):
            invoke(function_url_event("GET", "/"))
        assert counts == {"startup": attempt, "served": 0}


def test_a_startup_failed_message_without_an_exception_stops_the_handler(
    container: Callable[[LambdaHandler], Invoke],
) -> None:
    """What the suite's stages do for a wrong order: answer startup.failed and return."""
    served: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await receive()
            await send({"type": "lifespan.startup.failed", "message": "the stages are misordered"})
            return
        served.append(scope["path"])
        await JSONResponse({"ok": True})(scope, receive, send)

    with pytest.raises(RuntimeError, match="the stages are misordered"):
        container(handler(app))(function_url_event("GET", "/"))
    assert served == []
    # lifespan="off" never runs it: the app is served as it is
    assert (
        container(handler(app, lifespan="off"))(function_url_event("GET", "/"))["statusCode"] == 200
    )


def test_an_app_without_lifespan_support_leaves_no_unretrieved_task_error(
    container: Callable[[LambdaHandler], Invoke], caplog: pytest.LogCaptureFixture
) -> None:
    import gc

    async def plain(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            raise RuntimeError("no lifespan here")
        await JSONResponse({"ok": True})(scope, receive, send)

    with caplog.at_level(logging.ERROR, logger="asyncio"):
        assert container(handler(plain))(function_url_event("GET", "/"))["statusCode"] == 200
        gc.collect()
    assert not [r for r in caplog.records if "never retrieved" in r.getMessage()]


def test_cookies_in_each_format(container: Callable[[LambdaHandler], Invoke]) -> None:
    app, _ = _lifespan_app()
    invoke = container(handler(app))
    v2 = invoke(api_gateway_v2_event("GET", "/cookies"))
    assert sorted(c.split(";")[0] for c in v2["cookies"]) == ["a=1", "b=2"]
    v1 = invoke(api_gateway_v1_event("GET", "/cookies"))
    assert sorted(c.split(";")[0] for c in v1["multiValueHeaders"]["set-cookie"]) == ["a=1", "b=2"]
    alb = invoke(alb_event("GET", "/cookies", multi_value=True))
    assert len(alb["multiValueHeaders"]["set-cookie"]) == 2


def test_binary_response_is_base64(container: Callable[[LambdaHandler], Invoke]) -> None:
    app, _ = _lifespan_app()
    answer = container(handler(app))(api_gateway_v2_event("GET", "/binary"))
    assert answer["isBase64Encoded"] is True
    assert base64.b64decode(answer["body"]) == bytes(range(256))


@pytest.mark.parametrize(
    ("forwarded", "trusted", "expected"),
    [
        ("203.0.113.7", (), "203.0.113.7"),
        # a client-supplied prefix is never believed: the ALB appended the real peer
        ("1.2.3.4, 203.0.113.7", (), "203.0.113.7"),
        # behind a trusted CDN hop, the hop before it is the client
        ("198.51.100.9, 203.0.113.7, 10.0.0.5", ("10.0.0.0/8",), "203.0.113.7"),
    ],
)
def test_alb_client_is_the_rightmost_untrusted_hop(
    container: Callable[[LambdaHandler], Invoke],
    forwarded: str,
    trusted: tuple[str, ...],
    expected: str,
) -> None:
    app, _ = _lifespan_app()
    invoke = container(handler(app, trusted_proxies=trusted))
    answer = invoke(alb_event("GET", "/state", forwarded_for=forwarded))
    assert _json(answer)["client"] == expected


def test_api_gateway_source_ip_is_the_client(container: Callable[[LambdaHandler], Invoke]) -> None:
    app, _ = _lifespan_app()
    invoke = container(handler(app))
    answer = invoke(
        api_gateway_v1_event(
            "GET", "/state", source_ip="192.0.2.44", headers={"x-forwarded-for": "6.6.6.6"}
        )
    )
    assert _json(answer)["client"] == "192.0.2.44"


def test_bad_options_name_themselves() -> None:
    app, _ = _lifespan_app()
    with pytest.raises(ConfigurationError, match="lifespan"):
        handler(app, lifespan="sometimes")
    with pytest.raises(ConfigurationError, match="trusted_proxies"):
        handler(app, trusted_proxies=["not-a-network"])
    with pytest.raises(ConfigurationError, match="shutdown_on_sigterm"):
        handler(app, shutdown_on_sigterm="no")  # truthy: it would take SIGTERM over


_SIGTERM_CHILD = """
import sys, time
from contextlib import asynccontextmanager
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from lift_asgi.aws import handler
from lift_asgi.testing import api_gateway_v2_event, lambda_context

log = open(sys.argv[1], "a", buffering=1)

@asynccontextmanager
async def lifespan(app):
    log.write("startup\\n")
    yield
    log.write("shutdown\\n")

async def hello(request):
    return PlainTextResponse("hi")

h = handler(Starlette(routes=[Route("/", hello)], lifespan=lifespan), shutdown_on_sigterm=True)
answer = h(api_gateway_v2_event("GET", "/"), lambda_context())
log.write(f"answered {answer['statusCode']}\\n")
print("ready", flush=True)
time.sleep(60)
log.write("not stopped\\n")
"""


def test_sigterm_runs_the_apps_shutdown_and_exits_cleanly(tmp_path: Any) -> None:
    # the Lambda runtime sends SIGTERM before it stops a container (with an extension)
    log = tmp_path / "lifespan.log"
    child = subprocess.Popen(
        [sys.executable, "-c", _SIGTERM_CHILD, str(log)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready", (
            child.stderr.read() if child.stderr else ""
        )
        child.send_signal(signal.SIGTERM)
        code = child.wait(timeout=20)
    finally:
        child.kill()
    assert code == 0
    assert log.read_text().splitlines() == ["startup", "answered 200", "shutdown"]


# -- text bodies stay text -------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    [
        "application/problem+json",
        "application/json; charset=utf-8",
        "application/ld+json",
        "application/vnd.api+json",
        "application/x-ndjson",
        "application/xml",
        "application/atom+xml",
        "image/svg+xml",
        "text/csv; charset=utf-8",
        "text/html",
    ],
)
@pytest.mark.parametrize("event", [api_gateway_v1_event, api_gateway_v2_event, alb_event])
def test_text_types_come_back_as_text(
    container: Callable[[LambdaHandler], Invoke], content_type: str, event: Any
) -> None:
    """A REST API without binary media types hands a base64 body to the client as is."""
    body = '{"title": "é"}'

    async def typed(request: Request) -> Response:
        return Response(body, headers={"content-type": content_type})

    answer = container(handler(Starlette(routes=[Route("/typed", typed)])))(event("GET", "/typed"))
    assert answer["isBase64Encoded"] is False
    assert answer["body"] == body


def test_a_suite_error_is_a_text_problem(container: Callable[[LambdaHandler], Invoke]) -> None:
    from lift_asgi.exception_handlers import PROBLEM_HANDLERS

    app = Starlette(routes=[], exception_handlers=PROBLEM_HANDLERS)
    answer = container(handler(app))(api_gateway_v1_event("GET", "/nowhere"))
    assert answer["statusCode"] == 404
    assert answer["isBase64Encoded"] is False
    assert json.loads(answer["body"])["status"] == 404


def test_text_mime_types_given_replace_the_defaults(
    container: Callable[[LambdaHandler], Invoke],
) -> None:
    """As in Mangum: a list given is the whole list."""

    async def custom(request: Request) -> Response:
        return Response("plain", media_type=request.query_params["type"])

    app = Starlette(routes=[Route("/custom", custom)])
    invoke = container(handler(app, text_mime_types=["application/x-custom"]))
    mine = invoke(api_gateway_v2_event("GET", "/custom", query={"type": "application/x-custom"}))
    assert (mine["isBase64Encoded"], mine["body"]) == (False, "plain")
    other = invoke(api_gateway_v2_event("GET", "/custom", query={"type": "text/plain"}))
    assert other["isBase64Encoded"] is True


# -- configuration errors at handler creation --------------------------------------------


@pytest.mark.parametrize("kind", ["starlette", "fastapi", "wrapped"])
def test_a_misconfigured_middleware_raises_when_the_handler_is_created(kind: str) -> None:
    """Starlette builds its stack on the first call; the handler builds it now, so the
    error is raised in Lambda's init phase (at import), with its message."""
    from fastapi import FastAPI

    from lift_asgi.tenancy import HeaderResolver, TenantMiddleware

    app: Any = FastAPI() if kind == "fastapi" else Starlette()
    app.add_middleware(TenantMiddleware, resolvers=[])
    if kind == "wrapped":
        app = TenantMiddleware(app, resolvers=[HeaderResolver()])
    with pytest.raises(ConfigurationError, match="resolvers: at least one resolver is required"):
        handler(app)


# -- nothing left behind ---------------------------------------------------------------

_SNIPPET = """
from contextlib import asynccontextmanager

from lift_asgi.aws import handler
from lift_asgi.testing import api_gateway_v2_event, lambda_context
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route


@asynccontextmanager
async def lifespan(app):
    yield
    print("shutdown ran")


async def hello(request):
    return JSONResponse({"client": request.client.host})

lambda_handler = handler(Starlette(routes=[Route("/hello", hello)], lifespan=lifespan))
response = lambda_handler(api_gateway_v2_event("GET", "/hello", source_ip="192.0.2.1"),
                          lambda_context())
assert response["statusCode"] == 200 and "192.0.2.1" in response["body"]
"""

_PYTEST_FILE = """
import snippet  # the handler, created at import as in Lambda


def test_invoke():
    event = snippet.api_gateway_v2_event("GET", "/hello")
    assert snippet.lambda_handler(event, snippet.lambda_context())["statusCode"] == 200


async def test_an_async_test_after_it():
    pass
"""


def _python(*args: str, cwd: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-X", "dev", "-W", "error", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(cwd), *sys.path])},
    )


# -X dev turns asyncio's debug mode on, which logs any step of a task that takes over
# 0.1 s: a loaded CI machine's import, not a task left behind. Only those lines are dropped.
_SLOW_STEP = re.compile(r"^Executing <.*> took \d+\.\d+ seconds\n", re.MULTILINE)


def _stderr(done: subprocess.CompletedProcess[str]) -> str:
    return _SLOW_STEP.sub("", done.stderr)


def test_the_documented_handler_leaves_no_pending_task_or_warning(tmp_path: Any) -> None:
    """Seen: "Task was destroyed but it is pending!" after the README snippet, and under
    pytest "RuntimeError: Event loop is closed". Here: nothing on stderr, and the app's
    lifespan shutdown runs when the process ends."""
    (tmp_path / "snippet.py").write_text(_SNIPPET)
    (tmp_path / "test_snippet.py").write_text(_PYTEST_FILE)
    script = _python("snippet.py", cwd=tmp_path)
    assert (script.returncode, _stderr(script)) == (0, "")
    assert script.stdout == "shutdown ran\n"
    tests = _python(
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "-o",
        "asyncio_mode=auto",
        "-o",
        "asyncio_default_fixture_loop_scope=function",
        "test_snippet.py",
        cwd=tmp_path,
    )
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert "2 passed" in tests.stdout
    assert "warning" not in tests.stdout.lower()
    assert _stderr(tests) == ""


def test_close_runs_the_shutdown_and_closes_the_loop(
    container: Callable[[LambdaHandler], Invoke],
) -> None:
    app, counts = _lifespan_app()
    lambda_handler = handler(app)
    container(lambda_handler)(api_gateway_v2_event("GET", "/state"))
    lambda_handler.close()
    lambda_handler.close()
    assert counts == {"startup": 1, "shutdown": 1}
    assert lambda_handler._loop.is_closed()
