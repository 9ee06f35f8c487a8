"""``memory://`` past its key cap: a live count is never forgotten. (What a new key costs
at 1M keys against 1 is measured in bench/ratelimit.py, not here.)"""

from __future__ import annotations

from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from lift_asgi.errors import ConfigurationError
from lift_asgi.ratelimit import MemoryBackend, RateLimitMiddleware, Window
from lift_asgi.ratelimit.memory import MemoryFull

from .conftest import T0, Clock, client_for

FIVE = (Window(5, 60),)


def _fill(backend: MemoryBackend, windows: Any, key: str, units: int) -> None:
    for _ in range(units):
        assert backend.acquire_now(key, windows, 1, T0).allowed


@pytest.mark.parametrize(
    "windows",
    [FIVE, (Window(5, 60, sliding=True),), (Window(5, 60), Window(50, 3600))],
    ids=["fixed", "sliding", "multi-window"],
)
def test_a_key_at_its_limit_stays_refused_however_many_keys_arrive(windows: Any) -> None:
    backend = MemoryBackend(max_keys=100)
    _fill(backend, windows, "full", 5)
    _fill(backend, windows, "almost", 4)
    full_store = 0
    for n in range(1000):  # ten times the cap, in the same minute
        try:
            backend.acquire_now(f"other{n}", windows, 1, T0 + 1)
        except MemoryFull:
            full_store += 1
    assert full_store == 1000 - 98  # the cap holds; no live count was dropped for them
    assert len(backend) == 100
    assert not backend.acquire_now("full", windows, 1, T0 + 2).allowed
    assert backend.acquire_now("almost", windows, 1, T0 + 2).allowed
    assert not backend.acquire_now("almost", windows, 1, T0 + 2).allowed


def test_keys_whose_windows_ended_make_room() -> None:
    backend = MemoryBackend(max_keys=10)
    for n in range(10):
        backend.acquire_now(f"k{n}", FIVE, 1, T0)
    with pytest.raises(MemoryFull) as info:
        backend.acquire_now("late", FIVE, 1, T0 + 30)
    assert info.value.retry_after == 30  # when the first window ends
    backend.acquire_now("k0", FIVE, 1, T0 + 60)  # k0 lives on in the next window
    for n in range(9):
        assert backend.acquire_now(f"new{n}", FIVE, 1, T0 + 60).allowed
    assert len(backend) == 10
    assert backend.acquire_now("k0", FIVE, 1, T0 + 61).remaining == 3  # its count survived


def test_a_key_refused_on_arrival_is_dropped_when_its_window_ends() -> None:
    backend = MemoryBackend(max_keys=1)
    assert not backend.acquire_now("never", (Window(0, 60), Window(5, 1)), 1, T0).allowed
    assert backend.acquire_now("next", FIVE, 1, T0 + 60).allowed


def test_max_keys_is_checked() -> None:
    with pytest.raises(ConfigurationError) as info:
        MemoryBackend(max_keys=0)
    assert info.value.option == "max_keys"


async def test_a_full_memory_store_meets_the_failure_policy(clock: Clock) -> None:
    def app(**options: Any) -> RateLimitMiddleware:
        async def ok(request: Any) -> PlainTextResponse:
            return PlainTextResponse("ok")

        return RateLimitMiddleware(
            Starlette(routes=[Route("/", ok)]),
            limit="1/minute",
            storage=MemoryBackend(max_keys=2),
            clock=clock,
            **options,
        )

    safe, open_ = app(), app(on_failure="open")
    for limiter, third in ((safe, 503), (open_, 200)):
        statuses = []
        for n in range(3):
            async with client_for(limiter, client=(f"10.0.0.{n}", 1)) as http:
                statuses.append((await http.get("/")).status_code)
        assert statuses == [200, 200, third]
    assert safe.stats.unavailable == 1 and open_.stats.uncounted == 1


@pytest.mark.parametrize("now", [T0 + 1.5, int(T0) + 1])  # a float clock, an int one
def test_take_fixed_answers_a_plain_admission_with_the_count_left(now: float) -> None:
    """Only the hit that takes the last unit and a refusal get a Decision; acquire_now
    makes the plain admissions' Decision exactly as decide_fixed does."""
    from lift_asgi.ratelimit.core import decide_fixed

    window = Window(3, 60)
    taker, acquirer = MemoryBackend(), MemoryBackend()
    answers = [taker.take_fixed("k", window, 1, now) for _ in range(4)]
    assert answers[:2] == [2, 1]
    last, refused = answers[2:]
    assert not isinstance(last, int) and not isinstance(refused, int)
    assert (last.allowed, last.remaining, last.blocked_until) == (True, 0, T0 + 60)
    assert (refused.allowed, refused.retry_after) == (False, T0 + 60 - now)
    for count in range(4):
        got = acquirer.acquire_now("k", (window,), 1, now)
        want = decide_fixed(window, count, 1, now, False)
        assert repr(got) == repr(want)
    assert taker.take_fixed("k", window, 1, now + 60) == 2  # the next window
