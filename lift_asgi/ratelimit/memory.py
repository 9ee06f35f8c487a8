"""``memory://``: rate-limit counters in this process (development and tests).

Nothing is shared between workers or Lambda containers: DynamoDB is the production store.

Bounded, but never at the price of a limit: at most ``max_keys`` keys are held, and past
that only keys whose windows have all ended are dropped. A key keeps its count until its
window ends, however many other keys arrive; when every held key is still live, a new key
is refused with :class:`MemoryFull` (a 503 under the middleware's failure policy) instead
of forgetting a count.

A key keeps one counter per window (``{seconds}s{index}``, as in DynamoDB), so a rule
whose limit differs by request (a callable limit, a plan change) keeps every limit's
count; a counter goes once no window reads it.

Dropping is O(1) per key, amortised: every key is filed once, under the epoch its
windows end when it arrives (``_expiry``: end -> keys, with a heap of the ends), and a
new key past the cap drops keys from the oldest ended bucket until one slot is free,
never walking live keys or the dict's deleted slots. A key that moved on to a later
window is not filed again as it does (the index holds one entry per key, however long
the key lives): when its old bucket is popped it is filed under its current end instead.
"""

from __future__ import annotations

import heapq
from typing import Any

from lift_asgi.errors import ConfigurationError, ServiceUnavailable
from lift_asgi.ratelimit.core import (
    Decision,
    Window,
    Windows,
    decide,
    decide_fixed,
)

__all__ = ["MemoryBackend", "MemoryFull"]

#: Slots a full store frees per call once it is at its cap (one call per this many keys).
_ROOM = 64


class MemoryFull(ServiceUnavailable):
    """Every one of ``max_keys`` keys still has an open window: a new key cannot be
    counted without forgetting another's count."""

    code = "rate-limit-memory-full"


class MemoryBackend:
    """Counters in this process (``memory://``); see the module docs.

    A key's state is a list: ``[window index, count, seconds, end]`` for a single fixed
    window (the common case, decided inline), else ``[{counter name: count}, end]``;
    ``end`` (last) is when the key's counters have all stopped mattering.
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
        if len(windows) == 1 and not windows[0].sliding:
            return self.acquire_fixed(key, windows[0], cost, now)
        return self._acquire_names(key, windows, cost, now)

    def acquire_fixed(self, key: str, window: Window, cost: int, now: float) -> Decision:
        """:meth:`acquire_now` for a limit of one fixed window: :meth:`take_fixed`'s
        answer, a plain admission's count made a :class:`Decision`."""
        taken = self.take_fixed(key, window, cost, now)
        if isinstance(taken, int):
            seconds = window.seconds
            return Decision(True, 0, taken, float((now // seconds + 1) * seconds))
        return taken

    def take_fixed(self, key: str, window: Window, cost: int, now: float) -> int | Decision:
        """Spend ``cost`` units of one fixed window (the common case, which the
        middleware calls directly): ``[index, count, seconds, end]``, decided inline with
        :func:`~lift_asgi.ratelimit.core.decide_fixed`'s arithmetic.

        A plain admission, one that leaves units (so the key is not blocked), is answered
        with the count left alone: its window's end is the reset, and a :class:`Decision`
        costs ~2,000 machine instructions the middleware's fast path does without. The
        hit that takes the last unit, a refusal and a key holding other limits' counters
        get their Decision."""
        seconds = window.seconds
        index = now // seconds  # a float for a float clock: int() is only needed for names
        state = self._counts.get(key)
        if state is None or state[0] != index or state[2] != seconds:
            state = self._fixed(key, state, seconds, index, now)
            if state is None:  # the key holds other limits' counters too
                return self._acquire_names(key, (window,), cost, now)
        current = state[1] + cost
        remaining: int = window.limit - current
        if remaining > 0:
            state[1] = current
            return remaining
        if remaining == 0:  # the last unit: blocked from the window's end
            state[1] = current
            return Decision(True, 0, 0, state[3], 0.0, state[3])
        return decide_fixed(window, state[1], cost, now, False)

    def _fixed(
        self, key: str, state: list[Any] | None, seconds: int, index: float, now: float
    ) -> list[Any] | None:
        """The single-window state of ``key`` in window ``index``: new, or rolled over
        from the same window's last one; ``None`` when the key holds other counters
        (then it keeps one per name)."""
        end = float((index + 1) * seconds)
        if state is None:
            counts = self._counts
            if len(counts) >= self.max_keys:
                self._make_room(now)
            state = counts[key] = [index, 0, seconds, end]
            self._file(key, end)
            return state
        if len(state) == 4 and state[2] == seconds:
            state[0] = index  # the next window: the last one's counter is read no more
            state[1] = 0
            state[3] = end
            return state
        if len(state) == 4:  # another limit's window: keep its counter beside this one's
            self._by_name(key, state, now)
        return None

    def _by_name(self, key: str, state: list[Any], now: float) -> list[Any]:
        """Turn a single fixed window's state into one counter per name."""
        names = {} if state[3] <= now else {f"{state[2]}s{int(state[0])}": state[1]}
        state = self._counts[key] = [names, state[3]]
        return state

    def _acquire_names(self, key: str, windows: Windows, cost: int, now: float) -> Decision:
        counts = self._counts
        state = counts.get(key)
        if state is None:
            if len(counts) >= self.max_keys:
                self._make_room(now)
            end = max(
                float((int(now // w.seconds) + (2 if w.sliding else 1)) * w.seconds)
                for w in windows
            )
            state = counts[key] = [{}, end]
            self._file(key, end)
        elif len(state) == 4:  # it held a single fixed window's counter
            state = self._by_name(key, state, now)
        names: dict[str, int] = state[0]
        decision = decide(names, windows, cost, now)
        if decision.allowed:
            end = state[1]
            started = False
            for window in windows:
                seconds = window.seconds
                index = int(now // seconds)
                name = f"{seconds}s{index}"
                count = names.get(name)
                if count is None:
                    names[name] = cost
                    started = True
                    # the window this one's counter no longer reads (the one before, or
                    # before that for a sliding window's previous count)
                    names.pop(f"{seconds}s{index - (2 if window.sliding else 1)}", None)
                else:
                    names[name] = count + cost
                ends = float((index + (2 if window.sliding else 1)) * seconds)
                if ends > end:
                    end = ends  # never earlier: another limit's counters may outlive these
            state[1] = end
            if started and len(names) > len(windows):
                _sweep(names, windows, now)  # other limits', or ended during a pause
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
        flat however many are held. A key of an ended bucket that lives on in a later
        window is filed under its current end.
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
            if state is None:
                continue
            if state[-1] <= now:
                del counts[key]
            else:  # it lives on in a later window
                self._file(key, state[-1])
        self._drained = drained

    def clear(self) -> None:
        self._counts.clear()
        self._expiry.clear()
        self._heap.clear()
        self._draining = []
        self._drained = 0


def _sweep(names: dict[str, int], windows: Windows, now: float) -> None:
    """Drop the counters no window reads any more (a sliding window still reads its
    previous one; counters of the key's other limits stay while they are read)."""
    reach = 0
    live = set()
    for window in windows:
        seconds = window.seconds
        index = int(now // seconds)
        live.add(f"{seconds}s{index}")
        if window.sliding:
            reach = 1
            live.add(f"{seconds}s{index - 1}")
    for name in [n for n in names if n not in live and _ended(n, now, reach)]:
        del names[name]


def _ended(name: str, now: float, reach: int) -> bool:
    """Whether no window reads the counter ``name`` (``{seconds}s{index}``) at ``now``: its
    window and ``reach`` more have ended (1 for sliding windows, which read their previous
    window, else 0; a key's limits all share their rule's strategy)."""
    seconds, _, index = name.partition("s")
    return (int(index) + 1 + reach) * int(seconds) <= now
