"""The transport keeps the item a failed condition returns, and never shows it."""

from __future__ import annotations

import pytest

from lift_asgi.dynamo.tables import TableSpec
from lift_asgi.dynamo.transport import AiodynamoTransport
from lift_asgi.errors import ConditionFailed, problem_body


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
