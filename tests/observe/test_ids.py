"""Request ids: echoed, generated, invalid ones replaced, on every response of the stack
(401, 404, 429, 503 and a handler's crash included), available to handlers, and the
Lambda invocation's ids kept."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from starlette.types import Message, Receive, Scope, Send

from lift_asgi.errors import ConfigurationError
from lift_asgi.observe import RequestObserver, current_ids
from lift_asgi.stages import OBSERVE, context
from lift_asgi.testing import FaultProxy
from tests.observe.conftest import bearer, client

GENERATED = re.compile(r"[0-9a-f]{32}")


async def test_a_valid_client_id_is_echoed_and_reaches_the_handler(make_stack: Any) -> None:
    app, _ = make_stack()
    sent = "req-42.a:b_C"
    async with client(app) as http:
        response = await http.get("/whoami", headers={**bearer(), "x-request-id": sent})
    assert response.status_code == 200, response.text
    assert response.headers["x-request-id"] == sent
    assert response.json()["request_id"] == sent
    assert response.json()["state"] == sent


async def test_without_one_an_id_is_generated_per_request(make_stack: Any) -> None:
    app, _ = make_stack()
    async with client(app) as http:
        first = await http.get("/whoami", headers=bearer())
        second = await http.get("/whoami", headers=bearer())
    ids = [first.headers["x-request-id"], second.headers["x-request-id"]]
    assert all(GENERATED.fullmatch(value) for value in ids), ids
    assert ids[0] != ids[1]
    assert first.json()["request_id"] == ids[0]


@pytest.mark.parametrize(
    "sent",
    ["", "a" * 129, "has space", 'quote"d', "new\\nline", "semi;colon", "caf\u00e9", "x/y"],
)
async def test_an_invalid_client_id_is_replaced_not_cleaned(sent: str) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async with client(RequestObserver(app)) as http:
        response = await http.get("/", headers={"x-request-id": sent.encode("utf-8")})
    assert GENERATED.fullmatch(response.headers["x-request-id"]), response.headers


async def test_128_characters_is_still_accepted() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async with client(RequestObserver(app)) as http:
        response = await http.get("/", headers={"x-request-id": "a" * 128})
    assert response.headers["x-request-id"] == "a" * 128


async def test_untrusted_header_is_never_taken() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async with client(RequestObserver(app, trust_header=False)) as http:
        response = await http.get("/", headers={"x-request-id": "mine"})
    assert GENERATED.fullmatch(response.headers["x-request-id"])


@pytest.mark.parametrize(
    ("sent", "echoed"),
    [
        (["first-id", "second-id"], "first-id"),
        (["first-id", "bad id"], "first-id"),
        (["bad id", "second-id"], None),  # the first is the client's: invalid, replaced
    ],
)
async def test_of_repeated_request_id_headers_the_first_is_taken(
    sent: list[str], echoed: str | None
) -> None:
    # the tenant resolvers read the first of a repeated header; the observer took the last
    seen: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(context(scope).request_id or "")
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async with client(RequestObserver(app)) as http:
        response = await http.get("/", headers=[("x-request-id", value) for value in sent])
    assert response.headers.get_list("x-request-id") == seen
    if echoed is None:
        assert GENERATED.fullmatch(seen[0])
    else:
        assert seen == [echoed]


async def test_the_apps_own_header_is_replaced_once() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"x-request-id", b"from-the-app"), (b"content-length", b"0")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b""})

    async with client(RequestObserver(app)) as http:
        response = await http.get("/", headers={"x-request-id": "abc"})
    assert response.headers.get_list("x-request-id") == ["abc"]


async def test_401_404_429_503_and_a_crash_all_carry_the_id(
    make_stack: Any, dynamodb_fault_proxy: FaultProxy
) -> None:
    app, _ = make_stack(limit="1/minute")
    async with client(app) as http:
        unauthorized = await http.get("/whoami", headers={"x-request-id": "r401"})
        not_found = await http.get(
            "/projects/missing", headers={**bearer("t404"), "x-request-id": "r404"}
        )
        admitted = await http.get("/whoami", headers={**bearer("t429"), "x-request-id": "ok"})
        refused = await http.get("/whoami", headers={**bearer("t429"), "x-request-id": "r429"})
        crashed = await http.get("/boom", headers={**bearer("t500"), "x-request-id": "r500"})
    assert (unauthorized.status_code, unauthorized.headers["x-request-id"]) == (401, "r401")
    assert (not_found.status_code, not_found.headers["x-request-id"]) == (404, "r404")
    assert admitted.status_code == 200
    assert (refused.status_code, refused.headers["x-request-id"]) == (429, "r429")
    assert (crashed.status_code, crashed.headers["x-request-id"]) == (500, "r500")

    # 503: the rate-limit table throttles and the limiter refuses (on_failure='refuse').
    closed, _ = make_stack(dynamodb_fault_proxy.endpoint, on_failure="refuse")
    dynamodb_fault_proxy.throttle(times=None)
    async with client(closed) as http:
        unavailable = await http.get("/whoami", headers={**bearer("t503"), "x-request-id": "r503"})
    assert unavailable.status_code == 503, unavailable.text
    assert unavailable.headers["x-request-id"] == "r503"
    assert unavailable.headers["content-type"] == "application/problem+json"


async def test_a_bare_app_that_raises_gets_a_500_problem_with_the_id() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        raise RuntimeError("no answer")

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    scope = {"type": "http", "method": "GET", "path": "/", "headers": [(b"x-request-id", b"r1")]}
    with pytest.raises(RuntimeError):
        await RequestObserver(app)(scope, receive, send)
    assert sent[0]["status"] == 500
    assert (b"x-request-id", b"r1") in sent[0]["headers"]


class _LambdaContext:
    aws_request_id = "5e6a1c0e-1111-4222-8333-944445555666"


async def test_under_lambda_the_invocation_ids_are_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("_X_AMZN_TRACE_ID", "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1")
    seen: dict[str, Any] = {}

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen["ids"] = current_ids()
        seen["context"] = context(scope).request_id
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    scope: dict[str, Any] = {
        "type": "http",
        "method": "GET",
        "path": "/",
        "headers": [],
        "aws.event": {},
        "aws.context": _LambdaContext(),
    }
    await RequestObserver(app)(scope, receive, send)
    ids = seen["ids"]
    # No client id: the invocation's id is the request id, so the record joins Lambda's.
    assert ids.request_id == _LambdaContext.aws_request_id == seen["context"]
    assert ids.lambda_request_id == _LambdaContext.aws_request_id
    assert ids.trace_id == "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1"
    assert (b"x-request-id", _LambdaContext.aws_request_id.encode()) in sent[0]["headers"]

    # A client's own id wins; the Lambda ids stay beside it; a trace header is preferred.
    scope = {
        **scope,
        "headers": [(b"x-request-id", b"client-1"), (b"x-amzn-trace-id", b"Root=1-abc")],
    }
    await RequestObserver(app)(scope, receive, send)
    ids = seen["ids"]
    assert (ids.request_id, ids.lambda_request_id, ids.trace_id) == (
        "client-1",
        _LambdaContext.aws_request_id,
        "Root=1-abc",
    )
    assert current_ids() is None


async def test_the_stage_is_entered_first_and_other_scopes_pass_through() -> None:
    seen: list[Any] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append((scope["type"], list(context(scope).stages)))

    async def receive() -> Message:
        return {"type": "lifespan.startup"}

    async def send(message: Message) -> None:
        return None

    observer = RequestObserver(app)
    await observer({"type": "lifespan"}, receive, send)
    await observer({"type": "websocket", "path": "/ws", "headers": []}, receive, send)
    assert seen == [("lifespan", [OBSERVE]), ("websocket", [OBSERVE])]


@pytest.mark.parametrize(
    ("options", "option"),
    [
        ({"header": "bad header"}, "header"),
        ({"trust_header": "yes"}, "trust_header"),
        ({"generate": lambda: "not valid!"}, "generate"),
        ({"logger": 3}, "logger"),
        ({"quiet": "health"}, "quiet"),
        ({"tenant_in_metrics": True}, "otel"),
    ],
)
def test_bad_options_are_refused_at_construction(options: dict[str, Any], option: str) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        return None

    with pytest.raises(ConfigurationError) as raised:
        RequestObserver(app, **options)
    assert raised.value.option == option


def test_through_the_lambda_handler_the_invocation_ids_reach_handler_and_record(
    records: Any,
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    import lift_asgi
    from lift_asgi.aws import handler
    from lift_asgi.testing import api_gateway_v2_event, lambda_context

    async def hello(request: Request) -> JSONResponse:
        ids = current_ids()
        assert ids is not None
        return JSONResponse({"request_id": ids.request_id, "lambda": ids.lambda_request_id})

    app = lift_asgi.install(Starlette(routes=[Route("/hello", hello)]), observe={})
    lambda_handler = handler(app, lifespan="off")
    invocation = lambda_context()
    event = api_gateway_v2_event("GET", "/hello", headers={"x-amzn-trace-id": "Root=1-abc-def"})
    try:
        with ThreadPoolExecutor(1) as pool:
            answer = pool.submit(lambda_handler, event, invocation).result()
    finally:
        lambda_handler.close()
    assert answer["statusCode"] == 200
    assert answer["headers"]["x-request-id"] == invocation.aws_request_id
    assert json.loads(answer["body"]) == {
        "request_id": invocation.aws_request_id,
        "lambda": invocation.aws_request_id,
    }
    (line,) = records.requests()
    assert line["lambda_request_id"] == invocation.aws_request_id
    assert (line["trace_id"], line["route"]) == ("Root=1-abc-def", "/hello")


async def _websocket(
    app: Any, headers: list[tuple[bytes, bytes]], spec_version: str = "2.4"
) -> list[Message]:
    """One WebSocket connection driven through ASGI: connect, then what the app sends."""
    inbox: list[Message] = [{"type": "websocket.connect"}]
    sent: list[Message] = []

    async def receive() -> Message:
        return inbox.pop(0) if inbox else {"type": "websocket.disconnect", "code": 1000}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "websocket",
        "asgi": {"version": "3.0", "spec_version": spec_version},
        "path": "/ws",
        "raw_path": b"/ws",
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "scheme": "ws",
        "client": ("127.0.0.1", 5000),
        "server": ("test", 80),
        "subprotocols": [],
    }
    await app(scope, receive, send)
    return sent


async def test_a_websocket_gets_its_id_in_the_handshake_and_for_the_connection() -> None:
    seen: list[Any] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        ids = current_ids()
        seen.append((ids.request_id if ids else None, scope["state"]["request_id"]))
        await send({"type": "websocket.accept", "headers": [(b"x-request-id", b"app-own")]})
        await send({"type": "websocket.send", "text": "hi"})
        await send({"type": "websocket.close", "code": 1000})

    observer = RequestObserver(app)
    sent = await _websocket(observer, [(b"x-request-id", b"ws-1")])
    assert seen == [("ws-1", "ws-1")]
    assert sent[0]["headers"] == [(b"x-request-id", b"ws-1")]  # ours replaces the app's
    assert [m["type"] for m in sent] == ["websocket.accept", "websocket.send", "websocket.close"]
    assert "headers" not in sent[1]
    assert current_ids() is None  # reset when the connection ends

    sent = await _websocket(observer, [(b"x-request-id", b"bad id")])
    assert GENERATED.fullmatch(dict(sent[0]["headers"])[b"x-request-id"].decode())


async def test_a_refused_websocket_handshake_carries_the_id_in_its_denial_response() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.http.response.start", "status": 403, "headers": []})
        await send({"type": "websocket.http.response.body", "body": b"no"})

    sent = await _websocket(RequestObserver(app), [(b"x-request-id", b"ws-2")])
    assert sent[0]["headers"] == [(b"x-request-id", b"ws-2")]
    assert sent[1] == {"type": "websocket.http.response.body", "body": b"no"}


async def test_a_websocket_accept_gets_no_headers_from_a_server_before_asgi_2_1() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close", "code": 1000})

    sent = await _websocket(RequestObserver(app), [(b"x-request-id", b"ws-3")], "2.0")
    assert sent[0] == {"type": "websocket.accept"}  # what a 2.0 server understands
