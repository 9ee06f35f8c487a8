"""Under the tenant stage, the limiter hands its headers to the stage's send wrapper
(``RequestContext.response_headers``) instead of wrapping ``send`` itself; alone, or
outside a tenant stage, it wraps ``send``. Either way every response ends with the same
headers in the same place: after the app's own, on admitted responses, on a problem an
inner stage answers, on its own 429, on both of its request paths."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lift_asgi.errors import NotFound, ServiceUnavailable, send_problem
from lift_asgi.ratelimit import RateLimitMiddleware
from lift_asgi.stages import SCOPE_KEY
from lift_asgi.tenancy import HeaderResolver, TenantMiddleware

from .conftest import T0, Clock

_APP_HEADERS = [(b"content-type", b"text/plain"), (b"x-app", b"1")]
_LIMIT_NAMES = [
    b"x-ratelimit-limit",
    b"x-ratelimit-remaining",
    b"x-ratelimit-reset",
    b"ratelimit-policy",
    b"ratelimit",
]


async def _ok(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": list(_APP_HEADERS)})
    await send({"type": "http.response.body", "body": b"ok"})


async def _inner_503(scope: Scope, receive: Receive, send: Send) -> None:
    """An inner stage answering a problem itself, as the unit of work does for a failed
    commit."""
    await send_problem(send, ServiceUnavailable("The commit failed.", retry_after=1))


async def _raises(scope: Scope, receive: Receive, send: Send) -> None:
    """A handler raising a suite error before its response: the tenant stage answers."""
    raise NotFound("No such project.")


def _hide_offer(app: ASGIApp) -> ASGIApp:
    """Between the tenant stage and the limiter: takes the offered list away, so the
    limiter wraps ``send`` as it did before the list existed (the reference)."""

    async def hide(scope: Scope, receive: Receive, send: Send) -> None:
        scope[SCOPE_KEY].response_headers = None
        await app(scope, receive, send)

    return hide


def _tenant(app: ASGIApp) -> TenantMiddleware:
    return TenantMiddleware(app, resolvers=[HeaderResolver("x-tenant")])


def _limiter(app: ASGIApp, clock: Clock, general: bool, **options: Any) -> RateLimitMiddleware:
    options = {"limit": "2/minute", "key": "tenant", "clock": clock, **options}
    limiter = RateLimitMiddleware(app, **options)
    assert limiter._fast is not None
    if general:  # no fast path: the general loop serves the same rule
        limiter._fast = None
    limiter._checked, limiter._one = True, limiter._fast  # as after a lifespan startup
    return limiter


async def _call(app: ASGIApp, tenant: bytes | None = b"acme") -> list[Message]:
    sent: list[Message] = []
    headers = [(b"x-tenant", tenant)] if tenant else []
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/p",
        "headers": headers,
        "client": ("10.0.0.1", 1234),
    }

    async def send(message: Message) -> None:
        sent.append(message)

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    await app(scope, receive, send)
    return sent


def _names(message: Message) -> list[bytes]:
    return [name for name, _ in message["headers"]]


@pytest.mark.parametrize("general", [False, True])
@pytest.mark.parametrize("inner", [_ok, _inner_503, _raises])
async def test_under_the_tenant_stage_responses_are_as_with_a_wrapper(
    general: bool, inner: ASGIApp
) -> None:
    clock = Clock()
    offered = _tenant(_limiter(inner, clock, general))
    reference = _tenant(_hide_offer(_limiter(inner, clock, general)))
    for at in (0, 1, 2, 61):  # admitted, admitted (the last unit), 429, a new window
        clock.now = T0 + at
        expected = await _call(reference)
        assert await _call(offered) == expected
    clock.now = T0
    start = (await _call(_tenant(_limiter(inner, clock, general))))[0]
    if inner is _raises:  # answered outside the limiter: no stage inside added headers
        assert start["status"] == 404
        assert not set(_names(start)) & set(_LIMIT_NAMES)
    elif inner is _ok:
        assert start["headers"][:2] == _APP_HEADERS
        assert _names(start)[2:] == _LIMIT_NAMES
    else:
        assert start["status"] == 503
        assert _names(start)[-5:] == _LIMIT_NAMES


@pytest.mark.parametrize("general", [False, True])
async def test_under_the_tenant_stage_the_limiter_does_not_wrap_send(general: bool) -> None:
    seen: list[Send] = []

    def recording(app: ASGIApp) -> ASGIApp:
        async def record(scope: Scope, receive: Receive, send: Send) -> None:
            seen.append(send)
            await app(scope, receive, send)

        return record

    clock = Clock()
    sent = await _call(_tenant(recording(_limiter(recording(_ok), clock, general))))
    assert sent[0]["status"] == 200
    assert seen[0] is seen[1]
    # alone, the limiter wraps send
    seen.clear()
    await _call(recording(_limiter(recording(_ok), clock, general, key="ip")))
    assert seen[0] is not seen[1]


@pytest.mark.parametrize("general", [False, True])
@pytest.mark.parametrize("outside", [False, True])
async def test_alone_or_outside_a_tenant_stage_the_headers_follow_the_apps(
    general: bool, outside: bool
) -> None:
    clock = Clock()
    app: ASGIApp = _tenant(_ok) if outside else _ok
    limiter = _limiter(app, clock, general, key="ip")
    statuses = []
    for at in (0, 1, 2):
        clock.now = T0 + at
        start = (await _call(limiter))[0]
        statuses.append(start["status"])
        names = _names(start)
        assert names[-5:] == _LIMIT_NAMES
        if start["status"] == 200:
            assert start["headers"][:2] == _APP_HEADERS and len(names) == 7
    assert statuses == [200, 200, 429]
    # the headers carry the counts: the first admission leaves one unit, the second none
    clock.now = T0 + 61
    first = dict((await _call(limiter))[0]["headers"])
    assert first[b"x-ratelimit-remaining"] == b"1"


async def test_two_limiters_under_the_tenant_stage_keep_the_wrappers_order() -> None:
    clock = Clock()
    ip_options = {"key": "ip", "limit": "5/minute"}

    def stack(hide: bool) -> ASGIApp:
        inner = _limiter(_ok, clock, False)
        outer = _limiter(_hide_offer(inner) if hide else inner, clock, True, **ip_options)
        return _tenant(_hide_offer(outer) if hide else outer)

    offered, reference = stack(False), stack(True)
    for at in (0, 1, 2):
        clock.now = T0 + at
        expected = await _call(reference)
        assert await _call(offered) == expected
    clock.now = T0 + 61
    start = (await _call(stack(False)))[0]
    values = [value for name, value in start["headers"] if name == b"x-ratelimit-limit"]
    assert values == [b"2", b"5"]  # the inner limiter's first, as its wrapper added them
