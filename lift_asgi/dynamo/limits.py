"""DynamoDB's own limits, in one leaf module (it imports nothing of the suite).

The library checks them itself, before any call, because the local emulator does not
(moto accepts a 26-item BatchWriteItem and an over-4-MB transaction) and because an
error at the line that added the 101st operation is clearer than a refusal at commit.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

__all__ = [
    "MAX_BATCH_GET",
    "MAX_BATCH_WRITE",
    "MAX_EXPRESSION_BYTES",
    "MAX_ITEM_BYTES",
    "MAX_NAME_BYTES",
    "MAX_PK_BYTES",
    "MAX_QUERY_CALLS",
    "MAX_SK_BYTES",
    "MAX_TRANSACTION_BYTES",
    "MAX_TRANSACTION_ITEMS",
    "check_request_limits",
]

#: One item: attribute names and values, by the rules of ``codec.item_size``.
MAX_ITEM_BYTES: Final = 400 * 1024
#: An attribute name (UTF-8 bytes; key and index attributes are held to 255 by DynamoDB
#: when the table is made).
MAX_NAME_BYTES: Final = 64 * 1024
#: Key values (UTF-8 bytes): partition key, sort key.
MAX_PK_BYTES: Final = 2048
MAX_SK_BYTES: Final = 1024
#: TransactWriteItems: operations, and their total size.
MAX_TRANSACTION_ITEMS: Final = 100
MAX_TRANSACTION_BYTES: Final = 4 * 1024 * 1024
#: BatchWriteItem requests and BatchGetItem keys per call.
MAX_BATCH_WRITE: Final = 25
MAX_BATCH_GET: Final = 100
#: One expression string (condition, update, key condition, filter, projection), UTF-8.
MAX_EXPRESSION_BYTES: Final = 4096
#: Not DynamoDB's: how many Query pages one filtered ``query(limit=...)`` reads at most.
MAX_QUERY_CALLS: Final = 10

#: The actions :func:`check_request_limits` looks at.
LIMITED_ACTIONS: Final = frozenset({"TransactWriteItems", "BatchWriteItem", "BatchGetItem"})


def check_request_limits(action: str, payload: Mapping[str, Any]) -> None:
    """Refuse what DynamoDB refuses and the emulator accepts: more than 100 items in a
    transaction, 25 in a BatchWriteItem, 100 keys in a BatchGetItem."""
    if action == "TransactWriteItems":
        count, limit = len(payload.get("TransactItems", ())), MAX_TRANSACTION_ITEMS
    elif action == "BatchWriteItem":
        count = sum(len(v) for v in payload.get("RequestItems", {}).values())
        limit = MAX_BATCH_WRITE
    elif action == "BatchGetItem":
        count = sum(len(v.get("Keys", ())) for v in payload.get("RequestItems", {}).values())
        limit = MAX_BATCH_GET
    else:
        return
    if count > limit:
        raise ValueError(f"{action} takes at most {limit} items, not {count} (DynamoDB's limit)")
