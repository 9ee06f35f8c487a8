"""Bulk writes outside the transaction: chunks of 25, retries, counts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from lift_asgi.dynamo import DynamoTable
from lift_asgi.dynamo.tables import TableSpec
from lift_asgi.dynamo.transport import AiodynamoTransport, DynamoTransport
from lift_asgi.errors import DuplicateItem, DynamoDBUnavailable, InvalidItem
from lift_asgi.testing import FaultProxy

from .conftest import FAST_RETRY
from .test_faults import ScriptedTransport

pytestmark = pytest.mark.dynamodb


@pytest.fixture
async def proxied(dynamodb_fault_proxy: FaultProxy) -> AsyncIterator[AiodynamoTransport]:
    transport = AiodynamoTransport.static(dynamodb_fault_proxy.endpoint)
    yield transport
    await transport.close()


async def count(raw: DynamoTransport, table: str) -> int:
    total = 0
    payload: dict[str, Any] = {"TableName": table, "Select": "COUNT"}
    while True:
        result = await raw.request("Scan", payload)
        total += result["Count"]
        if "LastEvaluatedKey" not in result:
            return total
        payload["ExclusiveStartKey"] = result["LastEvaluatedKey"]


async def test_bulk_put_2000_items_in_batches_of_25(
    dynamodb_table: TableSpec,
    proxied: AiodynamoTransport,
    dynamodb_fault_proxy: FaultProxy,
    raw: AiodynamoTransport,
) -> None:
    table = DynamoTable(dynamodb_table.name, transport=proxied, retry=FAST_RETRY)
    uow = table.unit_of_work("acme")
    dynamodb_fault_proxy.throttle(times=2, operation="BatchWriteItem")
    items = [{"pk": "import", "sk": f"{i:05}", "title": f"task {i}"} for i in range(2000)]
    result = await uow.bulk_put(items)
    assert result.written == 2000
    assert result.retried == 50  # two throttled calls of 25, sent again
    assert result.calls == 82
    batches = dynamodb_fault_proxy.calls_of("BatchWriteItem")
    assert len(batches) == 82
    sizes = [len(call.payload["RequestItems"][table.name]) for call in batches]
    assert max(sizes) == 25 and sum(sizes) == 2000 + 50
    assert uow.pending == 0  # executed at once, not buffered
    assert await count(raw, table.name) == 2000
    page = await uow.query("import", limit=3)
    assert [item["title"] for item in page] == ["task 0", "task 1", "task 2"]
    assert await table.unit_of_work("globex").get("import", "00000") is None

    deleted = await uow.bulk_delete([("import", f"{i:05}") for i in range(0, 2000, 2)])
    assert deleted.written == 1000 and deleted.calls == 40
    assert await count(raw, table.name) == 1000


async def test_bulk_runs_on_both_transports(
    dynamodb_table: TableSpec, transport: DynamoTransport, raw: AiodynamoTransport
) -> None:
    uow = DynamoTable(dynamodb_table.name, transport=transport).unit_of_work("acme")
    result = await uow.bulk_put({"pk": "b", "sk": str(i), "blob": b"\x01"} for i in range(60))
    assert (result.written, result.calls) == (60, 3)
    assert (await uow.get_or_404("b", "59"))["blob"] == b"\x01"


async def test_bulk_refuses_bad_input_before_any_call(
    dynamodb_table: TableSpec, proxied: AiodynamoTransport, dynamodb_fault_proxy: FaultProxy
) -> None:
    uow = DynamoTable(dynamodb_table.name, transport=proxied).unit_of_work("acme")
    with pytest.raises(DuplicateItem):
        await uow.bulk_put([{"pk": "p", "sk": "1"}, {"pk": "p", "sk": "2"}, {"pk": "p", "sk": "1"}])
    with pytest.raises(InvalidItem):
        await uow.bulk_put([{"pk": "p", "sk": str(i)} for i in range(30)] + [{"pk": "p"}])
    with pytest.raises(InvalidItem):
        await uow.bulk_put([{"pk": "p", "sk": "1", "big": "x" * 500_000}])
    assert dynamodb_fault_proxy.calls == []
    assert (await uow.bulk_put([])).calls == 0


async def test_unprocessed_items_are_resent_until_written() -> None:
    def unprocessed(n: int) -> dict[str, Any]:
        item = {"pk": {"S": "acme#p"}, "sk": {"S": str(n)}, "_tenant": {"S": "acme"}}
        return {"UnprocessedItems": {"stub-table": [{"PutRequest": {"Item": item}}]}}

    stub = ScriptedTransport(unprocessed(1), unprocessed(1), {})
    table = DynamoTable("stub-table", transport=stub, verify_table=False, retry=FAST_RETRY)
    result = await table.unit_of_work("acme").bulk_put({"pk": "p", "sk": str(i)} for i in range(3))
    assert (result.written, result.retried, result.calls) == (3, 2, 3)
    resent = [payload["RequestItems"]["stub-table"] for _, payload in stub.payloads]
    assert [len(batch) for batch in resent] == [3, 1, 1]


async def test_unprocessed_forever_is_a_503_reporting_what_was_written() -> None:
    item = {"pk": {"S": "acme#p"}, "sk": {"S": "0"}, "_tenant": {"S": "acme"}}
    stuck = {"UnprocessedItems": {"stub-table": [{"PutRequest": {"Item": item}}]}}
    stub = ScriptedTransport(*([stuck] * 10))
    table = DynamoTable("stub-table", transport=stub, verify_table=False, retry=FAST_RETRY)
    with pytest.raises(DynamoDBUnavailable) as caught:
        await table.unit_of_work("acme").bulk_put({"pk": "p", "sk": str(i)} for i in range(3))
    assert caught.value.status == 503
    assert caught.value.extra["written"] == 2
    assert stub.calls == FAST_RETRY.attempts


async def test_batch_get_resends_unprocessed_keys() -> None:
    def item(n: int) -> dict[str, Any]:
        return {"pk": {"S": "acme#p"}, "sk": {"S": str(n)}, "_tenant": {"S": "acme"}}

    first = {
        "Responses": {"stub-table": [item(0)]},
        "UnprocessedKeys": {"stub-table": {"Keys": [{"pk": {"S": "acme#p"}, "sk": {"S": "1"}}]}},
    }
    second = {"Responses": {"stub-table": [item(1)]}}
    stub = ScriptedTransport(first, second)
    table = DynamoTable("stub-table", transport=stub, verify_table=False, retry=FAST_RETRY)
    got = await table.unit_of_work("acme").batch_get([("p", "0"), ("p", "1"), ("p", "2")])
    assert got == [{"pk": "p", "sk": "0"}, {"pk": "p", "sk": "1"}, None]
    assert [len(p["RequestItems"]["stub-table"]["Keys"]) for _, p in stub.payloads] == [3, 1]


# -- calls of unknown outcome -------------------------------------------------------------


async def test_a_lost_answer_is_reported_as_outcome_unknown_not_as_unwritten(
    dynamodb_table: TableSpec,
    proxied: AiodynamoTransport,
    dynamodb_fault_proxy: FaultProxy,
    raw: AiodynamoTransport,
) -> None:
    table = DynamoTable(dynamodb_table.name, transport=proxied, retry=FAST_RETRY)
    # chunk 1 lands; chunk 2 lands but its answer is lost, and every resend is throttled
    dynamodb_fault_proxy.lose_answer(operation="BatchWriteItem", after=1)
    dynamodb_fault_proxy.throttle(times=None, operation="BatchWriteItem")
    items = [{"pk": "i", "sk": f"{i:03}"} for i in range(60)]
    with pytest.raises(DynamoDBUnavailable) as caught:
        await table.unit_of_work("acme").bulk_put(items, concurrency=1)
    assert caught.value.status == 503
    assert caught.value.extra["written"] == 25  # known to have landed
    assert caught.value.extra["outcome_unknown"] == 25  # the lost call's items
    assert "unknown" in caught.value.detail
    assert await count(raw, table.name) == 50  # chunk 3 (10 items) was never sent


async def test_an_unknown_outcome_confirmed_by_a_later_answer_counts_as_written(
    dynamodb_table: TableSpec, proxied: AiodynamoTransport, dynamodb_fault_proxy: FaultProxy
) -> None:
    table = DynamoTable(dynamodb_table.name, transport=proxied, retry=FAST_RETRY)
    dynamodb_fault_proxy.lose_answer(operation="BatchWriteItem")
    result = await table.unit_of_work("acme").bulk_put({"pk": "i", "sk": str(i)} for i in range(30))
    assert (result.written, result.calls) == (30, 3)


async def test_a_batch_slower_than_the_timeout_is_unknown_and_lands_later(
    dynamodb_table: TableSpec, dynamodb_fault_proxy: FaultProxy, raw: AiodynamoTransport
) -> None:
    transport = AiodynamoTransport.static(dynamodb_fault_proxy.endpoint)
    table = DynamoTable(dynamodb_table.name, transport=transport, retry=FAST_RETRY, timeout=0.5)
    try:
        await table.verify()
        dynamodb_fault_proxy.delay(1.0, times=None, operation="BatchWriteItem")
        with pytest.raises(DynamoDBUnavailable) as caught:
            await table.unit_of_work("acme").bulk_put({"pk": "i", "sk": str(i)} for i in range(5))
        assert (caught.value.extra["written"], caught.value.extra["outcome_unknown"]) == (0, 5)
        for _ in range(200):  # the calls the proxy held reach the server after the timeout
            if all(c.status is not None for c in dynamodb_fault_proxy.calls_of("BatchWriteItem")):
                break
            await asyncio.sleep(0.05)
        assert await count(raw, table.name) == 5
    finally:
        await transport.close()
