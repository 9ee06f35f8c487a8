"""ASGI lets an app send its response headers as any iterable, a generator included:
every stage that reads them passes them on, none is lost because a stage read it."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.types import Message, Receive, Scope, Send

from lift_asgi.observe import RequestObserver
from lift_asgi.tenancy import HeaderResolver, TenantMiddleware


def _app(status: int) -> Any:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"x-app", b"1"), (b"location", b"http://api.example.com/next")]
        await send({"type": "http.response.start", "status": status, "headers": iter(headers)})
        await send({"type": "http.response.body", "body": b""})

    return app


async def _call(app: Any) -> Message:
    sent: list[Message] = []
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/x",
        "root_path": "",
        "scheme": "http",
        "server": ("api.example.com", 80),
        "headers": [(b"host", b"api.example.com"), (b"x-tenant-id", b"acme")],
    }

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent[0]


@pytest.mark.parametrize("status", [200, 307])
@pytest.mark.parametrize(
    ("wrap", "tenant_stage"),
    [
        (lambda app: RequestObserver(app), False),
        (lambda app: TenantMiddleware(app, resolvers=[HeaderResolver()]), True),
        (lambda app: RequestObserver(TenantMiddleware(app, resolvers=[HeaderResolver()])), True),
    ],
    ids=["observer", "tenant", "both"],
)
async def test_generator_headers_reach_the_client(
    wrap: Any, tenant_stage: bool, status: int
) -> None:
    start = await _call(wrap(_app(status)))
    headers = dict(start["headers"])
    assert headers[b"x-app"] == b"1"
    # the tenant stage makes a redirect's Location under the request's origin relative
    relative = tenant_stage and status == 307
    assert headers[b"location"] == (b"/next" if relative else b"http://api.example.com/next")
