"""Sending a unit of work's buffered operations: one write, or one transaction.

- one write (not a ``check``): one PutItem / UpdateItem / DeleteItem carrying its
  condition, retried on throttling (never applied) and, when applying it twice is
  harmless (no condition, no ``add``), on failures of unknown outcome too; otherwise
  such a failure is a 503 rather than a write that might land twice;
- otherwise: one TransactWriteItems with a fresh ClientRequestToken, reused on every try
  (DynamoDB applies it at most once), retried on throttling, 5xx, timeouts, dropped
  connections and cancellations by transaction conflicts or throttling.

A condition that fails is a 409 :class:`~lift_asgi.errors.ConditionFailed` that names
the operation by its number (from 1, in the order the handler added them) and its kind;
the keys go to the log, never to the client (they show the stored key layout).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING

from lift_asgi.dynamo.operations import Operation, show_key
from lift_asgi.dynamo.retry import run_with_retries
from lift_asgi.errors import (
    ConditionFailed,
    DynamoDBError,
    DynamoDBUnavailable,
    TransactionCancelled,
)

if TYPE_CHECKING:
    from lift_asgi.dynamo.handle import TableHandle

__all__ = ["commit_operations", "conflict"]

log = logging.getLogger("lift_asgi.dynamo")

_SINGLE_ACTION = {"put": "PutItem", "update": "UpdateItem", "delete": "DeleteItem"}
_TRANSACT_KIND = {"put": "Put", "update": "Update", "delete": "Delete", "check": "ConditionCheck"}
#: Cancellation reasons that mean "not applied, try again".
_RETRYABLE_REASONS = frozenset(
    {
        "TransactionConflict",
        "ThrottlingError",
        "ProvisionedThroughputExceeded",
        "RequestLimitExceeded",
    }
)


async def commit_operations(table: TableHandle, ops: Sequence[Operation]) -> None:
    """Send ``ops`` (at least one) as one write or one transaction."""
    if len(ops) == 1 and ops[0].kind != "check":
        op = ops[0]
        try:
            await table.retrying(_SINGLE_ACTION[op.kind], op.request, ambiguous_ok=op.idempotent)
        except ConditionFailed:
            raise conflict([0], ops, table) from None
        return
    payload = {
        "TransactItems": [{_TRANSACT_KIND[op.kind]: op.request} for op in ops],
        "ClientRequestToken": str(uuid.uuid4()),
    }
    try:
        await run_with_retries(
            lambda: table.call("TransactWriteItems", payload), table.retry, _transaction_retryable
        )
    except TransactionCancelled as exc:
        failed = [i for i, reason in enumerate(exc.reasons) if reason == "ConditionalCheckFailed"]
        if failed:
            raise conflict(failed, ops, table) from None
        log.error("TransactWriteItems on %r cancelled: %s", table.name, exc.reasons)
        raise DynamoDBError(
            "The database refused the transaction.", aws_code="TransactionCanceledException"
        ) from None


def _transaction_retryable(error: Exception) -> bool:
    """A transaction with its ClientRequestToken may be sent again after any failure
    that did not apply it, or whose outcome is unknown (the token makes it once)."""
    if isinstance(error, DynamoDBUnavailable):
        return True
    if isinstance(error, TransactionCancelled):
        codes = {reason for reason in error.reasons if reason is not None}
        return bool(codes) and codes <= _RETRYABLE_REASONS
    return False


def conflict(failed: list[int], ops: Sequence[Operation], table: TableHandle) -> ConditionFailed:
    """The 409 of a commit whose condition(s) failed: which operation, in one numbering
    (from 1, as in ``detail``), and its kind; never a key. The keys go to the log."""
    first = ops[failed[0]]
    number = failed[0] + 1
    note = (
        f" (expected version {first.expected_version})"
        if first.expected_version is not None
        else ""
    )
    log.info(
        "commit on %r: %s",
        table.name,
        "; ".join(
            f"the {ops[i].kind} of {show_key(table.schema, ops[i].logical)} "
            f"(operation {i + 1} of {len(ops)}) failed its condition"
            for i in failed
        ),
    )
    detail = (
        f"Operation {number} of {len(ops)} (a {first.kind}) failed its condition{note}; "
        "nothing was written."
    )
    return ConditionFailed(
        detail,
        aws_code="ConditionalCheckFailedException",
        operation={"number": number, "of": len(ops), "kind": first.kind},
        failed=[{"number": i + 1, "kind": ops[i].kind} for i in failed],
    )
