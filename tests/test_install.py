"""lift_asgi.install: the stages in their order, built at install time, one exempt list,
on FastAPI, bare Starlette, any ASGI app, and under the Lambda handler."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import logging
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated, Any

import httpx
import jwt
import pytest
from fastapi import Depends, FastAPI, Request
from starlette.applications import Starlette
from starlette.requests import Request as StarletteRequest
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

import lift_asgi
from lift_asgi.aws import handler
from lift_asgi.dynamo import UnitOfWork, get_uow
from lift_asgi.dynamo.tables import TableSpec
from lift_asgi.errors import ConfigurationError
from lift_asgi.exception_handlers import PROBLEM_HANDLERS
from lift_asgi.ratelimit import Rule
from lift_asgi.stages import context
from lift_asgi.tenancy import HeaderResolver, JWTResolver, current_tenant
from lift_asgi.testing import api_gateway_v2_event, lambda_context

SECRET = "install-test-secret-0123456789abcdef"
HAS_OBSERVE = importlib.util.find_spec("lift_asgi.observe.middleware") is not None


def bearer(tenant: str = "acme") -> dict[str, str]:
    claims = {"tenant_id": tenant, "sub": "alice", "exp": int(time.time()) + 600}
    return {"authorization": f"Bearer {jwt.encode(claims, SECRET, algorithm='HS256')}"}


def tenant_options() -> dict[str, Any]:
    return {"resolvers": [JWTResolver(key=SECRET, algorithms=["HS256"])]}


def fastapi_app() -> FastAPI:
    app = FastAPI(exception_handlers=PROBLEM_HANDLERS)

    @app.get("/stages")
    async def stages(request: Request) -> dict[str, Any]:
        ctx = context(request.scope)
        tenant = ctx.tenant
        return {"stages": ctx.stages, "tenant": tenant.id if tenant else None}

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return app


def client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


async def lifespan_startup(app: Any) -> Message:
    """Run the lifespan's startup; the server's answer (``...startup.complete/failed``)."""
    answered: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
    incoming = [{"type": "lifespan.startup"}]

    async def receive() -> Message:
        if incoming:
            return incoming.pop(0)
        await asyncio.Event().wait()  # never shut down: the task is cancelled
        raise AssertionError("unreachable")

    async def send(message: Message) -> None:
        if message["type"].startswith("lifespan.startup") and not answered.done():
            answered.set_result(message)

    scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
    task = asyncio.create_task(app(scope, receive, send))
    try:
        return await asyncio.wait_for(answered, 10)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


NO_DATA_UOW = {"table": "install-test", "endpoint": "http://127.0.0.1:9", "region": "us-east-1"}


# -- order ------------------------------------------------------------------------------


async def test_every_stage_runs_in_the_documented_order_on_fastapi() -> None:
    app = fastapi_app()
    observe: dict[str, Any] | None = {} if HAS_OBSERVE else None
    assert (
        lift_asgi.install(
            app,
            observe=observe,
            tenant=tenant_options(),
            rate_limit={"limit": "100/minute", "key": "tenant"},
            idempotency={},
            unit_of_work=NO_DATA_UOW,
        )
        is app
    )
    assert (await lifespan_startup(app))["type"] == "lifespan.startup.complete"
    async with client(app) as http:
        response = await http.get("/stages", headers=bearer())
    assert response.status_code == 200, response.text
    expected = ["tenant", "rate_limit", "idempotency", "unit_of_work"]
    assert response.json() == {
        "stages": (["observe"] if HAS_OBSERVE else []) + expected,
        "tenant": "acme",
    }
    assert response.headers["x-ratelimit-limit"] == "100"


async def test_only_the_configured_stages_are_installed() -> None:
    app = fastapi_app()
    lift_asgi.install(app, tenant=tenant_options(), unit_of_work=NO_DATA_UOW)
    async with client(app) as http:
        response = await http.get("/stages", headers=bearer())
    assert response.json()["stages"] == ["tenant", "unit_of_work"]
    assert "x-ratelimit-limit" not in response.headers


# -- eager: mistakes raise where install() is called ------------------------------------


@pytest.mark.parametrize(
    ("options", "option"),
    [
        ({"rate_limit": {"limit": "ten a minute"}}, "rate_limit.limit"),
        ({"rate_limit": {"limit": "1/minute", "limt": 3}}, "rate_limit.limt"),
        ({"tenant": {"resolvers": []}}, "tenant.resolvers"),
        ({"tenant": {"resolverz": [HeaderResolver()]}}, "tenant.resolverz"),
        ({"tenant": tenant_options(), "unit_of_work": {}}, "unit_of_work.table"),
        ({"tenant": tenant_options(), "idempotency": {"methods": ["GET"]}}, "unit_of_work"),
        (
            {
                "tenant": tenant_options(),
                "idempotency": {"methods": ["GET"]},
                "unit_of_work": NO_DATA_UOW,
            },
            "idempotency.methods",
        ),
        ({"unit_of_work": NO_DATA_UOW}, "tenant"),
        ({"tenant": tenant_options(), "exempt": ["health"]}, "exempt"),
        ({"tenant": tenant_options(), "exempt": "/"}, "exempt"),
        ({"tenant": tenant_options(), "exempt": 5}, "exempt"),  # was a TypeError
        ({"observe": {"quiet": 5}}, "observe.quiet"),
        ({"observe": {"quiet": [None]}}, "observe.quiet"),
        ({"tenant": "acme"}, "tenant"),
        ({"tenant": {"app": None, "resolvers": [HeaderResolver()]}}, "tenant.app"),
        ({}, "install"),
    ],
)
def test_a_mistake_raises_at_install_naming_stage_and_option(
    options: dict[str, Any], option: str
) -> None:
    app = fastapi_app()
    with pytest.raises(ConfigurationError) as raised:
        lift_asgi.install(app, **options)
    assert raised.value.option == option
    assert str(raised.value).startswith(f"{option}: ")
    assert app.user_middleware == []  # nothing half-installed


def test_installing_twice_or_after_start_is_refused() -> None:
    app = fastapi_app()
    lift_asgi.install(app, tenant=tenant_options())
    with pytest.raises(ConfigurationError, match="already"):
        lift_asgi.install(app, tenant=tenant_options())
    started = fastapi_app()
    started.middleware_stack = started.build_middleware_stack()
    with pytest.raises(ConfigurationError, match="before the app serves"):
        lift_asgi.install(started, tenant=tenant_options())


@pytest.mark.parametrize(
    ("rate_limit", "option"),
    [
        ({"limit": "1/minute", "key": "tenant"}, "rate_limit.key"),
        ({"limit": "1/minute", "key": "user"}, "rate_limit.key"),
        ({"limit": "1/minute", "key": ("ip", "tenant")}, "rate_limit.key"),
        ({"limit": {"pro": "10/minute", "default": "1/minute"}}, "rate_limit.limit"),
        ({"rules": [Rule("1/minute"), Rule("5/minute", key="user")]}, "rate_limit.rules"),
    ],
)
async def test_a_limiter_that_needs_the_tenant_is_refused_without_the_tenant_stage(
    rate_limit: dict[str, Any], option: str
) -> None:
    """It was accepted, then failed lifespan startup (or, with no lifespan, 500ed every
    limited request); install() knows the stages it builds, so it says so at once."""
    app = fastapi_app()
    with pytest.raises(ConfigurationError) as raised:
        lift_asgi.install(app, rate_limit=rate_limit)
    assert raised.value.option == option
    assert "tenant={...}" in str(raised.value)
    assert app.user_middleware == []  # nothing half-installed
    # with the tenant stage the same limiter is installed and starts
    lift_asgi.install(app, tenant=tenant_options(), rate_limit=rate_limit)
    assert (await lifespan_startup(app))["type"] == "lifespan.startup.complete"


async def test_a_limiter_keyed_by_ip_needs_no_tenant_stage() -> None:
    app = fastapi_app()
    lift_asgi.install(app, rate_limit={"limit": "1/minute", "key": "ip"})
    assert (await lifespan_startup(app))["type"] == "lifespan.startup.complete"
    async with client(app) as http:
        assert (await http.get("/health")).status_code == 200


# -- one exempt list ----------------------------------------------------------------------


async def test_exempt_paths_are_skipped_by_every_stage() -> None:
    app = fastapi_app()
    lift_asgi.install(
        app,
        tenant=tenant_options(),
        rate_limit={"limit": "1/minute", "key": "ip"},
        exempt=["/health"],
    )
    async with client(app) as http:
        health = [await http.get("/health") for _ in range(3)]
        assert [r.status_code for r in health] == [200, 200, 200]  # no tenant, no limit
        assert all("x-ratelimit-limit" not in r.headers for r in health)
        assert (await http.get("/stages")).status_code == 401
        first = await http.get("/stages", headers=bearer())
        second = await http.get("/stages", headers=bearer())
    assert (first.status_code, second.status_code) == (200, 429)
    assert second.headers["content-type"] == "application/problem+json"


async def test_a_stage_own_exempt_adds_paths_for_that_stage_only() -> None:
    app = fastapi_app()
    lift_asgi.install(
        app,
        tenant=tenant_options(),
        rate_limit={"limit": "1/minute", "key": "tenant", "exempt": ["/stages"]},
        exempt=["/health"],
    )
    async with client(app) as http:
        statuses = [(await http.get("/stages", headers=bearer())).status_code for _ in range(3)]
        assert (await http.get("/stages")).status_code == 401  # still needs a tenant
        assert (await http.get("/health")).status_code == 200
    assert statuses == [200, 200, 200]


# -- bare Starlette, any ASGI app ---------------------------------------------------------


async def test_bare_starlette() -> None:
    async def whoami(request: StarletteRequest) -> JSONResponse:
        tenant = current_tenant()
        return JSONResponse({"tenant": tenant.id if tenant else None})

    app = Starlette(routes=[Route("/whoami", whoami)])
    assert (
        lift_asgi.install(
            app,
            tenant={"resolvers": [HeaderResolver("x-tenant-id")]},
            rate_limit={"limit": "2/minute", "key": "tenant"},
        )
        is app
    )
    async with client(app) as http:
        answers = [await http.get("/whoami", headers={"x-tenant-id": "acme"}) for _ in range(3)]
        other = await http.get("/whoami", headers={"x-tenant-id": "globex"})
        missing = await http.get("/whoami")
    assert [r.status_code for r in answers] == [200, 200, 429]
    assert answers[0].json() == {"tenant": "acme"}
    assert other.status_code == 200  # limited per tenant
    assert missing.status_code == 401


async def test_any_asgi_app_is_wrapped_and_the_wrapper_returned() -> None:
    seen: list[list[str]] = []

    async def plain(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(list(context(scope).stages))
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    served = lift_asgi.install(
        plain,
        tenant={"resolvers": [HeaderResolver()]},
        rate_limit={"limit": "5/minute", "key": "tenant"},
    )
    assert served is not plain
    async with client(served) as http:
        response = await http.get("/anything", headers={"x-tenant-id": "acme"})
    assert response.status_code == 204
    assert response.headers["x-ratelimit-remaining"] == "4"
    assert seen == [["tenant", "rate_limit"]]


# -- under the Lambda handler, with data --------------------------------------------------

Uow = Annotated[UnitOfWork, Depends(get_uow)]


@pytest.fixture
def container() -> Iterator[ThreadPoolExecutor]:
    """One thread = one Lambda container (a fresh thread has no event loop)."""
    pool = ThreadPoolExecutor(max_workers=1)
    yield pool
    pool.shutdown(wait=True)


@pytest.mark.dynamodb
def test_under_the_lambda_handler_with_a_unit_of_work(
    dynamodb_env: str, dynamodb_table: TableSpec, container: ThreadPoolExecutor
) -> None:
    app = FastAPI(exception_handlers=PROBLEM_HANDLERS)

    @app.put("/notes/{note_id}", status_code=201)
    async def put(note_id: str, body: dict[str, str], uow: Uow) -> dict[str, str]:
        uow.put({"pk": "notes", "sk": note_id, "text": body["text"]})
        return {"id": note_id}

    @app.get("/notes/{note_id}")
    async def get(note_id: str, uow: Uow) -> dict[str, Any]:
        note = await uow.get_or_404({"pk": "notes", "sk": note_id})
        return {"text": note["text"], "tenant": uow.tenant_id}

    lift_asgi.install(
        app,
        tenant=tenant_options(),
        rate_limit={"limit": "100/minute", "key": "tenant"},
        idempotency={},
        unit_of_work={"table": dynamodb_table},
        exempt=["/health"],
    )
    lambda_handler = handler(app)

    def invoke(event: dict[str, Any]) -> dict[str, Any]:
        return container.submit(lambda_handler, event, lambda_context()).result(60)

    try:
        put = invoke(
            api_gateway_v2_event("PUT", "/notes/n1", headers=bearer(), json_body={"text": "hello"})
        )
        assert put["statusCode"] == 201, put
        got = invoke(api_gateway_v2_event("GET", "/notes/n1", headers=bearer()))
        assert got["statusCode"] == 200, got
        assert json.loads(got["body"]) == {"text": "hello", "tenant": "acme"}
        assert got["headers"]["x-ratelimit-limit"] == "100"
        other = invoke(api_gateway_v2_event("GET", "/notes/n1", headers=bearer("globex")))
        assert other["statusCode"] == 404  # the note is acme's
        anonymous = invoke(api_gateway_v2_event("GET", "/notes/n1"))
        assert anonymous["statusCode"] == 401
    finally:
        container.submit(lambda_handler.shutdown).result(30)


@pytest.mark.dynamodb
async def test_installed_unit_of_work_commits_successes_and_discards_refusals(
    dynamodb_env: str, dynamodb_table: TableSpec
) -> None:
    """Through install(), against the local server: writes buffered before an
    HTTPException are discarded (nothing stored), a success's are committed."""
    from fastapi import HTTPException

    app = FastAPI(exception_handlers=PROBLEM_HANDLERS)

    @app.put("/notes/{note_id}")
    async def put(note_id: str, fail: bool, uow: Uow) -> dict[str, str]:
        uow.put({"pk": "notes", "sk": note_id, "text": "x"})
        if fail:
            raise HTTPException(409, "refused after a write was buffered")
        return {"id": note_id}

    @app.get("/notes/{note_id}")
    async def get(note_id: str, uow: Uow) -> dict[str, bool]:
        return {"found": await uow.get({"pk": "notes", "sk": note_id}) is not None}

    lift_asgi.install(app, tenant=tenant_options(), unit_of_work={"table": dynamodb_table})
    async with client(app) as http:
        refused = await http.put("/notes/a?fail=true", headers=bearer())
        stored = await http.put("/notes/b?fail=false", headers=bearer())
        found = [(await http.get(f"/notes/{n}", headers=bearer())).json()["found"] for n in "ab"]
    assert (refused.status_code, stored.status_code) == (409, 200)
    assert found == [False, True]


async def test_the_observer_outermost_finds_route_templates_and_sees_every_answer(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Installed outermost, the observer reads route templates through the stages inside
    it and echoes the request id on the tenant stage's 401 too."""
    app = FastAPI(exception_handlers=PROBLEM_HANDLERS)

    @app.get("/notes/{note_id}")
    async def note(note_id: str) -> dict[str, str]:
        return {"id": note_id}

    lift_asgi.install(app, observe={}, tenant=tenant_options(), exempt=["/health"])
    with caplog.at_level(logging.INFO, logger="lift_asgi.request"):
        async with client(app) as http:
            ok = await http.get("/notes/n1", headers={**bearer(), "x-request-id": "req-1"})
            refused = await http.get("/notes/n1", headers={"x-request-id": "req-2"})
    assert (ok.status_code, refused.status_code) == (200, 401)
    assert (ok.headers["x-request-id"], refused.headers["x-request-id"]) == ("req-1", "req-2")
    records = [r for r in caplog.records if hasattr(r, "lift_request")]
    assert [(r.lift_request["route"], r.lift_request["status"], r.tenant) for r in records] == [
        ("/notes/{note_id}", 200, "acme"),
        ("/notes/{note_id}", 401, None),
    ]


@pytest.mark.parametrize("cors_first", [True, False])
async def test_the_app_own_middlewares_wrap_the_suite_whatever_the_order(
    cors_first: bool,
) -> None:
    """CORS added before or after install(): its preflight answers without a tenant, and
    the tenant stage's 401 still carries its headers."""
    from starlette.middleware.cors import CORSMiddleware

    app = fastapi_app()
    origin = "https://app.example.com"

    def cors() -> None:
        app.add_middleware(CORSMiddleware, allow_origins=[origin], allow_headers=["*"])

    if cors_first:
        cors()
    lift_asgi.install(app, tenant=tenant_options())
    if not cors_first:
        cors()
    async with client(app) as http:
        preflight = await http.options(
            "/stages",
            headers={
                "origin": origin,
                "access-control-request-method": "GET",
                "access-control-request-headers": "authorization",
            },
        )
        refused = await http.get("/stages", headers={"origin": origin})
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == origin
    assert refused.status_code == 401
    assert refused.headers["access-control-allow-origin"] == origin


def test_a_unit_of_work_without_a_tenant_stage_is_named_before_its_own_options() -> None:
    with pytest.raises(ConfigurationError) as raised:
        lift_asgi.install(fastapi_app(), unit_of_work={"table": "things", "bogus": 1})
    assert raised.value.option == "tenant"
