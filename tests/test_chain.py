"""How a stage calls the app inside it (lift_asgi._chain), and the tracker made without
its __init__ frame: the same calls and the same state as the plain spellings."""

from __future__ import annotations

import functools
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

import lift_asgi
from lift_asgi._chain import direct
from lift_asgi.dynamo import UnitOfWorkMiddleware
from lift_asgi.idempotency import IdempotencyMiddleware
from lift_asgi.observe import RequestObserver
from lift_asgi.ratelimit import RateLimitMiddleware
from lift_asgi.send_wrapper import ResponseTracker, response_tracker
from lift_asgi.tenancy import HeaderResolver, TenantMiddleware


class _App:
    def __init__(self, name: str) -> None:
        self.name = name
        self.calls: list[str] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.calls.append(self.name)
        await PlainTextResponse(self.name)(scope, receive, send)


class _SubApp(_App):
    pass


async def _function_app(scope: Scope, receive: Receive, send: Send) -> None:
    await PlainTextResponse("function")(scope, receive, send)


def test_an_object_with_a_python_call_is_called_through_its_bound_method() -> None:
    app = _App("a")
    called = direct(app)
    assert called == app.__call__
    assert called.__self__ is app  # type: ignore[attr-defined]
    sub = _SubApp("b")  # found on a base class, as app(...) finds it
    assert direct(sub).__func__ is _App.__call__  # type: ignore[attr-defined]


def test_anything_else_is_called_as_it_is() -> None:
    assert direct(_function_app) is _function_app
    partial = functools.partial(_function_app)
    assert direct(partial) is partial  # a __call__ written in C

    class Static:
        __call__ = staticmethod(_function_app)

    static = Static()
    assert direct(static) is static


def test_an_instance_attribute_named_call_is_ignored_as_app_call_ignores_it() -> None:
    app = _App("class")
    app.__call__ = _function_app  # type: ignore[method-assign]
    assert direct(app).__func__ is _App.__call__  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("cls", "options"),
    [
        (TenantMiddleware, {"resolvers": [HeaderResolver()]}),
        (RateLimitMiddleware, {"limit": "100/minute", "key": "ip", "storage": "memory://"}),
        (RequestObserver, {}),
    ],
)
async def test_setting_app_re_points_the_calls(cls: Any, options: dict[str, Any]) -> None:
    first, second = _App("first"), _App("second")
    middleware = cls(first, **options)
    assert middleware.app is first
    middleware.app = second  # as the installer does once Starlette built its stack
    assert middleware.app is second
    transport = httpx.ASGITransport(app=middleware)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.get("/", headers={"X-Tenant-ID": "acme"})
    assert response.text == "second"
    assert (first.calls, second.calls) == ([], ["second"])


def test_every_stage_keeps_its_app_where_the_installer_and_users_find_it() -> None:
    app = _App("inner")
    for middleware in (
        UnitOfWorkMiddleware(
            app, table="tasks", endpoint="http://127.0.0.1:1", cursor_secret="s" * 32
        ),
        IdempotencyMiddleware(app),
    ):
        assert middleware.app is app
        assert middleware._next == app.__call__


async def test_the_installed_stack_reaches_the_route_through_the_bound_calls() -> None:
    async def hello(request: Request) -> PlainTextResponse:
        return PlainTextResponse(request.state.tenant.id)

    app = Starlette(routes=[Route("/", hello)])
    lift_asgi.install(app, tenant={"resolvers": [HeaderResolver()]})
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.get("/", headers={"X-Tenant-ID": "acme"})
    assert (response.status_code, response.text) == (200, "acme")


def test_the_tracker_without_init_holds_what_the_class_call_holds() -> None:
    async def send(message: Any) -> None:
        return None

    scope: Scope = {"type": "http", "headers": []}
    headers = [(b"x", b"1")]
    made, called = response_tracker(scope, send, headers), ResponseTracker(scope, send, headers)
    assert type(made) is ResponseTracker
    for name in ResponseTracker.__slots__:
        assert getattr(made, name) == getattr(called, name), name
