"""The send wrapper a stage puts around the app: a LiftError raised before the response
started becomes its problem response, and redirects never name a host the client chose."""

from __future__ import annotations

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from lift_asgi.errors import Conflict
from lift_asgi.send_wrapper import call_with_problems, relative_location
from lift_asgi.tenancy import HeaderResolver, TenantMiddleware


async def _boom(request: Request) -> None:
    raise Conflict("taken")


async def _late(request: Request) -> StreamingResponse:
    async def chunks():  # type: ignore[no-untyped-def]
        yield b"partial"
        raise Conflict("too late for a problem response")

    return StreamingResponse(chunks())


async def test_call_with_problems_only_before_the_response_started() -> None:
    class Guard:  # where the suite's middlewares sit: inside Starlette's error middleware
        def __init__(self, app: ASGIApp) -> None:
            self.app = app

        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            await call_with_problems(self.app, scope, receive, send)

    app = Starlette(
        routes=[Route("/boom", _boom), Route("/late", _late)], middleware=[Middleware(Guard)]
    )

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        assert (await client.get("/boom")).status_code == 409
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        with pytest.raises(Conflict):  # already streaming: it propagates as it should
            await client.get("/late")


# -- redirects never name a host the client chose ------------------------------------------


async def _projects(request: Request) -> JSONResponse:
    return JSONResponse([])


async def _upgrade(request: Request) -> RedirectResponse:
    return RedirectResponse("https://" + request.headers["host"] + "/projects")


@pytest.mark.parametrize("wrap", ["call_with_problems", "TenantMiddleware"])
async def test_a_trailing_slash_redirect_is_relative_whatever_the_host_header(
    wrap: str,
) -> None:
    inner = Starlette(routes=[Route("/projects", _projects), Route("/upgrade", _upgrade)])
    app: ASGIApp
    if wrap == "TenantMiddleware":
        app = TenantMiddleware(inner, resolvers=[HeaderResolver()])
    else:

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            await call_with_problems(inner, scope, receive, send)

    headers = {"host": "evil.example", "x-tenant-id": "acme"}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        moved = await client.get("/projects/?page=2", headers=headers)
        upgrade = await client.get("/upgrade", headers=headers)
    assert moved.status_code == 307
    assert moved.headers["location"] == "/projects?page=2"
    # Another origin (an http -> https upgrade) is not the request's own: left alone.
    assert upgrade.headers["location"] == "https://evil.example/projects"


async def _double_slash(request: Request) -> RedirectResponse:
    return RedirectResponse("http://" + request.headers["host"] + request.query_params["to"])


@pytest.mark.parametrize(
    ("to", "expected"),
    [
        ("//evil.example/x", "/.//evil.example/x"),
        ("/projects", "/projects"),
    ],
)
async def test_a_same_origin_redirect_to_a_double_slash_path_stays_on_this_host(
    to: str, expected: str
) -> None:
    # Made relative, "//evil.example/x" would be another host: the dot segment keeps it
    # the same path on the host the client used.
    inner = Starlette(routes=[Route("/go", _double_slash)])

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await call_with_problems(inner, scope, receive, send)

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        moved = await client.get("/go", params={"to": to}, headers={"host": "shop.example"})
    assert moved.status_code == 307
    assert moved.headers["location"] == expected
    resolved = httpx.URL("https://shop.example/here").join(expected)
    assert resolved.host == "shop.example"


def test_a_backslash_after_the_first_slash_gets_the_dot_segment_too() -> None:
    # Browsers read "/\\evil.example" as "//evil.example" (Starlette's own redirects
    # quote the backslash; a handler's raw header need not).
    start = {
        "type": "http.response.start",
        "status": 302,
        "headers": [
            (b"location", b"http://shop.example/\\evil.example/x"),
        ],
    }
    moved = relative_location(start, b"http://shop.example")
    assert moved["headers"] == [(b"location", b"/./\\evil.example/x")]


@pytest.mark.parametrize("hidden", [b"\t", b"\n", b"\r\n", b"\t\t"])
def test_tabs_and_newlines_after_the_first_slash_hide_no_second_host(hidden: bytes) -> None:
    # Browsers drop them before parsing: "/\t/evil.example" is "//evil.example"
    start = {
        "type": "http.response.start",
        "status": 302,
        "headers": [(b"location", b"http://shop.example/" + hidden + b"/evil.example/x")],
    }
    moved = relative_location(start, b"http://shop.example")
    assert moved["headers"] == [(b"location", b"/./" + hidden + b"/evil.example/x")]
