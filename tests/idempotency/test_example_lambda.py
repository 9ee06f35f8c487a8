"""The example's Idempotency-Key under the Lambda handler (Mangum), against the local
server (the Lambda deadline as the claim's expiry is tested in test_failures.py).

As in tests/test_aws_handler.py, one thread plays one Lambda container.
"""

from __future__ import annotations

import base64
import json
import math
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from examples.saas.app import create_app
from examples.saas.settings import Settings
from examples.saas.setup import create_tables
from examples.saas.token import mint
from lift_asgi.aws import LambdaHandler, handler
from lift_asgi.testing import api_gateway_v2_event, lambda_context

pytestmark = pytest.mark.dynamodb


@pytest.fixture
async def settings(dynamodb_env: str) -> Settings:
    suffix = uuid.uuid4().hex[:8]
    result = Settings.from_env(
        {
            "SAAS_ENV": "dev",
            "AWS_ENDPOINT_URL_DYNAMODB": dynamodb_env,
            "AWS_REGION": "us-east-1",
            "SAAS_TABLE": f"idem-lambda-data-{suffix}",
            "SAAS_RATE_TABLE": f"idem-lambda-rate-{suffix}",
        }
    )
    await create_tables(result)
    return result


@pytest.fixture
def invoke(settings: Settings) -> Iterator[Callable[..., dict[str, Any]]]:
    pool = ThreadPoolExecutor(max_workers=1)
    lambda_handler: LambdaHandler = handler(create_app(settings))

    def call(event: dict[str, Any], **context: Any) -> dict[str, Any]:
        result: dict[str, Any] = pool.submit(
            lambda_handler, event, lambda_context(**context)
        ).result(60)
        return result

    yield call
    pool.submit(lambda_handler.shutdown).result(30)
    pool.shutdown(wait=True)


def _body(response: dict[str, Any]) -> bytes:
    body = response["body"]
    return base64.b64decode(body) if response.get("isBase64Encoded") else body.encode()


def _headers(response: dict[str, Any]) -> dict[str, str]:
    return {k.lower(): str(v) for k, v in (response.get("headers") or {}).items()}


def test_a_retried_invocation_gets_the_first_answer(
    invoke: Callable[..., dict[str, Any]],
) -> None:
    headers = {"authorization": f"Bearer {mint('acme', plan='pro')}", "idempotency-key": "k-1"}
    event = api_gateway_v2_event("POST", "/projects", json_body={"name": "L"}, headers=headers)
    first = invoke(event)
    again = invoke(event)
    assert first["statusCode"] == again["statusCode"] == 201
    assert _body(again) == _body(first)
    assert _headers(again)["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in _headers(first)
    listing = invoke(api_gateway_v2_event("GET", "/projects", headers=headers))
    assert [p["id"] for p in json.loads(_body(listing))["items"]] == [
        json.loads(_body(first))["id"]
    ]


def test_a_handler_4xx_is_remembered_and_another_body_is_a_422(
    invoke: Callable[..., dict[str, Any]], settings: Settings, dynamodb_endpoint: str
) -> None:
    from lift_asgi.local import dynamodb_request

    headers = {"authorization": f"Bearer {mint('acme', plan='pro')}", "idempotency-key": "d"}
    event = api_gateway_v2_event(
        "PATCH", "/projects/nope", json_body={"name": "x", "version": 1}, headers=headers
    )
    first = invoke(event)
    assert first["statusCode"] == 404
    again = invoke(event)
    assert again["statusCode"] == 404 and _body(again) == _body(first)
    assert _headers(again)["idempotent-replayed"] == "true"
    other = api_gateway_v2_event(
        "PATCH", "/projects/nope", json_body={"name": "y", "version": 1}, headers=headers
    )
    reused = invoke(other)
    assert reused["statusCode"] == 422
    assert _headers(reused)["content-type"] == "application/problem+json"
    found = dynamodb_request(
        dynamodb_endpoint,
        "GetItem",
        {
            "TableName": settings.table,
            "Key": {"pk": {"S": "acme#_idempotency#d"}, "sk": {"S": "_"}},
            "ConsistentRead": True,
        },
    )
    item = found["Item"]
    assert item["state"] == {"S": "completed"}
    assert "expires_at" not in item  # completed: nothing left to expire
    assert math.isclose(int(item["ttl"]["N"]), time.time() + 24 * 3600, abs_tol=120)
