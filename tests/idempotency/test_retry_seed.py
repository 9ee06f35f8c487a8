"""``retry_seed``: the same bytes on every retry of one request, others for any other."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from lift_asgi.dynamo import UnitOfWorkMiddleware
from lift_asgi.dynamo.tables import TableSpec
from lift_asgi.dynamo.transport import AiodynamoTransport
from lift_asgi.exception_handlers import PROBLEM_HANDLERS
from lift_asgi.idempotency import IdempotencyMiddleware, retry_seed
from lift_asgi.tenancy import HeaderResolver, TenantMiddleware
from tests.dynamo.conftest import FAST_RETRY

from .conftest import ACME, GLOBEX, client_for


async def seed(request: Request) -> Response:
    value = retry_seed(request)
    # a 503 is not remembered: every retry runs the handler again
    return JSONResponse({"seed": value.hex() if value else None}, status_code=503)


@pytest.fixture
async def http(
    dynamodb_table: TableSpec, transport: AiodynamoTransport
) -> AsyncIterator[httpx.AsyncClient]:
    app = Starlette(
        routes=[Route("/seed", seed, methods=["POST", "PUT"])],
        middleware=[
            Middleware(TenantMiddleware, resolvers=[HeaderResolver()]),
            Middleware(IdempotencyMiddleware),
            Middleware(
                UnitOfWorkMiddleware,
                table=dynamodb_table.name,
                transport=transport,
                retry=FAST_RETRY,
            ),
        ],
        exception_handlers=PROBLEM_HANDLERS,
    )
    async with client_for(app) as client:
        yield client


async def seed_of(
    http: httpx.AsyncClient,
    headers: dict[str, str],
    *,
    key: str | None = "k1",
    body: bytes = b"{}",
    method: str = "POST",
    query: str = "",
) -> str | None:
    sent = {**headers, **({"idempotency-key": key} if key else {})}
    answer = await http.request(method, "/seed" + query, content=body, headers=sent)
    assert answer.status_code == 503, answer.text
    value: str | None = answer.json()["seed"]
    return value


async def test_a_retry_gets_the_same_seed(http: httpx.AsyncClient) -> None:
    first = await seed_of(http, ACME)
    assert first is not None and len(bytes.fromhex(first)) == 32
    assert await seed_of(http, ACME) == first


async def test_any_other_request_gets_another_seed(http: httpx.AsyncClient) -> None:
    first = await seed_of(http, ACME)
    others = {
        await seed_of(http, GLOBEX),
        await seed_of(http, ACME, key="k2"),
        await seed_of(http, ACME, body=b'{"a": 1}'),
        await seed_of(http, ACME, query="?x=1"),
    }
    assert first not in others and len(others) == 4


async def test_a_request_that_is_not_deduplicated_has_no_seed(http: httpx.AsyncClient) -> None:
    assert await seed_of(http, ACME, key=None) is None
    assert await seed_of(http, ACME, method="PUT") is None  # a method the stage ignores
