"""RequestObserver: the request id, the request record, DynamoDB cost and telemetry.

It is the outermost stage (``lift_asgi.install(..., observe={...})`` puts it there), so
that every response carries ``X-Request-ID`` (the tenant stage's 401, the limiter's 429
and 503, the unit of work's 409 included) and every DynamoDB call of the request, the
rate limiter's among them, happens inside it and is counted.

Per HTTP request it

1. takes the client's ``X-Request-ID`` when it is 1..128 characters of
   ``[A-Za-z0-9._:-]``, else the Lambda invocation's id, else a new random one; keeps the
   Lambda ids (:mod:`lift_asgi.observe.ids`); puts the id in ``context(scope).request_id``,
   ``request.state.request_id`` and :func:`~lift_asgi.observe.current_request_id`;
2. counts the request's DynamoDB calls in a :class:`~lift_asgi.observe.RequestCost`
   (``context(scope).cost``, :func:`~lift_asgi.observe.current_cost`), which the
   transports report every call to; it is made on the first call (or for the record);
3. adds the id to ``http.response.start`` (replacing one the app set), once; the body
   passes through, so streaming keeps working;
4. when the app raised before responding, answers a 500 problem carrying the id (then
   re-raises, as Starlette's ``ServerErrorMiddleware`` does);
5. writes one request record on the ``lift_asgi.request`` logger (INFO, ERROR for a 5xx),
   see :mod:`lift_asgi.observe.record`; with ``otel=True``, spans and metrics
   (:mod:`lift_asgi.observe.otel`).

A ``websocket`` scope gets its id too (echoed in the handshake's answer, no record);
``lifespan`` scopes are marked as observed and pass through.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Container, Iterable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lift_asgi._chain import Chained
from lift_asgi._headers import header_name
from lift_asgi._paths import compile_prefixes, route_path, under
from lift_asgi._routes import RouteTable
from lift_asgi._startup import LoudStartup
from lift_asgi.errors import ConfigurationError, LiftError, send_problem
from lift_asgi.observe import ids as ids_module
from lift_asgi.observe.cost import RequestCost
from lift_asgi.observe.ids import (
    RequestIds,
    lambda_ids,
    make_ids,
    valid_request_id,
    with_context,
)
from lift_asgi.observe.logs import RECORD_ATTRIBUTE
from lift_asgi.observe.record import request_fields
from lift_asgi.stages import OBSERVE, SCOPE_KEY, RequestContext, context_var, enter

__all__ = ["RequestObserver"]

_TRACE_HEADER = b"x-amzn-trace-id"
_clock = time.perf_counter
# the request context's ContextVar (where current_ids() finds ctx.ids), methods bound once
_get_context = context_var.get
_set_context = context_var.set
_reset_context = context_var.reset
_INFO = logging.INFO
_ERROR = logging.ERROR
_new = object.__new__  # a RequestContext without its __init__, as enter() makes it
_MAX_SPELLINGS = 1 << 10  # X-Request-ID has 10 letters: 1024 spellings, ~80 kB


class _AnyCase:
    """``key in`` it: whether ``key`` is ``name`` in any case, for a name with more
    spellings than are worth listing."""

    __slots__ = ("name",)

    def __init__(self, name: bytes) -> None:
        self.name = name

    def __contains__(self, key: object) -> bool:
        lower = getattr(key, "lower", None)
        return lower is not None and lower() == self.name


def _spellings(name: bytes) -> Container[object]:
    """Every spelling of the (lower-case) header ``name`` in upper and lower case, so
    that a response's header names are matched by one set lookup each, without making
    a lower-case copy of each."""
    spellings = [b""]
    for char in name:
        cases = {bytes([char]), bytes([char]).upper()}
        if len(spellings) * len(cases) > _MAX_SPELLINGS:
            return _AnyCase(name)
        spellings = [start + case for start in spellings for case in cases]
    return frozenset(spellings)


def _first_values(headers: Iterable[Any], name: bytes, trace_name: bytes) -> tuple[Any, Any]:
    """The first values of headers ``name`` and ``trace_name``, compared one by one
    (for header names that cannot be hashed, which no server sends)."""
    incoming = trace = None
    for key, value in headers:
        if key == name:
            if incoming is None:
                incoming = value
        elif key == trace_name and trace is None:
            trace = value
    return incoming, trace


class RequestObserver(Chained, metaclass=LoudStartup):
    """Request ids, one request record per request, DynamoDB cost, OpenTelemetry.

    Options (checked here; a mistake raises :class:`~lift_asgi.errors.ConfigurationError`):

    - ``header`` (``"X-Request-ID"``): the request id's header, read and echoed.
    - ``trust_header`` (True): accept a valid client id; False always makes one.
    - ``generate``: a function returning a new id (default: 32 random hex digits); what it
      returns must itself be a valid id.
    - ``log_requests`` (True): the request record on ``logger`` (``"lift_asgi.request"``,
      or a :class:`logging.Logger`); off, or below the logger's level, it costs nothing.
    - ``quiet`` (``()``): path prefixes whose requests get an id but no record (health
      checks); not the stages' shared ``exempt`` on purpose: exempt paths keep records.
    - ``dynamodb_cost`` (True): count the request's DynamoDB calls and their capacity
      (and ask DynamoDB for ``ReturnConsumedCapacity`` to do so); ``otel=True`` counts
      them in any case, for its spans.
    - ``otel`` (False): spans and metrics through the OpenTelemetry API (the ``otel``
      extra); ``tracer_provider`` / ``meter_provider`` (default: the global ones);
      ``tenant_in_metrics`` (False): add the tenant id to metric attributes (one series
      per tenant: mind the cardinality).
    - ``router``: where route templates come from (default: found as the rate limiter
      finds them, from the wrapped app).
    """

    __slots__ = (
        "_counting",
        "_generate",
        "_header",
        "_header_text",
        "_incoming",
        "_log",
        "_logger",
        "_quiet",
        "_route",
        "_spellings",
        "_telemetry",
        "_wanted",
    )

    def __init__(
        self,
        app: ASGIApp,
        *,
        header: str = "X-Request-ID",
        trust_header: bool = True,
        generate: Callable[[], str] | None = None,
        log_requests: bool = True,
        logger: str | logging.Logger = "lift_asgi.request",
        quiet: str | Iterable[str] = (),
        dynamodb_cost: bool = True,
        otel: bool = False,
        tracer_provider: Any = None,
        meter_provider: Any = None,
        tenant_in_metrics: bool = False,
        router: Any = None,
    ) -> None:
        self.app = app
        self._header = header_name("header", header)
        self._header_text = header
        self._spellings = _spellings(self._header)
        for option, value in (
            ("trust_header", trust_header),
            ("log_requests", log_requests),
            ("dynamodb_cost", dynamodb_cost),
            ("otel", otel),
            ("tenant_in_metrics", tenant_in_metrics),
        ):
            if not isinstance(value, bool):
                raise ConfigurationError(option, "True or False")
        # the header a client's id is taken from: none when it is not trusted
        self._incoming = self._header if trust_header else None
        # the headers read from a request: that one, and X-Amzn-Trace-Id unless it is
        # the id's own header (read as the id's, then, never as the trace's)
        wanted = {self._header} if trust_header else set()
        if self._header != _TRACE_HEADER:
            wanted.add(_TRACE_HEADER)
        self._wanted = frozenset(wanted)
        if generate is None:
            pass  # new_request_id's ids, taken by _ids without its call
        elif not callable(generate):
            raise ConfigurationError("generate", "a function returning a new request id")
        else:
            sample = generate()
            if not isinstance(sample, str) or not valid_request_id(sample):
                raise ConfigurationError(
                    "generate", f"returned {sample!r}: 1..128 characters of [A-Za-z0-9._:-]"
                )
        self._generate: Callable[[], str] | None = generate
        if isinstance(logger, str):
            logger = logging.getLogger(logger)
        elif not isinstance(logger, logging.Logger):
            raise ConfigurationError("logger", "a logger name or a logging.Logger")
        self._logger = logger
        self._log = log_requests
        self._quiet = compile_prefixes("quiet", quiet)
        self._telemetry: Any = None
        if otel:
            from lift_asgi.observe.otel import Telemetry

            self._telemetry = Telemetry(
                tracer_provider=tracer_provider,
                meter_provider=meter_provider,
                tenant_in_metrics=tenant_in_metrics,
            )
        elif tracer_provider is not None or meter_provider is not None or tenant_in_metrics:
            raise ConfigurationError("otel", "tracer_provider and the like need otel=True")
        self._route = RouteTable(app, router)
        self._counting = dynamodb_cost or self._telemetry is not None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "websocket":
                await self._websocket(scope, receive, send)
                return
            if scope["type"] == "lifespan":
                enter(scope, OBSERVE)
            await self._next(scope, receive, send)
            return
        start = _clock()
        ctx: RequestContext | None = scope.get(SCOPE_KEY)
        if ctx is None:  # enter(scope, OBSERVE) without its call (~450 instructions)
            ctx = scope[SCOPE_KEY] = _new(RequestContext)
            ctx.stages = [OBSERVE]
            ctx.idempotency = None  # as enter() sets it
            exposed = False  # a new context: no outer stage can have exposed it
        else:  # enter's step for an existing context, uncalled
            ctx.stages.append(OBSERVE)
            exposed = _get_context() is ctx
        ids = self._ids(scope, ctx, self._counting)
        status: int | None = None

        def send_with_id(
            message: Message,
            send: Send = send,
            echoed: tuple[bytes, bytes] = (self._header, ids.request_id.encode("ascii")),
            spellings: Container[object] = self._spellings,
        ) -> Awaitable[None]:
            # A plain function handing back send's own awaitable: no coroutine per message.
            # What it reads is bound as defaults, not closed over: a cell fewer each (the
            # app calls it with the message alone); only the status it writes is a cell.
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = message.get("headers", ())
                if type(headers) is not list and type(headers) is not tuple:
                    headers = list(headers)  # any iterable (ASGI): read once, kept
                try:
                    for key, _ in headers:
                        if key in spellings:  # the app set its own id: ours replaces it
                            headers = [h for h in headers if h[0].lower() != echoed[0]]
                            break
                except TypeError:  # a name that cannot be hashed: compared one by one
                    headers = [h for h in headers if h[0].lower() != echoed[0]]
                message["headers"] = [*headers, echoed]
            return send(message)

        log = self._log
        if log and self._quiet and under(route_path(scope), self._quiet):
            log = False
        # The route is matched only when a record is written, with the root path the app
        # got (a Mount inside rewrites it; the path it leaves): kept, not a scope copy.
        root = scope.get("root_path") if log else None
        # None without OpenTelemetry (a Telemetry is always true)
        span = self._telemetry and self._telemetry.request_started(scope, self._route(scope))
        token = None if exposed else _set_context(ctx)  # None: an outer stage did
        error: BaseException | None = None
        try:
            await self._next(scope, receive, send_with_id)
        except BaseException as exc:
            error = exc
            if status is None and isinstance(exc, Exception):
                # The client may be gone: the app's error is the one to raise, not ours.
                with contextlib.suppress(Exception):
                    await send_problem(send_with_id, LiftError())
            raise
        finally:
            if token is not None:
                _reset_context(token)
            # One level check, at the record's own level: INFO, or ERROR for a 5xx and
            # for no answer at all (a logger set to WARNING still gets those).
            if log:
                log = self._logger.isEnabledFor(
                    _INFO if status is not None and status < 500 else _ERROR
                )
            if log or span:
                seen = {**scope, "root_path": root} if log else None
                self._finish(scope, ids, ctx, seen, status, start, error, span)

    def _finish(
        self,
        scope: Scope,
        ids: RequestIds,
        ctx: RequestContext,
        seen: Scope | None,
        status: int | None,
        start: float,
        error: BaseException | None,
        span: Any,
    ) -> None:
        """The request's record (when ``seen``, the scope with the root path the app got,
        is given) and the end of its span (when one)."""
        seconds = _clock() - start
        telemetry = self._telemetry
        ids = with_context(ids, ctx)  # for the tenant (ctx.ids has no context: no cycle)
        cost: RequestCost | None = ctx.cost
        if cost is None and self._counting:  # no DynamoDB call: a record of zeros
            cost = ctx.cost = RequestCost(telemetry=telemetry)
        fields = request_fields(
            ids,
            scope["method"],
            self._route(seen) if seen is not None else None,  # a span has its own
            status,
            seconds,
            ctx.rate_limit,
            ctx.commit,
            cost,
            error,
        )
        if span is not None:
            telemetry.request_ended(span, ids, fields, cost)
        if seen is not None:
            self._record(ids, fields)

    def _ids(self, scope: Scope, ctx: RequestContext, counting: bool) -> RequestIds:
        """The request's ids (step 1 of the module docs), put where handlers find them."""
        # The first of repeated headers, as the tenant resolvers read theirs: a proxy
        # that appends its own X-Request-ID after the client's does not replace it.
        # One set lookup per header finds either of the two read here.
        wanted = self._wanted
        incoming: bytes | None = None
        trace: bytes | None = None
        try:
            for key, value in scope["headers"]:
                if key in wanted:
                    if key == self._incoming:
                        if incoming is None:
                            incoming = value
                    elif trace is None:
                        trace = value
        except TypeError:  # a name that cannot be hashed: compared one by one
            incoming, trace = _first_values(scope["headers"], self._header, _TRACE_HEADER)
            if self._incoming is None:  # not trusted
                incoming = None
        request_id: str | None = None
        if incoming is not None:
            text = incoming.decode("latin-1")
            if valid_request_id(text):
                request_id = text
        lambda_id = trace_id = None
        if trace is not None or "aws.context" in scope:
            lambda_id, trace_id = lambda_ids(scope, trace)
        if request_id is None:
            if lambda_id is not None:
                request_id = lambda_id
            elif self._generate is None:  # new_request_id(), uncalled (~500 instructions)
                request_id = next(ids_module.generated)
            else:
                request_id = self._generate()
        ctx.request_id = request_id
        state = scope.get("state")  # as Request.state makes it
        if state is None:
            scope["state"] = {"request_id": request_id}
        else:
            state["request_id"] = request_id
        # without the context, which holds them (see RequestContext.ids)
        ids = ctx.ids = make_ids(
            RequestIds, (request_id, lambda_id, trace_id, None, counting, self._telemetry)
        )
        return ids

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A WebSocket gets its id as a request does: in the handshake's answer (the
        ``websocket.accept`` headers, or the denial response of the ASGI extension), in
        ``websocket.state.request_id`` and :func:`current_request_id` for the whole
        connection, and on its log records. Its DynamoDB calls are not counted (a
        connection is no request) and it writes no request record."""
        ctx = enter(scope, OBSERVE)
        ids = self._ids(scope, ctx, False)
        name = self._header
        echoed = (name, ids.request_id.encode("ascii"))
        # headers on websocket.accept came with ASGI 2.1; the denial response is an
        # extension the server offers only when it supports it
        spec = str(scope.get("asgi", {}).get("spec_version", "2.0")).split(".")
        on_accept = tuple(int(p) if p.isdigit() else 0 for p in spec[:2]) >= (2, 1)

        def send_with_id(message: Message) -> Awaitable[None]:
            kind = message["type"]
            if (
                kind == "websocket.accept" and on_accept
            ) or kind == "websocket.http.response.start":
                headers = [h for h in message.get("headers") or () if h[0].lower() != name]
                message["headers"] = [*headers, echoed]
            return send(message)

        token = _set_context(ctx) if _get_context() is not ctx else None
        try:
            await self._next(scope, receive, send_with_id)
        finally:
            if token is not None:
                _reset_context(token)

    def _record(self, ids: RequestIds, fields: dict[str, Any]) -> None:
        status = fields["status"]
        level = logging.ERROR if status is None or status >= 500 else logging.INFO
        logger = self._logger  # enabled for ``level``: __call__ checked just before
        # makeRecord + handle is what logger.log does, without walking the stack for the
        # caller's file and line: always this line, so not worth a third of the cost.
        record = logger.makeRecord(
            logger.name,
            level,
            __file__,
            0,
            "%s %s %s %.1fms",
            (fields["method"], fields["route"], status, fields["duration_ms"]),
            None,
            extra={"request_id": ids.request_id, "tenant": ids.tenant, RECORD_ATTRIBUTE: fields},
        )
        logger.handle(record)
