"""moto's transaction backup made once per table (lift_asgi.local.moto_backup).

The rollback it backs is tested through both engines' servers in tests/fidelity; here,
that a transaction copies each table it names once, however many items name it."""

from __future__ import annotations

import copy
from typing import Any

from lift_asgi.local.moto_backup import TableCopies, backup_each_table_once


class Table:
    def __init__(self, items: list[Any]) -> None:
        self.items = items


def test_a_table_is_copied_once_and_anything_else_every_time() -> None:
    made: list[Any] = []

    def counting(obj: Any, memo: Any = None) -> Any:
        made.append(obj)
        return copy.deepcopy(obj, memo)

    copies = TableCopies(Table, counting)
    first, second = Table([1]), Table([2])
    backups = [copies.deepcopy(table) for table in (first, second, first, first, second)]
    assert made == [first, second]
    assert backups[0] is backups[2] is backups[3] and backups[1] is backups[4]
    assert backups[0] is not first and backups[0].items == [1]
    item = {"a": [1]}
    assert copies.deepcopy(item) == item and copies.deepcopy(item) is not item
    assert made[2:] == [item, item]  # not a table: copied on every call
    assert copies.copy([1]) == [1] and copies.Error is copy.Error  # the rest of `copy`


def test_moto_copies_each_table_once_per_transaction() -> None:
    """moto's own backend, wrapped as the moto child wraps it: 30 items on one table make
    one copy of that table (unwrapped: 30), and the module global is put back."""
    from moto.dynamodb import models
    from moto.dynamodb.models.table import Table as MotoTable

    copied: list[str] = []

    def counting(obj: Any, memo: Any = None) -> Any:
        if isinstance(obj, MotoTable):
            copied.append(obj.name)
        return copy.deepcopy(obj, memo)

    backup_each_table_once(counting)
    backup_each_table_once(counting)  # a second call wraps nothing more
    backend = models.DynamoDBBackend("us-east-1", "123456789012")
    backend.create_table(
        "t",
        schema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        throughput=None,
        attr=[{"AttributeName": "pk", "AttributeType": "S"}],
        global_indexes=None,
        indexes=None,
        streams=None,
        billing_mode="PAY_PER_REQUEST",
        sse_specification=None,
        tags=[],
        deletion_protection_enabled=False,
        warm_throughput=None,
    )
    items = [{"Put": {"TableName": "t", "Item": {"pk": {"S": f"p{i}"}}}} for i in range(30)]
    backend.transact_write_items(items)
    assert copied == ["t"]
    assert models.copy is copy
    assert len(backend.get_table("t")) == 30
