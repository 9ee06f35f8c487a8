"""README promises of the rate limiter that no other test pinned: the ``"method"`` key,
``trusted_proxies="*"``, and the refusal of a key the storage no longer remembers."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from lift_asgi.dynamo.tables import TableSpec
from lift_asgi.dynamo.transport import AiodynamoTransport
from lift_asgi.ratelimit import AsyncDynamoDBStorage, RateLimitMiddleware
from lift_asgi.testing.faults import FaultProxy

from .conftest import Clock, client_for, with_tenant


async def _ok(request: Any) -> JSONResponse:
    return JSONResponse({"ok": True})


def _starlette() -> Starlette:
    return Starlette(routes=[Route("/a", _ok, methods=["GET", "POST"])])


async def test_the_method_key_gives_each_method_its_own_counter(clock: Clock) -> None:
    app = RateLimitMiddleware(_starlette(), limit="1/minute", key="method", clock=clock)
    async with client_for(app) as http:
        assert (await http.get("/a")).status_code == 200
        assert (await http.get("/a")).status_code == 429
        assert (await http.post("/a")).status_code == 200  # its own budget
        assert (await http.post("/a")).status_code == 429


@pytest.mark.parametrize("trusted", ["*", ()])
async def test_trusted_proxies_star_believes_forwarded_for_from_any_peer(
    trusted: Any, clock: Clock
) -> None:
    app = RateLimitMiddleware(
        _starlette(), limit="1/minute", key="ip", trusted_proxies=trusted, clock=clock
    )

    async def get(forwarded: str) -> int:
        async with client_for(app, client=("10.9.9.9", 4321)) as http:
            return (await http.get("/a", headers={"x-forwarded-for": forwarded})).status_code

    assert await get("192.0.2.1") == 200
    second = await get("192.0.2.2")  # another client behind the same peer
    if trusted == "*":
        assert second == 200  # counted by the forwarded address
        assert await get("192.0.2.1") == 429
    else:
        assert second == 429  # untrusted: both are the peer 10.9.9.9


@pytest.mark.dynamodb
async def test_a_key_the_storage_forgot_is_refused_under_local_not_guessed(
    dynamodb_fault_proxy: FaultProxy, rate_limit_table: TableSpec, clock: Clock
) -> None:
    transport = AiodynamoTransport.static(dynamodb_fault_proxy.endpoint)
    storage = AsyncDynamoDBStorage(
        table=rate_limit_table.name, transport=transport, clock=clock, cache_size=1
    )
    app = with_tenant(
        RateLimitMiddleware(
            _starlette(), limit="10/minute", key="tenant", storage=storage, clock=clock
        )
    )
    try:
        async with client_for(app) as http:

            async def get(tenant: str) -> int:
                return (await http.get("/a", headers={"x-tenant": tenant})).status_code

            assert await get("forgotten") == 200
            assert await get("remembered") == 200  # its entry pushes the other one out
            dynamodb_fault_proxy.throttle(times=None, operation="UpdateItem")
            assert await get("remembered") == 200  # counted here, on what the table said
            assert await get("forgotten") == 503  # what it admitted is not known here
    finally:
        await transport.close()
