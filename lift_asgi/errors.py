"""One error tree and one RFC 9457 ``application/problem+json`` responder.

Every error the suite emits goes through :func:`send_problem` (pure ASGI) or
:func:`problem_response` (a Starlette ``Response`` for exception handlers), so the shape
is the same everywhere: ``type``, ``title``, ``status``, ``detail`` plus extension
members such as ``retry_after``. Exception text from DynamoDB or JWT libraries never
reaches a response: log it, then raise one of these with a safe ``detail``.

Configuration mistakes are not HTTP errors: they raise :class:`ConfigurationError`
when a middleware is built.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Iterable, Mapping
from http import HTTPStatus
from typing import Any

from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Send

from lift_asgi._body_parse import json_invalid
from lift_asgi._json import strict_encoder
from lift_asgi._late_keys import LateKeysDict

PROBLEM_CONTENT_TYPE = "application/problem+json"
_TYPE_PREFIX = "urn:lift-asgi:problem:"

__all__ = [
    "PROBLEM_CONTENT_TYPE",
    "PROBLEM_HANDLERS",
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
    "problem_exception_handler",
    "problem_response",
    "send_problem",
    "validation_exception_handler",
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
_echo_json = strict_encoder(ensure_ascii=False)


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


async def problem_exception_handler(request: Request, exc: Exception) -> Response:
    """Answer a :class:`LiftError` or Starlette's ``HTTPException`` as problem+json.

    Register it for both (or pass :data:`PROBLEM_HANDLERS` as the app's
    ``exception_handlers``) so that every error the app itself produces, an unknown
    route's 404 and a 405 included, has the suite's shape::

        app = FastAPI(exception_handlers=PROBLEM_HANDLERS)

    FastAPI's request validation errors (422) keep FastAPI's own shape (see
    :func:`validation_exception_handler`), and so does a JSON body FastAPI's parser
    refused without a ``JSONDecodeError`` (see :mod:`lift_asgi._body_parse`).
    """
    if isinstance(exc, LiftError):
        return problem_response(exc)
    if isinstance(exc, StarletteHTTPException):
        unreadable = json_invalid(exc)
        if unreadable is not None:  # FastAPI's 400 for a refused JSON body: its 422
            body = json.dumps({"detail": unreadable}).encode()
            return Response(content=body, status_code=422, media_type="application/json")
        detail = exc.detail if isinstance(exc.detail, str) else None
        return problem_response(HTTPProblem(exc.status_code, detail, headers=exc.headers))
    raise exc  # pragma: no cover - registered only for the two types above


async def validation_exception_handler(request: Request, exc: Exception) -> Response:
    """FastAPI's ``RequestValidationError``, rendered so that it cannot fail.

    Errors in the body keep FastAPI's 422 and its shape (``{"detail": [...]}``), which
    clients and generated SDKs read. Any other (a query parameter, a path parameter, a
    header or a cookie, alone or besides body errors) is a 422 problem+json like every
    other error of the suite, :class:`InvalidParameters`, whose ``errors`` member is the
    same list.

    FastAPI's handler echoes the offending input, and two kinds of input broke its
    response, so the client got a plain-text 500 (and the server's log the error):

    - a JSON string holding a lone surrogate (``"\\ud800x"``, valid JSON) cannot be
      encoded as UTF-8: here such characters become U+FFFD in the echo;
    - Python's JSON parser accepts ``NaN``, ``Infinity`` and ``-Infinity`` (and ``1e400``
      parses as infinity), which strict JSON cannot carry back: here they are echoed as
      the strings ``"NaN"``, ``"Infinity"`` and ``"-Infinity"``, nested ones included.
    """
    from fastapi.encoders import jsonable_encoder

    errors_of = getattr(exc, "errors", None)
    errors = jsonable_encoder((errors_of() if callable(errors_of) else None) or [])
    places = {_place(error) for error in errors}
    if places <= {"body"}:
        body = _echo_json({"detail": errors}).encode()
        return Response(content=body, status_code=422, media_type="application/json")
    named = ", ".join(sorted(places - {"body"}))
    return problem_response(
        InvalidParameters(
            f"The request's {named} parameters are not valid; see errors.",
            errors=json.loads(_echo_json(errors)),  # the echo repaired, as in the body's
        )
    )


def _place(error: Any) -> str:
    """Where FastAPI found the error (``body``, ``query``, ``path``, ``header``,
    ``cookie``), from the first element of its ``loc``."""
    loc = error.get("loc") if isinstance(error, dict) else None
    return str(loc[0]) if isinstance(loc, list | tuple) and loc else "request"


def _fastapi_handlers() -> dict[Any, Any]:
    """FastAPI's validation error, when FastAPI is in use (imported), never imported here:
    PROBLEM_HANDLERS's late keys (see lift_asgi._late_keys)."""
    exceptions = sys.modules.get("fastapi.exceptions")
    if exceptions is None:
        return {}
    return {exceptions.RequestValidationError: validation_exception_handler}


#: ``exception_handlers=`` for Starlette and FastAPI apps: problem+json for the suite's
#: errors and for Starlette's HTTPException (unknown routes, wrong methods), and
#: FastAPI's 422 rendered safely (:func:`validation_exception_handler`).
async def internal_error_handler(request: Request, exc: Exception) -> Response:
    """The 500 of an exception nothing handled, as a problem document with no internals.

    Registered under ``Exception``, it is the handler of Starlette's outermost
    ``ServerErrorMiddleware``, which answers with it (unless ``debug`` is on, or the
    response already started) and then re-raises ``exc``, so the server still logs it.
    """
    return problem_response(LiftError())


PROBLEM_HANDLERS: dict[Any, Any] = LateKeysDict(
    {
        LiftError: problem_exception_handler,
        StarletteHTTPException: problem_exception_handler,
        Exception: internal_error_handler,
    },
    late=_fastapi_handlers,
)
