"""The one retry loop of the data layer, and its policy.

Every retried DynamoDB call goes through :func:`run_with_retries`: single reads and
writes (:meth:`DynamoTable.retrying <lift_asgi.dynamo.client.DynamoTable.retrying>`),
the commit's transaction, and each chunk of a bulk write or batch read. What may be
retried is the caller's decision, given as a predicate; the loop only paces the tries
(exponential backoff, full jitter, bounded attempts and time). The two predicates the
callers share are here: :func:`any_unavailable` (any 503: throttling, 5xx, timeouts,
dropped connections, for a request that may be sent again whatever happened) and
:func:`not_applied` (throttling and write conflicts: DynamoDB refused it, applied
nothing; failures to connect: nothing was sent).

When the policy is exhausted the loop raises a *new* 503
(:class:`~lift_asgi.errors.DynamoDBUnavailable`, of the caught error's class when it is
one, with ``Retry-After`` from the policy) chained to the last error; it never edits the
error it caught.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from lift_asgi.errors import (
    ConfigurationError,
    DynamoDBThrottled,
    DynamoDBUnavailable,
    DynamoDBUnreachable,
)

__all__ = ["RetryPolicy", "any_unavailable", "exhausted", "not_applied", "run_with_retries"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How retryable failures (throttling, 5xx, timeouts, dropped connections,
    transaction conflicts) are retried.

    ``attempts`` counts every try, the first included; the pause before try ``n`` is
    uniform in ``[0, min(max_delay, base_delay * 2**n)]`` (full jitter); no try starts
    after ``deadline`` seconds from the first. ``RetryPolicy(attempts=1)`` never retries.
    """

    attempts: int = 5
    base_delay: float = 0.05
    max_delay: float = 1.0
    deadline: float = 10.0

    def __post_init__(self) -> None:
        if isinstance(self.attempts, bool) or not isinstance(self.attempts, int):
            raise ConfigurationError("retry", "attempts must be an int >= 1")
        if self.attempts < 1:
            raise ConfigurationError("retry", "attempts must be an int >= 1")
        for name in ("base_delay", "max_delay", "deadline"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
                raise ConfigurationError("retry", f"{name} must be a number >= 0")

    def delay(self, attempt: int) -> float:
        return random.uniform(0, min(self.max_delay, self.base_delay * (2**attempt)))

    @property
    def retry_after(self) -> int:
        """The ``Retry-After`` (seconds) sent when retries are exhausted."""
        return max(1, math.ceil(self.max_delay))


def any_unavailable(error: Exception) -> bool:
    """Any 503 (throttling, 5xx, timeouts, dropped connections): for a request that may
    be sent again whether or not the failed try was applied."""
    return isinstance(error, DynamoDBUnavailable)


def not_applied(error: Exception) -> bool:
    """Throttling and write conflicts (DynamoDB refused the request, did not apply it),
    and failures to connect (it was never sent)."""
    return isinstance(error, DynamoDBThrottled | DynamoDBUnreachable)


def exhausted(error: BaseException, policy: RetryPolicy) -> DynamoDBUnavailable:
    """The 503 to raise (``from error``) when ``error`` outlasted ``policy``."""
    if isinstance(error, DynamoDBUnavailable):
        return type(error)(error.detail, aws_code=error.aws_code, retry_after=policy.retry_after)
    return DynamoDBUnavailable(
        aws_code=str(getattr(error, "aws_code", "") or type(error).__name__),
        retry_after=policy.retry_after,
    )


async def run_with_retries(
    attempt: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    retryable: Callable[[Exception], bool],
) -> T:
    """``await attempt()`` until it returns; an exception for which ``retryable`` is
    true is tried again after a pause, while the policy allows; any other propagates
    as it is."""
    deadline = time.monotonic() + policy.deadline
    tries = 0
    while True:
        try:
            return await attempt()
        except Exception as error:
            if not retryable(error):
                raise
            tries += 1
            pause = policy.delay(tries)
            if tries >= policy.attempts or time.monotonic() + pause > deadline:
                raise exhausted(error, policy) from error
        await asyncio.sleep(pause)
