"""The one error shape: RFC 9457 problem+json, on raw ASGI."""

from __future__ import annotations

import json
from typing import Any

import pytest
from starlette.types import Message

from lift_asgi.errors import (
    Conflict,
    DynamoDBThrottled,
    HTTPProblem,
    LiftError,
    ServiceUnavailable,
    TooManyRequests,
    Unauthorized,
    problem_body,
    send_problem,
)


async def _sent(error: LiftError) -> list[Message]:
    messages: list[Message] = []

    async def send(message: Message) -> None:
        messages.append(message)

    await send_problem(send, error)
    return messages


@pytest.mark.parametrize(
    ("error", "status", "headers"),
    [
        (Unauthorized("who are you?"), 401, {b"www-authenticate": b"Bearer"}),
        (Conflict("stale", operation={"index": 0}), 409, {}),
        (TooManyRequests("slow down", retry_after=2.2), 429, {b"retry-after": b"3"}),
        (DynamoDBThrottled(aws_code="ThrottlingException"), 503, {b"retry-after": b"1"}),
        (HTTPProblem(405), 405, {}),
    ],
)
async def test_send_problem_writes_one_complete_problem(
    error: LiftError, status: int, headers: dict[bytes, bytes]
) -> None:
    start, body = await _sent(error)
    assert start["status"] == status
    sent_headers = dict(start["headers"])
    assert sent_headers[b"content-type"] == b"application/problem+json"
    for name, value in headers.items():
        assert sent_headers[name] == value
    document = json.loads(body["body"])
    assert document["status"] == status
    assert document["type"].startswith("urn:lift-asgi:problem:")
    assert int(sent_headers[b"content-length"]) == len(body["body"])
    if status in (429, 503):
        assert document["retry_after"] == int(sent_headers[b"retry-after"])
    assert "aws_code" not in document and "ThrottlingException" not in body["body"].decode()


def _strict_json(raw: bytes) -> Any:
    """``raw`` parsed as strict JSON: ``NaN``/``Infinity`` tokens are refused."""

    def refuse(token: str) -> None:
        raise AssertionError(f"{token} is not JSON")

    return json.loads(raw, parse_constant=refuse)


@pytest.mark.parametrize(
    "value", [float("nan"), float("inf"), float("-inf"), {float("nan"): [float("inf")]}]
)
def test_a_problem_member_holding_nan_or_infinity_is_still_strict_json(value: Any) -> None:
    document = _strict_json(problem_body(Conflict("stale", measured=value, key={(1, 2): 1})))
    assert document["status"] == 409
    assert document["key"] == {"(1, 2)": 1}  # a key JSON cannot hold, as a string
    spelled = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}
    if isinstance(value, dict):
        assert document["measured"] == {"NaN": ["Infinity"]}
    else:
        assert document["measured"] == spelled[repr(value)]


@pytest.mark.parametrize("seconds", [float("nan"), float("inf"), float("-inf")])
async def test_a_retry_after_that_is_no_finite_number_is_one_second(seconds: float) -> None:
    # math.ceil raises on NaN and infinity: building the 429 or 503 itself failed
    for error in (TooManyRequests(retry_after=seconds), ServiceUnavailable(retry_after=seconds)):
        start, body = await _sent(error)
        assert dict(start["headers"])[b"retry-after"] == b"1"
        assert _strict_json(body["body"])["retry_after"] == 1
