"""Sending a unit of work's buffered operations: one write, or one transaction.

- one write (not a ``check``): one PutItem / UpdateItem / DeleteItem carrying its
  condition, retried on throttling (never applied). A failure of unknown outcome (5xx,
  timeout, dropped connection, lost answer) is retried too when sending the write again
  cannot apply it twice in effect (:attr:`Operation.replayable
  <lift_asgi.dynamo.operations.Operation.replayable>`: puts, deletes, updates that only
  set and remove, updates that expect a version): a retry that succeeds is the commit.
  One that fails its condition after an unknown outcome may have met its own earlier,
  unheard success, or a state another writer made: nothing the item shows tells them
  apart (the same version from another writer, an item absent all along), so that, an
  update that adds (never sent twice), and retries running out after an unknown
  outcome are a 503 saying the outcome is unknown (``"outcome": "unknown"``), not
  "retry shortly";
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
from typing import TYPE_CHECKING, Any

from lift_asgi.dynamo.operations import Operation, show_key
from lift_asgi.dynamo.retry import any_unavailable, not_applied, run_with_retries
from lift_asgi.errors import (
    ConditionFailed,
    DynamoDBError,
    DynamoDBThrottled,
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
        if op.idempotent:  # no condition, no ADD: any failure is retried as it is
            await table.retrying(_SINGLE_ACTION[op.kind], op.request)
            return
        await _commit_conditional(table, op)
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


async def _commit_conditional(table: TableHandle, op: Operation) -> None:
    """One write with a condition or an ADD (see the module docstring)."""
    action = _SINGLE_ACTION[op.kind]
    request = op.request
    unknown = False  # an attempt failed without telling whether it was applied

    async def attempt() -> dict[str, Any]:
        nonlocal unknown
        await table.verify()  # the table check's failures are no write of unknown outcome
        try:
            return await table.call(action, request)
        except DynamoDBUnavailable as error:
            if not isinstance(error, DynamoDBThrottled):
                unknown = True  # throttles and write conflicts were not applied
            raise

    try:
        await run_with_retries(
            attempt, table.retry, any_unavailable if op.replayable else not_applied
        )
    except ConditionFailed as failed:
        if not unknown:
            raise conflict([0], [op], table) from None
        raise _outcome_unknown(table, op, failed) from failed
    except DynamoDBUnavailable as error:
        if unknown:
            raise _outcome_unknown(table, op, error) from error
        raise


def _outcome_unknown(table: TableHandle, op: Operation, error: Exception) -> DynamoDBUnavailable:
    """The 503 of a write that may or may not have been applied."""
    log.warning(
        "the %s of %s on %r: outcome unknown (%s)",
        op.kind,
        show_key(table.schema, op.logical),
        table.name,
        type(error).__name__,
    )
    return DynamoDBUnavailable(
        "DynamoDB did not confirm the write and its outcome is unknown: it may have been "
        "applied. Read the data before sending it again.",
        aws_code=str(getattr(error, "aws_code", "") or type(error).__name__),
        retry_after=table.retry.retry_after,
        outcome="unknown",
    )


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
