"""``memory://`` over many windows, and keys whose limit differs by request."""

from __future__ import annotations

import math
import tracemalloc
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from lift_asgi.ratelimit import MemoryBackend, RateLimitMiddleware, Window
from lift_asgi.ratelimit.memory import MemoryFull

from .conftest import T0, Clock, client_for

PER_SECOND = (Window(100, 1),)
HOURLY = (Window(3, 3600),)
PER_MINUTE = (Window(100, 60),)


@pytest.mark.parametrize(
    "windows",
    [PER_SECOND, (Window(100, 1, sliding=True),), (Window(100, 1), Window(1000, 60))],
    ids=["fixed", "sliding", "multi-window"],
)
def test_memory_held_stays_flat_while_the_same_keys_live_through_windows(
    windows: tuple[Window, ...],
) -> None:
    backend = MemoryBackend(max_keys=1000)  # far below its cap: nothing is ever dropped

    def live_through(seconds: range) -> None:
        for second in seconds:
            for k in range(10):  # the same ten keys, one hit a second each
                backend.acquire_now(f"k{k}", windows, 1, T0 + second)

    live_through(range(100))
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        live_through(range(100, 5_100))  # five thousand windows more
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(backend) == 10
    assert grown < 16_000  # bytes: nothing per window lived through (it was ~4 MB)


def test_a_key_with_an_hourly_count_is_not_dropped_when_its_minute_ends() -> None:
    backend = MemoryBackend(max_keys=1)
    assert [backend.acquire_now("k", HOURLY, 1, T0).allowed for _ in range(3)] == [True] * 3
    assert backend.acquire_now("k", PER_MINUTE, 1, T0 + 1).allowed  # the same key, by GET
    with pytest.raises(MemoryFull):  # the minute ended, the hour has not
        backend.acquire_now("other", PER_MINUTE, 1, T0 + 120)
    assert not backend.acquire_now("k", HOURLY, 1, T0 + 121).allowed
    assert backend.acquire_now("k", PER_MINUTE, 1, T0 + 121).remaining == 99
    assert backend.acquire_now("other", PER_MINUTE, 1, T0 + 3600).allowed  # it ended


def test_counters_of_other_limits_go_once_no_window_reads_them() -> None:
    backend = MemoryBackend()
    for limit in (HOURLY, PER_MINUTE, (Window(10, 1, sliding=True),)):
        assert backend.acquire_now("k", limit, 1, T0).allowed
    held = backend._counts["k"][0]
    assert sorted(held) == [f"1s{int(T0)}", f"3600s{int(T0 // 3600)}", f"60s{int(T0 // 60)}"]
    # the next second, a sliding window still reads the last one; the minute is running
    assert backend.acquire_now("k", (Window(10, 1, sliding=True),), 1, T0 + 1).allowed
    assert len(held) == 4
    assert backend.acquire_now("k", PER_MINUTE, 1, T0 + 61).remaining == 99
    assert sorted(held) == [f"3600s{int(T0 // 3600)}", f"60s{int(T0 // 60) + 1}"]


async def test_the_503_of_a_store_that_cannot_count_has_a_refusals_headers(clock: Clock) -> None:
    async def ok(request: Any) -> PlainTextResponse:
        return PlainTextResponse("ok")

    limiter = RateLimitMiddleware(
        Starlette(routes=[Route("/", ok)]),
        limit="1/minute",
        storage=MemoryBackend(max_keys=1),
        clock=clock,
    )
    async with client_for(limiter, client=("10.0.0.1", 1)) as http:
        admitted = await http.get("/")
    async with client_for(limiter, client=("10.0.0.2", 1)) as http:
        unavailable = await http.get("/")
    assert admitted.headers["x-ratelimit-remaining"] == "0"
    assert unavailable.status_code == 503 and int(unavailable.headers["retry-after"]) >= 1
    # the count is what could not be read: the headers say what the answer means (as on
    # a 429: nothing may be spent now, ask again at the reset, which is Retry-After)
    headers = unavailable.headers
    assert (headers["x-ratelimit-limit"], headers["x-ratelimit-remaining"]) == ("1", "0")
    retry_after = int(headers["retry-after"])
    assert int(headers["x-ratelimit-reset"]) == math.ceil(clock() + retry_after)
    assert headers["ratelimit"].endswith(f";t={retry_after}")
