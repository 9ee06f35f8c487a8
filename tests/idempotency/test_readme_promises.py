"""README promises of the idempotency stage that no other test pinned: the record's TTL
attribute follows the table's ``TableSpec.ttl_attribute``, and a keyed
``http.response.pathsend`` (which no record can replay) is a 500 whose writes are
discarded and whose claim is released."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from lift_asgi.dynamo import UnitOfWorkMiddleware, current_uow
from lift_asgi.dynamo.tables import TableSpec, create_table
from lift_asgi.dynamo.transport import AiodynamoTransport
from lift_asgi.exception_handlers import PROBLEM_HANDLERS
from lift_asgi.idempotency import IdempotencyMiddleware
from lift_asgi.tenancy import HeaderResolver, TenantMiddleware
from tests.dynamo.conftest import FAST_RETRY

from .conftest import ACME, client_for, data, live, records, scan

pytestmark = pytest.mark.dynamodb


async def _create(request: Request) -> Response:
    current_uow().put({"pk": "items", "sk": (await request.json())["id"]})
    return JSONResponse({"ok": True}, status_code=201)


class _PathSend:
    """A raw ASGI endpoint answering with ``http.response.pathsend`` (as FileResponse
    does on a server offering that extension)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        current_uow().put({"pk": "files", "sk": "f1"})
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.pathsend", "path": "/etc/hostname"})


def _app(table: TableSpec, transport: AiodynamoTransport) -> Starlette:
    return Starlette(
        routes=[
            Route("/items", _create, methods=["POST"]),
            Route("/file", _PathSend(), methods=["POST"]),
        ],
        middleware=[
            Middleware(TenantMiddleware, resolvers=[HeaderResolver()]),
            Middleware(IdempotencyMiddleware),
            Middleware(UnitOfWorkMiddleware, table=table, transport=transport, retry=FAST_RETRY),
        ],
        exception_handlers=PROBLEM_HANDLERS,
    )


@pytest.fixture
async def transport(dynamodb_endpoint: str) -> AsyncIterator[AiodynamoTransport]:
    transport = AiodynamoTransport.static(dynamodb_endpoint)
    yield transport
    await transport.close()


async def test_the_record_expires_through_the_tables_own_ttl_attribute(
    transport: AiodynamoTransport,
) -> None:
    table = TableSpec(name=f"idem-ttl-{uuid.uuid4().hex[:8]}", ttl_attribute="expires_at")
    await create_table(transport, table)
    async with client_for(_app(table, transport)) as http:
        answer = await http.post(
            "/items", json={"id": "a"}, headers={**ACME, "idempotency-key": "k"}
        )
    assert answer.status_code == 201, answer.text
    (record,) = records(await scan(transport, table.name)).values()
    assert isinstance(record.get("expires_at"), int | float)
    assert "ttl" not in record


async def test_a_keyed_pathsend_is_a_500_its_writes_discarded_and_its_claim_released(
    transport: AiodynamoTransport, dynamodb_table: TableSpec
) -> None:
    app = _app(dynamodb_table, transport)
    keyed = {**ACME, "idempotency-key": "file-1"}
    async with client_for(app, raise_app_exceptions=False) as http:
        first = await http.post("/file", headers=keyed)
        assert first.status_code == 500
        assert first.headers["content-type"] == "application/problem+json"
        stored = await scan(transport, dynamodb_table.name)
        assert data(stored) == {} and records(live(stored)) == {}  # nothing written, no claim
        again = await http.post("/file", headers=keyed)
        assert again.status_code == 500  # executed again, not "in progress"
