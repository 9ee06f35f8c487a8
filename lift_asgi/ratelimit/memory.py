"""``memory://``: rate-limit counters in this process (development and tests).

Nothing is shared between workers or Lambda containers: DynamoDB is the production store.

Bounded, but never at the price of a limit: at most ``max_keys`` keys are held, and past
that only keys whose windows have all ended are dropped. A key keeps its count until its
window ends, however many other keys arrive; when every held key is still live, a new key
is refused with :class:`MemoryFull` (a 503 under the middleware's failure policy) instead
of forgetting a count.

Dropping is O(1) per key, amortised: every key is filed under the epoch its windows end
(``_expiry``: end -> keys, with a heap of the ends), and a new key past the cap drops
keys from the oldest ended bucket until one slot is free, never walking live keys or the
dict's deleted slots. A key that moved on to a later
window leaves a stale entry in its old bucket, skipped when that bucket is popped (at
most one per window a key lived through).
"""

from __future__ import annotations

import heapq
from typing import Any

from lift_asgi.errors import ConfigurationError, ServiceUnavailable
from lift_asgi.ratelimit.core import Decision, Windows, decide, decide_fixed

__all__ = ["MemoryBackend", "MemoryFull"]

#: Slots a full store frees per call once it is at its cap (one call per this many keys).
_ROOM = 64


class MemoryFull(ServiceUnavailable):
    """Every one of ``max_keys`` keys still has an open window: a new key cannot be
    counted without forgetting another's count."""

    code = "rate-limit-memory-full"


class MemoryBackend:
    """Counters in this process (``memory://``); see the module docs.

    A key's state is a list: ``[window index, count, end]`` for a single fixed window
    (the common case, decided inline), else ``[{counter name: count}, end]``.
    """

    io = False

    def __init__(self, max_keys: int = 100_000) -> None:
        if not isinstance(max_keys, int) or isinstance(max_keys, bool) or max_keys < 1:
            raise ConfigurationError("max_keys", "must be an integer >= 1")
        self.max_keys = max_keys
        self._counts: dict[str, list[Any]] = {}
        self._expiry: dict[float, list[str]] = {}
        self._heap: list[float] = []
        self._draining: list[str] = []  # the ended bucket being dropped, a key at a time
        self._drained = 0

    def __len__(self) -> int:
        return len(self._counts)

    async def acquire(self, key: str, windows: Windows, cost: int, now: float) -> Decision:
        return self.acquire_now(key, windows, cost, now)

    def acquire_now(self, key: str, windows: Windows, cost: int, now: float) -> Decision:
        """:meth:`acquire` without a coroutine (the middleware calls this one)."""
        counts = self._counts
        if len(windows) == 1 and not windows[0].sliding:
            # One fixed window: [index, count, end], the arithmetic of core.decide_fixed.
            window = windows[0]
            seconds = window.seconds
            index = int(now // seconds)
            state = counts.get(key)
            if state is None or len(state) != 3 or state[0] != index:
                if state is None and len(counts) >= self.max_keys:
                    self._make_room(now)
                end = float((index + 1) * seconds)
                state = counts[key] = [index, 0, end]
                self._file(key, end)
            current = state[1] + cost
            if current <= window.limit:
                state[1] = current
                remaining = window.limit - current
                end = state[2]
                return Decision(True, 0, remaining, end, 0.0, end if remaining < 1 else 0.0)
            return decide_fixed(window, state[1], cost, now, False)
        state = counts.get(key)
        if state is None or len(state) != 2:  # new, or it was a single fixed window
            if state is None and len(counts) >= self.max_keys:
                self._make_room(now)
            end = max(
                float((int(now // w.seconds) + (2 if w.sliding else 1)) * w.seconds)
                for w in windows
            )
            state = counts[key] = [{}, end]
            self._file(key, end)
        names: dict[str, int] = state[0]
        decision = decide(names, windows, cost, now)
        if decision.allowed:
            end = 0.0
            live: list[str] = []
            for window in windows:
                seconds = window.seconds
                index = int(now // seconds)
                name = f"{seconds}s{index}"
                names[name] = names.get(name, 0) + cost
                live.append(name)
                if window.sliding:
                    live.append(f"{seconds}s{index - 1}")
                end = max(end, float((index + (2 if window.sliding else 1)) * seconds))
            if len(names) > len(live):
                for name in [name for name in names if name not in live]:
                    del names[name]
            if end != state[1]:
                state[1] = end
                self._file(key, end)
        return decision

    def _file(self, key: str, end: float) -> None:
        bucket = self._expiry.get(end)
        if bucket is None:
            bucket = self._expiry[end] = []
            heapq.heappush(self._heap, end)
        bucket.append(key)

    def _make_room(self, now: float) -> None:
        """Drop keys whose windows have all ended; :class:`MemoryFull` when none has.

        Ended buckets are drained a few keys at a time (up to ``_ROOM`` slots per call),
        so no new key pays for a million ended ones at once: the cost per new key stays
        flat however many are held.
        """
        counts = self._counts
        heap = self._heap
        draining = self._draining
        limit = self.max_keys
        target = limit - _ROOM if limit > 2 * _ROOM else limit - 1
        drained = self._drained
        while len(counts) > target:
            if drained >= len(draining):
                if not heap or heap[0] > now:
                    self._drained = drained
                    if len(counts) < limit:
                        return
                    raise MemoryFull(
                        "Rate limiting is at capacity; retry shortly.",
                        retry_after=max(1.0, (heap[0] - now) if heap else 1.0),
                    )
                draining = self._draining = self._expiry.pop(heapq.heappop(heap), [])
                drained = 0
                continue
            key = draining[drained]
            drained += 1
            state = counts.get(key)
            if state is not None and state[-1] <= now:  # else it lives on in a later window
                del counts[key]
        self._drained = drained

    def clear(self) -> None:
        self._counts.clear()
        self._expiry.clear()
        self._heap.clear()
        self._draining = []
        self._drained = 0
