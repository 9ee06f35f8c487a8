"""Idempotent retries: ``Idempotency-Key``, committed with the unit of work.

- :class:`IdempotencyMiddleware` (:mod:`.middleware`): the stage on the request path,
  between rate limiting and :class:`~lift_asgi.dynamo.UnitOfWorkMiddleware`;
- :mod:`.record`: the record item, its claim, completion and release, and the problems a
  duplicate gets (409 in progress, 422 key reused), and :func:`retry_seed`, which lets a
  handler whose work is not one transaction resume it on a retry.
"""

from lift_asgi.idempotency.middleware import DEFAULT_REPLAY_HEADERS, IdempotencyMiddleware
from lift_asgi.idempotency.record import (
    IdempotencyClaimLost,
    IdempotencyInProgress,
    IdempotencyKeyReused,
    retry_seed,
)

__all__ = [
    "DEFAULT_REPLAY_HEADERS",
    "IdempotencyClaimLost",
    "IdempotencyInProgress",
    "IdempotencyKeyReused",
    "IdempotencyMiddleware",
    "retry_seed",
]
