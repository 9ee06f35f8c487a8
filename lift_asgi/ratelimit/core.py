"""Window arithmetic shared by every counter backend (pure: no I/O, no clock).

A limit is one or more :class:`Window` s (``"10/second;100/minute"`` is two). Windows
are aligned to the epoch: window ``i`` of a ``P``-second limit covers
``[i*P, (i+1)*P)``, and its counter is named ``f"{P}s{i}"`` (:func:`counter_name`).
Because the window index is in the name, a new window is a new counter: nothing has to
be reset, an expired counter is simply never read again, and the DynamoDB storage needs
no conditional "reset or add" logic to roll a window over.

Strategies, as in the ``limits`` library:

- fixed window: admit ``cost`` when ``current + cost <= limit``;
- sliding window counter: weight the previous window's count by the share of it that
  still overlaps the sliding window, ``floor(previous * f + current) + cost <= limit`` with
  ``f = (end of current window - now) / P`` (``limits``' own formula).

Both keep every single window at or under its limit: a refused hit is never counted.

:func:`decide` turns counter values into a :class:`Decision` (admit or refuse, what to put
in the headers, and until when the key is certainly blocked). Counter values a backend
has seen are lower bounds of the truth (counters only grow within their window), so a
refusal decided from them is always right; an admission never is, until the store has
applied it atomically.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = [
    "COUNTER_NAME",
    "Decision",
    "Window",
    "Windows",
    "counter_name",
    "decide",
    "decide_fixed",
    "previous_weight",
]

#: The shape of a counter attribute: ``{seconds}s{window index}``.
COUNTER_NAME = re.compile(r"[0-9]+s[0-9]+")


@dataclass(frozen=True, slots=True)
class Window:
    """``limit`` units per ``seconds``; ``sliding`` selects the sliding window counter."""

    limit: int
    seconds: int
    sliding: bool = False


Windows = tuple[Window, ...]


def counter_name(seconds: int, index: int) -> str:
    return f"{seconds}s{index}"


def previous_weight(seconds: int, now: float) -> float:
    """The share of the previous window a sliding window still covers at ``now``."""
    return ((now // seconds + 1) * seconds - now) / seconds


class Decision:
    """What a backend decided for one request.

    ``index`` is the position of the window the headers should describe (the tightest
    one; on a refusal, the one that keeps the key waiting longest). ``reset`` is an epoch
    time: the end of that window, or on a refusal the moment a retry can succeed.
    ``blocked_until`` is the time before which *any* request on this key is certainly
    refused (0 when it is not blocked); it lets a caller refuse without asking the store.
    """

    __slots__ = ("allowed", "blocked_until", "index", "remaining", "reset", "retry_after")

    def __init__(
        self,
        allowed: bool,
        index: int,
        remaining: int,
        reset: float,
        retry_after: float = 0.0,
        blocked_until: float = 0.0,
    ) -> None:
        self.allowed = allowed
        self.index = index
        self.remaining = remaining
        self.reset = reset
        self.retry_after = retry_after
        self.blocked_until = blocked_until

    def __repr__(self) -> str:
        return (
            f"Decision(allowed={self.allowed}, index={self.index}, remaining={self.remaining}, "
            f"reset={self.reset:.3f}, retry_after={self.retry_after:.3f}, "
            f"blocked_until={self.blocked_until:.3f})"
        )


def _earliest(
    window: Window, start: float, end: float, current: int, previous: int, cost: int, now: float
) -> float:
    """The first time a hit of ``cost`` passes ``window`` if nobody else hits it."""
    limit = window.limit
    if cost > limit:
        return math.inf
    if not window.sliding:
        return now if current + cost <= limit else end
    spare = limit - cost - current
    if spare >= 0:
        # In this window: floor(previous * f) <= spare, i.e. previous * f < spare + 1.
        if previous <= spare:
            return now
        return max(now, start + window.seconds * (1 - (spare + 1) / previous))
    # Next window: the current count becomes the previous one, weighted down from 1.
    return max(end, end + window.seconds * (1 - (limit - cost + 1) / current))


def decide_fixed(window: Window, current: int, cost: int, now: float, applied: bool) -> Decision:
    """:func:`decide` for the common case, one fixed window, without its loops."""
    seconds = window.seconds
    limit = window.limit
    end = (now // seconds + 1) * seconds
    if applied or current + cost <= limit:
        if not applied:
            current += cost
        remaining = limit - current
        if remaining < 0:
            remaining = 0
        return Decision(True, 0, remaining, end, 0.0, end if remaining < 1 else 0.0)
    remaining = limit - current
    if remaining < 0:
        remaining = 0
    retry_at = end if cost <= limit else now + seconds
    blocked_until = 0.0
    if remaining < 1:
        blocked_until = end if limit >= 1 else retry_at
    return Decision(False, 0, remaining, retry_at, retry_at - now, blocked_until)


def decide(
    counts: Mapping[str, int],
    windows: Windows,
    cost: int,
    now: float,
    *,
    applied: bool = False,
) -> Decision:
    """Admit or refuse ``cost`` units at ``now`` given the counters in ``counts``.

    With ``applied=True`` the counts already include this hit (the store has admitted it):
    only the headers and the blocked time are computed.
    """
    if len(windows) == 1 and not windows[0].sliding:
        window = windows[0]
        seconds = window.seconds
        current = counts.get(f"{seconds}s{int(now // seconds)}", 0)
        return decide_fixed(window, current, cost, now, applied)
    states: list[tuple[Window, int, int, int, int, int, bool]] = []
    allowed = True
    for window in windows:
        seconds = window.seconds
        index = int(now // seconds)
        start = index * seconds
        end = start + seconds
        current = counts.get(f"{seconds}s{index}", 0)
        if window.sliding:
            previous = counts.get(f"{seconds}s{index - 1}", 0)
            base = math.floor(previous * (end - now) / seconds) if previous else 0
        else:
            previous = 0
            base = 0
        ok = applied or current + base + cost <= window.limit
        allowed = allowed and ok
        states.append((window, start, end, current, previous, base, ok))

    added = cost if allowed and not applied else 0
    best = -1
    best_remaining = 0
    best_reset = 0.0
    retry_at = now
    blocked_until = 0.0
    for position, (window, start, end, current, previous, base, ok) in enumerate(states):
        after = current + added
        remaining = max(0, window.limit - after - base)
        unblocked = _earliest(window, start, end, after, previous, 1, now)
        if unblocked > blocked_until:
            blocked_until = unblocked
        if allowed:
            if (
                best < 0
                or remaining < best_remaining
                or (remaining == best_remaining and end > best_reset)
            ):
                best, best_remaining, best_reset = position, remaining, end
        elif not ok:
            wait_until = _earliest(window, start, end, current, previous, cost, now)
            if best < 0 or wait_until > retry_at:
                best, best_remaining, retry_at = position, remaining, wait_until
    if blocked_until <= now:
        blocked_until = 0.0
    if allowed:
        return Decision(True, best, best_remaining, best_reset, 0.0, blocked_until)
    if math.isinf(retry_at):  # cost above the limit: it can never pass; say one window
        retry_at = now + max(w.seconds for w in windows)
    if math.isinf(blocked_until):
        blocked_until = retry_at
    return Decision(False, best, best_remaining, retry_at, retry_at - now, blocked_until)
