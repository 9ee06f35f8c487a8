"""Fixtures for the unit-of-work tests: both transports, tables, apps, raw reads.

Everything talks HTTP to the local DynamoDB server started by lift-asgi's own pytest
plugin (``dynamodb_endpoint``, ``dynamodb_table``, ``dynamodb_fault_proxy``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aioboto3
import httpx
import pytest
from botocore.config import Config
from starlette.types import ASGIApp, Receive, Scope, Send

from lift_asgi.dynamo import DynamoTable, RetryPolicy, UnitOfWork
from lift_asgi.dynamo.codec import decode_item
from lift_asgi.dynamo.tables import TableSpec
from lift_asgi.dynamo.transport import Aioboto3Transport, AiodynamoTransport, DynamoTransport
from lift_asgi.stages import TENANT, enter

SECRET = "test-cursor-secret-0123456789abcdef"
FAST_RETRY = RetryPolicy(attempts=4, base_delay=0.01, max_delay=0.05, deadline=5.0)


@pytest.fixture(scope="session")
async def aioboto3_client(dynamodb_endpoint: str) -> AsyncIterator[Any]:
    session = aioboto3.Session()
    async with session.client(
        "dynamodb",
        endpoint_url=dynamodb_endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"mode": "standard", "total_max_attempts": 1}),
    ) as client:
        yield client


@pytest.fixture(params=["aiodynamo", "aioboto3"])
async def transport(
    request: pytest.FixtureRequest, dynamodb_endpoint: str, aioboto3_client: Any
) -> AsyncIterator[DynamoTransport]:
    """The conformance fixture: every test using it runs on both transports."""
    if request.param == "aioboto3":
        yield Aioboto3Transport(aioboto3_client)
        return
    aiodynamo = AiodynamoTransport.static(dynamodb_endpoint)
    yield aiodynamo
    await aiodynamo.close()


@pytest.fixture
async def aiodynamo_transport(dynamodb_endpoint: str) -> AsyncIterator[AiodynamoTransport]:
    transport = AiodynamoTransport.static(dynamodb_endpoint)
    yield transport
    await transport.close()


@pytest.fixture(scope="session")
async def raw(dynamodb_endpoint: str) -> AsyncIterator[AiodynamoTransport]:
    """A transport for the tests' own look at the table (not counted anywhere else)."""
    transport = AiodynamoTransport.static(dynamodb_endpoint)
    yield transport
    await transport.close()


@pytest.fixture
def table(dynamodb_table: TableSpec, transport: DynamoTransport) -> DynamoTable:
    return DynamoTable(
        dynamodb_table.name, transport=transport, cursor_secret=SECRET, retry=FAST_RETRY
    )


@pytest.fixture
def uow(table: DynamoTable) -> UnitOfWork:
    return table.unit_of_work("acme")


async def scan(raw: DynamoTransport, table: str) -> list[dict[str, Any]]:
    """Every stored item, physical keys and tenant attribute included."""
    items: list[dict[str, Any]] = []
    payload: dict[str, Any] = {"TableName": table, "ConsistentRead": True}
    while True:
        result = await raw.request("Scan", payload)
        items.extend(decode_item(item) for item in result.get("Items", ()))
        if "LastEvaluatedKey" not in result:
            return items
        payload["ExclusiveStartKey"] = result["LastEvaluatedKey"]


class TenantFromHeader:
    """Test-only stand-in for TenantMiddleware: ``x-tenant`` → ``context(scope).tenant``
    (the tenant stage of :mod:`lift_asgi.stages`)."""

    class Tenant:
        def __init__(self, tenant_id: str) -> None:
            self.id = tenant_id

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "lifespan"):
            ctx = enter(scope, TENANT)
            for name, value in scope.get("headers", ()):
                if name == b"x-tenant":
                    ctx.tenant = self.Tenant(value.decode())  # type: ignore[assignment]
        await self.app(scope, receive, send)


def client_for(app: ASGIApp) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


Handler = Callable[..., Awaitable[Any]]
