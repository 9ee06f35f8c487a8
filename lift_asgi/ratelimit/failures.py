"""What the limiter does when its store fails or is slower than ``timeout``.

Each rule's ``on_failure`` decides (see :mod:`lift_asgi.ratelimit.middleware`):
``"open"`` admits uncounted, ``"local"`` counts in this process on top of what the
backend last reported (``acquire_local``), ``"refuse"`` (or a ``"local"`` that cannot
count) answers a 503 problem with ``Retry-After``. Failures are logged as one warning per
``warn_interval`` with the count of those suppressed since, so an outage does not flood
the logs.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Any

from starlette.types import Send

from lift_asgi.errors import LiftError, ServiceUnavailable, send_problem
from lift_asgi.ratelimit.compiled import CompiledRule
from lift_asgi.ratelimit.core import Decision
from lift_asgi.ratelimit.limit_sets import LimitSet
from lift_asgi.ratelimit.report import RateLimitStats
from lift_asgi.ratelimit.rules import LOCAL, OPEN
from lift_asgi.stages import RequestContext

__all__ = ["StoreFailures"]

logger = logging.getLogger("lift_asgi.ratelimit")

LocalCount = Callable[[str, Any, int, float], Decision | None]


class StoreFailures:
    """The failure policies of one limiter (its options checked by the middleware)."""

    __slots__ = (
        "_next_warning",
        "_suppressed",
        "_warn_interval",
        "headers",
        "local",
        "retry_after",
        "stats",
        "timeout",
    )

    def __init__(
        self,
        stats: RateLimitStats,
        local: LocalCount | None,
        *,
        timeout: float,
        retry_after: int,
        warn_interval: float,
        headers: bool = True,
    ) -> None:
        self.stats = stats
        self.headers = headers
        self.local = local  # the backend's acquire_local, if it has one
        self.timeout = timeout
        self.retry_after = retry_after
        self._warn_interval = warn_interval
        self._next_warning = -math.inf
        self._suppressed = 0

    async def handle(
        self,
        ctx: RequestContext,
        send: Send,
        rule: CompiledRule,
        exc: Exception,
        full_key: str,
        limit_set: LimitSet,
        cost: int,
        now: float,
    ) -> Decision | bool:
        """``rule``'s policy, once the store failed with ``exc``: ``True`` when the request
        is admitted uncounted (``"open"``), ``False`` when a 503 was answered, else the
        decision counted in this process (``"local"``)."""
        policy = rule.on_failure
        if policy is OPEN:
            self.stats.uncounted += 1
            ctx.rate_limit = rule.outcomes.uncounted
            self.log(rule, exc, "admitted uncounted (on_failure='open')")
            return True
        local = self.local if policy is LOCAL else None
        fallback = None
        if local is not None:
            try:
                fallback = local(full_key, limit_set.windows, cost, now)
            except Exception:
                logger.exception("counting rate limit rule %r locally failed", rule.name)
        if fallback is None:
            ctx.rate_limit = rule.outcomes.unavailable
            self.stats.unavailable += 1
            self.log(rule, exc, "refused with 503")
            # With its headers as a 429 has them: nothing may be spent now (remaining 0)
            # and the client may ask again at Retry-After (the reset). The count itself is
            # what could not be read; these say what this answer means, not the count.
            headers = (
                {
                    name.decode("latin-1"): value.decode("latin-1")
                    for name, value in limit_set.headers_of(0, 0, now + self.retry_after, now)
                }
                if self.headers
                else None
            )
            await send_problem(
                send,
                ServiceUnavailable(
                    "Rate limiting is unavailable; retry shortly.",
                    headers=headers,
                    retry_after=self.retry_after,
                ),
            )
            return False
        self.stats.degraded += 1
        self.log(rule, exc, "counted in this process (on_failure='local')")
        return fallback

    def log(self, rule: CompiledRule, exc: Exception, outcome: str) -> None:
        """A warning for this failure, unless one was logged less than
        ``warn_interval`` ago (then it is counted, and named in the next)."""
        moment = time.monotonic()
        if moment < self._next_warning:
            self._suppressed += 1
            return
        reason = type(exc).__name__
        aws_code = getattr(exc, "aws_code", "")
        if aws_code:
            reason += f" ({aws_code})"
        elif isinstance(exc, TimeoutError):
            reason = f"no answer within {self.timeout:g}s"
        logger.warning(
            "rate limit store failed for rule %r (%s): %s; %d more failures since the last warning",
            rule.name,
            reason,
            outcome,
            self._suppressed,
            exc_info=not isinstance(exc, LiftError | TimeoutError),
        )
        self._suppressed = 0
        self._next_warning = moment + self._warn_interval
