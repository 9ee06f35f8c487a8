"""Where :class:`~lift_asgi.ratelimit.RateLimitMiddleware` counts.

A backend has one method, ``acquire(key, windows, cost, now) -> Decision``, and an ``io``
flag (whether calls can be slow or fail, so the middleware applies its timeout and
fail-open/fail-closed policy). Three are built in:

- :class:`~lift_asgi.ratelimit.storage.AsyncDynamoDBStorage` (``async+dynamodb://``): the
  shared, durable one; one ``UpdateItem`` per request.
- :class:`MemoryBackend` (``memory://``): this process only, for development and tests.
- :class:`LimitsBackend`: any other async ``limits`` storage (``async+redis://`` ...),
  through ``limits``' own strategies: correct per window, but several calls per request
  and multi-window limits are not all-or-nothing.
"""

from __future__ import annotations

import math
from typing import Any, Protocol, runtime_checkable

import limits
import limits.errors
from limits.aio.storage import Storage as AsyncStorage
from limits.aio.strategies import (
    FixedWindowRateLimiter,
    RateLimiter,
    SlidingWindowCounterRateLimiter,
)
from limits.storage import Storage as SyncStorage
from limits.storage import storage_from_string

from lift_asgi.errors import ConfigurationError
from lift_asgi.ratelimit.core import Decision, Window, Windows, decide, decide_fixed
from lift_asgi.ratelimit.storage import AsyncDynamoDBStorage

__all__ = ["Backend", "LimitsBackend", "MemoryBackend", "backend_from"]


@runtime_checkable
class Backend(Protocol):
    io: bool

    async def acquire(self, key: str, windows: Windows, cost: int, now: float) -> Decision: ...


class MemoryBackend:
    """Counters in this process (``memory://``). Nothing is shared between workers or
    Lambda containers: use it for development and tests, DynamoDB in production.

    At most ``max_keys`` keys are kept; past that, keys whose windows have all ended are
    dropped, then the oldest.
    """

    io = False

    def __init__(self, max_keys: int = 100_000) -> None:
        if not isinstance(max_keys, int) or max_keys < 1:
            raise ConfigurationError("max_keys", "must be an integer >= 1")
        self.max_keys = max_keys
        # A key's counters: ``{counter name: count}``, or for a single fixed window the
        # cheaper ``[window index, count]``.
        self._counts: dict[str, Any] = {}
        self._ends: dict[str, float] = {}
        self._swept = -math.inf

    def __len__(self) -> int:
        return len(self._counts)

    async def acquire(self, key: str, windows: Windows, cost: int, now: float) -> Decision:
        return self.acquire_now(key, windows, cost, now)

    def acquire_now(self, key: str, windows: Windows, cost: int, now: float) -> Decision:
        """:meth:`acquire` without a coroutine (the middleware calls this one)."""
        if len(windows) == 1 and not windows[0].sliding:
            # One fixed window, the common case: [window index, count], decided inline
            # (the same arithmetic as core.decide_fixed).
            window = windows[0]
            seconds = window.seconds
            index = int(now // seconds)
            state = self._counts.get(key)
            if type(state) is not list or state[0] != index:
                if state is None and len(self._counts) >= self.max_keys:
                    self._evict(now)
                state = self._counts[key] = [index, 0]
                self._ends[key] = (index + 1) * seconds
            current = state[1] + cost
            if current <= window.limit:
                state[1] = current
                remaining = window.limit - current
                end = float((index + 1) * seconds)
                return Decision(True, 0, remaining, end, 0.0, end if remaining < 1 else 0.0)
            return decide_fixed(window, state[1], cost, now, False)
        counts = self._counts.get(key)
        if type(counts) is not dict:  # new, or it was a single fixed window
            if counts is None and len(self._counts) >= self.max_keys:
                self._evict(now)
            counts = self._counts[key] = {}
        decision = decide(counts, windows, cost, now)
        if decision.allowed:
            ends = 0.0
            keep = 0
            for window in windows:
                seconds = window.seconds
                index = int(now // seconds)
                name = f"{seconds}s{index}"
                counts[name] = counts.get(name, 0) + cost
                keep += 2 if window.sliding else 1
                ends = max(ends, (index + (2 if window.sliding else 1)) * seconds)
            if len(counts) > keep:
                self._prune(counts, windows, now)
            self._ends[key] = ends
        return decision

    @staticmethod
    def _prune(counts: dict[str, int], windows: Windows, now: float) -> None:
        live = set()
        for window in windows:
            index = int(now // window.seconds)
            live.add(f"{window.seconds}s{index}")
            if window.sliding:
                live.add(f"{window.seconds}s{index - 1}")
        for name in [name for name in counts if name not in live]:
            del counts[name]

    def _evict(self, now: float) -> None:
        if now - self._swept >= 1.0:  # drop keys whose windows have all ended
            self._swept = now
            for key in [key for key, ends in self._ends.items() if ends <= now]:
                self._counts.pop(key, None)
                self._ends.pop(key, None)
        while len(self._counts) >= self.max_keys:
            key = next(iter(self._counts))
            self._counts.pop(key, None)
            self._ends.pop(key, None)

    def clear(self) -> None:
        self._counts.clear()
        self._ends.clear()


class LimitsBackend:
    """Any async ``limits`` storage, through ``limits``' strategies.

    Each window is one ``hit`` (stopping at the first refusal) and one
    ``get_window_stats`` for the headers, so expect several storage calls per request;
    ``limits`` uses the real clock, not the middleware's ``clock``. Prefer
    ``async+dynamodb://`` or ``memory://``.
    """

    io = True

    def __init__(self, storage: AsyncStorage) -> None:
        self.storage = storage
        self._fixed: RateLimiter = FixedWindowRateLimiter(storage)
        self._sliding: RateLimiter | None = (
            SlidingWindowCounterRateLimiter(storage)
            if hasattr(storage, "acquire_sliding_window_entry")
            else None
        )
        self._items: dict[Window, limits.RateLimitItem] = {}

    def _item(self, window: Window) -> limits.RateLimitItem:
        item = self._items.get(window)
        if item is None:
            item = self._items[window] = limits.RateLimitItemPerSecond(window.limit, window.seconds)
        return item

    async def acquire(self, key: str, windows: Windows, cost: int, now: float) -> Decision:
        refused = -1
        strategies: list[RateLimiter] = []
        for position, window in enumerate(windows):
            strategy = self._fixed
            if window.sliding:
                if self._sliding is None:
                    raise ConfigurationError(
                        "strategy", "this limits storage has no sliding window counter"
                    )
                strategy = self._sliding
            strategies.append(strategy)
            if not await strategy.hit(self._item(window), key, cost=cost):
                refused = position
                break
        best = -1
        best_remaining = 0
        best_reset = 0.0
        for position, strategy in enumerate(strategies):
            if refused >= 0 and position != refused:
                continue
            reset, remaining = await strategy.get_window_stats(self._item(windows[position]), key)
            if best < 0 or remaining < best_remaining:
                best, best_remaining, best_reset = position, remaining, reset
        if refused < 0:
            return Decision(True, best, best_remaining, best_reset)
        reset = max(best_reset, now + 1e-3)
        if math.isinf(reset):
            reset = now + windows[refused].seconds
        return Decision(False, best, best_remaining, reset, reset - now, 0.0)


def backend_from(storage: Any) -> Backend:
    """The backend for the middleware's ``storage`` option (a URI or an instance)."""
    if isinstance(storage, str):
        scheme = storage.partition("://")[0]
        if scheme in ("memory", "async+memory"):
            return MemoryBackend()
        if scheme == "dynamodb":
            raise ConfigurationError(
                "storage",
                "dynamodb:// is the synchronous (boto3) storage for slowapi; "
                "the middleware takes async+dynamodb://TABLE",
            )
        try:
            storage = storage_from_string(storage)
        except ConfigurationError as exc:
            raise ConfigurationError("storage", str(exc)) from exc
        except (limits.errors.ConfigurationError, ValueError) as exc:
            raise ConfigurationError("storage", str(exc)) from exc
    if isinstance(storage, AsyncDynamoDBStorage | MemoryBackend):
        return storage
    if isinstance(storage, AsyncStorage):
        return LimitsBackend(storage)
    if isinstance(storage, SyncStorage):
        raise ConfigurationError(
            "storage",
            f"{type(storage).__name__} is synchronous and would block the event loop; "
            "use its async+ variant",
        )
    if isinstance(storage, Backend):
        return storage
    raise ConfigurationError(
        "storage", "a URI (memory://, async+dynamodb://TABLE, ...) or a storage instance"
    )
