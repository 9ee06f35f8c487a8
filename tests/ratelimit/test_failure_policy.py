"""The failure policy (``on_failure``): whatever DynamoDB does, no window admits more than
its limit in a process unless ``"open"`` is asked for by name.

A free tenant (10/minute) sends 14 requests; after the first 3 the rate-limit table stops
answering in one of seven ways (slow past the timeout, throttled, 5xx, connection cut,
its answers lost though it applies the updates, access denied (a 4xx no retry fixes),
unreachable), through the plugin's fault proxy.
"""

from __future__ import annotations

import logging
import socket
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from lift_asgi.dynamo.tables import TableSpec
from lift_asgi.dynamo.transport import AiodynamoTransport
from lift_asgi.errors import ConfigurationError
from lift_asgi.ratelimit import AsyncDynamoDBStorage, RateLimitMiddleware, Rule
from lift_asgi.testing.faults import FaultProxy

from .conftest import Clock, client_for, scan, with_tenant

pytestmark = pytest.mark.dynamodb

FAULTS = ["slow", "throttle", "5xx", "cut", "lost", "denied", "unreachable"]
POLICIES = ["local", "refuse", "open"]
HEALTHY = 3  # requests answered by the table before it fails
SENT = 14


async def _ok(request: Any) -> JSONResponse:
    return JSONResponse({"ok": True})


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def _break(proxy: FaultProxy, fault: str) -> None:
    if fault == "slow":
        proxy.delay(1.0, times=None, operation="UpdateItem")
    elif fault == "throttle":
        proxy.throttle(times=None, operation="UpdateItem")
    elif fault == "5xx":
        proxy.fail(times=None, status=500)
    elif fault == "cut":
        proxy.drop(times=None)
    elif fault == "lost":  # applied, unheard: the table counts what the process cannot see
        proxy.lose_answer(times=None, operation="UpdateItem")
    elif fault == "denied":  # a policy changed under a running service
        proxy.error("AccessDeniedException", times=None, operation="UpdateItem")


def _app(storage: Any, clock: Clock, **options: Any) -> tuple[Any, RateLimitMiddleware]:
    limiter = RateLimitMiddleware(
        Starlette(routes=[Route("/a", _ok)]),
        limit="10/minute",
        key="tenant",
        storage=storage,
        clock=clock,
        # a slow table is one answering later than this; a healthy one answers well
        # within it even on a loaded machine (at 0.1 s a loaded machine degraded one)
        timeout=0.3,
        unavailable_retry_after=7,
        **options,
    )
    return with_tenant(limiter), limiter


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("fault", FAULTS)
async def test_a_failing_table_never_admits_past_the_limit_unless_open_is_named(
    fault: str,
    policy: str,
    dynamodb_fault_proxy: FaultProxy,
    proxy_transport: AiodynamoTransport,
    rate_limit_table: TableSpec,
    clock: Clock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    unreachable = fault == "unreachable"
    transport = (
        AiodynamoTransport.static(f"http://127.0.0.1:{_closed_port()}")
        if unreachable
        else proxy_transport
    )
    storage = AsyncDynamoDBStorage(table=rate_limit_table.name, transport=transport, clock=clock)
    app, limiter = _app(storage, clock, on_failure=policy)
    healthy = 0 if unreachable else HEALTHY
    caplog.set_level(logging.WARNING, logger="lift_asgi.ratelimit")
    try:
        async with client_for(app) as http:
            answers = []
            for n in range(SENT):
                if n == healthy and not unreachable:
                    _break(dynamodb_fault_proxy, fault)
                answers.append(await http.get("/a", headers={"x-tenant": "free-co"}))
    finally:
        if unreachable:
            await transport.close()
    statuses = [a.status_code for a in answers]
    admitted = [a for a in answers if a.status_code == 200]
    failing = answers[healthy:]
    if policy == "open":
        assert len(admitted) == SENT  # asked for by name: admitted, uncounted
        assert all("x-ratelimit-limit" not in a.headers for a in failing)
        assert limiter.stats.uncounted == SENT - healthy
    elif policy == "local":
        assert statuses == [200] * 10 + [429] * (SENT - 10)
        remaining = [int(a.headers["x-ratelimit-remaining"]) for a in admitted]
        assert remaining == list(range(9, -1, -1))  # every admitted one has its headers
        assert all(a.headers["x-ratelimit-limit"] == "10" for a in admitted)
        assert all(int(a.headers["retry-after"]) >= 1 for a in answers[10:])
        assert limiter.stats.degraded == 10 - healthy  # then blocked, no store call
    else:
        assert statuses == [200] * healthy + [503] * (SENT - healthy)
        for refused in failing:
            assert refused.headers["content-type"] == "application/problem+json"
            assert refused.headers["retry-after"] == "7"
            assert refused.json()["status"] == 503
            # its rate-limit headers say what a refusal says: nothing now, ask at reset
            assert refused.headers["x-ratelimit-limit"] == "10"
            assert refused.headers["x-ratelimit-remaining"] == "0"
            assert int(refused.headers["x-ratelimit-reset"]) >= int(clock()) + 7
        assert limiter.stats.unavailable == SENT - healthy
    warnings = [r for r in caplog.records if r.name == "lift_asgi.ratelimit"]
    assert len(warnings) == 1  # rate-limited: one per warn_interval
    assert policy in warnings[0].getMessage()


async def test_units_counted_locally_are_written_when_the_table_answers_again(
    dynamodb_fault_proxy: FaultProxy,
    proxy_transport: AiodynamoTransport,
    rate_limit_table: TableSpec,
    clock: Clock,
) -> None:
    storage = AsyncDynamoDBStorage(
        table=rate_limit_table.name, transport=proxy_transport, clock=clock
    )
    app, limiter = _app(storage, clock)  # on_failure="local" is the default
    async with client_for(app) as http:

        async def get() -> int:
            return (await http.get("/a", headers={"x-tenant": "acme"})).status_code

        assert [await get() for _ in range(3)] == [200] * 3
        dynamodb_fault_proxy.throttle(times=None, operation="UpdateItem")
        assert [await get() for _ in range(5)] == [200] * 5  # counted here: 8 of 10
        dynamodb_fault_proxy.reset()
        assert [await get() for _ in range(3)] == [200, 200, 429]
    assert limiter.stats.degraded == 5
    (item,) = await scan(proxy_transport, rate_limit_table.name)
    counters = {k: v["N"] for k, v in item.items() if k[0].isdigit()}
    assert list(counters.values()) == ["10"]  # 3 + the 5 counted here + 2


async def test_a_multi_window_rule_counts_every_window_locally(
    dynamodb_fault_proxy: FaultProxy,
    proxy_transport: AiodynamoTransport,
    rate_limit_table: TableSpec,
    clock: Clock,
) -> None:
    storage = AsyncDynamoDBStorage(
        table=rate_limit_table.name, transport=proxy_transport, clock=clock
    )
    limiter = RateLimitMiddleware(
        Starlette(routes=[Route("/a", _ok)]),
        limit="3/second;5/minute",
        strategy="sliding-window-counter",
        storage=storage,
        clock=clock,
        timeout=5,
    )
    async with client_for(limiter) as http:
        assert (await http.get("/a")).status_code == 200
        dynamodb_fault_proxy.fail(times=None, status=503)
        statuses = [(await http.get("/a")).status_code for _ in range(4)]
        assert statuses == [200, 200, 429, 429]  # 3 in this second
        clock.advance(1)
        statuses = [(await http.get("/a")).status_code for _ in range(4)]
        # 5 a minute: 2 more. (In the sliding second, 3 * f of the last second still counts.)
        assert statuses.count(200) <= 2
        clock.advance(1)
        statuses += [(await http.get("/a")).status_code for _ in range(4)]
        assert statuses.count(200) == 2
    assert limiter.stats.admitted == 5


@pytest.mark.parametrize("where", ["middleware", "rule"])
def test_fail_open_is_a_configuration_error_naming_on_failure(where: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        if where == "middleware":
            RateLimitMiddleware(Starlette(), limit="1/minute", fail_open=True)
        else:
            RateLimitMiddleware(Starlette(), rules=[Rule("1/minute", fail_open=False)])
    assert info.value.option == "fail_open"
    assert "on_failure" in str(info.value)


@pytest.mark.parametrize("where", ["middleware", "rule"])
def test_an_unknown_failure_policy_is_refused(where: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        if where == "middleware":
            RateLimitMiddleware(Starlette(), limit="1/minute", on_failure="closed")
        else:
            RateLimitMiddleware(Starlette(), rules=[Rule("1/minute", on_failure="unlimited")])
    assert info.value.option == "on_failure"


async def test_two_processes_one_losing_its_answers_stay_within_the_stated_bound(
    dynamodb_fault_proxy: FaultProxy,
    proxy_transport: AiodynamoTransport,
    transport: AiodynamoTransport,
    rate_limit_table: TableSpec,
    clock: Clock,
) -> None:
    """The README's fleet bound, with the table up: process A only loses its answers (a
    refusal included), so it counts from what it last heard while B fills the window.
    Each process stays within the limit; the two together within twice it."""
    lossy, _ = _app(
        AsyncDynamoDBStorage(table=rate_limit_table.name, transport=proxy_transport, clock=clock),
        clock,
        on_failure="local",
    )
    healthy, _ = _app(
        AsyncDynamoDBStorage(table=rate_limit_table.name, transport=transport, clock=clock),
        clock,
        on_failure="local",
    )
    tenant = {"x-tenant": "free-co"}
    async with client_for(lossy) as a, client_for(healthy) as b:
        first = [(await a.get("/a", headers=tenant)).status_code for _ in range(2)]
        dynamodb_fault_proxy.lose_answer(times=None, operation="UpdateItem")
        from_b = [(await b.get("/a", headers=tenant)).status_code for _ in range(12)]
        from_a = [(await a.get("/a", headers=tenant)).status_code for _ in range(12)]
    admitted_a = (first + from_a).count(200)
    admitted_b = from_b.count(200)
    assert from_b == [200] * 8 + [429] * 4  # B heard the table: A's first 2 counted
    assert admitted_a == 10  # A never passes the limit on its own
    assert admitted_a + admitted_b <= 2 * 10  # the fleet's bound, the table up
