"""Fixtures for the rate-limit tests (the rate-limit table itself comes from the plugin:
``dynamodb_rate_limit_table``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.types import ASGIApp, Receive, Scope, Send

from lift_asgi.dynamo.tables import TableSpec
from lift_asgi.dynamo.transport import AiodynamoTransport
from lift_asgi.stages import TENANT, enter
from lift_asgi.testing.faults import FaultProxy

T0 = 1_800_000_000.0  # a whole hour: every window of a minute or an hour starts here


class Clock:
    """An epoch clock the test moves by hand (``clock.now = ...``, ``clock.advance(s)``)."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Tenant:
    """Duck-typed stand-in for lift_asgi.tenancy.Tenant (id, user, plan)."""

    def __init__(self, id: str, user: str | None = None, plan: str | None = None) -> None:
        self.id, self.user, self.plan = id, user, plan


def with_tenant(app: ASGIApp) -> ASGIApp:
    """Test-only tenant stage: the tenant from ``X-Tenant``/``X-User``/``X-Plan`` headers,
    in the stage contract as TenantMiddleware puts it."""

    async def wrapper(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "lifespan"):
            ctx = enter(scope, TENANT)
        if scope["type"] == "http":
            headers = dict(scope["headers"])
            tenant_id = headers.get(b"x-tenant")
            ctx.tenant = (
                Tenant(
                    tenant_id.decode(),
                    (headers.get(b"x-user") or b"").decode() or None,
                    (headers.get(b"x-plan") or b"").decode() or None,
                )
                if tenant_id
                else None
            )
        await app(scope, receive, send)

    return wrapper


def client_for(app: ASGIApp, client: tuple[str, int] = ("127.0.0.1", 50000)) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app, client=client), base_url="http://testserver"
    )


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def rate_limit_table(dynamodb_rate_limit_table: TableSpec) -> TableSpec:
    """The plugin's fresh rate-limit table, under the name these tests use."""
    return dynamodb_rate_limit_table


@pytest.fixture
async def transport(dynamodb_endpoint: str) -> AsyncIterator[AiodynamoTransport]:
    transport = AiodynamoTransport.static(dynamodb_endpoint)
    try:
        yield transport
    finally:
        await transport.close()


async def scan(transport: Any, table: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    start = None
    while True:
        payload: dict[str, Any] = {"TableName": table}
        if start:
            payload["ExclusiveStartKey"] = start
        page = await transport.request("Scan", payload)
        items.extend(page.get("Items", []))
        start = page.get("LastEvaluatedKey")
        if not start:
            return items


@pytest.fixture
async def proxy_transport(dynamodb_fault_proxy: FaultProxy) -> AsyncIterator[AiodynamoTransport]:
    """A transport through the plugin's fault proxy (closed after the test)."""
    transport = AiodynamoTransport.static(dynamodb_fault_proxy.endpoint)
    try:
        yield transport
    finally:
        await transport.close()
