"""UnitOfWorkMiddleware: one tenant-scoped unit of work per HTTP request, committed when
the response is a success.

::

    app.add_middleware(UnitOfWorkMiddleware, table="saas-data")   # inside TenantMiddleware

    @app.post("/projects", status_code=201)
    async def create(body: NewProject, uow: Annotated[UnitOfWork, Depends(get_uow)]):
        uow.put({"pk": "projects", "sk": body.id, "name": body.name, "version": 1},
                if_absent=True)
        uow.update(("stats", "counters"), add={"projects": 1})
        return {...}                  # both writes commit atomically, or neither does

The middleware holds the ``http.response.start`` message the app sends. If its status
is below 400 it commits first and forwards the message only when the commit succeeded;
otherwise it sends a problem+json response in its place (409 for a failed condition,
503 with ``Retry-After`` when DynamoDB stayed throttled or unavailable, 500 for anything
else) and drops the app's body. A status of 400 or more, or an exception, discards the
buffer. Body messages pass through untouched, so streaming and file responses stream.

A :class:`~lift_asgi.errors.LiftError` the app raises (``get_or_404``, ``Unauthorized``,
a missing table, DynamoDB unavailable) becomes its problem+json response however the
app is wired: a Starlette or FastAPI app wrapped directly gets the suite's exception
handler for ``LiftError`` when it has none (its own ``ServerErrorMiddleware`` would
otherwise send a plain 500 before the error reached this middleware), and any other ASGI
app's error is caught here.

Stage contract (:mod:`lift_asgi.stages`): the tenant comes from the tenant stage outside
(``context(scope).tenant``) unless ``tenant_from`` is given; without either, lifespan
startup fails with a :class:`~lift_asgi.errors.ConfigurationError` (and, when the server
runs no lifespan, each request is a logged 500 naming the option). The unit of work is
``context(scope).uow`` (what ``current_uow()`` returns until the middleware returns) and
the commit's outcome ``context(scope).commit``.

A request the idempotency stage marked (``context(scope).idempotency``) is handled whole:
the key is claimed before the app runs, the response is held until its body is complete,
and the record's completion commits in the same call as the app's writes (see
:mod:`lift_asgi.dynamo.keyed` and :mod:`lift_asgi.idempotency`).

``lifespan`` passes through; when the server shuts down, the transport the middleware
opened is closed. ``websocket`` passes through without a unit of work.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from functools import cache
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lift_asgi._chain import Chained
from lift_asgi._startup import LoudStartup
from lift_asgi.dynamo.client import DynamoTable
from lift_asgi.dynamo.keyed import commit_answer, run_keyed
from lift_asgi.dynamo.tables import TableSpec
from lift_asgi.dynamo.uow import UnitOfWork
from lift_asgi.errors import (
    ConfigurationError,
    LiftError,
    Unauthorized,
    send_problem,
)
from lift_asgi.exception_handlers import problem_exception_handler
from lift_asgi.stages import (
    SCOPE_KEY,
    TENANT,
    UNIT_OF_WORK,
    Need,
    RequestContext,
    context,
    context_var,
    current_context,
    enter,
)

__all__ = ["UnitOfWorkMiddleware", "current_uow", "get_uow"]

log = logging.getLogger("lift_asgi.dynamo")

_new = object.__new__

TenantGetter = Callable[[Scope], "str | None"]

# current_uow() reads the request context's uow through its ContextVar, set here unless
# an outer stage did (methods bound once: ~1k instructions less than looked up per request)
_get_context, _set_context, _reset_context = context_var.get, context_var.set, context_var.reset


@cache
def _table_options() -> frozenset[str]:
    """The options :class:`DynamoTable` takes besides the table itself."""
    parameters = inspect.signature(DynamoTable.__init__).parameters
    return frozenset(name for name in parameters if name not in ("self", "table"))


async def _dropped(message: Message) -> None:
    """What sending a message of a response replaced by a problem does: nothing."""


class UnitOfWorkMiddleware(Chained, metaclass=LoudStartup):
    """One :class:`UnitOfWork` per HTTP request, scoped to the request's tenant.

    ``table`` (required): a table name, a :class:`~lift_asgi.dynamo.tables.TableSpec`,
    or a ready :class:`~lift_asgi.dynamo.client.DynamoTable` (then no other table
    option may be given). Every other keyword is passed to :class:`DynamoTable`
    (``transport``, ``client``, ``endpoint``, ``region``, ``timeout``, ``retry``, ...;
    see its docstring), so a mistake there names its option.

    ``tenant_from``: a function of the ASGI scope returning the tenant id, for apps
    without :class:`~lift_asgi.tenancy.TenantMiddleware` (default: the tenant the tenant
    stage put in ``context(scope).tenant``).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        table: str | TableSpec | DynamoTable | None = None,
        tenant_from: TenantGetter | None = None,
        **table_options: Any,
    ) -> None:
        self.app = app
        if table is None or table == "":
            raise ConfigurationError("table", "the DynamoDB table (name or TableSpec) is required")
        if isinstance(table, DynamoTable):
            if table_options:
                raise ConfigurationError(
                    sorted(table_options)[0],
                    "configure the DynamoTable you pass, not the middleware",
                )
            self.table = table
        else:
            unknown = sorted(set(table_options) - _table_options())
            if unknown:
                raise ConfigurationError(
                    unknown[0],
                    "is not an option of UnitOfWorkMiddleware (table, tenant_from) nor of "
                    f"DynamoTable ({', '.join(sorted(_table_options()))})",
                )
            self.table = DynamoTable(table, **table_options)
        if tenant_from is not None and not callable(tenant_from):
            raise ConfigurationError("tenant_from", "must be a function of the ASGI scope")
        self._tenant_from = tenant_from
        # Without tenant_from the tenant stage must run outside: checked at lifespan
        # startup, else on requests until it passes (_checked: passed, or not needed).
        self.need: Need | None = None
        if tenant_from is None:
            self.need = Need(
                UNIT_OF_WORK,
                TENANT,
                "tenant_from",
                log=log,
                install_option="tenant",
                install_message="the unit of work is scoped to the tenant: configure "
                "tenant={...} (or unit_of_work={'tenant_from': ...})",
            )
        self._checked = self.need is None
        _answer_lift_errors(app)

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
            ctx = enter(scope, UNIT_OF_WORK)
            exposed = False  # a new context: no outer stage can have exposed it
        else:  # enter(scope, UNIT_OF_WORK) without its call (~450 instructions)
            ctx.stages.append(UNIT_OF_WORK)
            # current_uow() reads the context through the ContextVar: set by an outer
            # stage (tenant, observer) or not (a rate limiter or idempotency stage alone)
            exposed = _get_context() is ctx
        tenant_from = self._tenant_from
        if tenant_from is None:
            if not self._checked:
                need = self.need
                if need is not None and not await need.request(scope, send):
                    return
                self._checked = True
            tenant = ctx.tenant
            tenant_id = tenant.id if tenant is not None else None
        else:
            tenant_id = tenant_from(scope)
        # UnitOfWork(self.table, tenant_id) without its __init__ frame (~800 instructions):
        # __init__ sets these three, the rest are class-level defaults (a test keeps them equal)
        uow = ctx.uow = _new(UnitOfWork)
        uow.table = self.table
        uow.tenant_id = tenant_id
        uow._ops = None
        state = scope.get("state")
        if state is None:
            scope["state"] = {"uow": uow}
        else:
            state["uow"] = uow
        reset = None if exposed else _set_context(ctx)
        try:
            request = ctx.idempotency
            if request is not None and tenant_id is not None:
                await run_keyed(self._next, request, ctx, uow, scope, receive, send)
                return
            # The app with the start message held until the commit answered (written
            # here, not in a method of its own: one coroutine frame less per request).
            forward: Send | None = None  # where messages go once the start was handled

            def send_committing(message: Message) -> Awaitable[None]:
                # A plain function handing back send's own awaitable (a coroutine only to
                # commit): nothing buffered costs no coroutine per message.
                nonlocal forward
                if forward is not None:
                    return forward(message)
                if message["type"] == "http.response.start":
                    forward = send
                    if message["status"] >= 400:
                        ctx.commit = "discarded" if uow.discard() else "none"
                    elif uow._ops:

                        async def commit_then_send(start: Message) -> None:
                            nonlocal forward
                            error = await commit_answer(uow, ctx)
                            if error is not None:
                                forward = _dropped
                                await send_problem(send, error)
                                return
                            await send(start)

                        return commit_then_send(message)
                    else:
                        ctx.commit = "none"
                return send(message)

            try:
                await self._next(scope, receive, send_committing)
            except LiftError as error:
                if forward is not None:
                    raise  # after the start: what is buffered now is the finally's leftover
                if uow.discard():
                    ctx.commit = "discarded"
                log.debug("%s raised before responding: %s", scope.get("path"), error.detail)
                await send_problem(send, error)
            except BaseException:
                # before the start the buffer is the response's, discarded with it; after
                # it (a BackgroundTask that wrote, then raised) it is the leftover the
                # finally logs, as when nothing raised
                if forward is None and uow.discard():
                    ctx.commit = "discarded"
                raise
        finally:
            if uow._ops is None:
                uow._closed = True
            else:
                uow._end()
            if reset is not None:
                _reset_context(reset)

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        enter(scope, UNIT_OF_WORK)
        need = self.need
        if need is not None:
            if not await need.startup(scope, receive, send):
                return
            self._checked = True
        shutting_down = False
        closed = False

        async def close() -> None:
            nonlocal closed
            if not closed:
                closed = True
                try:
                    await self.table.close()
                except Exception:
                    log.exception("closing the DynamoDB transport failed")

        async def receive_watching() -> Message:
            nonlocal shutting_down
            message = await receive()
            if message["type"] == "lifespan.shutdown":
                shutting_down = True
            return message

        async def send_closing(message: Message) -> None:
            if message["type"] in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
                await close()
            await send(message)

        try:
            await self._next(scope, receive_watching, send_closing)
        finally:
            if shutting_down:
                await close()


def _answer_lift_errors(app: ASGIApp) -> None:
    """Give a wrapped Starlette/FastAPI app the suite's handler for LiftError when it has
    none: its ServerErrorMiddleware would answer a plain-text 500 before re-raising, so
    catching the error here would come too late."""
    if not isinstance(app, Starlette) or LiftError in app.exception_handlers:
        return
    if app.middleware_stack is not None:
        log.warning(
            "UnitOfWorkMiddleware wraps a Starlette app that already started; give it "
            "exception_handlers=PROBLEM_HANDLERS so LiftErrors become problem responses"
        )
        return
    app.exception_handlers[LiftError] = problem_exception_handler


def current_uow() -> UnitOfWork:
    """The unit of work of the request being handled.

    Raises ``RuntimeError`` outside a request handled by :class:`UnitOfWorkMiddleware`,
    and once the middleware returned (its unit of work has ended).
    """
    ctx = current_context()
    uow: UnitOfWork | None = ctx.uow if ctx is not None else None
    if uow is None:
        raise RuntimeError("no unit of work: is UnitOfWorkMiddleware installed on this app?")
    if uow._closed:
        raise RuntimeError(
            "this request's unit of work has ended (the request is over): a task that "
            "outlives it needs a unit of work of its own (table.unit_of_work(tenant_id))"
        )
    return uow


def get_uow(request: Request) -> UnitOfWork:
    """FastAPI dependency: ``uow: Annotated[UnitOfWork, Depends(get_uow)]``.

    Raises :class:`~lift_asgi.errors.Unauthorized` (401) when the request has no tenant;
    a tenant-less route reaches the table only through ``request.state.uow.unscoped()``.
    """
    uow: UnitOfWork | None = context(request.scope).uow
    if uow is None:
        raise RuntimeError("no unit of work: is UnitOfWorkMiddleware installed on this app?")
    if uow.tenant_id is None:
        raise Unauthorized("This request has no tenant, so it has no tenant-scoped data access.")
    return uow
