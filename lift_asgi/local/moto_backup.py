"""moto's transaction backup, made once per table instead of once per item.

moto 5.2's ``DynamoDBBackend.transact_write_items`` deep-copies a table, as the state to
restore if the transaction fails, once for *every item* that names it: a 50-item
transaction on a table of 1,000 items took about a second, and a table that grows
through a test session makes each transaction slower than the last until a client's
timeout (5 s) runs out on a loaded machine (a 503 where DynamoDB answers in
milliseconds). All the copies are taken before any item is applied, so they are equal:
one per table restores the same state.

There is no option for this in moto, and its method is 100 lines that change between
releases, so rather than carrying a copy of it, :func:`backup_each_table_once` wraps it:
for the length of one call, the ``copy`` module moto's backend sees hands back the copy
it already made of a table. Calls are never concurrent here (the front serialises them,
see :mod:`lift_asgi.local.moto_front`), so swapping that module global is safe.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

__all__ = ["TableCopies", "backup_each_table_once"]


class TableCopies:
    """Stands in for the ``copy`` module during one transaction: ``deepcopy`` of a table
    it has copied already returns that copy; anything else is copied as usual."""

    def __init__(self, table_type: type, deepcopy: Callable[..., Any] = copy.deepcopy) -> None:
        self._table_type = table_type
        self._deepcopy = deepcopy
        self._made: dict[int, Any] = {}

    def deepcopy(self, obj: Any, memo: dict[int, Any] | None = None) -> Any:
        if not isinstance(obj, self._table_type):
            return self._deepcopy(obj, memo)
        made = self._made.get(id(obj))
        if made is None:
            made = self._made[id(obj)] = self._deepcopy(obj, memo)
        return made

    def __getattr__(self, name: str) -> Any:  # copy.copy, copy.Error, ...
        return getattr(copy, name)


def backup_each_table_once(deepcopy: Callable[..., Any] = copy.deepcopy) -> None:
    """Wrap moto's ``transact_write_items`` (in this process, once) as described above."""
    from moto.dynamodb import models
    from moto.dynamodb.models.table import Table

    backend = models.DynamoDBBackend
    original = backend.transact_write_items
    if getattr(original, "_lift_asgi_wrapped", False):
        return

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        models.copy = TableCopies(Table, deepcopy)  # type: ignore[attr-defined,assignment]
        try:
            return original(self, transact_items)
        finally:
            models.copy = copy  # type: ignore[attr-defined]

    transact_write_items._lift_asgi_wrapped = True  # type: ignore[attr-defined]
    backend.transact_write_items = transact_write_items  # type: ignore[method-assign]
