"""What the DynamoDB storage remembers while calls overlap, and counters of other limits.

Against the local DynamoDB server, faults through the plugin's fault proxy. The order of
overlapping calls comes from :class:`HeldCalls`, which holds one real call in flight (before
the server sees it, or after the server applied it and before its answer comes back) until
the test releases it: an order, never a sleep.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from lift_asgi.dynamo.tables import TableSpec
from lift_asgi.dynamo.transport import AiodynamoTransport
from lift_asgi.errors import LiftError
from lift_asgi.ratelimit import AsyncDynamoDBStorage, RateLimitMiddleware, Window
from lift_asgi.testing.faults import FaultProxy

from .conftest import T0, Clock, client_for, scan

pytestmark = pytest.mark.dynamodb

HOUR = int(T0 // 3600)


async def _ok(request: Any) -> JSONResponse:
    return JSONResponse({"ok": True})


class HeldCalls:
    """The real transport, with the next call of one operation held in flight until the
    test releases it (``answered=True``: after the server applied it, before the answer
    reaches the storage)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self._hold: tuple[str, bool, asyncio.Event, asyncio.Event] | None = None

    @property
    def calls(self) -> int:
        calls: int = self.inner.calls
        return calls

    def hold(
        self, operation: str = "UpdateItem", *, answered: bool = False
    ) -> tuple[asyncio.Event, asyncio.Event]:
        reached, release = asyncio.Event(), asyncio.Event()
        self._hold = (operation, answered, reached, release)
        return reached, release

    async def request(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        hold = self._hold
        if hold is None or hold[0] != action:
            answer: dict[str, Any] = await self.inner.request(action, payload)
            return answer
        self._hold = None
        _, answered, reached, release = hold
        if answered:
            answer = await self.inner.request(action, payload)
        reached.set()
        await release.wait()
        if not answered:
            answer = await self.inner.request(action, payload)
        return answer

    async def close(self) -> None:
        await self.inner.close()


def _limiter(storage: Any, clock: Clock, limit: Any, **options: Any) -> RateLimitMiddleware:
    return RateLimitMiddleware(
        Starlette(routes=[Route("/a", _ok, methods=["GET", "POST"])]),
        limit=limit,
        key="global",
        storage=storage,
        clock=clock,
        timeout=30,  # held calls are released by the test, not timed out
        **options,
    )


async def _item(transport: Any, table: str) -> dict[str, Any]:
    (item,) = await scan(transport, table)
    return item


def _counters(item: dict[str, Any]) -> dict[str, int]:
    return {k: int(v["N"]) for k, v in item.items() if k[0].isdigit()}


# -------------------------------------------- units counted here while a write was in flight


async def test_units_counted_here_while_a_write_carried_the_debt_are_written_later(
    dynamodb_fault_proxy: FaultProxy,
    proxy_transport: AiodynamoTransport,
    rate_limit_table: TableSpec,
    clock: Clock,
) -> None:
    held = HeldCalls(proxy_transport)
    storage = AsyncDynamoDBStorage(table=rate_limit_table.name, transport=held, clock=clock)
    limiter = _limiter(storage, clock, "5/minute")
    async with client_for(limiter) as http:
        statuses = [(await http.get("/a")).status_code]  # the table: 1
        dynamodb_fault_proxy.fail(times=1, status=500)
        statuses.append((await http.get("/a")).status_code)  # counted here: owed 1
        reached, release = held.hold()
        carrying = asyncio.create_task(http.get("/a"))  # its update adds the 1 owed
        await reached.wait()
        dynamodb_fault_proxy.fail(times=1, status=500)
        statuses.append((await http.get("/a")).status_code)  # counted here meanwhile
        release.set()
        statuses.append((await carrying).status_code)
        statuses += [(await http.get("/a")).status_code for _ in range(4)]
    assert limiter.stats.degraded == 2
    # 5 in all: the unit counted while the update was in flight went with the next one
    assert statuses == [200] * 5 + [429] * 3
    assert list(_counters(await _item(proxy_transport, rate_limit_table.name)).values()) == [5]


async def test_a_write_in_flight_counts_when_the_process_decides_alone(
    dynamodb_fault_proxy: FaultProxy,
    proxy_transport: AiodynamoTransport,
    rate_limit_table: TableSpec,
    clock: Clock,
) -> None:
    held = HeldCalls(proxy_transport)
    storage = AsyncDynamoDBStorage(table=rate_limit_table.name, transport=held, clock=clock)
    limiter = _limiter(storage, clock, "3/minute")
    async with client_for(limiter) as http:
        statuses = [(await http.get("/a")).status_code]  # the table: 1
        dynamodb_fault_proxy.fail(times=1, status=500)
        statuses.append((await http.get("/a")).status_code)  # counted here: 2 admitted
        reached, release = held.hold()
        in_flight = asyncio.create_task(http.get("/a"))  # the third: the table will admit it
        await reached.wait()
        dynamodb_fault_proxy.fail(times=1, status=500)
        alone = await http.get("/a")  # 1 seen + 1 owed + 1 in flight: no room
        release.set()
        statuses += [(await in_flight).status_code, alone.status_code]
    assert statuses == [200, 200, 200, 429]
    assert list(_counters(await _item(proxy_transport, rate_limit_table.name)).values()) == [3]


async def test_a_lease_call_pays_only_the_debt_it_carried(
    dynamodb_fault_proxy: FaultProxy,
    proxy_transport: AiodynamoTransport,
    rate_limit_table: TableSpec,
    clock: Clock,
) -> None:
    held = HeldCalls(proxy_transport)
    storage = AsyncDynamoDBStorage(
        table=rate_limit_table.name, transport=held, clock=clock, lease_horizon=0.5
    )
    windows = (Window(5, 60),)
    assert (await storage.acquire("k", windows, 1, clock())).allowed  # the table: 1
    dynamodb_fault_proxy.fail(times=1, status=500)
    with pytest.raises(LiftError):
        await storage.acquire("k", windows, 1, clock())
    decisions = [storage.acquire_local("k", windows, 1, clock())]  # as on_failure="local"
    reached, release = held.hold()
    carrying = asyncio.create_task(storage.acquire("k", windows, 1, clock()))
    await reached.wait()
    decisions.append(storage.acquire_local("k", windows, 1, clock()))  # meanwhile
    release.set()
    decisions.append(await carrying)
    for _ in range(4):
        clock.advance(0.01)
        decisions.append(await storage.acquire("k", windows, 1, clock()))
    # 5 in all with the first: the unit counted while the lease call was in flight is
    # still owed (and written with the key's next update, when there is room for one)
    assert [bool(d and d.allowed) for d in decisions] == [True] * 4 + [False] * 3


# ------------------------------------------------------------ answers that arrive out of order


async def test_an_answer_that_arrives_last_does_not_lower_what_the_process_knows(
    dynamodb_fault_proxy: FaultProxy,
    proxy_transport: AiodynamoTransport,
    rate_limit_table: TableSpec,
    clock: Clock,
) -> None:
    held = HeldCalls(proxy_transport)
    storage = AsyncDynamoDBStorage(table=rate_limit_table.name, transport=held, clock=clock)
    limiter = _limiter(storage, clock, "10/minute")
    async with client_for(limiter) as http:
        reached, release = held.hold(answered=True)
        first = asyncio.create_task(http.get("/a"))  # applied first (1), answered last
        await reached.wait()
        later = [await http.get("/a") for _ in range(4)]  # 2, 3, 4, 5
        release.set()
        late = await first
        dynamodb_fault_proxy.fail(times=None, status=500)  # the table stops answering
        outage = [(await http.get("/a")).status_code for _ in range(8)]
    assert [r.headers["x-ratelimit-remaining"] for r in later] == ["8", "7", "6", "5"]
    assert late.status_code == 200
    assert late.headers["x-ratelimit-remaining"] == "5"  # what the process knows by then
    assert outage == [200] * 5 + [429] * 3  # 10 in all, counted on the 5 seen
    assert limiter.stats.admitted == 10


# ----------------------------------------------- one key, limits whose windows differ by request


def _by_method(scope: Any) -> str:
    return "3/hour" if scope["method"] == "POST" else "100/minute"


@pytest.mark.parametrize("store", ["memory", "dynamodb"])
async def test_a_limit_that_varies_by_request_keeps_the_other_limits_counters(
    store: str, transport: AiodynamoTransport, rate_limit_table: TableSpec, clock: Clock
) -> None:
    storage: Any = (
        "memory://"
        if store == "memory"
        else AsyncDynamoDBStorage(table=rate_limit_table.name, transport=transport, clock=clock)
    )
    limiter = _limiter(storage, clock, _by_method)
    posts, gets = [], []
    async with client_for(limiter) as http:
        for _ in range(3):  # three minutes of one hour
            posts += [(await http.post("/a")).status_code for _ in range(2)]
            gets += [(await http.get("/a")).status_code for _ in range(2)]
            clock.advance(61)
        if store == "dynamodb":
            item = await _item(transport, rate_limit_table.name)
            assert _counters(item)[f"3600s{HOUR}"] == 3
            assert int(item["ttl"]["N"]) == T0 + 7200  # the hour's, not lowered by the minutes
        clock.now = T0 + 7200  # two hours on: the first hour's counter is read by no one
        assert (await http.post("/a")).status_code == 200
        assert (await http.get("/a")).status_code == 200
    assert posts == [200, 200, 200, 429, 429, 429]
    assert gets == [200] * 6
    if store == "dynamodb":
        assert sorted(_counters(await _item(transport, rate_limit_table.name))) == [
            f"3600s{HOUR + 2}",
            f"60s{int((T0 + 7200) // 60)}",
        ]


async def test_a_process_on_another_limit_string_neither_removes_nor_shortens_live_counters(
    transport: AiodynamoTransport, rate_limit_table: TableSpec, clock: Clock
) -> None:
    # A rolling deploy that changed the limit: old and new workers share the key.
    def worker(limit: str) -> RateLimitMiddleware:
        storage = AsyncDynamoDBStorage(
            table=rate_limit_table.name, transport=transport, clock=clock
        )
        return _limiter(storage, clock, limit)

    async with client_for(worker("3/hour")) as http:
        assert [(await http.post("/a")).status_code for _ in range(3)] == [200] * 3
    clock.advance(30)
    async with client_for(worker("100/minute")) as http:  # never saw the item
        assert [(await http.get("/a")).status_code for _ in range(2)] == [200, 200]
    item = await _item(transport, rate_limit_table.name)
    assert _counters(item)[f"3600s{HOUR}"] == 3
    assert int(item["ttl"]["N"]) == T0 + 7200
    async with client_for(worker("3/hour")) as http:  # another old worker, nothing cached
        assert (await http.post("/a")).status_code == 429
