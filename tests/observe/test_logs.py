"""Logs: one request record per request (route template, status, duration, tenant, commit,
DynamoDB figures equal to what the transport sent and DynamoDB answered), the request id
and tenant on the handler's own lines, and no token, key, secret or body anywhere."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Mapping
from typing import Any

import jwt
import pytest
from starlette.types import Message, Receive, Scope, Send

from lift_asgi.dynamo.transport import AiodynamoTransport
from lift_asgi.observe import (
    JsonFormatter,
    RequestContextFilter,
    RequestObserver,
    configure_logging,
    log_handler,
)
from lift_asgi.testing import FaultProxy
from tests.observe.conftest import SECRET, Records, bearer, client, token

READS = {"GetItem", "Query", "Scan", "BatchGetItem", "TransactGetItems"}


class SpyTransport(AiodynamoTransport):
    """Keeps what was sent and what DynamoDB answered, below the observer's hook."""

    sent: list[tuple[str, dict[str, Any], dict[str, Any]]]

    async def _request(self, action: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        answer: dict[str, Any] = {}  # an error answer reports no capacity
        self.sent.append((action, dict(payload), answer))
        answer.update(await super()._request(action, payload))
        return answer


def spy(transport: AiodynamoTransport) -> SpyTransport:
    transport.__class__ = SpyTransport
    assert isinstance(transport, SpyTransport)
    transport.sent = []
    return transport


def units(sent: list[tuple[str, dict[str, Any], dict[str, Any]]]) -> tuple[float, float]:
    read = write = 0.0
    for action, _, answer in sent:
        consumed = answer.get("ConsumedCapacity") or []
        for entry in consumed if isinstance(consumed, list) else [consumed]:
            if action in READS:
                read += entry.get("CapacityUnits", 0)
            else:
                write += entry.get("CapacityUnits", 0)
    return read, write


async def test_one_record_per_request_with_the_transports_figures(
    make_stack: Any, records: Records
) -> None:
    app, transport = make_stack()
    spied = spy(transport)
    requests = [
        ("PUT", "/projects/p1", {"name": "Apollo"}, 200, "committed"),
        ("GET", "/projects/p1", None, 200, "none"),
        ("PUT", "/projects/p1", {"name": "Again"}, 409, "conflict"),
        ("GET", "/projects/nope", None, 404, "none"),
    ]
    async with client(app) as http:
        for method, path, body, status, commit in requests:
            before = transport.calls
            spied.sent.clear()
            response = await http.request(method, path, json=body, headers=bearer())
            assert response.status_code == status, response.text
            lines = records.requests()
            assert len(lines) == 1, lines
            line = lines[0]
            records.stream.seek(0)
            records.stream.truncate()
            assert line["request_id"] == response.headers["x-request-id"]
            assert line["tenant"] == "acme"
            assert (line["method"], line["route"], line["status"]) == (
                method,
                "/projects/{project_id}",
                status,
            )
            assert line["commit"] == commit
            assert line["duration_ms"] > 0
            dynamodb = line["dynamodb"]
            assert dynamodb["calls"] == transport.calls - before == len(spied.sent) > 0
            assert (dynamodb["read_units"], dynamodb["write_units"]) == units(spied.sent)
            for action, payload, _ in spied.sent:  # asked wherever DynamoDB accepts it
                expected = None if action == "DescribeTable" else "TOTAL"
                assert payload.get("ReturnConsumedCapacity") == expected, action
    # The rate limiter's write and the data calls are both in: the GET of an existing item
    # read something, the first PUT wrote something.
    assert units(spied.sent)[1] > 0


async def test_bulk_writes_and_idempotency_records_are_counted_too(
    make_stack: Any, records: Records
) -> None:
    app, transport = make_stack(idempotency={})
    spied = spy(transport)
    headers = {**bearer(), "idempotency-key": "import-1"}
    async with client(app) as http:
        for expected in ("first", "replay"):
            before = transport.calls
            spied.sent.clear()
            response = await http.post("/imports/p1", headers=headers)
            assert response.status_code == 200, response.text
            assert (response.headers.get("idempotent-replayed") == "true") == (expected == "replay")
            (line,) = records.requests()
            records.stream.seek(0)
            records.stream.truncate()
            dynamodb = line["dynamodb"]
            assert dynamodb["calls"] == transport.calls - before == len(spied.sent)
            assert (dynamodb["read_units"], dynamodb["write_units"]) == units(spied.sent)
            actions = [action for action, _, _ in spied.sent]
            if expected == "first":  # the claim, two batches, the commit with the record
                assert actions.count("BatchWriteItem") == 2, actions
                assert line["commit"] == "committed"
            else:  # the claim meets the record: nothing else runs
                assert "BatchWriteItem" not in actions, actions


@pytest.mark.parametrize("fault", ["throttle", "5xx", "latency", "drop"])
async def test_a_failing_dynamodb_is_counted_call_by_call(
    fault: str, make_stack: Any, records: Records, dynamodb_fault_proxy: FaultProxy
) -> None:
    app, transport = make_stack(dynamodb_fault_proxy.endpoint, timeout=0.3)
    async with client(app) as http:
        await http.put("/projects/f1", json={"name": "A"}, headers=bearer())  # table checked
        records.stream.seek(0)
        records.stream.truncate()
        inject = {
            "throttle": lambda: dynamodb_fault_proxy.throttle(times=None, operation="GetItem"),
            "5xx": lambda: dynamodb_fault_proxy.fail(times=None, operation="GetItem"),
            "latency": lambda: dynamodb_fault_proxy.delay(0.6, times=None, operation="GetItem"),
            "drop": lambda: dynamodb_fault_proxy.drop(times=None, operation="GetItem"),
        }
        inject[fault]()
        before = transport.calls
        response = await http.get("/projects/f1", headers={**bearer(), "x-request-id": "f-1"})
    assert response.status_code == 503, response.text
    assert response.headers["x-request-id"] == "f-1"
    (line,) = records.requests()
    dynamodb = line["dynamodb"]
    attempts = transport.calls - before - 1  # all but the rate limiter's UpdateItem
    assert attempts == 3  # the table's retry policy: 3 attempts, each one counted
    assert dynamodb["calls"] == transport.calls - before
    assert dynamodb["errors"] == attempts
    assert dynamodb["retries"] == attempts - 1
    assert dynamodb["throttles"] == (attempts if fault == "throttle" else 0)
    assert (line["status"], line["level"]) == (503, "ERROR")  # a 5xx record is an ERROR


async def test_the_handlers_own_line_carries_request_id_and_tenant(
    make_stack: Any, records: Records
) -> None:
    app, _ = make_stack()
    async with client(app) as http:
        await http.put("/projects/p9", json={"name": "x"}, headers=bearer("globex"))
        response = await http.get(
            "/projects/p9", headers={**bearer("globex"), "x-request-id": "trace-me"}
        )
    assert response.status_code == 200
    own = [line for line in records.lines if line["message"] == "read project p9"]
    assert len(own) == 1
    assert (own[0]["request_id"], own[0]["tenant"]) == ("trace-me", "globex")
    assert own[0]["logger"] == "tests.observe.handler"
    # The suite's own lines of the request carry them too (the record itself included).
    mine = [line for line in records.lines if line["request_id"] == "trace-me"]
    assert {line["logger"] for line in mine} >= {"tests.observe.handler", "lift_asgi.request"}


async def test_nothing_secret_reaches_any_record(
    make_stack: Any, records: Records, dynamodb_fault_proxy: FaultProxy
) -> None:
    app, _ = make_stack(limit="3/minute")
    good = token("acme")
    forged = jwt.encode({"tenant_id": "acme", "exp": 2**31}, "another-secret-0123456789abcdefg")
    api_key = "sk_live_apikey_4242424242"
    body_marker = "BODY-MARKER-never-logged"
    async with client(app) as http:
        headers = {"authorization": f"Bearer {good}", "x-api-key": api_key}
        await http.put(f"/projects/s1?token={good}", json={"name": body_marker}, headers=headers)
        await http.put("/projects/s1", json={"name": body_marker}, headers=headers)  # 409
        await http.get("/projects/s1", headers={"authorization": f"Bearer {forged}"})  # 401
        await http.get("/boom", headers=headers)  # 500, traceback logged by the server side
        await http.get("/whoami", headers=headers)  # 429
    # ... and when DynamoDB fails under a request (warnings from the transport and limiter).
    failing, _ = make_stack(dynamodb_fault_proxy.endpoint)
    dynamodb_fault_proxy.throttle(times=None)
    async with client(failing) as http:
        await http.put("/projects/s2", json={"name": body_marker}, headers=headers)
    ours = [line for line in records.lines if not line["logger"].startswith(("httpx", "httpcore"))]
    assert {line["status"] for line in ours if line["logger"] == "lift_asgi.request"} >= {
        200,
        401,
        409,
        429,
        500,
        503,
    }
    text = "\n".join(json.dumps(line) for line in ours)
    for secret in (good, forged, good.split(".")[2], api_key, body_marker, SECRET):
        assert secret not in text


async def test_quiet_paths_get_an_id_but_no_record(records: Records) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    async with client(RequestObserver(app, quiet="/health")) as http:
        health = await http.get("/health")
        other = await http.get("/healthz")
    assert "x-request-id" in health.headers
    assert [line["route"] for line in records.requests()] == ["*"]
    assert records.requests()[0]["request_id"] == other.headers["x-request-id"]


async def test_records_off_or_below_the_level_write_nothing(records: Records) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        status = 500 if scope["path"] == "/fail" else 200
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async with client(RequestObserver(app, log_requests=False)) as http:
        await http.get("/fail")
    assert records.requests() == []
    request_log = logging.getLogger("lift_asgi.request")
    request_log.setLevel(logging.WARNING)
    try:
        async with client(RequestObserver(app)) as http:
            await http.get("/ok")  # an INFO record: below the level
            await http.get("/fail")  # a 5xx is an ERROR record: still written
    finally:
        request_log.setLevel(logging.NOTSET)
    assert [(line["status"], line["level"]) for line in records.requests()] == [(500, "ERROR")]


def test_the_json_formatter_writes_one_line_with_the_ids_and_exception() -> None:
    stream = io.StringIO()
    handler = log_handler(json=True, stream=stream)
    logger = logging.getLogger("tests.observe.formatter")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        try:
            raise ValueError("bad\nthing")
        except ValueError:
            logger.exception("failed with %s", "détail")
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    (line,) = stream.getvalue().splitlines()
    data = json.loads(line)
    assert data["message"] == "failed with détail"
    assert (data["request_id"], data["tenant"], data["level"]) == (None, None, "ERROR")
    assert "ValueError: bad\nthing" in data["exception"]
    assert data["time"].endswith("Z")


def test_a_json_line_is_strict_json_whatever_its_fields_hold(tmp_path: Any) -> None:
    # A NaN field was written as NaN (no JSON parser must accept it), a tuple key made the
    # record a logging error (lost), and an unpaired surrogate failed a UTF-8 file's write.
    path = tmp_path / "log.jsonl"
    logger = logging.getLogger("tests.observe.strict")
    with path.open("w", encoding="utf-8", errors="strict") as stream:
        handler = log_handler(json=True, stream=stream)
        logger.addHandler(handler)
        logger.propagate = False
        try:
            fields = {"latency": float("nan"), "peak": float("-inf"), "by": {("a", 1): 2.5}}
            logger.warning("odd fields", extra={"lift_request": fields})
            logger.warning("a lone surrogate \ud800 and a pair \U0001f600 in %s", "text")
        finally:
            logger.removeHandler(handler)
            logger.propagate = True

    def refuse(constant: str) -> Any:
        raise AssertionError(f"{constant} is not JSON")

    first, second = (
        json.loads(line, parse_constant=refuse)
        for line in path.read_text(encoding="utf-8").splitlines()
    )
    assert (first["latency"], first["peak"], first["by"]) == ("NaN", "-Infinity", {"('a', 1)": 2.5})
    assert second["message"] == "a lone surrogate \ufffd and a pair \U0001f600 in text"


def test_text_format_ends_with_the_ids() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "hello", None, None)
    handler = log_handler(json=False, stream=io.StringIO())
    assert handler.filter(record)
    assert handler.format(record).endswith("hello [request_id=None tenant=None]")
    assert isinstance(handler.formatter, logging.Formatter)
    assert not isinstance(handler.formatter, JsonFormatter)
    assert any(isinstance(f, RequestContextFilter) for f in handler.filters)


@pytest.mark.parametrize("json_lines", [True, False])
async def test_log_handler_output_under_a_request(json_lines: bool) -> None:
    stream = io.StringIO()
    handler = log_handler(json=json_lines, stream=stream)
    logger = logging.getLogger("tests.observe.under")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        logger.info("inside")
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        return None

    try:
        scope = {
            "type": "http",
            "method": "GET",
            "path": "/",
            "headers": [(b"x-request-id", b"r7")],
        }
        await RequestObserver(app, log_requests=False)(scope, receive, send)
    finally:
        logger.removeHandler(handler)
    assert "r7" in stream.getvalue()


def test_configure_logging_sends_every_logger_through_one_json_handler() -> None:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    uvicorn = [logging.getLogger(n) for n in ("uvicorn", "uvicorn.error", "uvicorn.access")]
    saved_uvicorn = [(lg.handlers[:], lg.propagate, lg.disabled) for lg in uvicorn]
    stream = io.StringIO()
    uvicorn[1].addHandler(logging.StreamHandler(io.StringIO()))  # as uvicorn's config does
    uvicorn[1].propagate = False
    try:
        configure_logging(json=True, stream=stream)
        logging.getLogger("uvicorn.error").info("Started server process")
        logging.getLogger("uvicorn.access").info("GET / 200")  # off: the record replaces it
        logging.getLogger("lift_asgi.request").info("GET / 200 1.0ms")
    finally:
        root.handlers[:], root.level = saved
        for lg, (handlers, propagate, disabled) in zip(uvicorn, saved_uvicorn, strict=True):
            lg.handlers[:], lg.propagate, lg.disabled = handlers, propagate, disabled
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["logger"] for line in lines] == ["uvicorn.error", "lift_asgi.request"]
