"""Where :class:`~lift_asgi.ratelimit.RateLimitMiddleware` counts.

A backend has one method, ``acquire(key, windows, cost, now) -> Decision``, and an ``io``
flag (whether calls can be slow or fail, so the middleware applies its timeout and
failure policy). Three are built in:

- :class:`~lift_asgi.ratelimit.storage.AsyncDynamoDBStorage` (``async+dynamodb://``): the
  shared, durable one; one ``UpdateItem`` per request.
- :class:`MemoryBackend` (``memory://``): this process only, for development and tests.
- :class:`LimitsBackend`: any other async ``limits`` storage (``async+redis://`` ...),
  through ``limits``' own strategies: correct per window, but several calls per request
  and multi-window limits are not all-or-nothing.
"""

from __future__ import annotations

import math
import urllib.parse
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
from lift_asgi.ratelimit.core import Decision, Window, Windows
from lift_asgi.ratelimit.memory import MemoryBackend
from lift_asgi.ratelimit.storage import AsyncDynamoDBStorage

__all__ = ["Backend", "LimitsBackend", "MemoryBackend", "backend_from"]


@runtime_checkable
class Backend(Protocol):
    io: bool

    async def acquire(self, key: str, windows: Windows, cost: int, now: float) -> Decision: ...


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
            return _memory_from(storage)
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


def _memory_from(uri: str) -> MemoryBackend:
    """``memory://`` with its one option, ``?max_keys=N``; anything else is a mistake."""
    options = urllib.parse.parse_qs(urllib.parse.urlsplit(uri).query, keep_blank_values=True)
    unknown = sorted(set(options) - {"max_keys"})
    if unknown:
        raise ConfigurationError("storage", f"memory:// takes only max_keys, not {unknown[0]!r}")
    if "max_keys" not in options:
        return MemoryBackend()
    text = options["max_keys"][-1]
    if not text.isdigit():
        raise ConfigurationError("storage", f"memory://?max_keys={text}: an integer >= 1")
    return MemoryBackend(max_keys=int(text))
