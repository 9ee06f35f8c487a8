"""IdempotencyMiddleware: ``Idempotency-Key`` on the request path, between rate limiting
and the unit of work.

::

    app.add_middleware(UnitOfWorkMiddleware, table="app-data")
    app.add_middleware(IdempotencyMiddleware)            # outside the unit of work
    app.add_middleware(RateLimitMiddleware, ...)
    app.add_middleware(TenantMiddleware, ...)

This stage does the part that needs no database: it picks the requests that carry the
header with a method it covers, validates the key (1..255 printable ASCII, else 400),
reads the body (up to ``max_request_bytes``, else 413) to fingerprint method, path,
query string and body bytes, and hands the app the same body. It then marks the request
in the stage contract (``context(scope).idempotency``), and
:class:`~lift_asgi.dynamo.UnitOfWorkMiddleware` inside it, which holds the tenant scope
and the transaction, claims the key, holds the response until its body is complete and
commits the record with the handler's writes (see :mod:`lift_asgi.idempotency.record`).

A unit of work inside is required: lifespan startup fails without one, and a server that
runs no lifespan gets a logged 500 problem on the first such request instead of a
silently unprotected one. Requests without a tenant (an exempt path) are not deduplicated.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lift_asgi._chain import Chained
from lift_asgi._headers import header_name, header_names, method_names
from lift_asgi._startup import LoudStartup
from lift_asgi.errors import BadRequest, ConfigurationError, HTTPProblem, LiftError, send_problem
from lift_asgi.idempotency.record import IdempotentRecord, RecordPolicy, fingerprint
from lift_asgi.stages import IDEMPOTENCY, SCOPE_KEY, UNIT_OF_WORK, RequestContext, enter

__all__ = ["DEFAULT_REPLAY_HEADERS", "IdempotencyMiddleware"]

log = logging.getLogger("lift_asgi.idempotency")

#: The response headers a replay repeats: those that describe the representation or
#: point at the created resource. Per-request ones (request ids, rate-limit counters,
#: dates, cookies) are the replay's own.
DEFAULT_REPLAY_HEADERS = (
    "content-type",
    "content-encoding",
    "content-language",
    "content-location",
    "location",
    "etag",
    "last-modified",
    "link",
    "cache-control",
)

_MAX_KEY = 255


#: The longest retention or expiry (seconds): ~31,700 years keeps its TTL a number
#: DynamoDB stores (a float("inf") "forever" would fail on every keyed request).
_MAX_SECONDS = 1e12


def _positive(option: str, value: Any, kind: type = float) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ConfigurationError(option, "must be a positive number")
    if kind is float and not value <= _MAX_SECONDS:
        raise ConfigurationError(option, f"must be at most {_MAX_SECONDS:.0e} seconds")
    if kind is int and not isinstance(value, int):
        raise ConfigurationError(option, "must be a positive int")
    return kind(value)


class IdempotencyMiddleware(Chained, metaclass=LoudStartup):
    """Honour ``Idempotency-Key`` (draft-ietf-httpapi-idempotency-key-header).

    Options (mistakes raise :class:`~lift_asgi.errors.ConfigurationError` naming them):

    - ``header`` (``"Idempotency-Key"``); ``methods`` (``("POST", "PATCH")``): others
      ignore the header.
    - ``retention`` (``86400`` s): how long a key is remembered (the table's TTL
      attribute is set to that; expired records are ignored before DynamoDB deletes them).
    - ``in_progress_expiry`` (``60`` s): after this a claim whose request never finished
      (a crashed process) may be retaken. Under Lambda (``scope["aws.context"]``) the
      invocation's remaining time is used instead.
    - ``max_request_bytes`` (6 MiB, Lambda's payload limit): a larger body with a key is
      a 413. ``max_response_bytes`` (256 KiB): a larger response cannot be remembered,
      so its writes are discarded and it is a 500 (a DynamoDB item holds 400 KB).
    - ``replay_headers``: the response headers stored and replayed
      (:data:`DEFAULT_REPLAY_HEADERS`).
    - ``key_prefix`` (``"_idempotency#"``): the logical partition key of records.
    - ``ttl_attribute``: default the table's (``TableSpec.ttl_attribute``), else ``"ttl"``.
    - ``clock`` (``time.time``): epoch seconds; tests move it.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        header: str = "Idempotency-Key",
        methods: Iterable[str] = ("POST", "PATCH"),
        retention: float = 24 * 3600,
        in_progress_expiry: float = 60.0,
        max_request_bytes: int = 6 * 1024 * 1024,
        max_response_bytes: int = 256 * 1024,
        replay_headers: Iterable[str] = DEFAULT_REPLAY_HEADERS,
        key_prefix: str = "_idempotency#",
        ttl_attribute: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.app = app
        self._header = header_name("header", header)
        self._methods = method_names("methods", methods)
        if self._methods & {"GET", "HEAD", "OPTIONS"}:
            raise ConfigurationError("methods", "safe methods need no idempotency key")
        response_cap = _positive("max_response_bytes", max_response_bytes, int)
        if response_cap > 350 * 1024:
            raise ConfigurationError(
                "max_response_bytes", "a record is one DynamoDB item (400 KB): at most 350 KiB"
            )
        if not isinstance(key_prefix, str) or not key_prefix:
            raise ConfigurationError("key_prefix", "must be a non-empty string")
        if ttl_attribute is not None and (not isinstance(ttl_attribute, str) or not ttl_attribute):
            raise ConfigurationError("ttl_attribute", "must be an attribute name")
        if not callable(clock):
            raise ConfigurationError("clock", "must be a function returning epoch seconds")
        self._max_request = _positive("max_request_bytes", max_request_bytes, int)
        self.policy = RecordPolicy(
            retention=_positive("retention", retention),
            in_progress_expiry=_positive("in_progress_expiry", in_progress_expiry),
            max_response_bytes=response_cap,
            replay_headers=header_names("replay_headers", replay_headers),
            key_prefix=key_prefix,
            ttl_attribute=ttl_attribute,
            clock=clock,
        )
        self._checked = False  # a unit of work was seen inside (at startup or on a request)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope_type = scope["type"]
        if scope_type != "http":
            if scope_type == "lifespan":
                await self._lifespan(scope, receive, send)
            else:
                await self._next(scope, receive, send)
            return
        ctx: RequestContext | None = scope.get(SCOPE_KEY)
        if ctx is None:
            ctx = enter(scope, IDEMPOTENCY)
        else:  # enter(scope, IDEMPOTENCY) without its call (~450 instructions)
            ctx.stages.append(IDEMPOTENCY)
        if scope["method"] not in self._methods:
            await self._next(scope, receive, send)
            return
        name = self._header
        values = [value for key, value in scope["headers"] if key == name]
        if not values:
            await self._next(scope, receive, send)
            return
        key = _valid_key(values)
        if key is None:
            await send_problem(
                send,
                BadRequest(
                    f"The {self._header.decode()} header must appear once, with 1 to "
                    f"{_MAX_KEY} printable ASCII characters."
                ),
            )
            return
        body = await self._read_body(receive, send)
        if body is None:
            return
        policy = self.policy
        expires_in = policy.in_progress_expiry
        lambda_context = scope.get("aws.context")
        remaining = getattr(lambda_context, "get_remaining_time_in_millis", None)
        renewable = True
        if callable(remaining):
            with contextlib.suppress(TypeError, ValueError):
                expires_in = max(1.0, float(remaining()) / 1000)
                renewable = False  # the claim outlasts the invocation, and so the request
        path = scope.get("root_path", "") + scope["path"]
        ctx.idempotency = record = IdempotentRecord(
            policy,
            key,
            fingerprint(scope["method"], path, body, scope.get("query_string") or b""),
            expires_in,
            uuid.uuid4().hex,
            renewable=renewable,
        )
        sent = False

        async def replay_body() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        if self._checked:
            await self._next(scope, replay_body, send)
            return
        await self._next(scope, replay_body, self._checking(ctx, record, send))

    async def _read_body(self, receive: Receive, send: Send) -> bytes | None:
        chunks: list[bytes] = []
        size = 0
        limit = self._max_request
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await send_problem(
                    send,
                    HTTPProblem(
                        413,
                        f"A request with an idempotency key carries at most {limit} bytes.",
                    ),
                )
                return None
            if chunk:
                chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    def _checking(self, ctx: RequestContext, record: IdempotentRecord, send: Send) -> Send:
        """Without a lifespan check: refuse a success that no unit of work protected."""

        async def send_checked(message: Message) -> None:
            if message["type"] == "http.response.start":
                if UNIT_OF_WORK in ctx.stages:
                    self._checked = True
                elif message["status"] < 400:
                    error = _no_unit_of_work()
                    log.error("%s", error)
                    await send_problem(
                        send, LiftError(f"The server is misconfigured: {error}", option="app")
                    )
                    replaced[0] = True
                    return
            if not replaced[0]:
                await send(message)

        replaced = [False]
        return send_checked

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        ctx = enter(scope, IDEMPOTENCY)

        async def send_checked(message: Message) -> None:
            if message["type"] == "lifespan.startup.complete":
                inside = ctx.stages[ctx.stages.index(IDEMPOTENCY) + 1 :]
                if UNIT_OF_WORK in inside:
                    self._checked = True
                else:
                    error = _no_unit_of_work()
                    log.error("%s", error)
                    message = {
                        "type": "lifespan.startup.failed",
                        "message": f"{type(error).__name__}: {error}",
                    }
            await send(message)

        await self._next(scope, receive, send_checked)


def _no_unit_of_work() -> ConfigurationError:
    return ConfigurationError(
        "app",
        "IdempotencyMiddleware needs UnitOfWorkMiddleware inside it (installed before it, "
        "so it runs after): the unit of work claims the key and commits the record with "
        "the request's writes",
    )


def _valid_key(values: list[bytes]) -> str | None:
    """The key, or ``None`` when it is not one header of 1..255 printable ASCII bytes."""
    if len(values) != 1:
        return None
    raw = values[0]
    if not 0 < len(raw) <= _MAX_KEY or not raw.isascii():
        return None
    key = raw.decode("ascii")
    return key if key.isprintable() else None  # ASCII's printable: 0x20..0x7E
