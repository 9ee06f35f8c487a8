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
A :class:`~lift_asgi.errors.LiftError` the app raises before responding (``get_or_404``,
``Unauthorized``, ...) becomes its problem+json response.

``lifespan`` passes through; when the server shuts down, the transport the middleware
opened is closed. ``websocket`` passes through without a unit of work.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lift_asgi._context import uow_var
from lift_asgi.dynamo.client import DynamoTable, RetryPolicy
from lift_asgi.dynamo.tables import TableSpec
from lift_asgi.dynamo.transport import DynamoTransport
from lift_asgi.dynamo.uow import UnitOfWork
from lift_asgi.errors import (
    ConditionFailed,
    ConfigurationError,
    LiftError,
    Unauthorized,
    send_problem,
)

__all__ = ["UnitOfWorkMiddleware", "current_uow", "get_uow"]

log = logging.getLogger("lift_asgi.dynamo")

TenantGetter = Callable[[Scope], "str | None"]


class UnitOfWorkMiddleware:
    """One :class:`UnitOfWork` per HTTP request, scoped to the request's tenant.

    ``table`` (required): a table name, a :class:`~lift_asgi.dynamo.tables.TableSpec`,
    or a ready :class:`~lift_asgi.dynamo.client.DynamoTable` (then no other table
    option may be given). The other options are :class:`DynamoTable`'s (``transport``,
    ``client``, ``endpoint``, ``region``, ``tenant_attribute``, ``version_attribute``,
    ``cursor_secret``, ``timeout``, ``retry``, ``bulk_concurrency``, ``verify_table``)
    plus ``tenant_from``: a function of the ASGI scope returning the tenant id, for apps
    that do not use :class:`~lift_asgi.tenancy.TenantMiddleware` (default: the ``id`` of
    ``scope["state"]["tenant"]``).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        table: str | TableSpec | DynamoTable | None = None,
        transport: DynamoTransport | None = None,
        client: Any = None,
        endpoint: str | None = None,
        region: str | None = None,
        tenant_attribute: str = "_tenant",
        version_attribute: str = "version",
        cursor_secret: str | bytes | None = None,
        timeout: float = 5.0,
        retry: RetryPolicy | None = None,
        bulk_concurrency: int = 4,
        verify_table: bool = True,
        tenant_from: TenantGetter | None = None,
    ) -> None:
        self.app = app
        if table is None or table == "":
            raise ConfigurationError("table", "the DynamoDB table (name or TableSpec) is required")
        if isinstance(table, DynamoTable):
            given = {
                name
                for name, value, default in (
                    ("transport", transport, None),
                    ("client", client, None),
                    ("endpoint", endpoint, None),
                    ("region", region, None),
                    ("tenant_attribute", tenant_attribute, "_tenant"),
                    ("version_attribute", version_attribute, "version"),
                    ("cursor_secret", cursor_secret, None),
                    ("timeout", timeout, 5.0),
                    ("retry", retry, None),
                    ("bulk_concurrency", bulk_concurrency, 4),
                    ("verify_table", verify_table, True),
                )
                if value != default
            }
            if given:
                raise ConfigurationError(
                    sorted(given)[0], "configure the DynamoTable you pass, not the middleware"
                )
            self.table = table
        else:
            self.table = DynamoTable(
                table,
                transport=transport,
                client=client,
                endpoint=endpoint,
                region=region,
                tenant_attribute=tenant_attribute,
                version_attribute=version_attribute,
                cursor_secret=cursor_secret,
                timeout=timeout,
                retry=retry,
                bulk_concurrency=bulk_concurrency,
                verify_table=verify_table,
            )
        if tenant_from is not None and not callable(tenant_from):
            raise ConfigurationError("tenant_from", "must be a function of the ASGI scope")
        self._tenant_from = tenant_from

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope_type = scope["type"]
        if scope_type != "http":
            if scope_type == "lifespan":
                await self._lifespan(scope, receive, send)
            else:
                await self.app(scope, receive, send)
            return
        state = scope.get("state")
        if state is None:
            state = scope["state"] = {}
        if self._tenant_from is None:
            tenant = state.get("tenant")
            if tenant is not None and type(tenant) is not str:
                tenant = getattr(tenant, "id", None)
        else:
            tenant = self._tenant_from(scope)
        uow = UnitOfWork(self.table, tenant)
        state["uow"] = uow
        reset = uow_var.set(uow)
        started = False
        replaced = False

        async def send_committing(message: Message) -> None:
            nonlocal started, replaced
            if started:
                if not replaced:
                    await send(message)
                return
            if message["type"] == "http.response.start":
                started = True
                if message["status"] >= 400:
                    uow.discard()
                elif uow._ops:
                    error = await _commit(uow)
                    if error is not None:
                        replaced = True
                        await send_problem(send, error)
                        return
            await send(message)

        try:
            await self.app(scope, receive, send_committing)
        except LiftError as error:
            uow.discard()
            if started:
                raise
            log.debug("%s raised before responding: %s", scope.get("path"), error.detail)
            await send_problem(send, error)
        except BaseException:
            uow.discard()
            raise
        finally:
            if uow._ops is None:
                uow._closed = True
            else:
                uow._end()
            uow_var.reset(reset)

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
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
            await self.app(scope, receive_watching, send_closing)
        finally:
            if shutting_down:
                await close()


async def _commit(uow: UnitOfWork) -> LiftError | None:
    """Commit ``uow``; the error to answer with instead of the app's response, if any."""
    try:
        await uow.commit()
    except ConditionFailed as error:
        log.info("commit refused: %s", error.detail)
        return error
    except LiftError as error:
        log.warning("commit failed (%s): %s", error.status, error.detail)
        return error
    except Exception:
        log.exception("commit failed")
        return LiftError("The request could not be completed.")
    return None


def current_uow() -> UnitOfWork:
    """The unit of work of the request being handled.

    Raises ``RuntimeError`` outside a request handled by :class:`UnitOfWorkMiddleware`.
    """
    uow = uow_var.get()
    if uow is None:
        raise RuntimeError("no unit of work: is UnitOfWorkMiddleware installed on this app?")
    return uow


def get_uow(request: Request) -> UnitOfWork:
    """FastAPI dependency: ``uow: Annotated[UnitOfWork, Depends(get_uow)]``.

    Raises :class:`~lift_asgi.errors.Unauthorized` (401) when the request has no tenant;
    a tenant-less route reaches the table only through ``request.state.uow.unscoped()``.
    """
    state = request.scope.get("state") or {}
    uow: UnitOfWork | None = state.get("uow")
    if uow is None:
        raise RuntimeError("no unit of work: is UnitOfWorkMiddleware installed on this app?")
    if uow.tenant_id is None:
        raise Unauthorized("This request has no tenant, so it has no tenant-scoped data access.")
    return uow
