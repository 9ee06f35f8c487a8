"""RateLimitMiddleware as users meet it, on the in-process ``memory://`` backend.

Both a bare Starlette app and a FastAPI app; the clock is injected and moved by hand.
DynamoDB behaviour (calls, concurrency, failures) is in test_dynamodb.py.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from limits.aio.storage import MemoryStorage as LimitsMemoryStorage
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Message, Scope

from lift_asgi.errors import ConfigurationError
from lift_asgi.ratelimit import (
    MemoryBackend,
    RateLimitMiddleware,
    Rule,
    api_key_digest,
)
from lift_asgi.tenancy import Tenant as RealTenant
from lift_asgi.tenancy import TenantMiddleware

from .conftest import T0, Clock, client_for, with_tenant

# --------------------------------------------------------------------------- the apps


async def _ok(request: Request) -> JSONResponse:
    return JSONResponse({"path": request.url.path})


def starlette_app(**options: Any) -> tuple[ASGIApp, RateLimitMiddleware]:
    inner = Starlette(
        routes=[
            Route("/health", _ok),
            Route("/projects", _ok, methods=["GET", "POST"]),
            Route("/projects/{id}", _ok),
            Route("/projects/{id}/tasks", _ok),
            Mount("/api", routes=[Route("/items/{item_id:int}", _ok)]),
            Route("/other", _ok),
        ]
    )
    middleware = RateLimitMiddleware(inner, **options)
    return with_tenant(middleware), middleware


def fastapi_app(**options: Any) -> tuple[ASGIApp, RateLimitMiddleware]:
    app = FastAPI()

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/projects")
    @app.post("/projects")
    async def projects() -> dict[str, str]:
        return {"path": "/projects"}

    @app.get("/projects/{id}")
    async def project(id: str) -> dict[str, str]:
        return {"id": id}

    @app.get("/projects/{id}/tasks")
    async def tasks(id: str) -> dict[str, str]:
        return {"id": id}

    @app.get("/api/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"item_id": item_id}

    @app.get("/other")
    async def other() -> dict[str, str]:
        return {"path": "/other"}

    app.add_middleware(RateLimitMiddleware, **options)
    built: list[RateLimitMiddleware] = []

    async def outer(scope: Scope, receive: Any, send: Any) -> None:
        await app(scope, receive, send)

    wrapped = with_tenant(outer)
    # Starlette builds its middleware stack on the first request; find ours then.

    def middleware() -> RateLimitMiddleware:
        if not built:
            node: Any = app.middleware_stack
            while not isinstance(node, RateLimitMiddleware):
                node = node.app
            built.append(node)
        return built[0]

    return wrapped, _LazyMiddleware(middleware)  # type: ignore[return-value]


class _LazyMiddleware:
    def __init__(self, find: Callable[[], RateLimitMiddleware]) -> None:
        self._find = find

    def __getattr__(self, name: str) -> Any:
        return getattr(self._find(), name)


APPS = pytest.mark.parametrize(
    "make_app", [starlette_app, fastapi_app], ids=["starlette", "fastapi"]
)


@pytest.fixture
async def get() -> AsyncIterator[Callable[..., Any]]:
    """``await get(app, path, headers=..., client=..., method=...)`` -> httpx.Response"""
    clients: dict[tuple[int, tuple[str, int]], httpx.AsyncClient] = {}

    async def request(
        app: ASGIApp,
        path: str,
        *,
        headers: dict[str, str] | None = None,
        client: tuple[str, int] = ("127.0.0.1", 50000),
        method: str = "GET",
    ) -> httpx.Response:
        key = (id(app), client)
        if key not in clients:
            clients[key] = client_for(app, client)
        return await clients[key].request(method, path, headers=headers)

    yield request
    for http in clients.values():
        await http.aclose()


def assert_refused(response: httpx.Response, retry_after: int) -> None:
    assert response.status_code == 429
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == 429 and body["retry_after"] == retry_after
    assert response.headers["retry-after"] == str(retry_after)
    assert response.headers["x-ratelimit-remaining"] == "0"


# ------------------------------------------------------------------------- windows


@APPS
async def test_fixed_window_across_a_boundary(make_app: Any, get: Any, clock: Clock) -> None:
    app, _ = make_app(limit="3/minute", clock=clock)
    clock.now = T0 + 40
    for remaining in (2, 1, 0):
        response = await get(app, "/other")
        assert response.status_code == 200
        assert response.headers["x-ratelimit-remaining"] == str(remaining)
        assert response.headers["x-ratelimit-limit"] == "3"
        assert response.headers["x-ratelimit-reset"] == str(int(T0 + 60))
    assert_refused(await get(app, "/other"), retry_after=20)
    clock.now = T0 + 59.5
    assert_refused(await get(app, "/other"), retry_after=1)
    clock.now = T0 + 60
    response = await get(app, "/other")
    assert response.status_code == 200
    assert response.headers["x-ratelimit-remaining"] == "2"
    assert response.headers["x-ratelimit-reset"] == str(int(T0 + 120))


@APPS
async def test_sliding_window_across_a_boundary(make_app: Any, get: Any, clock: Clock) -> None:
    app, _ = make_app(limit="10/minute", strategy="sliding-window-counter", clock=clock)
    clock.now = T0 + 50
    for _ in range(10):
        assert (await get(app, "/other")).status_code == 200
    assert (await get(app, "/other")).status_code == 429
    # 6 s into the next window, 9/10 of the previous ten still count: one more fits.
    clock.now = T0 + 66
    response = await get(app, "/other")
    assert response.status_code == 200
    assert response.headers["x-ratelimit-remaining"] == "0"
    assert (await get(app, "/other")).status_code == 429  # floor(9.0) + 1 + 1 > 10
    # Half way through, half of the previous window counts: 10 - 5 - 1 = 4 more.
    clock.now = T0 + 90
    statuses = [(await get(app, "/other")).status_code for _ in range(5)]
    assert statuses == [200, 200, 200, 200, 429]


@APPS
async def test_multi_window_all_must_pass(make_app: Any, get: Any, clock: Clock) -> None:
    app, _ = make_app(limit="2/second;3/minute", clock=clock)
    clock.now = T0 + 10
    first = await get(app, "/other")
    assert first.headers["ratelimit-policy"] == ('"default-1s";q=2;w=1, "default-60s";q=3;w=60')
    assert (await get(app, "/other")).status_code == 200
    refused = await get(app, "/other")
    assert refused.status_code == 429
    assert refused.headers["x-ratelimit-limit"] == "2"  # the per-second window refused
    clock.advance(1)
    assert (await get(app, "/other")).status_code == 200  # the third of the minute
    clock.advance(1)
    refused = await get(app, "/other")
    assert refused.status_code == 429
    assert refused.headers["x-ratelimit-limit"] == "3"  # now the minute refuses
    assert refused.headers["retry-after"] == "48"
    assert refused.headers["ratelimit"] == '"default-60s";r=0;t=48'


async def test_multi_window_refusal_consumes_no_window(get: Any, clock: Clock) -> None:
    app, _ = starlette_app(limit="1/second;5/minute", clock=clock)
    for _ in range(5):  # one per second, then the second one within the same second
        assert (await get(app, "/other")).status_code == 200
        assert (await get(app, "/other")).status_code == 429
        clock.advance(1)
    # Five refused hits were not counted in the minute: it is full with the five admitted.
    assert (await get(app, "/other")).headers["x-ratelimit-limit"] == "5"


# ------------------------------------------------------------------- headers, errors


async def test_headers_follow_the_ietf_draft(get: Any, clock: Clock) -> None:
    app, _ = starlette_app(limit="100/minute", clock=clock)
    clock.now = T0 + 17
    response = await get(app, "/other")
    assert response.headers["ratelimit-policy"] == '"default";q=100;w=60'
    assert response.headers["ratelimit"] == '"default";r=99;t=43'
    assert response.headers["x-ratelimit-reset"] == str(int(T0 + 60))


async def test_no_headers_when_disabled(get: Any, clock: Clock) -> None:
    app, _ = starlette_app(limit="1/minute", clock=clock, headers=False)
    response = await get(app, "/other")
    assert "x-ratelimit-limit" not in response.headers
    refused = await get(app, "/other")
    assert refused.status_code == 429 and refused.headers["retry-after"] == "60"
    assert "x-ratelimit-limit" not in refused.headers


async def test_handler_errors_keep_their_status_and_get_the_headers(get: Any) -> None:
    async def boom(request: Request) -> JSONResponse:
        return JSONResponse({"detail": "nope"}, status_code=404)

    app = RateLimitMiddleware(Starlette(routes=[Route("/x", boom)]), limit="5/minute")
    response = await get(app, "/x")
    assert response.status_code == 404
    assert response.headers["x-ratelimit-remaining"] == "4"


async def test_a_streaming_response_still_streams() -> None:
    release = asyncio.Event()

    async def chunks() -> AsyncIterator[bytes]:
        yield b"first,"
        await release.wait()  # the first chunk must reach the client before this returns
        yield b"second"

    async def stream(request: Request) -> StreamingResponse:
        return StreamingResponse(chunks(), media_type="text/plain")

    app = RateLimitMiddleware(Starlette(routes=[Route("/stream", stream)]), limit="5/minute")
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)
        if message.get("body") == b"first,":
            release.set()

    async def receive() -> Message:
        await asyncio.sleep(3600)  # never disconnects
        return {"type": "http.disconnect"}

    scope = {
        "type": "http",
        "method": "GET",
        "path": "/stream",
        "raw_path": b"/stream",
        "root_path": "",
        "query_string": b"",
        "headers": [],
        "client": ("127.0.0.1", 1),
        "server": ("testserver", 80),
        "scheme": "http",
        "http_version": "1.1",
        "asgi": {"version": "3.0"},
    }
    await asyncio.wait_for(app(scope, receive, send), 5)
    start = sent[0]
    assert start["type"] == "http.response.start"
    assert (b"x-ratelimit-remaining", b"4") in start["headers"]
    bodies = [m for m in sent if m["type"] == "http.response.body"]
    assert [m.get("body") for m in bodies if m.get("body")] == [b"first,", b"second"]
    assert bodies[0]["more_body"] is True
    assert sum(1 for m in sent if m["type"] == "http.response.start") == 1


async def test_other_scopes_pass_through() -> None:
    seen: list[str] = []

    async def inner(scope: Scope, receive: Any, send: Any) -> None:
        seen.append(scope["type"])

    app = RateLimitMiddleware(inner, limit="0/minute")
    await app({"type": "lifespan"}, None, None)  # type: ignore[arg-type]
    await app({"type": "websocket", "path": "/ws", "headers": []}, None, None)  # type: ignore[arg-type]
    assert seen == ["lifespan", "websocket"]


# --------------------------------------------------------------------------------- tiers


PLANS = {"free": "2/minute", "pro": "4/minute", "default": "free"}


@APPS
async def test_tiers_by_plan(make_app: Any, get: Any, clock: Clock) -> None:
    app, _ = make_app(limit=PLANS, key="tenant", clock=clock)

    async def admitted(tenant: str, plan: str | None) -> int:
        headers = {"x-tenant": tenant} | ({"x-plan": plan} if plan else {})
        count = 0
        while (await get(app, "/other", headers=headers)).status_code == 200:
            count += 1
        return count

    assert await admitted("acme", "pro") == 4
    assert await admitted("globex", "free") == 2
    assert await admitted("initech", None) == 2  # no plan: the default
    assert await admitted("umbrella", "platinum") == 2  # unknown plan: the default


async def test_tiers_with_the_real_tenant_middleware(get: Any, clock: Clock) -> None:
    async def resolve(scope: Scope) -> RealTenant | None:
        headers = dict(scope["headers"])
        tenant = headers.get(b"x-tenant")
        plan = headers.get(b"x-plan")
        return RealTenant(tenant.decode(), plan=plan.decode() if plan else None) if tenant else None

    app = FastAPI()

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/work")
    async def work() -> dict[str, str]:
        return {"ok": "yes"}

    # Outermost last: TenantMiddleware runs first, then the rate limiter.
    app.add_middleware(
        RateLimitMiddleware, limit=PLANS, key="tenant", exempt=["/health"], clock=clock
    )
    app.add_middleware(TenantMiddleware, resolvers=[resolve], exempt=["/health"])
    pro = {"x-tenant": "acme", "x-plan": "pro"}
    statuses = [(await get(app, "/work", headers=pro)).status_code for _ in range(5)]
    assert statuses == [200, 200, 200, 200, 429]
    other = await get(app, "/work", headers={"x-tenant": "globex"})
    assert other.status_code == 200 and other.headers["x-ratelimit-limit"] == "2"
    exempt = await get(app, "/health")
    assert exempt.status_code == 200 and "x-ratelimit-limit" not in exempt.headers


async def test_limit_from_a_callable(get: Any, clock: Clock) -> None:
    def limit(scope: Scope) -> str | None:
        return None if scope["method"] == "GET" else "1/minute"

    app, _ = starlette_app(limit=limit, clock=clock)
    for _ in range(3):
        assert "x-ratelimit-limit" not in (await get(app, "/projects")).headers
    assert (await get(app, "/projects", method="POST")).status_code == 200
    assert (await get(app, "/projects", method="POST")).status_code == 429


# ---------------------------------------------------------------------------------- keys


async def test_tenants_never_share_a_budget(get: Any, clock: Clock) -> None:
    app, _ = starlette_app(limit="1/minute", key="tenant", clock=clock)
    assert (await get(app, "/other", headers={"x-tenant": "a"})).status_code == 200
    assert (await get(app, "/other", headers={"x-tenant": "a"})).status_code == 429
    assert (await get(app, "/other", headers={"x-tenant": "b"})).status_code == 200
    # No tenant (an exempt path upstream): the rule does not apply.
    assert "x-ratelimit-limit" not in (await get(app, "/other")).headers


async def test_user_key_is_per_tenant_user(get: Any, clock: Clock) -> None:
    app, _ = starlette_app(limit="1/minute", key="user", clock=clock)
    alice = {"x-tenant": "a", "x-user": "alice"}
    assert (await get(app, "/other", headers=alice)).status_code == 200
    assert (await get(app, "/other", headers=alice)).status_code == 429
    bob = {"x-tenant": "a", "x-user": "bob"}
    assert (await get(app, "/other", headers=bob)).status_code == 200
    alice_elsewhere = {"x-tenant": "b", "x-user": "alice"}
    assert (await get(app, "/other", headers=alice_elsewhere)).status_code == 200


async def test_client_ip_key(get: Any, clock: Clock) -> None:
    app, _ = starlette_app(limit="1/minute", key="ip", clock=clock)
    assert (await get(app, "/other", client=("10.0.0.1", 1))).status_code == 200
    assert (await get(app, "/other", client=("10.0.0.1", 2))).status_code == 429
    assert (await get(app, "/other", client=("10.0.0.2", 1))).status_code == 200


async def test_spoofed_forwarded_for_from_an_untrusted_peer_is_ignored(
    get: Any, clock: Clock
) -> None:
    app, _ = starlette_app(limit="1/minute", trusted_proxies=["10.0.0.0/8"], clock=clock)
    attacker = ("203.0.113.9", 1)
    for fake in ("198.51.100.1", "198.51.100.2"):
        response = await get(app, "/other", headers={"x-forwarded-for": fake}, client=attacker)
        assert response.status_code == (200 if fake.endswith(".1") else 429)


async def test_forwarded_for_through_a_trusted_proxy(get: Any, clock: Clock) -> None:
    app, _ = starlette_app(limit="1/minute", trusted_proxies=["10.0.0.0/8"], clock=clock)
    proxy = ("10.1.2.3", 1)
    # The client put a fake hop first; the proxy appended the real one: right-most wins.
    headers = {"x-forwarded-for": "1.1.1.1, 198.51.100.7"}
    assert (await get(app, "/other", headers=headers, client=proxy)).status_code == 200
    headers = {"x-forwarded-for": "2.2.2.2, 198.51.100.7"}
    assert (await get(app, "/other", headers=headers, client=proxy)).status_code == 429
    headers = {"x-forwarded-for": "198.51.100.8, 10.9.9.9"}  # a second trusted hop
    assert (await get(app, "/other", headers=headers, client=proxy)).status_code == 200


async def test_ipv6_clients_are_grouped_by_network(get: Any, clock: Clock) -> None:
    app, _ = starlette_app(limit="1/minute", clock=clock)
    assert (await get(app, "/other", client=("2001:db8:1:2::1", 1))).status_code == 200
    assert (await get(app, "/other", client=("2001:db8:1:2::ffff", 1))).status_code == 429
    assert (await get(app, "/other", client=("2001:db8:1:3::1", 1))).status_code == 200


async def test_ipv4_mapped_peers_are_their_ipv4_address(get: Any, clock: Clock) -> None:
    """A dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d; grouping those by /64
    would put every IPv4 client in one bucket."""
    app, _ = starlette_app(limit="1/minute", clock=clock)
    assert (await get(app, "/other", client=("::ffff:192.0.2.1", 1))).status_code == 200
    assert (await get(app, "/other", client=("::ffff:192.0.2.2", 1))).status_code == 200
    assert (await get(app, "/other", client=("192.0.2.1", 1))).status_code == 429
    trusting, _ = starlette_app(limit="1/minute", trusted_proxies=["10.0.0.0/8"], clock=clock)
    proxy = ("::ffff:10.0.0.1", 1)
    forwarded = {"x-forwarded-for": "198.51.100.20"}
    answer = await get(trusting, "/other", headers=forwarded, client=proxy)
    assert answer.status_code == 200
    again = await get(trusting, "/other", headers=forwarded, client=("10.0.0.2", 1))
    assert again.status_code == 429, "the mapped proxy was trusted, so its client was keyed"


def _lambda_scope(event: dict[str, Any], client: str) -> Scope:
    return {
        "type": "http",
        "method": "GET",
        "path": "/other",
        "root_path": "",
        "query_string": b"",
        "headers": [],
        "client": (client, 0),
        "aws.event": event,
    }


@pytest.mark.parametrize(
    ("event", "mangum_client", "expected"),
    [
        (
            {"version": "2.0", "requestContext": {"http": {"sourceIp": "198.51.100.4"}}},
            "198.51.100.4",
            "198.51.100.4",
        ),
        (
            {"requestContext": {"identity": {"sourceIp": "198.51.100.5"}}},
            "198.51.100.5",
            "198.51.100.5",
        ),
        # ALB: Mangum passes the whole header as the client; the ALB's own hop is last.
        (
            {
                "requestContext": {"elb": {"targetGroupArn": "arn"}},
                "headers": {"x-forwarded-for": "6.6.6.6, 198.51.100.6"},
            },
            "6.6.6.6, 198.51.100.6",
            "198.51.100.6",
        ),
    ],
    ids=["http-api-v2", "rest-api-v1", "alb"],
)
def test_client_ip_under_mangum(event: dict[str, Any], mangum_client: str, expected: str) -> None:
    from lift_asgi.ratelimit import ClientIP

    assert ClientIP()(_lambda_scope(event, mangum_client)) == expected


async def test_api_key_key_is_a_digest(get: Any, clock: Clock) -> None:
    seen: list[str] = []

    def spy(scope: Scope) -> str | None:
        for name, value in scope["headers"]:
            if name == b"x-api-key":
                seen.append(api_key_digest(value))
        return "spy"

    app, middleware = starlette_app(
        rules=[Rule("1/minute", key="api_key"), Rule("100/minute", key=spy, name="spy")],
        clock=clock,
    )
    assert (await get(app, "/other", headers={"x-api-key": "k-1"})).status_code == 200
    assert (await get(app, "/other", headers={"x-api-key": "k-1"})).status_code == 429
    assert (await get(app, "/other", headers={"x-api-key": "k-2"})).status_code == 200
    backend = middleware.backend
    assert isinstance(backend, MemoryBackend)
    stored = " ".join(backend._counts)
    assert "k-1" not in stored and api_key_digest(b"k-1") in stored
    # Without the header, the api_key rule does not apply.
    assert (await get(app, "/other")).headers["x-ratelimit-limit"] == "100"


@APPS
async def test_route_templates_share_a_budget(make_app: Any, get: Any, clock: Clock) -> None:
    app, _ = make_app(limit="2/minute", key=("ip", "route"), routes=["/projects/{id}"], clock=clock)
    assert (await get(app, "/projects/1")).status_code == 200
    assert (await get(app, "/projects/2")).status_code == 200
    assert (await get(app, "/projects/3")).status_code == 429
    # Another template, and paths outside the rule, are not limited by it.
    assert "x-ratelimit-limit" not in (await get(app, "/projects/1/tasks")).headers
    assert "x-ratelimit-limit" not in (await get(app, "/other")).headers


@APPS
async def test_route_key_under_a_mount(make_app: Any, get: Any, clock: Clock) -> None:
    app, _ = make_app(limit="1/minute", key="route", clock=clock)
    assert (await get(app, "/api/items/1")).status_code == 200
    assert (await get(app, "/api/items/2")).status_code == 429
    assert (await get(app, "/other")).status_code == 200
    # Unmatched paths share one bucket: a scanner cannot mint keys from random paths.
    assert (await get(app, "/nope/1")).status_code == 404
    assert (await get(app, "/nope/2")).status_code == 429


async def test_path_prefix_and_methods(get: Any, clock: Clock) -> None:
    app, _ = starlette_app(limit="1/minute", path_prefix="/projects", methods=["post"], clock=clock)
    assert (await get(app, "/projects", method="POST")).status_code == 200
    assert (await get(app, "/projects", method="POST")).status_code == 429
    assert (await get(app, "/projects")).status_code == 200  # GET is not limited
    assert "x-ratelimit-limit" not in (await get(app, "/other", method="GET")).headers


async def test_exempt_paths_pass_without_headers(get: Any, clock: Clock) -> None:
    app, middleware = starlette_app(limit="1/minute", exempt=["/health"], clock=clock)
    for _ in range(3):
        response = await get(app, "/health")
        assert response.status_code == 200 and "x-ratelimit-limit" not in response.headers
    assert (await get(app, "/other")).status_code == 200
    assert (await get(app, "/other")).status_code == 429
    assert middleware.stats.admitted == 1 and middleware.stats.refused == 1


async def test_cost_per_request(get: Any, clock: Clock) -> None:
    app, _ = starlette_app(
        rules=[
            Rule("10/minute", path_prefix="/projects", cost=3, name="shared"),
            Rule("10/minute", path_prefix="/other", name="cheap"),
        ],
        clock=clock,
    )
    remaining = [
        (await get(app, "/projects")).headers.get("x-ratelimit-remaining") for _ in range(3)
    ]
    assert remaining == ["7", "4", "1"]
    refused = await get(app, "/projects")
    assert refused.status_code == 429
    assert refused.headers["x-ratelimit-remaining"] == "1"  # the refused 3 were not taken


async def test_cost_from_a_callable(get: Any, clock: Clock) -> None:
    def cost(scope: Scope) -> int:
        return 4 if scope["method"] == "POST" else 1

    app, _ = starlette_app(limit="5/minute", cost=cost, clock=clock)
    assert (await get(app, "/projects", method="POST")).headers["x-ratelimit-remaining"] == "1"
    assert (await get(app, "/projects", method="POST")).status_code == 429
    assert (await get(app, "/projects")).status_code == 200


@pytest.mark.parametrize("returned", [1.0, 2.5, "2", True, None])
async def test_a_cost_function_returning_no_int_is_a_logged_500_and_counts_nothing(
    get: Any, clock: Clock, caplog: pytest.LogCaptureFixture, returned: Any
) -> None:
    broken = {"on": True}

    def cost(scope: Scope) -> Any:
        return returned if broken["on"] else 1

    app, middleware = starlette_app(limit="3/minute", key="global", cost=cost, clock=clock)
    with caplog.at_level(logging.ERROR, logger="lift_asgi.ratelimit"):
        for _ in range(5):
            answer = await get(app, "/projects")
            assert answer.status_code == 500
            assert answer.headers["content-type"] == "application/problem+json"
    assert any(
        "cost" in r.getMessage() and repr(returned) in r.getMessage() for r in caplog.records
    )
    assert middleware.stats.admitted == 0
    broken["on"] = False  # nothing was counted: the whole limit is still there
    assert [(await get(app, "/projects")).status_code for _ in range(4)] == [200, 200, 200, 429]


async def test_rules_apply_in_order_and_all_must_pass(get: Any, clock: Clock) -> None:
    app, middleware = starlette_app(
        rules=[Rule("3/minute", key="global", name="all"), Rule("1/minute", name="per-ip")],
        clock=clock,
    )
    assert (await get(app, "/other", client=("10.0.0.1", 1))).status_code == 200
    refused = await get(app, "/other", client=("10.0.0.1", 1))
    assert refused.status_code == 429 and refused.headers["ratelimit"].startswith('"per-ip"')
    assert (await get(app, "/other", client=("10.0.0.2", 1))).status_code == 200
    refused = await get(app, "/other", client=("10.0.0.3", 1))
    assert refused.status_code == 429 and refused.headers["ratelimit"].startswith('"all"')
    assert middleware.stats.refused == 2


async def test_blocked_keys_are_refused_from_the_cache(get: Any, clock: Clock) -> None:
    app, middleware = starlette_app(limit="2/minute", clock=clock)
    for _ in range(2):
        await get(app, "/other")
    for _ in range(3):
        assert (await get(app, "/other")).status_code == 429
    assert middleware.stats.blocked == 3
    clock.advance(60)
    assert (await get(app, "/other")).status_code == 200


async def test_any_async_limits_storage(get: Any) -> None:
    app, _ = starlette_app(limit="2/minute", storage=LimitsMemoryStorage())
    assert (await get(app, "/other")).headers["x-ratelimit-remaining"] == "1"
    assert (await get(app, "/other")).status_code == 200
    refused = await get(app, "/other")
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) in range(1, 61)


# ------------------------------------------------------------------ configuration


@pytest.mark.parametrize(
    ("options", "option"),
    [
        ({"limit": "100 per fortnight"}, "limit"),
        ({"limit": "lots"}, "limit"),
        ({"limit": {"free": "1/minute"}}, "limit"),
        ({"limit": {"free": "1/minute", "default": "nope"}}, "limit"),
        ({"limit": "1/minute", "strategy": "moving-window"}, "strategy"),
        ({"limit": "1/minute", "strategy": "leaky"}, "strategy"),
        ({"limit": "1/minute", "key": "session"}, "key"),
        ({"limit": "1/minute", "cost": 0}, "cost"),
        ({"limit": "1/minute", "cost": 2}, "cost"),
        ({"limit": "1/minute", "methods": "GET"}, "methods"),
        ({"limit": "1/minute", "routes": ["projects"]}, "routes"),
        ({"limit": "1/minute", "exempt": ["/"]}, "exempt"),
        ({"limit": "1/minute", "trusted_proxies": ["not-an-ip"]}, "trusted_proxies"),
        ({"limit": "1/minute", "storage": "dynamodb://t"}, "storage"),
        ({"limit": "1/minute", "storage": "async+dynamodb://"}, "storage"),
        ({"limit": "1/minute", "storage": "nope://x"}, "storage"),
        ({"limit": "1/minute", "timeout": 0}, "timeout"),
        ({"limit": "1/minute", "api_key_header": "x api key"}, "api_key_header"),
        ({"limit": "1/minute", "rules": [Rule("1/minute")]}, "rules"),
        ({"rules": [Rule("1/minute", name="a"), Rule("2/minute", name="a")]}, "name"),
        ({"rules": [Rule("1/minute", name="a b")]}, "name"),
        ({}, "limit"),
    ],
)
def test_configuration_errors_name_the_option(options: dict[str, Any], option: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        RateLimitMiddleware(Starlette(), **options)
    assert info.value.option == option
    assert str(info.value).startswith(f"{option}:")


async def test_requests_without_a_client_address_share_one_budget() -> None:
    statuses: list[int] = []

    async def inner(scope: Scope, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    app = RateLimitMiddleware(inner, limit="1/minute")
    for client in (None, ("", 0)):  # a Unix socket: no peer address
        scope = {"type": "http", "method": "GET", "path": "/", "headers": [], "client": client}
        await app(scope, receive, send)
    assert statuses == [200, 429]


async def test_in_process_state_is_bounded(get: Any, clock: Clock) -> None:
    app, middleware = starlette_app(limit="1/minute", blocked_cache_size=3, clock=clock)
    for n in range(10):
        client = (f"10.0.0.{n}", 1)
        assert (await get(app, "/other", client=client)).status_code == 200
    assert middleware.blocked_keys() == 3  # each took its last unit: blocked, bounded


async def test_route_templates_of_an_app_mounted_under_another(get: Any, clock: Clock) -> None:
    inner = Starlette(routes=[Route("/projects/{id}", _ok), Route("/other", _ok)])
    limited = RateLimitMiddleware(
        inner, limit="1/minute", key="route", routes=["/projects/{id}"], clock=clock
    )
    app = Starlette(routes=[Mount("/v1", app=limited), Route("/projects/{id}", _ok)])
    assert (await get(app, "/v1/projects/1")).status_code == 200
    assert (await get(app, "/v1/projects/2")).status_code == 429
    assert (await get(app, "/v1/other")).status_code == 200
    assert "x-ratelimit-limit" not in (await get(app, "/projects/1")).headers
