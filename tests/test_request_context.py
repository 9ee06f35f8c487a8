"""The request's one ContextVar (issue 10): ``current_tenant()``, ``current_uow()`` and
the observer's ids and cost read the request's :class:`RequestContext`, which the first
stage that exposes something sets and resets; what they answer is what three
ContextVars of their own answered (inside, outside, after, in tasks, nested requests,
WebSockets, lifespans, a stage alone)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from starlette.types import Message, Receive, Scope, Send

import lift_asgi
from lift_asgi.dynamo import UnitOfWorkMiddleware, current_uow
from lift_asgi.dynamo.tables import TableSpec
from lift_asgi.dynamo.transport import AiodynamoTransport
from lift_asgi.observe import current_cost, current_ids, current_request_id
from lift_asgi.observe.ids import with_context
from lift_asgi.ratelimit import RateLimitMiddleware
from lift_asgi.stages import context, current_context
from lift_asgi.tenancy import HeaderResolver, TenantMiddleware, current_tenant, require_tenant

pytestmark = pytest.mark.dynamodb


@pytest.fixture
async def transport(dynamodb_endpoint: str) -> AsyncIterator[AiodynamoTransport]:
    transport = AiodynamoTransport.static(dynamodb_endpoint)
    yield transport
    await transport.close()


def _scope(tenant: str | None = "acme", kind: str = "http") -> dict[str, Any]:
    headers = [(b"x-tenant", tenant.encode())] if tenant else []
    return {
        "type": kind,
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "method": "GET",
        "scheme": "http",
        "path": "/p",
        "raw_path": b"/p",
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "client": ("10.0.0.1", 1234),
        "server": ("test", 80),
    }


async def _receive() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


def _seen() -> dict[str, Any]:
    """What code far from the scope reads now."""
    try:
        uow: Any = current_uow()
    except RuntimeError:
        uow = None
    return {"tenant": current_tenant(), "uow": uow, "ids": current_ids()}


def _full(app: Any, table: TableSpec, transport: AiodynamoTransport) -> Any:
    return lift_asgi.install(
        app,
        observe={},
        tenant={"resolvers": [HeaderResolver(name="x-tenant")]},
        rate_limit={"limit": "1000/second", "key": "tenant", "storage": "memory://"},
        idempotency={},
        unit_of_work={"table": table.name, "transport": transport},
    )


def _outside() -> None:
    assert current_context() is None
    assert _seen() == {"tenant": None, "uow": None, "ids": None}
    assert current_request_id() is None and current_cost() is None


async def _ok(send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


async def test_the_full_stack_exposes_the_request_and_resets_it(
    dynamodb_table: TableSpec, transport: AiodynamoTransport
) -> None:
    seen: list[dict[str, Any]] = []
    late: list[dict[str, Any]] = []
    release = asyncio.Event()

    async def spawned() -> None:
        seen.append(_seen())  # while the request runs
        await release.wait()
        late.append({"tenant": current_tenant(), "ids": current_ids()})  # after it

    tasks: list[asyncio.Task[None]] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        ctx = context(scope)
        assert current_context() is ctx
        here = _seen()
        assert here["tenant"] is ctx.tenant is scope["state"]["tenant"] is require_tenant()
        assert here["uow"] is ctx.uow is scope["state"]["uow"]
        assert here["ids"] == with_context(ctx.ids, ctx) and here["ids"].context is ctx
        assert here["ids"].request_id == scope["state"]["request_id"] == ctx.ids.request_id
        assert here["ids"].tenant == "acme" and ctx.ids.context is None  # no cycle
        assert current_request_id() == ctx.request_id
        assert current_cost() is ctx.cost is not None
        seen.append(here)
        tasks.append(asyncio.create_task(spawned()))
        await asyncio.sleep(0)
        await _ok(send)

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    _outside()
    await _full(app, dynamodb_table, transport)(_scope(), _receive, send)
    assert sent[0]["status"] == 200
    _outside()
    release.set()
    await asyncio.gather(*tasks)
    assert seen[0] == seen[1]  # the task saw the request's values
    assert seen[0]["tenant"].id == "acme"
    # a task that outlives the request keeps its tenant and ids, as with the old ContextVars
    assert late == [{"tenant": seen[0]["tenant"], "ids": seen[0]["ids"]}]


async def test_an_exception_resets_it(
    dynamodb_table: TableSpec, transport: AiodynamoTransport
) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        assert current_tenant() is not None
        raise KeyError("boom")

    async def send(message: Message) -> None:
        pass

    with pytest.raises(KeyError):
        await _full(app, dynamodb_table, transport)(_scope(), _receive, send)
    _outside()


async def test_current_uow_ends_with_its_stage(
    dynamodb_table: TableSpec, transport: AiodynamoTransport
) -> None:
    """Read in a middleware between the tenant stage and the unit of work, after the unit
    of work returned, current_uow() raises (as its own reset ContextVar made it) while the
    tenant is still there."""
    seen: dict[str, Any] = {}

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen["inside"] = current_uow()
        await _ok(send)

    inner = UnitOfWorkMiddleware(app, table=dynamodb_table.name, transport=transport)

    async def between(scope: Scope, receive: Receive, send: Send) -> None:
        await inner(scope, receive, send)
        seen["after"] = _seen()
        with pytest.raises(RuntimeError, match="has ended"):  # not "is it installed?"
            current_uow()

    stack = TenantMiddleware(between, resolvers=[HeaderResolver(name="x-tenant")])

    async def send(message: Message) -> None:
        pass

    await stack(_scope(), _receive, send)
    assert seen["inside"].tenant_id == "acme"
    assert seen["after"]["uow"] is None and seen["after"]["tenant"].id == "acme"
    _outside()


async def test_a_unit_of_work_inside_a_stage_that_sets_nothing_sets_it(
    dynamodb_table: TableSpec, transport: AiodynamoTransport
) -> None:
    """The rate limiter makes the context and sets no ContextVar: the unit of work inside
    it does, and resets it."""
    seen: dict[str, Any] = {}

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen["uow"] = current_uow()
        seen["ctx"] = current_context()
        await _ok(send)

    uow = UnitOfWorkMiddleware(
        app, table=dynamodb_table.name, transport=transport, tenant_from=lambda scope: "acme"
    )
    stack = RateLimitMiddleware(uow, limit="1000/second", key="ip", storage="memory://")

    async def send(message: Message) -> None:
        pass

    scope = _scope(None)
    await stack(scope, _receive, send)
    assert seen["ctx"] is context(scope) and seen["uow"] is context(scope).uow
    assert context(scope).stages == ["rate_limit", "unit_of_work"]
    _outside()


async def test_stages_alone(dynamodb_table: TableSpec, transport: AiodynamoTransport) -> None:
    seen: list[dict[str, Any]] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(_seen())
        await _ok(send)

    async def send(message: Message) -> None:
        pass

    await TenantMiddleware(app, resolvers=[HeaderResolver(name="x-tenant")])(
        _scope(), _receive, send
    )
    _outside()
    await UnitOfWorkMiddleware(
        app, table=dynamodb_table.name, transport=transport, tenant_from=lambda scope: "t2"
    )(_scope(), _receive, send)
    _outside()
    await lift_asgi.install(app, observe={})(_scope(), _receive, send)
    _outside()
    tenant, uow, ids = seen
    assert tenant["tenant"].id == "acme" and tenant["uow"] is None and tenant["ids"] is None
    assert uow["tenant"] is None and uow["uow"].tenant_id == "t2" and uow["ids"] is None
    assert ids["tenant"] is None and ids["uow"] is None and ids["ids"].request_id


async def test_a_nested_request_sees_its_own_and_the_outer_one_gets_its_back(
    dynamodb_table: TableSpec, transport: AiodynamoTransport
) -> None:
    """A handler calling an app in process (a fresh scope, in its own task's context)."""
    seen: list[tuple[str, Any]] = []

    async def inner_app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(("inner", current_tenant().id))  # type: ignore[union-attr]
        await _ok(send)

    inner = lift_asgi.install(inner_app, tenant={"resolvers": [HeaderResolver(name="x-tenant")]})

    async def discard(message: Message) -> None:
        pass

    async def outer_app(scope: Scope, receive: Receive, send: Send) -> None:
        before = current_context()
        await inner(_scope("other"), _receive, discard)
        assert current_context() is before
        seen.append(("outer", current_tenant().id))  # type: ignore[union-attr]
        await _ok(send)

    await _full(outer_app, dynamodb_table, transport)(_scope(), _receive, discard)
    assert seen == [("inner", "other"), ("outer", "acme")]
    _outside()


async def test_a_websocket_exposes_tenant_and_ids_for_the_connection(
    dynamodb_table: TableSpec, transport: AiodynamoTransport
) -> None:
    seen: dict[str, Any] = {}

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "websocket"
        seen.update(_seen())
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close", "code": 1000})

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    async def receive() -> Message:
        return {"type": "websocket.connect"}

    await _full(app, dynamodb_table, transport)(_scope(kind="websocket"), receive, send)
    assert seen["tenant"].id == "acme" and seen["ids"].request_id
    assert seen["uow"] is None  # a WebSocket has no unit of work
    assert [m["type"] for m in sent] == ["websocket.accept", "websocket.close"]
    _outside()


async def test_a_lifespan_sets_no_request_context(
    dynamodb_table: TableSpec, transport: AiodynamoTransport
) -> None:
    seen: list[Any] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "lifespan"
        seen.append(current_context())
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return

    messages = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])
    sent: list[Message] = []

    async def receive() -> Message:
        return next(messages)

    async def send(message: Message) -> None:
        sent.append(message)

    scope: dict[str, Any] = {"type": "lifespan", "asgi": {"version": "3.0"}}
    await _full(app, dynamodb_table, transport)(scope, receive, send)
    assert seen == [None]
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert context(scope).stages == [
        "observe",
        "tenant",
        "rate_limit",
        "idempotency",
        "unit_of_work",
    ]
    _outside()
