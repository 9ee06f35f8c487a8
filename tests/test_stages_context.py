"""The stage contract's context as enter() makes it without RequestContext.__init__."""

from __future__ import annotations

import dataclasses
from typing import Any

from lift_asgi.stages import (
    IDEMPOTENCY,
    SCOPE_KEY,
    TENANT,
    UNIT_OF_WORK,
    RequestContext,
    context,
    enter,
)

FIELDS = (
    "tenant",
    "uow",
    "request_id",
    "rate_limit",
    "commit",
    "cost",
    "ids",
    "idempotency",
    "response_headers",
)


def _values(ctx: RequestContext) -> dict[str, Any]:
    return {name: getattr(ctx, name) for name in ("stages", *FIELDS, "extra")}


def test_enter_makes_the_context_the_constructor_makes() -> None:
    scope: dict[str, Any] = {"type": "http"}
    ctx = enter(scope, TENANT)
    assert type(ctx) is RequestContext and scope[SCOPE_KEY] is ctx
    assert _values(ctx) == _values(RequestContext([TENANT]))
    assert _values(RequestContext()) == {**_values(ctx), "stages": []}
    assert [f.name for f in dataclasses.fields(ctx)] == ["stages", *FIELDS, "_extra"]
    assert repr(ctx).startswith("RequestContext(stages=['tenant'], tenant=None")


def test_inner_stages_append_to_the_same_context_and_contexts_share_nothing() -> None:
    first: dict[str, Any] = {}
    second: dict[str, Any] = {}
    ctx = enter(first, TENANT)
    assert enter(first, IDEMPOTENCY) is ctx is context(first)
    other = enter(second, UNIT_OF_WORK)
    ctx.commit = "committed"
    ctx.extra["k"] = 1
    assert ctx.stages == [TENANT, IDEMPOTENCY] and other.stages == [UNIT_OF_WORK]
    assert other.commit is None and other.extra == {}
    assert RequestContext.commit is None  # a stage's value stays on its own context


async def test_the_tenant_stage_opens_the_context_enter_opens() -> None:
    """TenantMiddleware's fast path makes the context inline (no enter() call): the same
    fields as enter(), apart from what the stage itself sets."""
    from lift_asgi.tenancy import HeaderResolver, TenantMiddleware

    seen: list[RequestContext] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope[SCOPE_KEY])
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: Any) -> None:
        pass

    middleware = TenantMiddleware(app, resolvers=[HeaderResolver()])
    assert middleware._one is not None  # the fast path serves this configuration
    scope = {"type": "http", "path": "/", "headers": [(b"x-tenant-id", b"acme")]}
    await middleware(scope, receive, send)
    (ctx,) = seen
    # the same instance attributes too (idempotency is one: read on every request)
    assert vars(ctx).keys() == vars(enter({}, TENANT)).keys() | {"tenant", "response_headers"}
    expected = _values(enter({}, TENANT))
    got = _values(ctx)
    assert got.pop("tenant").id == "acme" and got.pop("response_headers") == []
    del expected["tenant"], expected["response_headers"]
    assert got == expected
