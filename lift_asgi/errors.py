"""One error tree and one RFC 9457 ``application/problem+json`` responder.

Every error the suite emits goes through :func:`send_problem` (pure ASGI) or
:func:`problem_response` (a Starlette ``Response`` for exception handlers), so the shape
is the same everywhere: ``type``, ``title``, ``status``, ``detail`` plus extension
members such as ``retry_after``. Exception text from DynamoDB or JWT libraries never
reaches a response: log it, then raise one of these with a safe ``detail``.

The exception handlers an app registers (``PROBLEM_HANDLERS``) live in
:mod:`lift_asgi.exception_handlers`, which renders through this module.

Configuration mistakes are not HTTP errors: they raise :class:`ConfigurationError`
when a middleware is built.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from http import HTTPStatus
from typing import Any

from starlette.responses import Response
from starlette.types import Send

from lift_asgi._json import strict_encoder

PROBLEM_CONTENT_TYPE = "application/problem+json"
_TYPE_PREFIX = "urn:lift-asgi:problem:"

__all__ = [
    "PROBLEM_CONTENT_TYPE",
    "BadRequest",
    "ConditionFailed",
    "ConfigurationError",
    "Conflict",
    "DuplicateItem",
    "DynamoDBError",
    "DynamoDBThrottled",
    "DynamoDBUnavailable",
    "DynamoDBUnreachable",
    "DynamoDBWriteConflict",
    "Forbidden",
    "HTTPProblem",
    "IdempotencyClaimLost",
    "IdempotencyInProgress",
    "IdempotencyKeyReused",
    "InvalidCursor",
    "InvalidItem",
    "InvalidParameters",
    "InvalidTenant",
    "LiftError",
    "NotFound",
    "ServiceUnavailable",
    "TableMisconfigured",
    "TableNotFound",
    "TenantMismatch",
    "TooManyOperations",
    "TooManyRequests",
    "TransactionCancelled",
    "Unauthorized",
    "problem_body",
    "problem_response",
    "send_problem",
]


class ConfigurationError(ValueError):
    """Bad middleware options; raised at construction time and names the option."""

    def __init__(self, option: str, message: str) -> None:
        self.option = option
        super().__init__(f"{option}: {message}")


class LiftError(Exception):
    """Base of every error that becomes an HTTP problem response.

    Subclasses set ``status``, ``title`` and ``code`` (the last part of the problem
    ``type`` URI). ``detail`` is shown to the client, so it must never carry exception
    text from a dependency. ``extra`` members are added to the problem body.
    """

    status: int = 500
    title: str = "Internal Server Error"
    code: str = "internal"

    def __init__(
        self,
        detail: str | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        **extra: Any,
    ) -> None:
        self.detail = detail or self.title
        self.headers: dict[str, str] = dict(headers or {})
        self.extra: dict[str, Any] = extra
        super().__init__(self.detail)

    @property
    def type(self) -> str:
        return _TYPE_PREFIX + self.code

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": self.type,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        for key, value in self.extra.items():
            body.setdefault(key, value)
        return body


class BadRequest(LiftError):
    status = 400
    title = "Bad Request"
    code = "bad-request"


class InvalidTenant(BadRequest):
    title = "Invalid tenant id"
    code = "invalid-tenant"


class InvalidCursor(BadRequest):
    title = "Invalid cursor"
    code = "invalid-cursor"


class InvalidItem(BadRequest):
    """An item or key DynamoDB would refuse, caught before any call: a key attribute
    missing, empty or too long, an item over 400 KB."""

    title = "Invalid item"
    code = "invalid-item"


class Unauthorized(LiftError):
    status = 401
    title = "Unauthorized"
    code = "unauthorized"

    def __init__(
        self,
        detail: str | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        **extra: Any,
    ) -> None:
        merged = {"www-authenticate": "Bearer"}
        merged.update(headers or {})
        super().__init__(detail, headers=merged, **extra)


class Forbidden(LiftError):
    status = 403
    title = "Forbidden"
    code = "forbidden"


class TenantMismatch(Forbidden):
    title = "Tenant sources disagree"
    code = "tenant-mismatch"


class NotFound(LiftError):
    status = 404
    title = "Not Found"
    code = "not-found"


class Conflict(LiftError):
    status = 409
    title = "Conflict"
    code = "conflict"


class DuplicateItem(Conflict):
    """The same item twice in one transaction or batch (DynamoDB refuses both)."""

    title = "Duplicate item"
    code = "duplicate-item"


class IdempotencyInProgress(Conflict):
    """Another request with this key is still being handled (409 + ``Retry-After``)."""

    title = "Request in progress"
    code = "idempotency-in-progress"


class IdempotencyKeyReused(LiftError):
    """The key was first used for another method, path, query string or body (422)."""

    status = 422
    title = "Idempotency key reused"
    code = "idempotency-key-reused"


class IdempotencyClaimLost(Conflict):
    """This request's claim expired and was retaken before it committed (409)."""

    title = "Idempotency claim lost"
    code = "idempotency-claim-lost"


class InvalidParameters(LiftError):
    """FastAPI's validation error for the query string, path, headers or cookies (422):
    ``errors`` holds FastAPI's list (``loc``, ``msg``, ``type``, the input echoed)."""

    status = 422
    title = "Invalid request parameters"
    code = "invalid-parameters"


class TooManyOperations(LiftError):
    """More operations than DynamoDB can make atomic (100 per transaction)."""

    status = 500
    title = "Too many operations"
    code = "too-many-operations"


class _RetryAfterError(LiftError):
    """An error that tells the client when to come back (``Retry-After``)."""

    def __init__(
        self,
        detail: str | None = None,
        *,
        retry_after: float = 1,
        headers: Mapping[str, str] | None = None,
        **extra: Any,
    ) -> None:
        seconds = _whole_seconds(retry_after)
        merged = {"retry-after": str(seconds)}
        merged.update(headers or {})
        self.retry_after = seconds
        super().__init__(detail, headers=merged, retry_after=seconds, **extra)


def _whole_seconds(retry_after: float) -> int:
    """``retry_after`` rounded up to whole seconds, at least 1. A value that is no finite
    number (NaN, infinity: ``math.ceil`` raises on both) is 1, the default, so building
    the error that answers a request can never fail itself."""
    try:
        return max(1, math.ceil(retry_after))
    except (ValueError, OverflowError, TypeError):
        return 1


class TooManyRequests(_RetryAfterError):
    status = 429
    title = "Too Many Requests"
    code = "rate-limited"


class ServiceUnavailable(_RetryAfterError):
    status = 503
    title = "Service Unavailable"
    code = "unavailable"


class TableMisconfigured(LiftError):
    """The DynamoDB table is missing or has the wrong key schema (an operator error)."""

    status = 500
    title = "Table misconfigured"
    code = "table-misconfigured"


# -- DynamoDB failures, mapped from either client (see lift_asgi.dynamo.transport) --------


class DynamoDBError(LiftError):
    """A DynamoDB call failed. ``aws_code`` is the service's error code, for logs only."""

    status = 500
    title = "Internal Server Error"
    code = "dynamodb-error"

    def __init__(self, detail: str | None = None, *, aws_code: str = "", **kwargs: Any) -> None:
        self.aws_code = aws_code
        super().__init__(detail, **kwargs)


class ConditionFailed(DynamoDBError):
    """A ConditionExpression was false (or a transaction was cancelled by one)."""

    status = 409
    title = "Conflict"
    code = "condition-failed"

    #: The item as it stood when DynamoDB returned it (ReturnValuesOnConditionCheckFailure).
    item: dict[str, Any] | None = None


class TransactionCancelled(DynamoDBError):
    """A TransactWriteItems was cancelled; ``reasons`` has one code (or None) per item."""

    status = 409
    title = "Conflict"
    code = "transaction-cancelled"

    def __init__(
        self, detail: str | None = None, *, reasons: list[str | None], **kwargs: Any
    ) -> None:
        self.reasons = reasons
        super().__init__(detail, aws_code="TransactionCanceledException", **kwargs)


class DynamoDBUnavailable(ServiceUnavailable):
    """Throttled, 5xx, timed out or unreachable: retryable, 503 when it persists."""

    code = "dynamodb-unavailable"

    def __init__(
        self,
        detail: str | None = None,
        *,
        aws_code: str = "",
        retry_after: float = 1,
        **kwargs: Any,
    ) -> None:
        self.aws_code = aws_code
        super().__init__(
            detail or "The database is busy; retry shortly.", retry_after=retry_after, **kwargs
        )


class DynamoDBThrottled(DynamoDBUnavailable):
    code = "dynamodb-throttled"


class DynamoDBUnreachable(DynamoDBUnavailable):
    """No connection could be made (refused, no route, DNS, TLS): the request was never
    sent, so it was not applied, and a write may be sent again whatever it does. (A
    timeout, a dropped connection or a lost answer may come after sending it.)"""


class DynamoDBWriteConflict(DynamoDBThrottled):
    """The item is in a transaction still running (``TransactionConflictException``,
    ``ReplicatedWriteConflictException``, ``TransactionInProgressException``): the
    request was not applied, so it is retried like throttling, and is a 503 if the
    conflict outlasts the retries."""

    code = "dynamodb-write-conflict"


class TableNotFound(TableMisconfigured):
    code = "table-not-found"


class HTTPProblem(LiftError):
    """Any other HTTP error as a problem: Starlette's ``HTTPException`` (an unknown route's
    404, a 405, a handler's own ``raise HTTPException(...)``) keeps its status."""

    code = "http-error"

    def __init__(
        self, status: int, detail: str | None = None, *, headers: Mapping[str, str] | None = None
    ) -> None:
        self.status = status
        try:
            self.title = HTTPStatus(status).phrase
        except ValueError:
            self.title = "Error"
        super().__init__(detail or self.title, headers=headers)


def problem_body(error: LiftError) -> bytes:
    """The problem document as strict JSON (see :mod:`lift_asgi._json`): a member holding
    NaN or infinity is sent as the string ``"NaN"``, ``"Infinity"`` or ``"-Infinity"``."""
    return _problem_json(error.to_dict()).encode()


_problem_json = strict_encoder(default=str)


def _header_list(
    error: LiftError, body: bytes, extra: Iterable[tuple[bytes, bytes]]
) -> list[tuple[bytes, bytes]]:
    headers = [
        (b"content-type", PROBLEM_CONTENT_TYPE.encode()),
        (b"content-length", str(len(body)).encode()),
    ]
    headers.extend(
        (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in error.headers.items()
    )
    headers.extend(extra)
    return headers


async def send_problem(
    send: Send, error: LiftError, *, headers: Iterable[tuple[bytes, bytes]] = ()
) -> None:
    """Write ``error`` as a complete problem+json HTTP response on a raw ASGI ``send``."""
    body = problem_body(error)
    await send(
        {
            "type": "http.response.start",
            "status": error.status,
            "headers": _header_list(error, body, headers),
        }
    )
    await send({"type": "http.response.body", "body": body})


def problem_response(error: LiftError) -> Response:
    """The same problem document as a Starlette ``Response``."""
    body = problem_body(error)
    return Response(
        content=body,
        status_code=error.status,
        headers=error.headers,
        media_type=PROBLEM_CONTENT_TYPE,
    )
