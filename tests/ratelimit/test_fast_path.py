"""The path for the common configuration (one rule everywhere, a fixed limit and cost, a
backend without I/O) answers exactly as the general loop does: same statuses, headers,
bodies, stats and reported decisions, request after request."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.types import Message, Receive, Scope, Send

from lift_asgi.ratelimit import RateLimitMiddleware
from lift_asgi.ratelimit.core import Decision, Windows
from lift_asgi.ratelimit.memory import MemoryBackend
from lift_asgi.stages import context

from .conftest import T0, Clock, with_tenant


async def _app(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"x-app", b"1")]})
    await send({"type": "http.response.body", "body": b"ok"})


class _FailingSync:
    """A backend without I/O whose store fails every other call, counting locally then."""

    io = False

    def __init__(self) -> None:
        self.memory = MemoryBackend()
        self.calls = 0

    async def acquire(self, key: str, windows: Windows, cost: int, now: float) -> Decision:
        return self.acquire_now(key, windows, cost, now)

    def acquire_now(self, key: str, windows: Windows, cost: int, now: float) -> Decision:
        self.calls += 1
        if self.calls % 2 == 0:
            raise ConnectionError("the store is away")
        return self.memory.acquire_now(key, windows, cost, now)

    def acquire_local(self, key: str, windows: Windows, cost: int, now: float) -> Decision:
        return self.memory.acquire_now(key, windows, cost, now)


async def _run(limiter: RateLimitMiddleware, clock: Clock) -> list[Any]:
    """One sequence of requests (two tenants, one without, through a refusal, the
    blocked cache and a new window), and what each got."""
    stack = with_tenant(limiter)
    seen: list[Any] = []
    steps = [("a", 0), ("a", 1), ("b", 1), (None, 1), ("a", 2), ("a", 3), ("a", 3), ("b", 4)]
    steps += [("a", 61), ("a", 62), ("b", 62), ("a", 63), ("a", 64)]
    for tenant, at in steps:
        clock.now = T0 + at
        sent: list[Message] = []
        headers = [(b"x-tenant", tenant.encode())] if tenant else []
        scope = {"type": "http", "method": "GET", "path": "/", "headers": headers}

        async def send(message: Message, sent: list[Message] = sent) -> None:
            sent.append(message)

        async def receive() -> Message:
            return {"type": "http.request", "body": b""}

        await stack(scope, receive, send)
        seen.append((sent, context(scope).rate_limit))
    seen.append(limiter.stats)
    return seen


def _pair(
    clock: Clock, storage: Any = MemoryBackend, **options: Any
) -> tuple[RateLimitMiddleware, RateLimitMiddleware]:
    options = {"limit": "3/minute", "key": "tenant", "clock": clock, **options}
    fast = RateLimitMiddleware(_app, storage=storage(), **options)
    # the same rule with no fast path: the general loop serves it
    general = RateLimitMiddleware(_app, storage=storage(), **options)
    general._fast = general._one = None
    assert fast._fast is not None
    return fast, general


@pytest.mark.parametrize(
    ("root_path", "path", "exempt"),
    [
        ("", "/health", True),
        ("", "/health/db", True),
        ("", "/healthz", False),
        ("", "/projects", False),
        ("/v1", "/v1/health", True),
        ("/v1", "/v1/healthz", False),
        ("/v1", "/v1/projects", False),
    ],
)
async def test_exempt_paths_keep_the_fast_path_and_are_never_counted(
    root_path: str, path: str, exempt: bool
) -> None:
    """An exempt list leaves the fast path in place: an exempt request passes uncounted
    and without headers, any other is limited, as the general loop does."""
    clock = Clock()
    fast, general = _pair(clock, exempt=["/health"])
    answers = []
    for limiter in (fast, general):
        stack = with_tenant(limiter)
        statuses = []
        for _ in range(4):  # the limit is 3/minute
            sent: list[Message] = []

            async def send(message: Message, sent: list[Message] = sent) -> None:
                sent.append(message)

            async def receive() -> Message:
                return {"type": "http.request", "body": b""}

            scope = {
                "type": "http",
                "method": "GET",
                "path": path,
                "root_path": root_path,
                "headers": [(b"x-tenant", b"a")],
            }
            await stack(scope, receive, send)
            statuses.append((sent[0]["status"], sorted(sent[0]["headers"])))
        answers.append((statuses, limiter.stats))
    assert answers[0] == answers[1]
    statuses, stats = answers[0]
    if exempt:
        assert [status for status, _ in statuses] == [200] * 4
        assert (stats.admitted, stats.refused) == (0, 0)
        assert statuses[0][1] == [(b"x-app", b"1")]  # no rate-limit headers
    else:
        assert [status for status, _ in statuses] == [200, 200, 200, 429]
        assert (stats.admitted, stats.refused) == (3, 1)


@pytest.mark.parametrize(("headers", "cache"), [(True, 10), (False, 10), (True, 0)])
async def test_the_fast_path_answers_as_the_general_loop(headers: bool, cache: int) -> None:
    clock = Clock()
    fast, general = _pair(clock, headers=headers, blocked_cache_size=cache)
    expected = await _run(general, clock)
    assert await _run(fast, clock) == expected
    statuses = [sent[0]["status"] for sent, _ in expected[:-1]]
    assert statuses == [200, 200, 200, 200, 200, 429, 429, 200, 200, 200, 200, 200, 429]
    # the hit that takes the last unit blocks the key: its refusals come from the cache
    assert expected[-1].refused == 3 and expected[-1].blocked == (3 if cache else 0)


async def test_a_failing_store_meets_the_same_policy_on_the_fast_path() -> None:
    clock = Clock()
    fast, general = _pair(clock, storage=_FailingSync)
    expected = await _run(general, clock)
    assert await _run(fast, clock) == expected
    assert expected[-1].degraded > 0
    outcomes = {decision["outcome"] for _, decision in expected[:-1] if decision is not None}
    assert outcomes == {"admitted", "degraded", "blocked"}


@pytest.mark.parametrize("on_failure", ["open", "refuse"])
async def test_open_and_refuse_on_the_fast_path(on_failure: str) -> None:
    clock = Clock()
    fast, general = _pair(clock, storage=_FailingSync, on_failure=on_failure)
    expected = await _run(general, clock)
    assert await _run(fast, clock) == expected
    stats = expected[-1]
    assert (stats.uncounted if on_failure == "open" else stats.unavailable) > 0


async def test_the_stored_key_memo_counts_as_the_general_path_and_stays_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The fast path remembers each key's stored key: the backend sees the same keys as
    the general loop's, the memo is cleared when full, and a long key is not kept."""
    from lift_asgi.ratelimit import middleware as module

    monkeypatch.setattr(module, "_KEY_MEMO_SIZE", 2)
    clock = Clock()
    fast, general = _pair(clock)
    expected = await _run(general, clock)
    assert await _run(fast, clock) == expected
    assert set(fast.backend._counts) == set(general.backend._counts)  # type: ignore[attr-defined]
    assert set(fast._fast_keys) <= {"a", "b"} and fast._fast_keys
    rule = fast._fast
    assert rule is not None
    long_key = "x" * (module._KEY_MEMO_MAX_LEN + 1)
    assert fast._stored_key(rule, long_key) == rule.key_prefix + long_key
    assert long_key not in fast._fast_keys
    for key in ("k1", "k2", "k3"):
        assert fast._stored_key(rule, key) == rule.key_prefix + key
    assert len(fast._fast_keys) <= 2  # cleared when full, then filled again
    huge = "y" * 600  # past 512: the bounded form, as the general path stores it
    assert fast._stored_key(rule, huge) == module.bounded_key(rule.key_prefix + huge)
