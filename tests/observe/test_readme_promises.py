"""README promises of the observer that no other test pinned: the SERVER span continues
the trace of an incoming W3C ``traceparent``."""

from __future__ import annotations

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from lift_asgi.observe import RequestObserver
from tests.observe.test_otel import Telemetry

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"


async def _ok(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True})


async def test_the_server_span_continues_an_incoming_traceparent() -> None:
    otel = Telemetry()
    app = RequestObserver(Starlette(routes=[Route("/a", _ok)]), **otel.options())
    transport = httpx.ASGITransport(app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        answer = await http.get("/a", headers={"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"})
        assert answer.status_code == 200
        assert (await http.get("/a")).status_code == 200  # no header: a new trace
    continued, fresh = otel.server()
    assert continued.context.trace_id == int(TRACE_ID, 16)
    assert continued.parent is not None and continued.parent.span_id == int(PARENT_ID, 16)
    assert fresh.context.trace_id != int(TRACE_ID, 16)
    assert fresh.parent is None
