"""What DynamoDB does, one behaviour per test, on every fidelity target (see conftest).

Each test says what DynamoDB does in its name and docstring; ``gaps`` says which engine
does otherwise, and why that matters to the library.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest

from lift_asgi.dynamo.tables import TableSpec
from tests.fidelity.client import RawClient

MOTO_SERIAL = "moto runs behind one lock (our front): two transactions never overlap"


def _key(pk: str, sk: str = "item") -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"S": sk}}


def _put(table: TableSpec, pk: str, sk: str = "item", **extra: Any) -> dict[str, Any]:
    return {"Put": {"TableName": table.name, "Item": {**_key(pk, sk), **extra}}}


def _increment(table: TableSpec, pk: str) -> dict[str, Any]:
    return {
        "Update": {
            "TableName": table.name,
            "Key": _key(pk),
            "UpdateExpression": "ADD #n :one",
            "ExpressionAttributeNames": {"#n": "n"},
            "ExpressionAttributeValues": {":one": {"N": "1"}},
        }
    }


async def _get(client: RawClient, table: TableSpec, pk: str, sk: str = "item") -> Any:
    got = await client.ok(
        "GetItem", {"TableName": table.name, "Key": _key(pk, sk), "ConsistentRead": True}
    )
    return got.get("Item")


# -- ClientRequestToken -----------------------------------------------------------------


async def test_client_request_token_replays_the_first_success_without_applying_again(
    client: RawClient, table: TableSpec
) -> None:
    request = {"TransactItems": [_increment(table, "t")], "ClientRequestToken": str(uuid.uuid4())}
    await client.ok("TransactWriteItems", request)
    again = await client.call("TransactWriteItems", request)
    assert again.status == 200, again.body
    assert (await _get(client, table, "t"))["n"] == {"N": "1"}


async def test_client_request_token_with_another_request_is_a_parameter_mismatch(
    client: RawClient, table: TableSpec
) -> None:
    token = str(uuid.uuid4())
    await client.ok(
        "TransactWriteItems",
        {"TransactItems": [_increment(table, "a")], "ClientRequestToken": token},
    )
    other = await client.call(
        "TransactWriteItems",
        {"TransactItems": [_increment(table, "b")], "ClientRequestToken": token},
    )
    assert (other.status, other.code) == (400, "IdempotentParameterMismatchException")
    assert await _get(client, table, "b") is None


# -- ReturnValuesOnConditionCheckFailure ----------------------------------------------------


async def test_a_failed_single_write_returns_the_old_item_when_asked(
    client: RawClient, table: TableSpec
) -> None:
    stored = {**_key("old"), "v": {"N": "7"}}
    await client.ok("PutItem", {"TableName": table.name, "Item": stored})
    failed = await client.call(
        "PutItem",
        {
            "TableName": table.name,
            "Item": {**_key("old"), "v": {"N": "8"}},
            "ConditionExpression": "attribute_not_exists(pk)",
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        },
    )
    assert (failed.status, failed.code) == (400, "ConditionalCheckFailedException")
    assert failed.body.get("Item") == stored


async def test_cancellation_reasons_carry_the_old_item_when_asked(
    client: RawClient, table: TableSpec
) -> None:
    stored = {**_key("old"), "v": {"N": "7"}}
    await client.ok("PutItem", {"TableName": table.name, "Item": stored})
    guarded = _put(table, "old", v={"N": "8"})
    guarded["Put"]["ConditionExpression"] = "attribute_not_exists(pk)"
    guarded["Put"]["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
    failed = await client.call(
        "TransactWriteItems", {"TransactItems": [_put(table, "fresh"), guarded]}
    )
    assert (failed.status, failed.code) == (400, "TransactionCanceledException")
    reasons = failed.body["CancellationReasons"]
    assert [r["Code"] for r in reasons] == ["None", "ConditionalCheckFailed"]
    assert reasons[1].get("Item") == stored
    assert await _get(client, table, "fresh") is None


async def test_a_cancelled_transaction_leaves_every_item_it_named_as_it_was(
    client: RawClient, table: TableSpec
) -> None:
    """Many items on one table, the last one failing: the items written before it, an
    update of a stored item included, are undone (moto's backup of the table, made once
    per table by lift_asgi.local.moto_backup, restores them)."""
    await client.ok("PutItem", {"TableName": table.name, "Item": {**_key("kept"), "n": {"N": "1"}}})
    await client.ok("PutItem", {"TableName": table.name, "Item": _key("taken")})
    guarded = _put(table, "taken")
    guarded["Put"]["ConditionExpression"] = "attribute_not_exists(pk)"
    items = [_increment(table, "kept"), *(_put(table, f"new{i}") for i in range(20)), guarded]
    failed = await client.call("TransactWriteItems", {"TransactItems": items})
    assert (failed.status, failed.code) == (400, "TransactionCanceledException")
    assert (await _get(client, table, "kept"))["n"] == {"N": "1"}
    assert [await _get(client, table, f"new{i}") for i in range(20)] == [None] * 20


# -- limits -------------------------------------------------------------------------------


async def test_a_transaction_holds_100_items(client: RawClient, table: TableSpec) -> None:
    items = [_put(table, f"p{i}") for i in range(100)]
    await client.ok("TransactWriteItems", {"TransactItems": items})
    assert await _get(client, table, "p99") is not None


async def test_a_transaction_of_101_items_is_refused(client: RawClient, table: TableSpec) -> None:
    items = [_put(table, f"p{i}") for i in range(101)]
    refused = await client.call("TransactWriteItems", {"TransactItems": items})
    assert (refused.status, refused.code) == (400, "ValidationException")
    assert await _get(client, table, "p0") is None


@pytest.mark.gaps(moto="moto caps TransactGetItems at 25 items (DynamoDB: 100)")
async def test_a_transactional_read_holds_100_items(client: RawClient, table: TableSpec) -> None:
    gets = [{"Get": {"TableName": table.name, "Key": _key(f"p{i}")}} for i in range(100)]
    answer = await client.call("TransactGetItems", {"TransactItems": gets})
    assert answer.status == 200, answer.body
    assert len(answer.body["Responses"]) == 100


async def test_a_batch_write_holds_25_items(client: RawClient, table: TableSpec) -> None:
    puts = [{"PutRequest": {"Item": _key(f"b{i}")}} for i in range(25)]
    answer = await client.ok("BatchWriteItem", {"RequestItems": {table.name: puts}})
    assert answer.get("UnprocessedItems", {}) == {}


@pytest.mark.gaps(moto="moto accepts a BatchWriteItem of 26 items (the library checks itself)")
async def test_a_batch_write_of_26_items_is_refused(client: RawClient, table: TableSpec) -> None:
    puts = [{"PutRequest": {"Item": _key(f"b{i}")}} for i in range(26)]
    refused = await client.call("BatchWriteItem", {"RequestItems": {table.name: puts}})
    assert (refused.status, refused.code) == (400, "ValidationException")


def _sized(table: TableSpec, pk: str, size: int) -> dict[str, Any]:
    """An item of exactly ``size`` bytes as DynamoDB counts them (names + values)."""
    fixed = len("pk") + len(pk) + len("sk") + len("item") + len("blob")
    return {**_key(pk), "blob": {"S": "x" * (size - fixed)}}


@pytest.mark.gaps(moto="moto refuses an item of exactly 400 KB (it counts more than DynamoDB)")
async def test_an_item_of_400kb_is_stored(client: RawClient, table: TableSpec) -> None:
    await client.ok("PutItem", {"TableName": table.name, "Item": _sized(table, "big", 400 * 1024)})
    assert (await _get(client, table, "big")) is not None


async def test_an_item_over_400kb_is_refused(client: RawClient, table: TableSpec) -> None:
    item = _sized(table, "huge", 400 * 1024 + 1)
    refused = await client.call("PutItem", {"TableName": table.name, "Item": item})
    assert (refused.status, refused.code) == (400, "ValidationException")


# -- indexes ------------------------------------------------------------------------------


async def test_a_write_becomes_visible_in_a_gsi_query(client: RawClient, table: TableSpec) -> None:
    """GSIs are eventually consistent: the library never reads its own write through an
    index in the same request, and tests poll (a real table shows it within a second)."""
    item = {**_key("g"), "gsi1pk": {"S": "status#open"}, "gsi1sk": {"S": "g"}}
    await client.ok("PutItem", {"TableName": table.name, "Item": item})
    query = {
        "TableName": table.name,
        "IndexName": "gsi1",
        "KeyConditionExpression": "gsi1pk = :p",
        "ExpressionAttributeValues": {":p": {"S": "status#open"}},
    }
    deadline = time.monotonic() + 10
    while True:
        found = (await client.ok("Query", query))["Items"]
        if found or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    assert found == [item]


async def test_a_consistent_read_on_a_gsi_is_refused(client: RawClient, table: TableSpec) -> None:
    refused = await client.call(
        "Query",
        {
            "TableName": table.name,
            "IndexName": "gsi1",
            "KeyConditionExpression": "gsi1pk = :p",
            "ExpressionAttributeValues": {":p": {"S": "x"}},
            "ConsistentRead": True,
        },
    )
    assert (refused.status, refused.code) == (400, "ValidationException")


# -- capacity -------------------------------------------------------------------------------


@pytest.mark.gaps(moto="moto reports no ConsumedCapacity for TransactWriteItems")
async def test_consumed_capacity_counts_write_units(client: RawClient, table: TableSpec) -> None:
    """A write of up to 1 KB is 1 unit; a transactional write costs 2 per item."""
    put = await client.ok(
        "PutItem",
        {"TableName": table.name, "Item": _key("c"), "ReturnConsumedCapacity": "TOTAL"},
    )
    assert put["ConsumedCapacity"]["TableName"] == table.name
    assert float(put["ConsumedCapacity"]["CapacityUnits"]) == 1.0
    transact = await client.ok(
        "TransactWriteItems",
        {
            "TransactItems": [_put(table, "c1"), _put(table, "c2")],
            "ReturnConsumedCapacity": "TOTAL",
        },
    )
    assert sum(float(c["CapacityUnits"]) for c in transact["ConsumedCapacity"]) == 4.0


@pytest.mark.gaps(moto="moto reports half a unit for a consistent read (DynamoDB: one)")
async def test_consumed_capacity_counts_read_units(client: RawClient, table: TableSpec) -> None:
    """A read of up to 4 KB is half a unit eventually consistent, one unit consistent."""
    await client.ok("PutItem", {"TableName": table.name, "Item": _key("r")})
    units = []
    for consistent in (False, True):
        got = await client.ok(
            "GetItem",
            {
                "TableName": table.name,
                "Key": _key("r"),
                "ConsistentRead": consistent,
                "ReturnConsumedCapacity": "TOTAL",
            },
        )
        units.append(float(got["ConsumedCapacity"]["CapacityUnits"]))
    assert units == [0.5, 1.0]


# -- TTL ------------------------------------------------------------------------------------


async def test_time_to_live_is_described_once_enabled(client: RawClient, table: TableSpec) -> None:
    described = await client.ok("DescribeTimeToLive", {"TableName": table.name})
    ttl = described["TimeToLiveDescription"]
    assert (ttl["TimeToLiveStatus"], ttl["AttributeName"]) == ("ENABLED", "ttl")


async def test_an_expired_item_is_still_read_until_dynamodb_deletes_it(
    client: RawClient, table: TableSpec
) -> None:
    """DynamoDB deletes expired items within days, not at once: readers that care filter
    on the TTL attribute themselves (the rate limiter and idempotency records do)."""
    item = {**_key("expired"), "ttl": {"N": str(int(time.time()) - 3600)}}
    await client.ok("PutItem", {"TableName": table.name, "Item": item})
    assert await _get(client, table, "expired") == item


# -- concurrency ----------------------------------------------------------------------------


async def test_40_concurrent_conditional_increments_admit_exactly_the_limit(
    client: RawClient, table: TableSpec
) -> None:
    """Each item write is atomic: 40 conditional increments against a limit of 10 admit
    exactly 10, burst after burst (moto's own threaded server over-admits here)."""
    limit = 10

    async def increment(pk: str) -> bool:
        answer = await client.call(
            "UpdateItem",
            {
                "TableName": table.name,
                "Key": _key(pk),
                "UpdateExpression": "ADD #n :one",
                "ConditionExpression": "attribute_not_exists(#n) OR #n < :limit",
                "ExpressionAttributeNames": {"#n": "n"},
                "ExpressionAttributeValues": {":one": {"N": "1"}, ":limit": {"N": str(limit)}},
            },
        )
        assert answer.status == 200 or answer.code == "ConditionalCheckFailedException"
        return answer.status == 200

    for burst in range(10):
        admitted = await asyncio.gather(*(increment(f"burst{burst}") for _ in range(40)))
        assert sum(admitted) == limit, f"burst {burst} admitted {sum(admitted)}"
        assert (await _get(client, table, f"burst{burst}"))["n"] == {"N": str(limit)}


async def _concurrent_transactions(client: RawClient, table: TableSpec) -> list[str]:
    """20 concurrent transactions on one item, each also writing an item of its own."""

    async def one(i: int) -> str:
        answer = await client.call(
            "TransactWriteItems",
            {"TransactItems": [_increment(table, "hot"), _put(table, f"own{i}")]},
        )
        if answer.status == 200:
            return "applied"
        reasons = answer.body.get("CancellationReasons", [])
        return ",".join(r.get("Code", "") for r in reasons) or answer.code

    return await asyncio.gather(*(one(i) for i in range(20)))


async def test_concurrent_transactions_on_one_item_apply_whole_or_not_at_all(
    client: RawClient, table: TableSpec
) -> None:
    outcomes = await _concurrent_transactions(client, table)
    applied = outcomes.count("applied")
    assert all(o == "applied" or "TransactionConflict" in o for o in outcomes), outcomes
    assert (await _get(client, table, "hot"))["n"] == {"N": str(applied)}
    for i, outcome in enumerate(outcomes):
        own = await _get(client, table, f"own{i}")
        assert (own is not None) == (outcome == "applied")


@pytest.mark.gaps(
    moto=MOTO_SERIAL,
    ministack="ministack applies each transaction under one lock: none ever conflicts",
)
async def test_overlapping_transactions_can_be_cancelled_with_transaction_conflict(
    client: RawClient, table: TableSpec
) -> None:
    """DynamoDB cancels a transaction that meets another one in flight on the same item
    (``TransactionConflict``); the unit of work retries those. An engine that never
    produces it cannot test that retry: the fault proxy's ``error()`` stands in."""
    seen = []
    for _ in range(5):
        seen += await _concurrent_transactions(client, table)
        if any("TransactionConflict" in o for o in seen):
            break
    assert any("TransactionConflict" in o for o in seen)


# -- malformed requests -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "payload"),
    [
        ("PutItem", {"Item": {"pk": {"S": "a"}, "sk": {"S": "b"}}}),
        (
            "Scan",
            {
                "FilterExpression": "#missing = :v",
                "ExpressionAttributeValues": {":v": {"S": "x"}},
            },
        ),
    ],
    ids=["no-table-name", "undefined-name"],
)
@pytest.mark.gaps(
    moto="moto raises inside its handler: lift's front answers 500 InternalServerError "
    "(moto alone drops the connection); DynamoDB answers 400 ValidationException"
)
async def test_a_malformed_request_is_answered_with_a_validation_error(
    client: RawClient, table: TableSpec, action: str, payload: dict[str, Any]
) -> None:
    if action == "Scan":
        payload = {**payload, "TableName": table.name}
    refused = await client.call(action, payload)
    assert (refused.status, refused.code) == (400, "ValidationException"), refused.body
