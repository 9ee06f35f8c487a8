"""Fixtures for the idempotency tests: the stage on a real path (tenant → idempotency →
unit of work → routes), a movable clock, raw looks at the table.

Everything talks HTTP to the local DynamoDB server of lift-asgi's own pytest plugin.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp

from lift_asgi.dynamo import UnitOfWorkMiddleware, current_uow
from lift_asgi.dynamo.codec import decode_item
from lift_asgi.dynamo.tables import TableSpec
from lift_asgi.dynamo.transport import AiodynamoTransport, DynamoTransport
from lift_asgi.exception_handlers import PROBLEM_HANDLERS
from lift_asgi.idempotency import IdempotencyMiddleware
from lift_asgi.tenancy import HeaderResolver, TenantMiddleware
from tests.dynamo.conftest import FAST_RETRY

ACME = {"x-tenant-id": "acme"}
GLOBEX = {"x-tenant-id": "globex"}


class Clock:
    """Epoch seconds that a test moves by hand (no sleeping)."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class Probe:
    """What the routes did: how often each ran, and a gate a test can hold the first
    run of ``/items`` at."""

    runs: dict[str, int] = field(default_factory=dict)
    gate: asyncio.Event | None = None
    entered: asyncio.Event = field(default_factory=asyncio.Event)
    fail_first: int = 0

    def ran(self, name: str) -> int:
        self.runs[name] = self.runs.get(name, 0) + 1
        return self.runs[name]


def routes(probe: Probe) -> list[Route]:
    async def create(request: Request) -> Response:
        body = await request.json()
        run = probe.ran("create")
        probe.entered.set()
        if probe.gate is not None and run == 1:
            await probe.gate.wait()
        uow = current_uow()
        uow.put({"pk": "items", "sk": body["id"], "name": body.get("name", "")}, if_absent=True)
        uow.update({"pk": "stats", "sk": "counts"}, add={"items": 1})
        if probe.fail_first:
            probe.fail_first -= 1
            return JSONResponse({"error": "flaky"}, status_code=500)
        if body.get("raise"):
            raise RuntimeError("the handler failed after buffering writes")
        return JSONResponse(
            {"id": body["id"], "run": run},
            status_code=201,
            headers={"location": f"/items/{body['id']}", "x-per-request": str(run)},
        )

    async def rename(request: Request) -> Response:
        probe.ran("rename")
        body = await request.json()
        uow = current_uow()
        item = await uow.get_or_404({"pk": "items", "sk": request.path_params["id"]})
        uow.update({"pk": "items", "sk": item["sk"]}, set={"name": body["name"]})
        return JSONResponse({"id": item["sk"], "name": body["name"]})

    async def noop(request: Request) -> Response:
        return JSONResponse({"run": probe.ran("noop")})

    async def many(request: Request) -> Response:
        probe.ran("many")
        uow = current_uow()
        for i in range(100):
            uow.put({"pk": "many", "sk": f"{i:03}"})
        return JSONResponse({"ok": True}, status_code=201)

    async def stream(request: Request) -> Response:
        run = probe.ran("stream")
        current_uow().put({"pk": "stream", "sk": str(run)})

        async def chunks() -> AsyncIterator[bytes]:
            for i in range(5):
                yield f"chunk{i}|".encode()
            yield f"run{run}".encode()

        return StreamingResponse(chunks(), media_type="text/plain")

    async def big(request: Request) -> Response:
        probe.ran("big")
        current_uow().put({"pk": "big", "sk": "1"})
        return Response(b"x" * 300_000, media_type="application/octet-stream")

    async def show(request: Request) -> Response:
        item = await current_uow().get_or_404({"pk": "items", "sk": request.path_params["id"]})
        return JSONResponse(item)

    return [
        Route("/items", create, methods=["POST"]),
        Route("/items/{id}", rename, methods=["PATCH"]),
        Route("/items/{id}", show, methods=["GET"]),
        Route("/noop", noop, methods=["POST"]),
        Route("/many", many, methods=["POST"]),
        Route("/stream", stream, methods=["POST"]),
        Route("/big", big, methods=["POST"]),
    ]


def build(
    table: str,
    transport: DynamoTransport,
    probe: Probe,
    *,
    idempotency: Mapping[str, Any] | None = None,
    with_uow: bool = True,
    **uow_options: Any,
) -> ASGIApp:
    middleware = [
        Middleware(TenantMiddleware, resolvers=[HeaderResolver()]),
        Middleware(IdempotencyMiddleware, **(idempotency or {})),
    ]
    if with_uow:
        middleware.append(
            Middleware(
                UnitOfWorkMiddleware,
                table=table,
                transport=transport,
                **{"retry": FAST_RETRY, **uow_options},
            )
        )
    return Starlette(
        routes=routes(probe), middleware=middleware, exception_handlers=PROBLEM_HANDLERS
    )


def client_for(app: ASGIApp, *, raise_app_exceptions: bool = True) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=raise_app_exceptions)
    return httpx.AsyncClient(transport=transport, base_url="http://test")


@pytest.fixture
async def transport(dynamodb_endpoint: str) -> AsyncIterator[AiodynamoTransport]:
    transport = AiodynamoTransport.static(dynamodb_endpoint)
    yield transport
    await transport.close()


@pytest.fixture
async def raw(dynamodb_endpoint: str) -> AsyncIterator[AiodynamoTransport]:
    transport = AiodynamoTransport.static(dynamodb_endpoint)
    yield transport
    await transport.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def probe() -> Probe:
    return Probe()


@pytest.fixture
def make(
    dynamodb_table: TableSpec, transport: AiodynamoTransport, probe: Probe, clock: Clock
) -> Callable[..., ASGIApp]:
    def make_app(**idempotency: Any) -> ASGIApp:
        idempotency.setdefault("clock", clock)
        return build(dynamodb_table.name, transport, probe, idempotency=idempotency)

    return make_app


@pytest.fixture
async def http(make: Callable[..., ASGIApp]) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(make()) as client:
        yield client


async def scan(raw: DynamoTransport, table: str) -> dict[str, dict[str, Any]]:
    """Every stored item by physical ``pk/sk``."""
    items: dict[str, dict[str, Any]] = {}
    payload: dict[str, Any] = {"TableName": table, "ConsistentRead": True}
    while True:
        result = await raw.request("Scan", payload)
        for item in result.get("Items", ()):
            decoded = decode_item(item)
            items[f"{decoded['pk']}/{decoded['sk']}"] = decoded
        if "LastEvaluatedKey" not in result:
            return items
        payload["ExclusiveStartKey"] = result["LastEvaluatedKey"]


def data(items: Mapping[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The stored items that are not idempotency records."""
    return {key: item for key, item in items.items() if "#_idempotency#" not in key}


def live(items: Mapping[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The stored items but released claims (kept until they expire so a late copy of
    the released claim cannot take the key back; free to any other request)."""
    return {
        key: item
        for key, item in items.items()
        if not ("#_idempotency#" in key and item.get("state") == "released")
    }


def records(items: Mapping[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {key: item for key, item in items.items() if "#_idempotency#" in key}
