"""Leased budgets (``lease_horizon`` > 0): several units per conditional write, spent
locally, never more than the limit, across OS processes sharing one table."""

from __future__ import annotations

import asyncio
import copy
import math
import multiprocessing
import time
import uuid
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from lift_asgi.dynamo.tables import TableSpec
from lift_asgi.dynamo.transport import AiodynamoTransport
from lift_asgi.errors import ConfigurationError
from lift_asgi.ratelimit import AsyncDynamoDBStorage, RateLimitMiddleware, Window
from lift_asgi.ratelimit.leases import LeaseBook
from lift_asgi.testing.faults import FaultProxy

from . import lease_worker
from .conftest import T0, Clock, client_for, scan

pytestmark = pytest.mark.dynamodb

HOUR = (Window(400, 3600),)


def _storage(table: TableSpec, transport: Any, clock: Clock, **options: Any) -> Any:
    options.setdefault("lease_horizon", 0.5)
    return AsyncDynamoDBStorage(table=table.name, transport=transport, clock=clock, **options)


async def _counters(transport: Any, table: str) -> dict[str, int]:
    found: dict[str, int] = {}
    for item in await scan(transport, table):
        for name, value in item.items():
            if name[0].isdigit():
                found[item["pk"]["S"] + "/" + name] = int(value["N"])
    return found


def _processes(target: Any, *args: Any, count: int = 4) -> list[Any]:
    """Run ``target(*args, results=queue)`` in ``count`` spawned processes; their outcomes
    (each ``(admitted, calls, held)``; a worker that raised puts ``admitted`` -1)."""
    spawn = multiprocessing.get_context("spawn")
    results = spawn.Queue()
    workers = [
        spawn.Process(target=target, args=args, kwargs={"results": results}) for _ in range(count)
    ]
    for worker in workers:
        worker.start()
    outcomes = [results.get(timeout=120) for _ in workers]
    for worker in workers:
        worker.join(timeout=30)
    assert all(outcome[0] >= 0 for outcome in outcomes), outcomes
    return outcomes


@pytest.mark.parametrize("run", range(3))  # repeated, on fresh keys, to catch races
def test_four_processes_never_admit_more_than_the_limit(
    run: int, dynamodb_endpoint: str, rate_limit_table: TableSpec
) -> None:
    key = f"hot-{uuid.uuid4().hex[:8]}"
    outcomes = _processes(
        lease_worker.work, dynamodb_endpoint, rate_limit_table.name, key, HOUR, 0.5, 16, time.time()
    )
    admitted = sum(outcome[0] for outcome in outcomes)
    calls = sum(outcome[1] for outcome in outcomes)
    assert admitted <= 400  # over-admission: zero
    assert admitted >= 380  # a hot key: at least 95% of the limit usable
    assert all(outcome[2] == 0 for outcome in outcomes)  # each spent what it held
    assert calls < admitted / 2  # leases, not one write per request


@pytest.mark.parametrize("run", range(2))
def test_four_paced_processes_spend_the_limit_and_never_more(
    run: int, dynamodb_endpoint: str, rate_limit_table: TableSpec
) -> None:
    # 4 processes x 50 requests/s for 2 s on a limit of half of what they send: leases
    # of up to 40 units each, the budget gone after about 1 s, refusals after that
    key = f"paced-{uuid.uuid4().hex[:8]}"
    windows = (Window(200, 3600),)
    base = time.time() + 2.0  # every process starts its schedule together
    outcomes = _processes(
        lease_worker.paced,
        dynamodb_endpoint,
        rate_limit_table.name,
        key,
        windows,
        0.5,
        50,
        100,
        base,
    )
    admitted = sum(outcome[0] for outcome in outcomes)
    calls = sum(outcome[1] for outcome in outcomes)
    assert admitted <= 200  # over-admission: zero
    assert admitted >= 190, outcomes  # demand went on: what was leased was spent
    assert calls <= admitted / 4, outcomes  # leases, and refusals that cost no call


async def test_a_cold_key_leases_one_unit_per_request_exactly_as_without_leases(
    rate_limit_table: TableSpec, transport: AiodynamoTransport, clock: Clock
) -> None:
    storage = _storage(rate_limit_table, transport, clock)
    windows = (Window(5, 60),)
    decisions = []
    for _ in range(6):  # one request every 9 s: a few a minute
        before = transport.calls
        decisions.append(await storage.acquire("cold", windows, 1, clock()))
        assert transport.calls - before == (1 if len(decisions) <= 5 else 0)
        clock.advance(9)
    assert [d.allowed for d in decisions] == [True] * 5 + [False]
    assert [d.remaining for d in decisions[:5]] == [4, 3, 2, 1, 0]
    assert list((await _counters(transport, rate_limit_table.name)).values()) == [5]
    assert storage.leases.held("cold") == 0


async def test_a_hot_key_in_one_process_uses_its_whole_limit_in_few_calls(
    rate_limit_table: TableSpec, transport: AiodynamoTransport, clock: Clock
) -> None:
    storage = _storage(rate_limit_table, transport, clock, lease_max=100)
    windows = (Window(1000, 60),)
    allowed = 0
    remaining = []
    for _ in range(1100):  # 1,000 requests a second
        decision = await storage.acquire("hot", windows, 1, clock())
        allowed += decision.allowed
        if decision.allowed:
            remaining.append(decision.remaining)
        clock.advance(0.001)
    assert allowed == 1000  # exactly the limit: nothing stranded, nothing over
    assert transport.calls <= 50  # <= 0.05 calls per admitted request
    assert remaining == sorted(remaining, reverse=True) and remaining[-1] == 0
    assert list((await _counters(transport, rate_limit_table.name)).values()) == [1000]


async def test_remaining_never_promises_more_than_exists(
    rate_limit_table: TableSpec, transport: AiodynamoTransport, clock: Clock
) -> None:
    first = _storage(rate_limit_table, transport, clock)
    second = _storage(rate_limit_table, transport, clock)
    windows = (Window(100, 60),)
    admitted = 0
    for n in range(300):
        alone = n < 150  # the first half: one process; then two share the key
        storage = first if alone or n % 2 else second
        decision = await storage.acquire("shared", windows, 1, clock())
        if decision.allowed:
            admitted += 1
            if alone:  # one process: exactly what is left, leased units included
                assert decision.remaining == 100 - admitted
            (counted,) = (await _counters(transport, rate_limit_table.name)).values()
            # never above the limit minus what the table counted at this process's
            # last call, plus what it holds (documented in ratelimit/leases.py)
            assert decision.remaining <= 100 - min(counted, admitted) + storage.leases.held(
                "shared"
            )
        clock.advance(0.002)
    assert admitted == 100


async def test_requests_waiting_on_a_lease_that_took_the_last_units_spend_them(
    rate_limit_table: TableSpec, transport: AiodynamoTransport, clock: Clock
) -> None:
    # Under load a process's requests pile up behind its one lease call. When that call
    # takes the window's last units (another process took the rest meanwhile), the
    # counts it returns say "full" while this process holds units: the waiters must
    # spend them, not be refused on those counts (seen with 4 loaded processes).
    mine = _storage(rate_limit_table, transport, clock)
    other = _storage(rate_limit_table, transport, clock, lease_horizon=0)  # a unit a call
    windows = (Window(100, 3600),)
    spent = 0
    while spent < 12 or mine.leases.held("k"):  # a sustained rate, its lease spent
        assert (await mine.acquire("k", windows, 1, clock())).allowed
        spent += 1
        clock.advance(0.01)
    for _ in range(100 - 3 - spent):  # the other process takes all but 3 units
        assert (await other.acquire("k", windows, 1, clock())).allowed
    assert list((await _counters(transport, rate_limit_table.name)).values()) == [97]
    # ten requests pile up behind mine's one lease call: it asks for many (its last call
    # saw plenty left) and gets the 3 that are left
    decisions = await asyncio.gather(*(mine.acquire("k", windows, 1, clock()) for _ in range(10)))
    assert sum(d.allowed for d in decisions) == 3
    assert mine.leases.held("k") == 0  # nothing stranded
    assert list((await _counters(transport, rate_limit_table.name)).values()) == [100]


async def test_units_leased_before_a_window_ends_are_the_only_ones_lost(
    rate_limit_table: TableSpec, transport: AiodynamoTransport, clock: Clock
) -> None:
    storage = _storage(rate_limit_table, transport, clock)
    windows = (Window(200, 60),)
    clock.now = T0 + 50
    for _ in range(40):
        assert (await storage.acquire("roll", windows, 1, clock())).allowed
        clock.advance(0.01)
    held = storage.leases.held("roll")
    assert held > 0
    clock.now = T0 + 60  # the next window: held units are not carried over
    decision = await storage.acquire("roll", windows, 1, clock())
    assert decision.allowed and decision.remaining == 199
    assert storage.leases.stranded == held
    counters = await _counters(transport, rate_limit_table.name)
    # the new window counts what this call leased; the old one's counter is removed
    assert list(counters.values()) == [1 + storage.leases.held("roll")]


@pytest.mark.parametrize("strategy", ["sliding-window-counter", "fixed-window"])
async def test_multi_window_and_sliding_rules_under_leases_keep_every_window(
    strategy: str, rate_limit_table: TableSpec, transport: AiodynamoTransport, clock: Clock
) -> None:
    sliding = strategy == "sliding-window-counter"
    windows = (Window(30, 1, sliding), Window(100, 60, sliding))
    workers = [_storage(rate_limit_table, transport, clock) for _ in range(2)]
    per_second: dict[int, int] = {}
    allowed = 0
    for n in range(3000):  # 500 requests a second for 6 s, alternating two workers
        decision = await workers[n % 2].acquire("multi", windows, 1, clock())
        if decision.allowed:
            allowed += 1
            second = int(clock() - T0)
            per_second[second] = per_second.get(second, 0) + 1
        clock.advance(0.002)
    assert allowed <= 100
    assert max(per_second.values()) <= 30
    if sliding:  # the weighted previous second counts too
        for second, count in per_second.items():
            assert count + per_second.get(second - 1, 0) <= 60
    counts = await _counters(transport, rate_limit_table.name)
    minute = [v for k, v in counts.items() if "/60s" in k]
    assert minute and max(minute) <= 100
    assert all(v <= 30 for k, v in counts.items() if "/1s" in k)


async def test_leased_units_are_spent_while_the_table_fails_then_the_policy(
    dynamodb_fault_proxy: FaultProxy, rate_limit_table: TableSpec, clock: Clock
) -> None:
    transport = AiodynamoTransport.static(dynamodb_fault_proxy.endpoint)
    storage = _storage(rate_limit_table, transport, clock)
    limiter = RateLimitMiddleware(
        Starlette(routes=[Route("/a", lambda r: JSONResponse({}))]),
        limit="500/minute",
        storage=storage,
        clock=clock,
        on_failure="refuse",
        timeout=5,
    )
    try:
        async with client_for(limiter) as http:
            for _ in range(30):  # hot: the process comes to hold a lease
                assert (await http.get("/a")).status_code == 200
                clock.advance(0.005)
            held = storage.leases.held("default#127.0.0.1")
            assert held >= 2
            dynamodb_fault_proxy.throttle(times=None, operation="UpdateItem")
            statuses = []
            for _ in range(held + 3):
                answer = await http.get("/a")
                statuses.append(answer.status_code)
                if answer.status_code == 200:
                    assert "x-ratelimit-remaining" in answer.headers
                clock.advance(0.005)
            assert statuses == [200] * held + [503] * 3
            # a throttled key backs off: one lease call, then none until the backoff ends
            assert len(dynamodb_fault_proxy.calls_of("UpdateItem")) <= 30
            throttled = [c for c in dynamodb_fault_proxy.calls if c.fault == "throttle"]
            assert len(throttled) == 1
    finally:
        await transport.close()


async def test_a_lease_call_cut_mid_window_counts_locally_under_the_default_policy(
    dynamodb_fault_proxy: FaultProxy, rate_limit_table: TableSpec, clock: Clock
) -> None:
    transport = AiodynamoTransport.static(dynamodb_fault_proxy.endpoint)
    storage = _storage(rate_limit_table, transport, clock)
    windows = (Window(50, 60),)
    try:
        allowed = 0
        for n in range(80):
            if n == 20:
                dynamodb_fault_proxy.drop(times=None, operation="UpdateItem")
            try:
                decision = await storage.acquire("cut", windows, 1, clock())
            except Exception:
                decision = storage.acquire_local("cut", windows, 1, clock())
            allowed += bool(decision and decision.allowed)
            clock.advance(0.005)
        assert allowed == 50  # leased, then counted here on what the table last said
    finally:
        await transport.close()


def test_lease_options_are_checked() -> None:
    for options, option in (
        ({"lease_horizon": -1}, "lease_horizon"),
        ({"lease_max": 0}, "lease_max"),
    ):
        with pytest.raises(ConfigurationError) as info:
            AsyncDynamoDBStorage(table="t", transport=object(), **options)  # type: ignore[arg-type]
        assert info.value.option == option
    uri = AsyncDynamoDBStorage(
        "async+dynamodb://t?lease_horizon=0.25&lease_max=7", transport=object()
    )  # type: ignore[arg-type]
    assert uri.leases.horizon == 0.25 and uri.leases.max_units == 7


async def test_units_held_by_a_process_that_stops_are_the_only_ones_lost(
    rate_limit_table: TableSpec, transport: AiodynamoTransport, clock: Clock
) -> None:
    windows = (Window(300, 3600),)
    stopped = _storage(rate_limit_table, transport, clock)
    for _ in range(30):  # hot: it comes to hold a lease, then its process stops
        assert (await stopped.acquire("k", windows, 1, clock())).allowed
        clock.advance(0.002)
    lost = stopped.leases.held("k")
    assert lost > 0
    survivor = _storage(rate_limit_table, transport, clock)
    admitted = 0
    for _ in range(400):
        admitted += (await survivor.acquire("k", windows, 1, clock())).allowed
        clock.advance(0.002)
    assert admitted == 300 - 30 - lost
    assert survivor.leases.held("k") == 0


async def test_limits_own_sliding_window_api_on_a_leasing_storage(
    rate_limit_table: TableSpec, transport: AiodynamoTransport, clock: Clock
) -> None:
    storage = _storage(rate_limit_table, transport, clock)
    answers = []
    for _ in range(30):  # a new windows tuple on every call: leases must still be spent
        answers.append(await storage.acquire_sliding_window_entry("lim", 20, 60))
        clock.advance(0.01)
    assert answers == [True] * 20 + [False] * 10
    assert storage.leases.stranded == 0


# -- the sizing rule, on LeaseBook alone (no table: the counts a lease call would return) --


def _sizes(
    rate: float,
    requests: int,
    *,
    limit: int = 1_000_000,
    others: float = 0.0,
    cost: int = 1,
    horizon: float = 0.5,
    most: int = 100,
    seconds: int = 3600,
    seen: bool = False,
) -> tuple[list[tuple[int, int]], LeaseBook]:
    """``(units leased, units left)`` for each lease call of one process whose requests
    come at ``rate``/s while other processes lease ``others`` units/s of the same key; a
    lease gets at most what is left, as the conditional write. ``units left`` is the
    table's, or with ``seen`` what this process's previous call saw."""
    book = LeaseBook(horizon, most, 100)
    windows = (Window(limit, seconds),)
    name = f"{seconds}s{int(T0 // seconds)}"
    mine = 0
    seen_counts: dict[str, int] = {}  # what this process's last call returned
    leases: list[tuple[int, int]] = []
    for n in range(requests):
        now = T0 + n / rate
        if book.spend("k", windows, cost, now) is not None:
            continue
        want = book.size("k", windows, cost, now, seen_counts)
        counted = min(limit, mine + int(others * (now - T0)))
        units = min(want, limit - counted)
        if units < cost:
            break
        leases.append((units, limit - (seen_counts.get(name, 0) if seen else counted)))
        mine += units
        seen_counts = {name: counted + units}
        book.granted("k", windows, cost, units, now, seen_counts)
    return leases, book


def test_sizing_a_cold_key_leases_one_request_at_a_time() -> None:
    for rate in (1 / 20, 1 / 9, 0.5, 0.9):  # a few a minute, and under 1 / (2 * horizon)
        leases, book = _sizes(rate, 30)
        assert [units for units, _ in leases] == [1] * 30, rate
        assert book.held("k") == 0
    leases, _ = _sizes(1 / 9, 10, cost=3)
    assert [units for units, _ in leases] == [3] * 10


def test_sizing_a_sustained_rate_leases_40_requests_within_four_horizons() -> None:
    expected = {
        1: 2,  # 2 s of the rate (four horizons)
        10: 20,  # the same: 40 requests would take 4 s
        25: 40,  # 1.6 s: the floor of 40 requests
        50: 40,  # 0.8 s
        100: 50,  # the horizon already spans more than 40 requests
        150: 75,
        1000: 100,  # lease_max
    }
    for rate, most in expected.items():
        sizes = [units for units, _ in _sizes(rate, 600)[0]]
        assert sizes[:2] == [1, 1], rate  # a rate seen over two intervals first
        # then, at 100/s and more (calls 10 ms apart and less: a burst), a slow start,
        # each lease at most twice the units used before it
        start = next((n for n, units in enumerate(sizes) if units >= most - 1), len(sizes))
        for n in range(2, start):
            assert sizes[n] <= 2 * sum(sizes[:n]), (rate, sizes)
        assert start <= (3 if rate < 100 else 6), (rate, sizes)
        assert max(sizes) == most and min(sizes[start:-1] or [most]) >= most - 1, (rate, sizes)
    sizes = [units for units, _ in _sizes(25, 600, cost=2)[0]]  # 40 requests of 2 units
    assert max(sizes) == 80
    sizes = [units for units, _ in _sizes(25, 600, horizon=2.0)[0]]  # rate * horizon
    assert max(sizes) == 50


def test_sizing_never_past_the_shortest_window_end() -> None:
    for rate in (25, 1000):
        leases, _ = _sizes(rate, 3 * rate, seconds=1)
        assert max(units for units, _ in leases) <= rate


def test_sizing_alone_a_process_never_takes_more_than_half_of_what_is_left() -> None:
    # Alone now is no promise for later (a new Lambda container may arrive): near
    # exhaustion the leases halve down to one request's cost, never take the rest.
    leases, book = _sizes(100, 2000, limit=1000)
    assert sum(units for units, _ in leases) == 1000
    assert book._leases["k"].share > 0.9  # measured alone...
    for units, left in leases[2:]:
        assert units == 1 or units <= math.ceil(left / 2), (units, left)  # ...half at most
    assert leases[-1][0] == 1  # the last unit on its own


def test_sizing_near_exhaustion_a_process_takes_its_share_of_what_is_left() -> None:
    windows = (Window(1_000_000, 3600),)
    name = f"3600s{int(T0 // 3600)}"
    for others, share in ((0, 1.0), (25, 0.5), (75, 0.25)):  # alone, 1 or 3 equal others
        _, book = _sizes(25, 400, others=others)  # 16 s: the share measured
        measured = book._leases["k"].share
        assert math.isclose(measured, share, abs_tol=0.05), (others, measured)
        # its last lease (40 units at 25/s) spent; its last call saw 60 (or 30) left
        later = book._leases["k"].taken_at + 1.6
        plenty = copy.deepcopy(book).size("k", windows, 1, later, {name: 0})
        assert 36 <= plenty <= 40  # the lease it asks for with room to spare
        for left in (60, 30):
            units = copy.deepcopy(book).size("k", windows, 1, later, {name: 1_000_000 - left})
            share = min(book._leases["k"].share, 0.5)  # never more than half, even alone
            assert units == min(plenty, math.ceil(left * share)), (others, left)
        assert units < plenty or not others


def test_sizing_a_burst_of_requests_milliseconds_apart_starts_slow() -> None:
    # a page's parallel calls, then nothing (a Lambda container frozen after them): a
    # lease no larger than twice what the burst used, never the rate's 100 units
    book = LeaseBook(0.5, 100, 100)
    windows = (Window(1000, 3600),)
    name = f"3600s{int(T0 // 3600)}"
    used = 0
    sizes = []
    for n in range(6):  # lease calls 2 ms apart: a burst (horizon / 10 is 50 ms)
        now = T0 + n * 0.002
        units = book.size("k", windows, 1, now, {name: used})
        sizes.append(units)
        book.granted("k", windows, 1, units, now, {name: used + units})
        used += units
        book._leases["k"].held = 0  # spent at once by the burst's other requests
    # each at most twice the units used before it (2, 6, 18, 54), up to lease_max
    assert sizes == [1, 1, 4, 12, 36, 100]


def test_sizing_a_burst_after_a_pause_starts_slow_again() -> None:
    book = LeaseBook(0.5, 100, 100)
    windows = (Window(100_000, 3600),)
    name = f"3600s{int(T0 // 3600)}"
    used = 0

    def call(now: float) -> int:
        nonlocal used
        units = book.size("k", windows, 1, now, {name: used})
        book.granted("k", windows, 1, units, now, {name: used + units})
        used += units
        book._leases["k"].held = 0  # spent at once
        return units

    for n in range(8):  # a busy minute: leases by the rate, up to lease_max
        call(T0 + n * 0.01)
    assert used > 100
    # then a minute of quiet: the busy rate is stale and a burst after it starts as on a
    # new key, not from the busy minute's 100-unit leases
    sizes = [call(T0 + 60 + n * 0.002) for n in range(5)]
    assert sizes == [1, 1, 4, 12, 36], sizes  # as a new key: two units, then a slow start
