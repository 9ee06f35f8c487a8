"""moto behind lift-asgi's front: ClientRequestToken kept as DynamoDB keeps it, and every
request answered, even when moto itself raises."""

from __future__ import annotations

import http.client
import json
import urllib.error
import uuid
from typing import Any

import pytest

from lift_asgi.local import LocalDynamoDB, dynamodb_request
from lift_asgi.local.tokens import WINDOW_SECONDS, TokenRegistry


def _table(server: LocalDynamoDB) -> str:
    name = f"front-{uuid.uuid4().hex[:10]}"
    server.create_tables([name])
    return name


def _increment(table: str, key: str, token: str, by: int = 1) -> dict[str, Any]:
    return {
        "TransactItems": [
            {
                "Update": {
                    "TableName": table,
                    "Key": {"pk": {"S": key}, "sk": {"S": "n"}},
                    "UpdateExpression": "ADD #n :by",
                    "ExpressionAttributeNames": {"#n": "n"},
                    "ExpressionAttributeValues": {":by": {"N": str(by)}},
                }
            }
        ],
        "ClientRequestToken": token,
    }


def _count(server: LocalDynamoDB, table: str, key: str) -> str:
    got = dynamodb_request(
        server.endpoint,
        "GetItem",
        {"TableName": table, "Key": {"pk": {"S": key}, "sk": {"S": "n"}}, "ConsistentRead": True},
    )
    return str(got["Item"]["n"]["N"])


def _error(call: Any) -> tuple[int, dict[str, Any]]:
    with pytest.raises(urllib.error.HTTPError) as caught:
        call()
    return caught.value.code, json.loads(caught.value.read())


def test_same_token_same_request_is_answered_again_without_applying(
    moto_server: LocalDynamoDB,
) -> None:
    table = _table(moto_server)
    token = str(uuid.uuid4())
    first = dynamodb_request(
        moto_server.endpoint, "TransactWriteItems", _increment(table, "a", token)
    )
    again = dynamodb_request(
        moto_server.endpoint, "TransactWriteItems", _increment(table, "a", token)
    )
    assert again == first
    assert _count(moto_server, table, "a") == "1"
    # A new token is a new transaction.
    dynamodb_request(moto_server.endpoint, "TransactWriteItems", _increment(table, "a", "other"))
    assert _count(moto_server, table, "a") == "2"


def test_same_token_other_request_is_an_idempotent_parameter_mismatch(
    moto_server: LocalDynamoDB,
) -> None:
    table = _table(moto_server)
    token = str(uuid.uuid4())
    dynamodb_request(moto_server.endpoint, "TransactWriteItems", _increment(table, "b", token))
    status, body = _error(
        lambda: dynamodb_request(
            moto_server.endpoint, "TransactWriteItems", _increment(table, "b", token, by=5)
        )
    )
    assert status == 400
    assert body["__type"].endswith("#IdempotentParameterMismatchException")
    assert _count(moto_server, table, "b") == "1"


def test_a_cancelled_transaction_is_not_remembered(moto_server: LocalDynamoDB) -> None:
    """Only a success is replayed: a cancelled transaction wrote nothing, and its retry
    (once the condition holds) applies."""
    table = _table(moto_server)
    token = str(uuid.uuid4())
    guarded = _increment(table, "c", token)
    guarded["TransactItems"][0]["Update"]["ConditionExpression"] = "attribute_exists(#n)"
    status, body = _error(
        lambda: dynamodb_request(moto_server.endpoint, "TransactWriteItems", guarded)
    )
    assert (status, body["__type"].rpartition("#")[2]) == (400, "TransactionCanceledException")
    dynamodb_request(
        moto_server.endpoint,
        "PutItem",
        {"TableName": table, "Item": {"pk": {"S": "c"}, "sk": {"S": "n"}, "n": {"N": "10"}}},
    )
    dynamodb_request(moto_server.endpoint, "TransactWriteItems", guarded)
    assert _count(moto_server, table, "c") == "11"


def test_a_token_is_kept_ten_minutes() -> None:
    now = [1000.0]
    registry = TokenRegistry(clock=lambda: now[0])
    registry.remember("t", "print", "200 OK", [], b"{}")
    now[0] += WINDOW_SECONDS - 1
    assert registry.lookup("t") is not None
    now[0] += 2
    assert registry.lookup("t") is None


def test_when_moto_raises_the_request_is_answered_500_and_the_connection_kept(
    moto_server: LocalDynamoDB,
) -> None:
    """A PutItem without TableName makes moto raise inside its handler; the front answers
    500 with the error (before, the connection closed with no answer and clients saw a
    reset). The same kept-alive connection then serves the next request."""
    host, port = moto_server.endpoint.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    headers = {
        "Content-Type": "application/x-amz-json-1.0",
        "Authorization": "AWS4-HMAC-SHA256 Credential=x/20250101/us-east-1/dynamodb/"
        "aws4_request, SignedHeaders=host, Signature=00",
    }
    try:
        connection.request(
            "POST",
            "/",
            body=json.dumps({"Item": {"pk": {"S": "a"}}}),
            headers={**headers, "X-Amz-Target": "DynamoDB_20120810.PutItem"},
        )
        response = connection.getresponse()
        body = json.loads(response.read())
        assert response.status == 500
        assert body["__type"].endswith("#InternalServerError")
        assert "moto" in body["message"]
        connection.request(
            "POST",
            "/",
            body="{}",
            headers={**headers, "X-Amz-Target": "DynamoDB_20120810.ListTables"},
        )
        listed = connection.getresponse()
        assert listed.status == 200
        assert "TableNames" in json.loads(listed.read())
    finally:
        connection.close()
