"""What the observer's per-request fast path must keep: the route of a record read from
the scope as the app got it, the level read when the record is due, the app's own id
header replaced whatever its case, the first of repeated headers whatever the headers'
container, the trace header never taken from the id's own header, and generated ids
that count on, wrap, and change prefix in a forked child."""

from __future__ import annotations

import itertools
import logging
import os
import re
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route
from starlette.types import Receive, Scope, Send

from lift_asgi.observe import RequestObserver, current_ids
from lift_asgi.observe.ids import _formatted, new_request_id
from lift_asgi.stages import OBSERVE, SCOPE_KEY, enter
from tests.observe.conftest import Records, client, run_asgi


async def _item(request: Any) -> PlainTextResponse:
    return PlainTextResponse("ok")


async def test_the_record_has_the_route_of_the_scope_the_app_got_not_the_one_it_left(
    records: Records,
) -> None:
    # A Mount rewrites root_path in the scope it is given: matched after the app, the
    # path would no longer match the full template.
    app = Starlette(routes=[Mount("/api", routes=[Route("/items/{item_id}", _item)])])
    async with client(RequestObserver(app)) as http:
        response = await http.get("/api/items/7")
    assert response.status_code == 200
    assert [line["route"] for line in records.requests()] == ["/api/items/{item_id}"]


async def test_a_level_changed_between_requests_is_seen_on_the_next_one(
    records: Records,
) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        status = 503 if scope["path"] == "/fail" else 200
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    request_log = logging.getLogger("lift_asgi.request")
    observer = RequestObserver(app)
    try:
        async with client(observer) as http:
            request_log.setLevel(logging.WARNING)
            await http.get("/ok")  # below the level: no record
            await http.get("/fail")  # ERROR: written
            request_log.setLevel(logging.INFO)
            await http.get("/ok")  # written now
            request_log.disabled = True
            await http.get("/fail")  # a disabled logger writes nothing
    finally:
        request_log.setLevel(logging.NOTSET)
        request_log.disabled = False
    assert [(line["status"], line["level"]) for line in records.requests()] == [
        (503, "ERROR"),
        (200, "INFO"),
    ]


async def test_the_apps_own_header_is_replaced_whatever_its_case() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"X-Request-Id", b"from-the-app"), (b"content-length", b"0")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b""})

    async with client(RequestObserver(app)) as http:
        response = await http.get("/", headers={"x-request-id": "abc"})
    assert response.headers.get_list("x-request-id") == ["abc"]
    assert response.headers["content-length"] == "0"


def _scope(headers: Any) -> Scope:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/",
        "raw_path": b"/",
        "root_path": "",
        "query_string": b"",
        "headers": headers,
    }


async def test_the_first_of_repeated_headers_whatever_holds_the_headers() -> None:
    seen: list[Any] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        ids = current_ids()
        assert ids is not None
        seen.append((ids.request_id, ids.trace_id))
        await send({"type": "http.response.start", "status": 204})
        await send({"type": "http.response.body", "body": b""})

    pairs = [
        (b"x-request-id", b"first"),
        (b"x-amzn-trace-id", b"Root=1-a"),
        (b"x-request-id", b"second"),
        (b"x-amzn-trace-id", b"Root=1-b"),
    ]

    def generated() -> Iterator[tuple[bytes, bytes]]:
        yield from pairs

    observer = RequestObserver(app)
    for headers in (pairs, tuple(pairs), [list(pair) for pair in pairs], generated()):
        sent = await run_asgi(observer, _scope(headers))
        assert sent[0]["headers"] == [(b"x-request-id", b"first")]
    assert seen == [("first", "Root=1-a")] * 4


async def test_the_ids_own_header_is_not_also_read_as_the_trace_header() -> None:
    seen: list[Any] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        ids = current_ids()
        assert ids is not None
        seen.append((ids.request_id, ids.trace_id))
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    observer = RequestObserver(app, header="X-Amzn-Trace-Id")
    sent = await run_asgi(observer, _scope([(b"x-amzn-trace-id", b"abc-1")]))
    assert seen == [("abc-1", None)]
    assert sent[0]["headers"] == [(b"x-amzn-trace-id", b"abc-1")]


def test_generated_ids_count_on_in_hex_and_wrap_at_two_to_the_64() -> None:
    ids = _formatted("p" * 16, (1 << 64) - 2)
    assert list(itertools.islice(ids, 3)) == [
        "p" * 16 + "fffffffffffffffe",
        "p" * 16 + "ffffffffffffffff",
        "p" * 16 + "0000000000000000",
    ]
    first, second = new_request_id(), new_request_id()
    assert re.fullmatch(r"[0-9a-f]{32}", first) and first[:16] == second[:16]
    assert int(second[16:], 16) == int(first[16:], 16) + 1


@pytest.mark.parametrize("start", [0, 0xFE, 0x1FF, 0x12345678, (1 << 64) - 300])
def test_generated_ids_made_by_blocks_are_the_counter_formatted_one_by_one(start: int) -> None:
    # blocks of 256 share their first 30 characters: every block edge is crossed here
    made = list(itertools.islice(_formatted("ab%c" * 4, start), 600))
    assert made == ["ab%c" * 4 + f"{(start + n) % (1 << 64):016x}" for n in range(600)]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is POSIX")
def test_a_forked_child_draws_a_new_prefix() -> None:
    before = new_request_id()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its first id and leave at once
        os.write(write, new_request_id().encode())
        os._exit(0)
    os.close(write)
    child = os.read(read, 64).decode()
    os.close(read)
    os.waitpid(pid, 0)
    assert re.fullmatch(r"[0-9a-f]{32}", child)
    assert child[:16] != before[:16]


async def test_with_opentelemetry_the_record_and_the_span_have_the_same_route(
    records: Records,
) -> None:
    from tests.observe.test_otel import Telemetry

    otel = Telemetry()
    app = Starlette(routes=[Mount("/api", routes=[Route("/items/{item_id}", _item)])])
    async with client(RequestObserver(app, **otel.options())) as http:
        response = await http.get("/api/items/7")
    (server,) = otel.server()
    assert dict(server.attributes or {})["http.route"] == "/api/items/{item_id}"
    (line,) = records.requests()
    assert (line["route"], line["status"]) == ("/api/items/{item_id}", 200)
    assert line["request_id"] == response.headers["x-request-id"]


async def test_header_names_that_cannot_be_hashed_are_still_read_and_replaced() -> None:
    seen: list[Any] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        ids = current_ids()
        assert ids is not None
        seen.append((ids.request_id, ids.trace_id))
        headers = [(bytearray(b"X-Request-ID"), b"from-the-app"), (b"content-length", b"0")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b""})

    request = [
        (bytearray(b"x-amzn-trace-id"), b"Root=1-a"),
        (bytearray(b"x-request-id"), b"first"),
        (b"x-request-id", b"second"),
    ]
    sent = await run_asgi(RequestObserver(app), _scope(request))
    assert seen == [("first", "Root=1-a")]
    assert sent[0]["headers"] == [(b"content-length", b"0"), (b"x-request-id", b"first")]
    untrusted = await run_asgi(RequestObserver(app, trust_header=False), _scope(request))
    assert seen[1][0] != "first" and seen[1][1] == "Root=1-a"
    assert untrusted[0]["headers"][-1] == (b"x-request-id", seen[1][0].encode())


async def test_a_long_header_name_is_replaced_whatever_its_case() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"X-Correlation-Request-Id", b"from-the-app"), (b"content-length", b"0")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b""})

    observer = RequestObserver(app, header="X-Correlation-Request-ID")
    sent = await run_asgi(observer, _scope([(b"x-correlation-request-id", b"abc")]))
    assert sent[0]["headers"] == [
        (b"content-length", b"0"),
        (b"x-correlation-request-id", b"abc"),
    ]


async def test_the_context_the_observer_opens_is_the_one_enter_opens() -> None:
    # __call__ opens the request's context without calling enter(): the same fields
    seen: list[dict[str, Any]] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(dict(vars(scope[SCOPE_KEY])))
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    scope = _scope([])
    await run_asgi(RequestObserver(app), scope)
    (fields,) = seen
    opened = vars(enter({}, OBSERVE))
    assert {key: fields[key] for key in opened} == opened
    assert set(fields) - set(opened) == {"request_id", "ids"}
    assert scope["state"] == {"request_id": fields["request_id"]}


async def test_the_default_generator_and_new_request_id_hand_out_the_same_ids() -> None:
    # the observer takes the default ids with next() itself, not through new_request_id
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    before = new_request_id()
    sent = await run_asgi(RequestObserver(app), _scope([]))
    after = new_request_id()
    echoed = dict(sent[0]["headers"])[b"x-request-id"].decode()
    assert before[:16] == echoed[:16] == after[:16]
    assert int(echoed[16:], 16) == int(before[16:], 16) + 1 == int(after[16:], 16) - 1
