"""README promises of the unit of work that no other test pinned: an item whose tenant
attribute names another tenant is "not found" to every read, and logged."""

from __future__ import annotations

import logging

import pytest

from lift_asgi.dynamo import DynamoTable
from lift_asgi.dynamo.tables import TableSpec
from lift_asgi.dynamo.transport import AiodynamoTransport

pytestmark = pytest.mark.dynamodb


async def test_an_item_carrying_another_tenants_attribute_is_not_found_and_logged(
    aiodynamo_transport: AiodynamoTransport,
    dynamodb_table: TableSpec,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Under globex's prefix, but stamped as acme's: a bad migration or a forged write.
    await aiodynamo_transport.request(
        "PutItem",
        {
            "TableName": dynamodb_table.name,
            "Item": {
                "pk": {"S": "globex#projects"},
                "sk": {"S": "p1"},
                "_tenant": {"S": "acme"},
                "name": {"S": "acme's secret"},
            },
        },
    )
    table = DynamoTable(dynamodb_table, transport=aiodynamo_transport)
    uow = table.unit_of_work("globex")
    caplog.set_level(logging.WARNING, logger="lift_asgi.dynamo")
    assert await uow.get("projects", "p1") is None
    assert (await uow.query("projects")).items == []
    assert await uow.batch_get([("projects", "p1")]) == [None]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) >= 3 and all("not tenant 'globex'" in w for w in warnings), warnings
    assert all("secret" not in w for w in warnings)  # the item's data is not logged
