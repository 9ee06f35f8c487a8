"""The transports: a failed condition's item, expired credentials, credentials on a
fresh machine, and the botocore mapping shared with the synchronous storage."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import aioboto3
import pytest
from aiodynamo.credentials import Credentials, Key
from botocore.config import Config

from lift_asgi.dynamo.botocore_errors import error_code, from_botocore, method_name
from lift_asgi.dynamo.credentials import is_loopback
from lift_asgi.dynamo.tables import TableSpec
from lift_asgi.dynamo.transport import Aioboto3Transport, AiodynamoTransport
from lift_asgi.errors import (
    ConditionFailed,
    DynamoDBError,
    DynamoDBThrottled,
    DynamoDBUnavailable,
    problem_body,
)
from lift_asgi.testing.faults import FaultProxy


async def test_condition_failure_carries_the_old_item(
    dynamodb_endpoint: str, dynamodb_table: TableSpec
) -> None:
    transport = AiodynamoTransport.static(dynamodb_endpoint)
    item = {"pk": {"S": "a"}, "sk": {"S": "b"}, "n": {"N": "7"}}
    request = {
        "TableName": dynamodb_table.name,
        "Item": item,
        "ConditionExpression": "attribute_not_exists(pk)",
    }
    try:
        await transport.request("PutItem", request)
        with pytest.raises(ConditionFailed) as without:
            await transport.request("PutItem", request)
        assert without.value.item is None
        with pytest.raises(ConditionFailed) as with_old:
            await transport.request(
                "PutItem", {**request, "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}
            )
        assert with_old.value.item == item
        assert b'"7"' not in problem_body(with_old.value)
        assert transport.calls == 3
    finally:
        await transport.close()


# -- expired temporary credentials: refresh and send once more ----------------------


class CountingCredentials(Credentials):
    """A refreshable provider that counts refreshes (one new key per refresh)."""

    def __init__(self, *, refreshable: bool = True) -> None:
        self.refreshes = 0
        self.refreshable = refreshable

    async def get_key(self, http: Any) -> Key:
        return Key(f"key-{self.refreshes}", "secret", token=f"token-{self.refreshes}")

    def invalidate(self) -> bool:
        if not self.refreshable:
            return False
        self.refreshes += 1
        return True

    def is_disabled(self) -> bool:
        return False


def _get(table: str) -> dict[str, Any]:
    return {"TableName": table, "Key": {"pk": {"S": "a"}, "sk": {"S": "b"}}}


async def test_expired_token_refreshes_credentials_and_retries_once(
    dynamodb_fault_proxy: FaultProxy, dynamodb_table: TableSpec
) -> None:
    credentials = CountingCredentials()
    transport = AiodynamoTransport(dynamodb_fault_proxy.endpoint, credentials=credentials)
    try:
        dynamodb_fault_proxy.error("ExpiredTokenException", times=1, operation="GetItem")
        assert await transport.request("GetItem", _get(dynamodb_table.name)) == {}
        assert credentials.refreshes == 1
        assert dynamodb_fault_proxy.operations() == ["GetItem", "GetItem"]
        assert transport.calls == 2
    finally:
        await transport.close()


async def test_expired_token_twice_is_one_refresh_then_a_clear_500(
    dynamodb_fault_proxy: FaultProxy, dynamodb_table: TableSpec
) -> None:
    credentials = CountingCredentials()
    transport = AiodynamoTransport(dynamodb_fault_proxy.endpoint, credentials=credentials)
    try:
        dynamodb_fault_proxy.error("ExpiredTokenException", times=2)
        with pytest.raises(DynamoDBError) as caught:
            await transport.request("GetItem", _get(dynamodb_table.name))
        assert caught.value.status == 500
        assert caught.value.aws_code == "ExpiredTokenException"
        assert credentials.refreshes == 1
        assert len(dynamodb_fault_proxy.calls) == 2
    finally:
        await transport.close()


async def test_expired_static_credentials_are_not_resent(
    dynamodb_fault_proxy: FaultProxy, dynamodb_table: TableSpec
) -> None:
    credentials = CountingCredentials(refreshable=False)
    transport = AiodynamoTransport(dynamodb_fault_proxy.endpoint, credentials=credentials)
    try:
        dynamodb_fault_proxy.error("ExpiredTokenException", times=1)
        with pytest.raises(DynamoDBError):
            await transport.request("GetItem", _get(dynamodb_table.name))
        assert len(dynamodb_fault_proxy.calls) == 1
    finally:
        await transport.close()


async def test_aioboto3_expired_token_is_sent_once_more(
    dynamodb_fault_proxy: FaultProxy, dynamodb_table: TableSpec
) -> None:
    session = aioboto3.Session()
    async with session.client(
        "dynamodb",
        endpoint_url=dynamodb_fault_proxy.endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"mode": "standard", "total_max_attempts": 1}),
    ) as client:
        transport = Aioboto3Transport(client)
        dynamodb_fault_proxy.error("ExpiredTokenException", times=1, operation="GetItem")
        assert await transport.request("GetItem", _get(dynamodb_table.name)) == {}
        assert dynamodb_fault_proxy.operations() == ["GetItem", "GetItem"]
        dynamodb_fault_proxy.error("ExpiredTokenException", times=2, operation="GetItem")
        with pytest.raises(DynamoDBError) as caught:
            await transport.request("GetItem", _get(dynamodb_table.name))
        assert caught.value.aws_code == "ExpiredTokenException"
        assert len(dynamodb_fault_proxy.calls) == 4


# -- credentials on a fresh machine --------------------------------------------------

_CREDENTIAL_VARIABLES = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
)


@pytest.fixture
def no_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in _CREDENTIAL_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.aws/credentials either
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
@pytest.mark.usefixtures("no_credentials")
async def test_loopback_endpoint_works_without_credentials(
    dynamodb_endpoint: str, dynamodb_table: TableSpec, host: str
) -> None:
    transport = AiodynamoTransport(dynamodb_endpoint.replace("127.0.0.1", host))
    try:
        described = await transport.request("DescribeTable", {"TableName": dynamodb_table.name})
        assert described["Table"]["TableName"] == dynamodb_table.name
    finally:
        await transport.close()


@pytest.mark.parametrize(
    ("endpoint", "loopback"),
    [
        ("http://127.0.0.1:8000", True),
        ("http://127.8.9.10:8000", True),
        ("http://[::1]:8000", True),
        ("http://localhost:8000", True),
        ("http://db.localhost", True),
        ("http://10.0.0.5:8000", False),
        ("https://dynamodb.eu-west-1.amazonaws.com", False),
        ("http://localhost.example.com", False),
        (None, False),
    ],
)
def test_what_counts_as_loopback(endpoint: str | None, loopback: bool) -> None:
    assert is_loopback(endpoint) is loopback


@pytest.mark.usefixtures("no_credentials")
async def test_remote_endpoint_without_credentials_is_one_clear_error(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # A container-credentials endpoint that refuses connections: a provider that fails.
    monkeypatch.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://127.0.0.1:9/creds")
    transport = AiodynamoTransport("http://192.0.2.1:8000")  # TEST-NET-1: never contacted
    caplog.set_level(logging.DEBUG)
    try:
        for _ in range(2):
            with pytest.raises(DynamoDBError) as caught:
                await transport.request("GetItem", _get("t"))
            assert caught.value.aws_code == "NoCredentials"
            assert caught.value.status == 500
    finally:
        await transport.close()
    assert transport.calls == 0
    loud = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.getMessage()[:40] for r in loud] == ["no AWS credentials were found for Dynamo"]
    assert not any(r.exc_info for r in caplog.records if r.levelno >= logging.INFO)


# -- the botocore mapping shared with the synchronous rate-limit storage -------------


def test_botocore_method_names() -> None:
    assert method_name("GetItem") == "get_item"
    assert method_name("TransactWriteItems") == "transact_write_items"
    assert method_name("DescribeTimeToLive") == "describe_time_to_live"


def test_botocore_errors_map_like_the_json_protocol() -> None:
    from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

    def client_error(code: str, status: int = 400) -> ClientError:
        response: Any = {
            "Error": {"Code": code, "Message": "m"},
            "ResponseMetadata": {"HTTPStatusCode": status},
        }
        return ClientError(response, "GetItem")

    assert isinstance(from_botocore(client_error("ThrottlingException")), DynamoDBThrottled)
    assert isinstance(
        from_botocore(client_error("ConditionalCheckFailedException")), ConditionFailed
    )
    assert isinstance(from_botocore(client_error("InternalServerError", 500)), DynamoDBUnavailable)
    assert error_code(client_error("ExpiredTokenException")) == "ExpiredTokenException"
    assert isinstance(
        from_botocore(EndpointConnectionError(endpoint_url="http://x")), DynamoDBUnavailable
    )
    missing = from_botocore(NoCredentialsError())
    assert isinstance(missing, DynamoDBError) and missing.status == 500
    assert from_botocore(ValueError("not botocore's")) is None
    assert error_code(ValueError()) is None


# -- the session ends with its loop ------------------------------------------------------


def test_a_session_no_one_closed_is_closed_when_its_loop_shuts_down(
    dynamodb_endpoint: str,
) -> None:
    # A script's asyncio.run, an app served without a lifespan, a test on its own loop:
    # nothing called close(), and aiohttp warned "Unclosed client session" at exit with
    # the connections never shut. Each loop's shutdown now closes its session.
    transport = AiodynamoTransport.static(dynamodb_endpoint)

    async def call() -> Any:
        await transport.request("ListTables", {})
        return transport._session

    first = asyncio.run(call())
    assert first is not None and first.closed
    second = asyncio.run(call())  # a new loop: a new session, closed with it
    assert second is not None and second is not first and second.closed
    assert transport.calls == 2


def test_close_closes_the_session_at_once_and_the_loop_shutdown_after_it_is_harmless(
    dynamodb_endpoint: str,
) -> None:
    transport = AiodynamoTransport.static(dynamodb_endpoint)

    async def call_then_close() -> Any:
        await transport.request("ListTables", {})
        session = transport._session
        await transport.close()
        assert session is not None and session.closed
        assert transport._session is None
        await transport.close()  # twice: nothing left to close
        await transport.request("ListTables", {})  # usable again: a new session
        return transport._session

    last = asyncio.run(call_then_close())
    assert last is not None and last.closed
