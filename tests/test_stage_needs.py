"""A stage's need of another outside it is one public ``Need``: the installer refuses
from it, the stage checks it at lifespan startup or on its first requests, and both say
the same option."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from starlette.types import Message, Receive, Scope, Send

from lift_asgi.dynamo import UnitOfWorkMiddleware
from lift_asgi.errors import ConfigurationError
from lift_asgi.ratelimit import RateLimitMiddleware
from lift_asgi.stages import RATE_LIMIT, TENANT, UNIT_OF_WORK, Need, enter


async def _app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        await receive()
        await send({"type": "lifespan.startup.complete"})
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def _uow(**options: Any) -> UnitOfWorkMiddleware:
    return UnitOfWorkMiddleware(_app, table="app-data", endpoint="http://127.0.0.1:9", **options)


@pytest.mark.parametrize(
    ("build", "by", "option"),
    [
        (lambda: RateLimitMiddleware(_app, limit="1/minute", key="tenant"), RATE_LIMIT, "key"),
        (lambda: RateLimitMiddleware(_app, limit="1/minute", key="user"), RATE_LIMIT, "key"),
        (
            lambda: RateLimitMiddleware(_app, limit={"pro": "9/minute", "default": "1/minute"}),
            RATE_LIMIT,
            "limit",
        ),
        (_uow, UNIT_OF_WORK, "tenant_from"),
    ],
)
def test_a_stage_that_needs_the_tenant_stage_says_so_in_need(
    build: Any, by: str, option: str
) -> None:
    need = build().need
    assert isinstance(need, Need)
    assert (need.by, need.needed, need.option, need.met) == (by, TENANT, option, False)
    error = need.install_error()
    assert isinstance(error, ConfigurationError) and "tenant={...}" in str(error)


def test_a_stage_that_needs_nothing_has_no_need() -> None:
    assert RateLimitMiddleware(_app, limit="1/minute", key="ip").need is None
    assert _uow(tenant_from=lambda scope: "acme").need is None


async def _lifespan(app: Any, outer: str | None) -> Message:
    sent: list[Message] = []
    scope: dict[str, Any] = {"type": "lifespan"}
    if outer is not None:
        enter(scope, outer)

    async def receive() -> Message:
        return {"type": "lifespan.startup"}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent[0]


async def _request(app: Any, outer: str | None) -> Message:
    sent: list[Message] = []
    scope: dict[str, Any] = {
        "type": "http",
        "method": "GET",
        "path": "/x",
        "headers": [],
        "client": ("127.0.0.1", 1),
    }
    if outer is not None:
        enter(scope, outer).tenant = None

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent[0]


@pytest.mark.parametrize(
    "build", [lambda: RateLimitMiddleware(_app, limit="5/minute", key="tenant"), _uow]
)
async def test_the_need_fails_the_startup_or_500s_until_met_then_stays_met(
    build: Any, caplog: pytest.LogCaptureFixture
) -> None:
    app = build()
    need = app.need
    with caplog.at_level(logging.ERROR):
        failed = await _lifespan(app, None)
    assert failed["type"] == "lifespan.startup.failed"
    assert f"ConfigurationError: {need.option}: " in failed["message"]
    assert not need.met
    refused = await _request(app, None)  # no lifespan checked it: each request asks
    assert refused["status"] == 500
    assert not need.met
    assert (await _lifespan(app, TENANT))["type"] == "lifespan.startup.complete"
    assert need.met
    fresh = build()
    assert (await _request(fresh, TENANT))["status"] in (200, 401)  # the need passed
    assert fresh.need.met
