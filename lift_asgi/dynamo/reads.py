"""The unit of work's reads: GetItem and Query through a tenant (or unscoped) view.

Reads go to DynamoDB when called and never see the writes buffered in the same unit of
work. Items come back as plain Python with the tenant prefix stripped; an item of
another tenant is not found (:meth:`Scope.visible <lift_asgi.dynamo.keys.Scope.visible>`).
A query's cursor is sealed with a binding of the tenant and the query's shape
(:mod:`lift_asgi.dynamo.cursor`), so it only continues the listing that issued it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lift_asgi.dynamo.conditions import SK, Condition, Expression, SortKeyCondition
from lift_asgi.dynamo.keys import KeyLike, Scope
from lift_asgi.dynamo.limits import MAX_QUERY_CALLS
from lift_asgi.dynamo.operations import check_condition
from lift_asgi.errors import InvalidCursor, InvalidItem

if TYPE_CHECKING:
    from lift_asgi.dynamo.handle import TableHandle

__all__ = ["Page", "get_item", "key_arg", "query"]


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a query: the items (plain Python, prefix stripped) and the opaque
    cursor of the next page (``None`` on the last page)."""

    items: list[dict[str, Any]]
    next_cursor: str | None

    def __iter__(self) -> Any:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)


def key_arg(key: KeyLike, sk: str | None) -> KeyLike:
    """``get(pk, sk)`` and ``get({"pk": ..., "sk": ...})`` as one key."""
    if sk is None:
        return key
    if not isinstance(key, str):
        raise InvalidItem("Give the key as get(pk, sk) or get({'pk': ..., 'sk': ...}).")
    return (key, sk)


async def get_item(
    table: TableHandle, scope: Scope, key: KeyLike, *, consistent: bool = False
) -> dict[str, Any] | None:
    physical, _ = scope.key(key)
    payload: dict[str, Any] = {"TableName": table.name, "Key": physical}
    if consistent:
        payload["ConsistentRead"] = True
    result = await table.retrying("GetItem", payload)
    raw = result.get("Item")
    return scope.visible(raw) if raw else None


async def query(
    table: TableHandle,
    scope: Scope,
    pk: str,
    sk: str | SortKeyCondition | None = None,
    *,
    index: str | None = None,
    filter: Condition | None = None,
    limit: int | None = None,
    cursor: str | None = None,
    consistent: bool = False,
    scan_forward: bool = True,
) -> Page:
    schema = scope.schema
    pk_attribute, sk_attribute = schema.index_keys(index)
    if consistent and index is not None:
        raise ValueError("consistent reads are not supported on global secondary indexes")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit must be a positive int, not {limit!r}")
    expr = Expression()
    key_condition = (
        f"{expr.name(pk_attribute)} = {expr.encoded({'S': scope.partition(pk, pk_attribute)})}"
    )
    if sk is not None:
        if sk_attribute is None:
            where = f"index {index!r}" if index else f"table {table.name!r}"
            raise ValueError(f"{where} has no sort key")
        if isinstance(sk, str):
            sk = SK.eq(sk)
        elif not isinstance(sk, SortKeyCondition):
            raise TypeError("sk must be a string or an SK condition (SK.begins_with(...))")
        key_condition += " AND " + sk.render(expr, sk_attribute)
    payload: dict[str, Any] = {"TableName": table.name, "KeyConditionExpression": key_condition}
    if index is not None:
        payload["IndexName"] = index
    if filter is not None:
        check_condition(scope, filter)
        payload["FilterExpression"] = filter.render(expr)
    if not scan_forward:
        payload["ScanIndexForward"] = False
    expr.apply(payload)
    binding = json.dumps(
        [scope.binding, payload], sort_keys=True, separators=(",", ":"), default=str
    ).encode()
    if cursor:  # None or "" (a query string's `cursor=`): the first page
        start = table.cursors.decode(cursor, binding)
        if not scope.owns(start):
            raise InvalidCursor("The cursor is not valid for this listing.")
        payload["ExclusiveStartKey"] = start
    if consistent:
        payload["ConsistentRead"] = True
    items: list[dict[str, Any]] = []
    visible = scope.visible
    last: dict[str, Any] | None = None
    for _ in range(MAX_QUERY_CALLS):
        if limit is not None:
            payload["Limit"] = limit - len(items)
        result = await table.retrying("Query", payload)
        for raw in result.get("Items", ()):
            item = visible(raw)
            if item is not None:
                items.append(item)
        last = result.get("LastEvaluatedKey")
        if not last or limit is None or len(items) >= limit:
            break
        payload["ExclusiveStartKey"] = last
    next_cursor = table.cursors.encode(last, binding) if last else None
    return Page(items, next_cursor)
