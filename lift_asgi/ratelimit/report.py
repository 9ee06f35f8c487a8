"""What the rate limiter reports: the counters an app reads (``middleware.stats``) and
the decision it puts in the stage contract for request records, spans and metrics."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

__all__ = ["Outcomes", "RateLimitStats", "outcome"]


@functools.cache
def outcome(rule: str, what: str) -> Mapping[str, str]:
    """The decision the stage reports in ``context(scope).rate_limit`` (request records,
    spans, metrics): ``{"outcome": what, "rule": rule}``, one shared read-only mapping per
    pair so reporting costs no allocation per request. ``what`` is ``admitted``,
    ``degraded`` (counted in this process while the table failed), ``uncounted``
    (``on_failure="open"``), ``refused``, ``blocked`` or ``unavailable`` (503)."""
    return MappingProxyType({"outcome": what, "rule": rule})


@dataclass(slots=True)
class RateLimitStats:
    """Counters the app can read (``middleware.stats``); they only ever grow."""

    admitted: int = 0  # requests that passed at least one rule
    refused: int = 0  # 429 answers, blocked ones included
    blocked: int = 0  # 429 answers from the cache of blocked keys: no backend call
    degraded: int = 0  # backend failed or timed out; decided by counting in this process
    unavailable: int = 0  # backend failed or timed out; the request got a 503
    uncounted: int = 0  # backend failed or timed out; admitted uncounted (on_failure="open")


class Outcomes:
    """One rule's :func:`outcome` mappings, looked up once (no call per request)."""

    __slots__ = ("admitted", "blocked", "degraded", "refused", "unavailable", "uncounted")

    def __init__(self, rule: str) -> None:
        self.admitted = outcome(rule, "admitted")
        self.blocked = outcome(rule, "blocked")
        self.degraded = outcome(rule, "degraded")
        self.refused = outcome(rule, "refused")
        self.unavailable = outcome(rule, "unavailable")
        self.uncounted = outcome(rule, "uncounted")
