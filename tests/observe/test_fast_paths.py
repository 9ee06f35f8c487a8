"""The observer's per-request shortcuts hold to the general behaviour: what a request gets
(ids, headers, state, context) does not depend on whether its record is written, the
default id generator behaves as a given one does, and the record's route is the one the
router matched under a server's root path and a Mount inside."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route
from starlette.types import Receive, Scope, Send

from lift_asgi.observe import RequestObserver, current_ids
from lift_asgi.stages import SCOPE_KEY
from tests.observe.conftest import Records, run_asgi

GENERATED = re.compile(r"[0-9a-f]{32}")


def _scope(path: str = "/", headers: Any = (), root_path: str = "") -> Scope:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": root_path,
        "query_string": b"",
        "headers": list(headers),
    }


@pytest.fixture
def request_log(records: Records) -> Iterator[logging.Logger]:
    logger = logging.getLogger("lift_asgi.request")
    try:
        yield logger
    finally:
        logger.setLevel(logging.NOTSET)


async def _what_the_request_got(
    observer: RequestObserver, headers: list[tuple[bytes, bytes]], status: int
) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        ctx = scope[SCOPE_KEY]
        seen["ids"] = current_ids()
        seen["state"] = dict(scope["state"])
        seen["context"] = {k: v for k, v in vars(ctx).items() if k != "ids"}
        seen["stored"] = ctx.ids
        await send({"type": "http.response.start", "status": status, "headers": [(b"x-app", b"1")]})
        await send({"type": "http.response.body", "body": b"ok"})

    observer.app = app
    scope = _scope("/items/7", headers)
    sent = await run_asgi(observer, scope)
    seen["sent"] = sent
    return seen


@pytest.mark.parametrize("status", [200, 503])
@pytest.mark.parametrize(
    "headers",
    [
        [],
        [(b"x-request-id", b"client-1"), (b"x-amzn-trace-id", b"Root=1-abc")],
        [(b"X-Request-ID", b"not lower case, not read")],
    ],
)
async def test_a_request_gets_the_same_whether_its_record_is_written_or_not(
    request_log: logging.Logger, records: Records, headers: Any, status: int
) -> None:
    async def placeholder(scope: Scope, receive: Receive, send: Send) -> None:
        raise AssertionError

    got = {}
    for level in (logging.DEBUG, logging.CRITICAL):
        request_log.setLevel(level)
        got[level] = await _what_the_request_got(RequestObserver(placeholder), headers, status)
    written, unwritten = got[logging.DEBUG], got[logging.CRITICAL]
    assert len(records.requests()) == 1  # the DEBUG one only
    for one in (written, unwritten):
        request_id = one["ids"].request_id
        if headers and headers[0][0] == b"x-request-id":
            assert request_id == "client-1"
        else:
            assert GENERATED.fullmatch(request_id)
        assert one["stored"] == one["ids"]._replace(context=None)
        assert one["state"] == {"request_id": request_id}
        assert one["context"]["request_id"] == request_id
        start = one["sent"][0]
        assert start["headers"] == [(b"x-app", b"1"), (b"x-request-id", request_id.encode())]
        assert start["status"] == status
    for key in ("context", "sent"):
        if key == "context":
            assert written[key].keys() == unwritten[key].keys()
        else:
            assert [m["type"] for m in written[key]] == [m["type"] for m in unwritten[key]]
    assert written["ids"][1:3] == unwritten["ids"][1:3]  # Lambda and trace ids
    assert written["ids"][4:] == unwritten["ids"][4:]  # cost counting, telemetry


async def test_a_given_generator_is_used_as_the_default_one_is(
    request_log: logging.Logger, records: Records
) -> None:
    async def placeholder(scope: Scope, receive: Receive, send: Send) -> None:
        raise AssertionError

    request_log.setLevel(logging.INFO)
    made = iter(["given-1"])
    default = await _what_the_request_got(RequestObserver(placeholder), [], 200)
    given = await _what_the_request_got(
        RequestObserver(placeholder, generate=lambda: next(made, "given-2")), [], 200
    )
    assert given["ids"].request_id == "given-2"  # given-1 went to the constructor's check
    assert GENERATED.fullmatch(default["ids"].request_id)
    first, second = records.requests()
    assert (first["request_id"], second["request_id"]) == (
        default["ids"].request_id,
        "given-2",
    )
    # everything but what differs between two requests (the message holds the duration)
    varies = ("time", "request_id", "duration_ms", "message")
    assert {k: v for k, v in first.items() if k not in varies} == {
        k: v for k, v in second.items() if k not in varies
    }
    assert first["message"].startswith("GET * 200 ") and second["message"].startswith("GET * 200 ")


async def _item(request: Any) -> PlainTextResponse:
    return PlainTextResponse("ok")


async def test_the_records_route_under_a_servers_root_path_and_a_mount_inside(
    request_log: logging.Logger, records: Records
) -> None:
    request_log.setLevel(logging.INFO)
    app = Starlette(routes=[Mount("/api", routes=[Route("/items/{item_id}", _item)])])
    scope = _scope("/prefix/api/items/7", root_path="/prefix")
    sent = await run_asgi(RequestObserver(app), scope)
    assert sent[0]["status"] == 200
    assert scope["root_path"] == "/prefix/api"  # what the Mount left
    (line,) = records.requests()
    assert line["route"] == "/api/items/{item_id}"
