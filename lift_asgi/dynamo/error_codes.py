"""DynamoDB's error codes mapped to the suite's errors, whichever client saw them.

The one table both transports (aiodynamo's JSON answers and botocore's ``ClientError``)
and the synchronous rate-limit storage go through, so a throttle, a conflict or a missing
table means the same thing everywhere. A leaf: it imports only :mod:`lift_asgi.errors`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from lift_asgi.errors import (
    ConditionFailed,
    DynamoDBError,
    DynamoDBThrottled,
    DynamoDBUnavailable,
    DynamoDBWriteConflict,
    LiftError,
    TableNotFound,
    TransactionCancelled,
)

__all__ = [
    "CONFLICT_CODES",
    "EXPIRED_CREDENTIALS_CODES",
    "QUIET_CODES",
    "THROTTLE_CODES",
    "UNAVAILABLE_CODES",
    "error_from_code",
]

THROTTLE_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "Throttling",
        "TooManyRequestsException",
    }
)
#: Not applied because the item is in a transaction still running: safe to retry.
CONFLICT_CODES = frozenset(
    {
        "TransactionConflictException",
        "ReplicatedWriteConflictException",
        "TransactionInProgressException",
    }
)
UNAVAILABLE_CODES = frozenset(
    {"InternalServerError", "ServiceUnavailable", "InternalFailure", "ServiceUnavailableException"}
)
#: The request was refused before it was applied because the temporary credentials
#: that signed it expired: refresh them and send it again (once), as the SDKs do.
EXPIRED_CREDENTIALS_CODES = frozenset({"ExpiredTokenException", "ExpiredToken"})
#: Outcomes a caller expects and handles (a false condition, a table that exists or
#: not yet): logged at DEBUG by the transports, never as a warning.
QUIET_CODES = frozenset(
    {
        "ConditionalCheckFailedException",
        "TransactionCanceledException",
        "ResourceInUseException",
        "ResourceNotFoundException",
    }
)


def error_from_code(
    code: str, message: str, status: int = 400, body: Mapping[str, Any] | None = None
) -> LiftError:
    """Map a DynamoDB error code (``__type`` suffix) to the suite's error type."""
    if code == "ConditionalCheckFailedException":
        failed = ConditionFailed("A condition on the item was not met.", aws_code=code)
        # With ReturnValuesOnConditionCheckFailure=ALL_OLD the answer carries the item
        # as it stood: callers read it here (never in the problem body) and save a read.
        item = (body or {}).get("Item")
        failed.item = item if isinstance(item, dict) else None
        return failed
    if code == "TransactionCanceledException":
        raw = (body or {}).get("CancellationReasons") or []
        reasons: list[str | None] = [
            None if r.get("Code") in (None, "None") else str(r.get("Code")) for r in raw
        ]
        if not reasons:  # botocore puts them only in the message
            reasons = [
                None if c == "None" else c
                for c in re.findall(r"(\w+)(?:,|\])", message.partition("[")[2])
            ]
        return TransactionCancelled("The transaction was cancelled.", reasons=reasons)
    if code in THROTTLE_CODES:
        return DynamoDBThrottled(aws_code=code)
    if code in CONFLICT_CODES:
        return DynamoDBWriteConflict(aws_code=code)
    if code in UNAVAILABLE_CODES or status >= 500:
        return DynamoDBUnavailable(aws_code=code or str(status))
    if code == "ResourceNotFoundException":
        return TableNotFound("The DynamoDB table does not exist (or is not ACTIVE).", aws_code=code)
    return DynamoDBError("The database rejected the request.", aws_code=code)
