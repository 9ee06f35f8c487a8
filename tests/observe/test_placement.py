"""Which responses carry X-Request-ID, by where the observer sits.

``install(observe=...)`` puts the whole stack, observer included, inside the app's own
middlewares (CORS, TrustedHost, GZip), whatever the order of the calls: so a CORS
preflight needs no tenant and a 401 still gets CORS headers. The price: a response such
a middleware answers itself, without calling inward, never passes the observer, so it has
no request id and no request record. An app that wants those too adds
``RequestObserver`` itself, after its other middlewares (the last added is outermost),
and leaves ``observe`` out of ``install``.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

import lift_asgi
from lift_asgi.exception_handlers import PROBLEM_HANDLERS
from lift_asgi.observe import RequestObserver
from lift_asgi.tenancy import HeaderResolver
from tests.observe.conftest import client

ORIGIN = "https://app.example.com"
PREFLIGHT = {"origin": ORIGIN, "access-control-request-method": "POST"}
ID = re.compile(r"[0-9a-f]{32}")


async def _hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse("hello")


def _app() -> Starlette:
    return Starlette(routes=[Route("/hello", _hello)], exception_handlers=PROBLEM_HANDLERS)


def _own_middlewares(app: Starlette) -> None:
    app.add_middleware(CORSMiddleware, allow_origins=[ORIGIN], allow_methods=["*"])
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=["t"])


async def _answers(app: Starlette) -> dict[str, Any]:
    async with client(app) as http:
        return {
            "ok": await http.get("/hello", headers={"x-tenant-id": "acme"}),
            "401": await http.get("/hello", headers={"origin": ORIGIN}),
            "preflight": await http.options("/hello", headers=PREFLIGHT),
            "refused preflight": await http.options(
                "/hello", headers={**PREFLIGHT, "origin": "https://evil.example"}
            ),
            "untrusted host": await http.get("/hello", headers={"host": "evil.example"}),
        }


@pytest.mark.parametrize("own_first", [True, False])
async def test_installed_the_id_is_on_what_reaches_the_stack_not_on_own_middlewares_answers(
    own_first: bool, records: Any
) -> None:
    app = _app()
    if own_first:
        _own_middlewares(app)
    lift_asgi.install(app, observe={}, tenant={"resolvers": [HeaderResolver()]})
    if not own_first:
        _own_middlewares(app)
    answers = await _answers(app)
    statuses = {name: response.status_code for name, response in answers.items()}
    assert statuses == {
        "ok": 200,
        "401": 401,
        "preflight": 200,
        "refused preflight": 400,
        "untrusted host": 400,
    }
    carried = {name for name, response in answers.items() if "x-request-id" in response.headers}
    assert carried == {"ok", "401"}  # the suite's and the app's answers
    assert answers["401"].headers["access-control-allow-origin"] == ORIGIN  # CORS outside
    assert [line["status"] for line in records.requests()] == [200, 401]


async def test_added_last_by_hand_the_observer_sees_every_response(records: Any) -> None:
    app = _app()
    _own_middlewares(app)
    lift_asgi.install(app, tenant={"resolvers": [HeaderResolver()]})
    app.add_middleware(RequestObserver)  # after every other middleware: the outermost
    answers = await _answers(app)
    assert all(ID.fullmatch(response.headers["x-request-id"]) for response in answers.values())
    assert answers["401"].headers["access-control-allow-origin"] == ORIGIN
    assert sorted(line["status"] for line in records.requests()) == [200, 200, 400, 400, 401]
