"""DynamoDB cost accounting: what is asked of DynamoDB, what is counted, on both transports,
shared by a request's concurrent calls, readable by the handler, and nothing when off."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aioboto3
import pytest
from botocore.config import Config

from lift_asgi.dynamo.tables import TableSpec
from lift_asgi.dynamo.transport import Aioboto3Transport, AiodynamoTransport, DynamoTransport
from lift_asgi.errors import DynamoDBThrottled, TransactionCancelled
from lift_asgi.observe.cost import RequestCost, capacity, current_cost, table_names
from lift_asgi.observe.ids import RequestIds
from lift_asgi.stages import RequestContext, context_var
from lift_asgi.testing import FaultProxy
from tests.observe.conftest import Records, bearer, client


def test_capacity_splits_reads_and_writes_by_action_or_by_the_answer() -> None:
    assert capacity("GetItem", {"TableName": "t", "CapacityUnits": 0.5}) == (0.5, 0.0)
    assert capacity("PutItem", {"TableName": "t", "CapacityUnits": 1.0}) == (0.0, 1.0)
    many = [{"TableName": "a", "CapacityUnits": 2.0}, {"TableName": "b", "CapacityUnits": 1.0}]
    assert capacity("BatchWriteItem", many) == (0.0, 3.0)
    split = [
        {"TableName": "a", "CapacityUnits": 6, "ReadCapacityUnits": 2, "WriteCapacityUnits": 4}
    ]
    assert capacity("TransactWriteItems", split) == (2.0, 4.0)
    assert capacity("Query", None) == (0.0, 0.0)


def test_table_names_of_every_request_shape() -> None:
    assert table_names("GetItem", {"TableName": "t"}) == ["t"]
    assert table_names("BatchWriteItem", {"RequestItems": {"a": [], "b": []}}) == ["a", "b"]
    items = [
        {"Put": {"TableName": "a"}},
        {"ConditionCheck": {"TableName": "b"}},
        {"Update": {"TableName": "a"}},
    ]
    assert table_names("TransactWriteItems", {"TransactItems": items}) == ["a", "b"]
    assert table_names("ListTables", {}) == []


async def test_call_asks_for_capacity_only_where_dynamodb_takes_it() -> None:
    sent: list[tuple[str, Mapping[str, Any]]] = []

    async def send(action: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        sent.append((action, payload))
        return {}

    cost = RequestCost()
    original = {"TableName": "t"}
    await cost.call(send, "GetItem", original)
    await cost.call(send, "DescribeTable", original)
    await cost.call(send, "Query", {"TableName": "t", "ReturnConsumedCapacity": "INDEXES"})
    assert [p.get("ReturnConsumedCapacity") for _, p in sent] == ["TOTAL", None, "INDEXES"]
    assert original == {"TableName": "t"}  # the caller's payload is never changed
    assert cost.calls == 3


async def test_throttles_retries_and_cancellations_are_counted() -> None:
    answers: list[Any] = [
        DynamoDBThrottled(),
        {"ConsumedCapacity": {"CapacityUnits": 1.0}},
        TransactionCancelled(reasons=[]),
    ]

    async def send(action: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return dict(answer)

    cost = RequestCost()
    with pytest.raises(DynamoDBThrottled):
        await cost.call(send, "PutItem", {"TableName": "t"})
    await cost.call(send, "PutItem", {"TableName": "t"})  # after a throttle: a retry
    with pytest.raises(TransactionCancelled):
        await cost.call(send, "TransactWriteItems", {"TransactItems": []})
    summary = cost.summary()
    assert {k: summary[k] for k in ("calls", "throttles", "retries", "errors")} == {
        "calls": 3,
        "throttles": 1,
        "retries": 1,
        "errors": 2,
    }
    assert (summary["read_units"], summary["write_units"]) == (0.0, 1.0)
    assert cost.cancellations == 1
    assert cost.operations["PutItem"].calls == 2


@pytest.fixture
async def both(dynamodb_endpoint: str) -> AsyncIterator[list[DynamoTransport]]:
    aiodynamo = AiodynamoTransport.static(dynamodb_endpoint)
    session = aioboto3.Session()
    async with session.client(
        "dynamodb",
        endpoint_url=dynamodb_endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"total_max_attempts": 1}),
    ) as boto:
        yield [aiodynamo, Aioboto3Transport(boto)]
    await aiodynamo.close()


def _observed(cost: RequestCost) -> RequestContext:
    """The context RequestObserver exposes for a request whose calls are counted in ``cost``."""
    context = RequestContext()
    context.cost = cost
    context.ids = RequestIds("r1", context=context, count_cost=True)
    return context


async def test_both_transports_report_to_the_observed_request(
    both: list[DynamoTransport], dynamodb_table: TableSpec
) -> None:
    item = {"pk": {"S": "a"}, "sk": {"S": "b"}}
    for transport in both:
        cost = RequestCost()
        token = context_var.set(_observed(cost))
        try:
            await transport.request("PutItem", {"TableName": dynamodb_table.name, "Item": item})
            got = await transport.request(
                "GetItem", {"TableName": dynamodb_table.name, "Key": item}
            )
        finally:
            context_var.reset(token)
        assert got["Item"] == item
        assert cost.calls == 2, transport
        assert cost.read_units > 0 and cost.write_units > 0, (transport, cost)
        # Outside a request: not counted, nothing asked.
        await transport.request("GetItem", {"TableName": dynamodb_table.name, "Key": item})
        assert cost.calls == 2


async def test_off_nothing_is_asked_of_dynamodb(
    make_stack: Any, dynamodb_fault_proxy: FaultProxy, records: Records
) -> None:
    app, _ = make_stack(dynamodb_fault_proxy.endpoint, observe={"dynamodb_cost": False})
    async with client(app) as http:
        response = await http.put("/projects/p1", json={"name": "A"}, headers=bearer())
    assert response.status_code == 200, response.text
    assert dynamodb_fault_proxy.calls
    assert all("ReturnConsumedCapacity" not in c.payload for c in dynamodb_fault_proxy.calls)
    assert records.requests()[0]["dynamodb"] is None
    assert current_cost() is None


async def test_the_handler_reads_its_cost_and_concurrent_calls_add_up(
    make_stack: Any, dynamodb_table: TableSpec
) -> None:
    app, transport = make_stack()
    async with client(app) as http:
        response = await http.get("/whoami", headers=bearer())
    assert response.json()["calls_so_far"] == 1  # the rate limiter's one call

    cost = RequestCost()
    token = context_var.set(_observed(cost))
    try:
        key = {"pk": {"S": "x"}, "sk": {"S": "y"}}
        payload = {"TableName": dynamodb_table.name, "Key": key}
        await asyncio.gather(*(transport.request("GetItem", payload) for _ in range(3)))
    finally:
        context_var.reset(token)
    assert cost.calls == 3
