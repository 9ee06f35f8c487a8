"""A limiter keyed by tenant or user (or limited by plan) with no tenant stage outside it
is a loud configuration error, never a rule that silently limits nothing."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Message

from lift_asgi.ratelimit import RateLimitMiddleware, Rule
from lift_asgi.stages import RATE_LIMIT, TENANT, context

from .conftest import client_for, with_tenant

KEYS = [
    ({"limit": "2/minute", "key": "tenant"}, "key"),
    ({"limit": "2/minute", "key": "user"}, "key"),
    ({"limit": "2/minute", "key": ("tenant", "ip")}, "key"),
    ({"rules": [Rule("9/minute", key="ip"), Rule("2/minute", key=["ip", "user"])]}, "key"),
    ({"limit": {"pro": "9/minute", "default": "2/minute"}, "key": "ip"}, "limit"),
]


async def _ok(request: Any) -> PlainTextResponse:
    return PlainTextResponse("ok")


def _limiter(options: dict[str, Any]) -> RateLimitMiddleware:
    routes = [Route("/a", _ok), Route("/health", _ok)]
    return RateLimitMiddleware(Starlette(routes=routes), exempt=("/health",), **options)


async def _lifespan(app: ASGIApp) -> list[Message]:
    """Drive the lifespan's startup by hand, as uvicorn does."""
    sent: list[Message] = []
    messages = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]

    async def receive() -> Message:
        return messages.pop(0)

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
    await app(scope, receive, send)
    return sent


@pytest.mark.parametrize(("options", "option"), KEYS)
async def test_without_a_tenant_stage_the_lifespan_startup_fails(
    options: dict[str, Any], option: str, caplog: pytest.LogCaptureFixture
) -> None:
    sent = await _lifespan(_limiter(options))
    assert sent[0]["type"] == "lifespan.startup.failed"
    assert sent[0]["message"].startswith(f"ConfigurationError: {option}: RateLimitMiddleware")
    assert "TenantMiddleware" in sent[0]["message"]
    assert any(r.levelno == logging.ERROR for r in caplog.records)


@pytest.mark.parametrize(("options", "option"), KEYS)
async def test_with_a_tenant_stage_outside_the_lifespan_starts(
    options: dict[str, Any], option: str
) -> None:
    sent = await _lifespan(with_tenant(_limiter(options)))
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


@pytest.mark.parametrize(("options", "option"), KEYS)
async def test_without_a_lifespan_every_limited_request_is_a_500_naming_the_option(
    options: dict[str, Any], option: str, caplog: pytest.LogCaptureFixture
) -> None:
    limiter = _limiter(options)
    async with client_for(limiter) as http:  # httpx's ASGITransport runs no lifespan
        for _ in range(3):
            answer = await http.get("/a", headers={"x-tenant": "acme"})
            assert answer.status_code == 500
            assert answer.headers["content-type"] == "application/problem+json"
            body = answer.json()
            assert body["status"] == 500 and body["option"] == option
            assert "TenantMiddleware" in body["detail"]
        assert (await http.get("/health")).status_code == 200  # exempt: not limited anyway
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 3
    assert limiter.stats.admitted == 0


async def test_the_tenant_stage_inside_the_limiter_is_the_same_error() -> None:
    limiter = _limiter({"limit": "2/minute", "key": "tenant"})
    limiter.app = with_tenant(limiter.app)  # the tenant resolved only after the limiter
    async with client_for(limiter) as http:
        assert (await http.get("/a", headers={"x-tenant": "acme"})).status_code == 500
    assert (await _lifespan(limiter))[0]["type"] == "lifespan.startup.failed"


async def test_with_a_tenant_stage_outside_requests_are_limited_by_tenant() -> None:
    app = with_tenant(_limiter({"limit": "2/minute", "key": "tenant"}))
    async with client_for(app) as http:
        statuses = [(await http.get("/a", headers={"x-tenant": "acme"})).status_code for _ in "abc"]
        other = await http.get("/a", headers={"x-tenant": "globex"})
    assert statuses == [200, 200, 429] and other.status_code == 200


async def test_keys_that_need_no_tenant_need_no_tenant_stage() -> None:
    limiter = _limiter({"limit": "2/minute", "key": "ip"})
    assert (await _lifespan(limiter))[0]["type"] == "lifespan.startup.complete"
    seen: list[list[str]] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        seen.append(list(context(scope).stages))
        await PlainTextResponse("ok")(scope, receive, send)

    limiter.app = inner
    async with client_for(limiter) as http:
        assert (await http.get("/a")).status_code == 200
    assert seen == [[RATE_LIMIT]]


@pytest.mark.parametrize("fast", [True, False])  # the fast path, the general loop
@pytest.mark.parametrize("exempt", [(), ("/health",)])
@pytest.mark.parametrize("outer", [False, True])
async def test_the_limiter_adds_its_name_to_the_stages(
    fast: bool, exempt: Any, outer: bool
) -> None:
    """To the context a stage outside made, or to a new one when it is the first."""
    seen: list[list[str]] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        seen.append(list(context(scope).stages))
        await PlainTextResponse("ok")(scope, receive, send)

    limiter = RateLimitMiddleware(inner, limit="2/minute", key="ip", exempt=exempt)
    assert limiter._fast is not None  # exempt paths or not
    if not fast:
        limiter._fast = limiter._one = None
    async with client_for(with_tenant(limiter) if outer else limiter) as http:
        assert (await http.get("/a", headers={"x-tenant": "acme"})).status_code == 200
    assert seen == [[TENANT, RATE_LIMIT] if outer else [RATE_LIMIT]]


async def test_the_decision_is_reported_in_the_stage_contract() -> None:
    """Request records, spans and metrics read ``context(scope).rate_limit``."""
    seen: list[Any] = []

    def recording(app: ASGIApp) -> ASGIApp:
        async def wrapper(scope: Any, receive: Any, send: Any) -> None:
            await app(scope, receive, send)
            if scope["type"] == "http":
                seen.append(context(scope).rate_limit)

        return wrapper

    limiter = _limiter({"rules": [Rule("2/minute", key="tenant", name="per-tenant")]})
    async with client_for(recording(with_tenant(limiter))) as http:
        for _ in range(4):
            await http.get("/a", headers={"x-tenant": "acme"})
        await http.get("/health")
    outcomes = [dict(decision) if decision else None for decision in seen]
    assert outcomes == [
        {"outcome": "admitted", "rule": "per-tenant"},
        {"outcome": "admitted", "rule": "per-tenant"},
        # the second took the last unit: the key is known blocked, no store is asked
        {"outcome": "blocked", "rule": "per-tenant"},
        {"outcome": "blocked", "rule": "per-tenant"},
        None,  # exempt: no decision
    ]
