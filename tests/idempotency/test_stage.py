"""The stage's wiring: options checked at construction, a missing unit of work refused at
startup (or, without a lifespan, on the request), tenant-less requests untouched."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message

from lift_asgi.dynamo import UnitOfWorkMiddleware
from lift_asgi.dynamo.tables import TableSpec
from lift_asgi.dynamo.transport import AiodynamoTransport
from lift_asgi.errors import ConfigurationError
from lift_asgi.idempotency import IdempotencyMiddleware
from lift_asgi.stages import IDEMPOTENCY, TENANT, UNIT_OF_WORK, context
from lift_asgi.tenancy import HeaderResolver, TenantMiddleware

from .conftest import ACME, Probe, build, client_for, records, scan

KEYED = {**ACME, "idempotency-key": "k"}


async def lifespan(app: ASGIApp) -> list[Message]:
    queue: asyncio.Queue[Message] = asyncio.Queue()
    sent: list[Message] = []
    await queue.put({"type": "lifespan.startup"})

    async def receive() -> Message:
        return await queue.get()

    async def send(message: Message) -> None:
        sent.append(message)
        if message["type"] in ("lifespan.startup.complete", "lifespan.startup.failed"):
            await queue.put({"type": "lifespan.shutdown"})

    await app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, receive, send)
    return sent


def test_options_are_checked_at_construction() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None: ...

    cases: list[tuple[dict[str, Any], str]] = [
        ({"header": ""}, "header"),
        # each of these was taken, and no request was ever deduplicated or replayed with
        # its headers: a name with a space matches no header, a string is its letters
        ({"header": "a b"}, "header"),
        ({"header": "€"}, "header"),
        ({"header": 5}, "header"),
        ({"replay_headers": "etag"}, "replay_headers"),
        ({"replay_headers": ["etag", "x y"]}, "replay_headers"),
        ({"methods": "POST"}, "methods"),
        ({"methods": []}, "methods"),
        ({"methods": ["POST", "GET"]}, "methods"),
        # a TypeError, or taken as the method "B'POST'"
        ({"methods": None}, "methods"),
        ({"methods": b"POST"}, "methods"),
        ({"methods": [5]}, "methods"),
        ({"replay_headers": None}, "replay_headers"),
        ({"retention": 10**400}, "retention"),  # an OverflowError
        ({"retention": 0}, "retention"),
        ({"retention": "1d"}, "retention"),
        ({"in_progress_expiry": -1}, "in_progress_expiry"),
        # "forever" was taken and every keyed request then failed writing its TTL
        ({"retention": float("inf")}, "retention"),
        ({"in_progress_expiry": 1e40}, "in_progress_expiry"),
        ({"max_request_bytes": 0}, "max_request_bytes"),
        ({"max_request_bytes": 1.5}, "max_request_bytes"),
        ({"max_response_bytes": 400_000}, "max_response_bytes"),
        ({"key_prefix": ""}, "key_prefix"),
        ({"ttl_attribute": ""}, "ttl_attribute"),
        ({"clock": 5}, "clock"),
    ]
    for options, option in cases:
        with pytest.raises(ConfigurationError) as caught:
            IdempotencyMiddleware(app, **options)
        assert caught.value.option == option, options


@pytest.mark.dynamodb
async def test_startup_passes_with_a_unit_of_work_inside(
    dynamodb_table: TableSpec, transport: AiodynamoTransport
) -> None:
    app = build(dynamodb_table.name, transport, Probe())
    sent = await lifespan(app)
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


def _without_uow(handled: list[str], status: int = 201) -> ASGIApp:
    async def create(request: Request) -> Response:
        handled.append(request.url.path)
        return JSONResponse({"ok": True}, status_code=status)

    return Starlette(
        routes=[Route("/items", create, methods=["POST"])],
        middleware=[
            Middleware(TenantMiddleware, resolvers=[HeaderResolver()]),
            Middleware(IdempotencyMiddleware),
        ],
    )


async def test_startup_fails_without_a_unit_of_work_inside() -> None:
    sent = await lifespan(_without_uow([]))
    assert sent[0]["type"] == "lifespan.startup.failed"
    assert "UnitOfWorkMiddleware" in sent[0]["message"]
    assert "IdempotencyMiddleware" in sent[0]["message"]


@pytest.mark.dynamodb
async def test_startup_fails_with_the_unit_of_work_outside(
    dynamodb_table: TableSpec, transport: AiodynamoTransport
) -> None:
    app = Starlette(
        middleware=[
            Middleware(TenantMiddleware, resolvers=[HeaderResolver()]),
            Middleware(UnitOfWorkMiddleware, table=dynamodb_table.name, transport=transport),
            Middleware(IdempotencyMiddleware),
        ]
    )
    sent = await lifespan(app)
    assert sent[0]["type"] == "lifespan.startup.failed"
    assert "UnitOfWorkMiddleware inside it" in sent[0]["message"]


async def test_without_a_lifespan_an_unprotected_success_is_a_logged_500(
    caplog: pytest.LogCaptureFixture,
) -> None:
    handled: list[str] = []
    async with client_for(_without_uow(handled)) as client:
        response = await client.post("/items", json={}, headers=KEYED)
        plain = await client.post("/items", json={}, headers=ACME)
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert "UnitOfWorkMiddleware" in response.json()["detail"]
    assert any(r.levelname == "ERROR" for r in caplog.records)
    assert plain.status_code == 201  # without a key, nothing changes


@pytest.mark.dynamodb
async def test_the_context_records_the_stages_and_the_request(
    dynamodb_table: TableSpec, transport: AiodynamoTransport
) -> None:
    inner = build(dynamodb_table.name, transport, Probe())
    seen: list[Any] = []

    async def probe(scope: Any, receive: Any, send: Any) -> None:
        await inner(scope, receive, send)
        if scope["type"] == "http":
            seen.append(context(scope))

    async with client_for(probe) as client:
        await client.post("/items", json={"id": "a"}, headers=KEYED)
        await client.post("/items", json={"id": "b"}, headers=ACME)
    assert seen[0].stages == [TENANT, IDEMPOTENCY, UNIT_OF_WORK]
    assert seen[0].idempotency is not None and seen[0].commit == "committed"
    assert seen[1].idempotency is None


@pytest.mark.dynamodb
async def test_a_tenantless_request_with_a_key_is_not_deduplicated(
    dynamodb_table: TableSpec, transport: AiodynamoTransport, raw: AiodynamoTransport
) -> None:
    runs: list[int] = []

    async def open_route(request: Request) -> Response:
        runs.append(1)
        return JSONResponse({"runs": len(runs)})

    app = Starlette(
        routes=[Route("/open", open_route, methods=["POST"])],
        middleware=[
            Middleware(TenantMiddleware, resolvers=[HeaderResolver()], exempt=["/open"]),
            Middleware(IdempotencyMiddleware),
            Middleware(UnitOfWorkMiddleware, table=dynamodb_table.name, transport=transport),
        ],
    )
    async with client_for(app) as client:
        for _ in range(2):
            assert (await client.post("/open", headers={"idempotency-key": "k"})).status_code == 200
    assert runs == [1, 1]
    assert records(await scan(raw, dynamodb_table.name)) == {}


@pytest.mark.dynamodb
async def test_a_malformed_tenant_id_with_a_key_is_a_400_problem(
    dynamodb_table: TableSpec, transport: AiodynamoTransport
) -> None:
    async def create(request: Request) -> Response:
        return JSONResponse({"never": "reached"}, status_code=201)

    app = Starlette(
        routes=[Route("/items", create, methods=["POST"])],
        middleware=[
            Middleware(IdempotencyMiddleware),
            Middleware(
                UnitOfWorkMiddleware,
                table=dynamodb_table.name,
                transport=transport,
                tenant_from=lambda scope: "bad#tenant",
            ),
        ],
    )
    async with client_for(app) as client:
        response = await client.post("/items", json={}, headers={"idempotency-key": "k"})
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
