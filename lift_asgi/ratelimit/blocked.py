"""The limiter's in-process cache of blocked keys.

A key refused (or whose hit took the last unit) cannot pass again before its
``blocked_until``: until then, :class:`BlockedKeys` answers its refusal without asking
the backend, so a client hammering a limit costs no DynamoDB call. Bounded, oldest
entries out first; an expired entry, or one of another limit, goes when looked up.
"""

from __future__ import annotations

from lift_asgi.ratelimit.core import Decision
from lift_asgi.ratelimit.limit_sets import LimitSet
from lift_asgi.ratelimit.report import RateLimitStats

__all__ = ["BlockedKeys"]


class _Blocked:
    __slots__ = ("index", "limits", "until")

    def __init__(self, until: float, limits: LimitSet, index: int) -> None:
        self.until = until
        self.limits = limits
        self.index = index


class BlockedKeys:
    """Up to ``size`` blocked keys (0: none kept). ``entries`` is the dict itself: the
    request path tests it for emptiness inline (a ``__len__`` would cost a call)."""

    __slots__ = ("entries", "size", "stats")

    def __init__(self, size: int, stats: RateLimitStats) -> None:
        self.entries: dict[str, _Blocked] = {}
        self.size = size
        self.stats = stats

    def __len__(self) -> int:
        return len(self.entries)

    def refusal(self, full_key: str, limit_set: LimitSet, now: float) -> Decision | None:
        """The refusal of a key held as blocked (counted in ``stats``), or ``None`` when
        it is not (an entry that expired, or of another limit, goes)."""
        blocked = self.entries.get(full_key)
        if blocked is None:
            return None
        if blocked.until > now and blocked.limits is limit_set:
            self.stats.blocked += 1
            self.stats.refused += 1
            until = blocked.until
            return Decision(False, blocked.index, 0, until, until - now, until)
        del self.entries[full_key]
        return None

    def block(self, key: str, limit_set: LimitSet, decision: Decision) -> None:
        """Hold ``key`` as blocked until ``decision.blocked_until``."""
        entries = self.entries
        if key in entries:
            del entries[key]  # re-inserted last: the oldest entries stay first
        elif len(entries) >= self.size:
            del entries[next(iter(entries))]  # the oldest; expired ones go when looked up
        entries[key] = _Blocked(decision.blocked_until, limit_set, decision.index)
