"""The fault-injecting proxy: each fault, its scoping, and what it records."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from lift_asgi.dynamo.tables import TableSpec
from lift_asgi.dynamo.transport import AiodynamoTransport
from lift_asgi.errors import DynamoDBError, DynamoDBThrottled, DynamoDBUnavailable
from lift_asgi.testing import FaultProxy


@pytest.fixture
async def client(dynamodb_fault_proxy: FaultProxy) -> AsyncIterator[AiodynamoTransport]:
    transport = AiodynamoTransport.static(dynamodb_fault_proxy.endpoint, timeout=0.5)
    yield transport
    await transport.close()


def _get(table: TableSpec) -> dict[str, object]:
    return {"TableName": table.name, "Key": {"pk": {"S": "a"}, "sk": {"S": "b"}}}


def _put(table: TableSpec) -> dict[str, object]:
    return {"TableName": table.name, "Item": {"pk": {"S": "a"}, "sk": {"S": "b"}}}


async def test_passes_calls_through_and_records_them(
    client: AiodynamoTransport, dynamodb_fault_proxy: FaultProxy, dynamodb_table: TableSpec
) -> None:
    assert await client.request("PutItem", _put(dynamodb_table)) == {}
    got = await client.request("GetItem", _get(dynamodb_table))
    assert got["Item"]["pk"] == {"S": "a"}
    assert dynamodb_fault_proxy.operations() == ["PutItem", "GetItem"]
    first = dynamodb_fault_proxy.calls[0]
    assert first.payload["Item"]["sk"] == {"S": "b"}
    assert (first.fault, first.status) == (None, 200)


@pytest.mark.parametrize("code", ["ProvisionedThroughputExceededException", "ThrottlingException"])
async def test_throttle_answers_the_next_n_calls(
    client: AiodynamoTransport,
    dynamodb_fault_proxy: FaultProxy,
    dynamodb_table: TableSpec,
    code: str,
) -> None:
    dynamodb_fault_proxy.throttle(times=2, code=code)
    for _ in range(2):
        with pytest.raises(DynamoDBThrottled) as caught:
            await client.request("GetItem", _get(dynamodb_table))
        assert caught.value.aws_code == code
        assert caught.value.status == 503
    assert await client.request("GetItem", _get(dynamodb_table)) == {}
    assert [c.fault for c in dynamodb_fault_proxy.calls] == ["throttle", "throttle", None]


@pytest.mark.parametrize(
    ("status", "code"), [(500, "InternalServerError"), (503, "ServiceUnavailable")]
)
async def test_server_errors(
    client: AiodynamoTransport,
    dynamodb_fault_proxy: FaultProxy,
    dynamodb_table: TableSpec,
    status: int,
    code: str,
) -> None:
    dynamodb_fault_proxy.fail(status=status)
    with pytest.raises(DynamoDBUnavailable) as caught:
        await client.request("GetItem", _get(dynamodb_table))
    assert caught.value.aws_code == code
    assert dynamodb_fault_proxy.calls[0].status == status


@pytest.mark.parametrize("status", [400, 429, 200, 600, "500"])
def test_fail_takes_only_a_server_error(dynamodb_fault_proxy: FaultProxy, status: Any) -> None:
    # fail(status=400) used to answer ProvisionedThroughputExceededException, a throttle
    with pytest.raises(ValueError, match=r"error\(code"):
        dynamodb_fault_proxy.fail(status=status)


async def test_a_4xx_error_is_injected_with_its_code(
    client: AiodynamoTransport, dynamodb_fault_proxy: FaultProxy, dynamodb_table: TableSpec
) -> None:
    dynamodb_fault_proxy.error("ValidationException")
    with pytest.raises(DynamoDBError) as caught:
        await client.request("GetItem", _get(dynamodb_table))
    assert not isinstance(caught.value, DynamoDBUnavailable)
    assert caught.value.aws_code == "ValidationException"
    assert dynamodb_fault_proxy.calls[0].status == 400


async def test_an_error_after_applying_and_a_garbled_answer_both_forward_the_call(
    client: AiodynamoTransport, dynamodb_fault_proxy: FaultProxy, dynamodb_table: TableSpec
) -> None:
    dynamodb_fault_proxy.fail(status=503, applied=True, operation="PutItem")
    with pytest.raises(DynamoDBUnavailable) as caught:
        await client.request("PutItem", _put(dynamodb_table))
    assert caught.value.aws_code == "ServiceUnavailable"
    assert (await client.request("GetItem", _get(dynamodb_table)))["Item"]  # applied
    dynamodb_fault_proxy.garble_answer(operation="GetItem")
    with pytest.raises(DynamoDBUnavailable) as garbled:
        await client.request("GetItem", _get(dynamodb_table))
    assert garbled.value.aws_code == "InvalidResponse"  # not a ValueError: a 503
    put, get = (
        dynamodb_fault_proxy.calls_of("PutItem")[0],
        dynamodb_fault_proxy.calls_of("GetItem")[-1],
    )
    assert (put.status, put.lost_answer) == (503, b"{}")
    assert get.status == 200 and get.lost_answer and b"Item" in get.lost_answer


async def test_dropped_connection(
    client: AiodynamoTransport, dynamodb_fault_proxy: FaultProxy, dynamodb_table: TableSpec
) -> None:
    dynamodb_fault_proxy.drop()
    with pytest.raises(DynamoDBUnavailable) as caught:
        await client.request("GetItem", _get(dynamodb_table))
    assert caught.value.aws_code == "ConnectionError"
    # The next call opens a fresh connection and goes through.
    assert await client.request("GetItem", _get(dynamodb_table)) == {}


async def test_latency_past_the_client_timeout_and_below_it(
    client: AiodynamoTransport, dynamodb_fault_proxy: FaultProxy, dynamodb_table: TableSpec
) -> None:
    dynamodb_fault_proxy.delay(2.0)
    with pytest.raises(DynamoDBUnavailable) as caught:
        await client.request("GetItem", _get(dynamodb_table))
    assert caught.value.aws_code == "Timeout"
    dynamodb_fault_proxy.delay(0.05)
    assert await client.request("GetItem", _get(dynamodb_table)) == {}
    assert [c.fault for c in dynamodb_fault_proxy.calls] == ["delay", "delay"]


async def test_operation_scoping_and_persistent_faults_until_reset(
    client: AiodynamoTransport, dynamodb_fault_proxy: FaultProxy, dynamodb_table: TableSpec
) -> None:
    dynamodb_fault_proxy.throttle(times=None, operation="PutItem")
    for _ in range(3):
        with pytest.raises(DynamoDBThrottled):
            await client.request("PutItem", _put(dynamodb_table))
    assert await client.request("GetItem", _get(dynamodb_table)) == {}
    dynamodb_fault_proxy.reset()
    assert dynamodb_fault_proxy.calls == []
    assert await client.request("PutItem", _put(dynamodb_table)) == {}
    assert dynamodb_fault_proxy.calls_of("PutItem")[0].fault is None


def test_unknown_throttle_code_is_refused(dynamodb_fault_proxy: FaultProxy) -> None:
    with pytest.raises(ValueError, match="code"):
        dynamodb_fault_proxy.throttle(code="Nope")


def test_stop_closes_the_port(dynamodb_endpoint: str) -> None:
    import socket

    proxy = FaultProxy(dynamodb_endpoint).start()
    port = proxy.port
    proxy.stop()
    with socket.socket() as probe, pytest.raises(ConnectionRefusedError):
        probe.connect(("127.0.0.1", port))


async def test_lost_answer_applies_upstream_but_the_client_never_hears(
    client: AiodynamoTransport,
    dynamodb_fault_proxy: FaultProxy,
    dynamodb_table: TableSpec,
    dynamodb_endpoint: str,
) -> None:
    dynamodb_fault_proxy.lose_answer(operation="PutItem")
    with pytest.raises(DynamoDBUnavailable) as caught:
        await client.request("PutItem", _put(dynamodb_table))
    assert caught.value.aws_code == "ConnectionError"
    lost = dynamodb_fault_proxy.calls_of("PutItem")[0]
    assert (lost.fault, lost.status, lost.lost_answer) == ("lose", 200, b"{}")
    # The write was applied: the server (not through the proxy) has the item.
    direct = AiodynamoTransport.static(dynamodb_endpoint)
    try:
        assert (await direct.request("GetItem", _get(dynamodb_table)))["Item"]["sk"] == {"S": "b"}
    finally:
        await direct.close()


async def test_every_fault_helper_takes_after(
    client: AiodynamoTransport, dynamodb_fault_proxy: FaultProxy, dynamodb_table: TableSpec
) -> None:
    """``after=k`` lets the first k matching calls through, for every kind of fault."""
    helpers = {
        "throttle": lambda: dynamodb_fault_proxy.throttle(operation="GetItem", after=2),
        "error": lambda: dynamodb_fault_proxy.fail(operation="GetItem", after=2),
        "delay": lambda: dynamodb_fault_proxy.delay(2.0, operation="GetItem", after=2),
        "drop": lambda: dynamodb_fault_proxy.drop(operation="GetItem", after=2),
        "lose": lambda: dynamodb_fault_proxy.lose_answer(operation="GetItem", after=2),
    }
    for kind, add in helpers.items():
        dynamodb_fault_proxy.reset()
        add()
        assert await client.request("PutItem", _put(dynamodb_table)) == {}  # not matching
        for _ in range(2):
            assert (await client.request("GetItem", _get(dynamodb_table)))["Item"]
        with pytest.raises(DynamoDBUnavailable):
            await client.request("GetItem", _get(dynamodb_table))
        assert (await client.request("GetItem", _get(dynamodb_table)))["Item"]  # times=1
        faults = [call.fault for call in dynamodb_fault_proxy.calls_of("GetItem")]
        assert faults == [None, None, kind, None], kind


async def test_stop_with_connections_open_logs_no_error(
    dynamodb_endpoint: str, dynamodb_table: TableSpec, caplog: pytest.LogCaptureFixture
) -> None:
    """Stopping the proxy while a client holds keep-alive connections (and one call is
    held by a delay) ends them quietly: no "Exception in callback" CancelledError."""
    proxy = FaultProxy(dynamodb_endpoint).start()
    transport = AiodynamoTransport.static(proxy.endpoint, timeout=0.5)
    try:
        assert await transport.request("GetItem", _get(dynamodb_table)) == {}
        proxy.delay(30.0)
        with pytest.raises(DynamoDBUnavailable):
            await transport.request("GetItem", _get(dynamodb_table))
        with caplog.at_level(logging.DEBUG, logger="asyncio"):
            proxy.stop()
    finally:
        await transport.close()
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_a_fault_can_be_limited_to_one_table(
    client: AiodynamoTransport,
    dynamodb_fault_proxy: FaultProxy,
    dynamodb_table_factory: Callable[..., TableSpec],
) -> None:
    data, other = dynamodb_table_factory(), dynamodb_table_factory()
    dynamodb_fault_proxy.throttle(times=None, operation="PutItem", table=data.name)
    dynamodb_fault_proxy.fail(times=None, operation="BatchWriteItem", table=data.name)
    dynamodb_fault_proxy.fail(times=None, operation="TransactWriteItems", table=data.name)
    assert await client.request("PutItem", _put(other)) == {}
    with pytest.raises(DynamoDBThrottled):
        await client.request("PutItem", _put(data))
    batch = {"RequestItems": {data.name: [{"PutRequest": {"Item": _put(data)["Item"]}}]}}
    with pytest.raises(DynamoDBUnavailable):
        await client.request("BatchWriteItem", batch)
    transaction = {"TransactItems": [{"Put": _put(data)}]}
    with pytest.raises(DynamoDBUnavailable):
        await client.request("TransactWriteItems", transaction)
    await client.request("TransactWriteItems", {"TransactItems": [{"Put": _put(other)}]})
    assert [c.fault for c in dynamodb_fault_proxy.calls] == [
        None,
        "throttle",
        "error",
        "error",
        None,
    ]
