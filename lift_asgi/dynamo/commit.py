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
  connections and cancellations by transaction conflicts or throttling. Retries running
  out after a try of unknown outcome are the same "outcome unknown" 503: the token
  dedupes this request's tries, not the client's resend, which is a new request.

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
    DynamoDBUnreachable,
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
    attempt = _Attempt(table, "TransactWriteItems", payload)
    try:
        await run_with_retries(attempt, table.retry, _transaction_retryable)
    except DynamoDBUnavailable as error:
        # The token dedupes this request's own copies, never the client's resend (a new
        # request, a new token): after an unheard copy (which may still land: an answer
        # of TransactionInProgress says one is running), "retry shortly" could apply it
        # twice.
        if attempt.unknown:
            raise _outcome_unknown(table, f"transaction of {len(ops)} operations", error) from error
        raise
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
    attempt = _Attempt(table, _SINGLE_ACTION[op.kind], op.request)
    try:
        await run_with_retries(
            attempt, table.retry, any_unavailable if op.replayable else not_applied
        )
    except ConditionFailed as failed:
        if not attempt.unknown:
            raise conflict([0], [op], table) from None
        raise _outcome_unknown(table, _described(table, op), failed) from failed
    except DynamoDBUnavailable as error:
        if attempt.unknown:
            raise _outcome_unknown(table, _described(table, op), error) from error
        raise


class _Attempt:
    """One try of a write, remembering whether any try failed without telling whether
    it was applied (``unknown``: 5xx, timeout, dropped connection, lost answer; not a
    throttle or a write conflict, which DynamoDB refused, nor a failure to connect, which
    sent nothing)."""

    __slots__ = ("action", "payload", "table", "unknown")

    def __init__(self, table: TableHandle, action: str, payload: dict[str, Any]) -> None:
        self.table = table
        self.action = action
        self.payload = payload
        self.unknown = False

    async def __call__(self) -> dict[str, Any]:
        await self.table.verify()  # the table check's failures are no write of unknown outcome
        try:
            return await self.table.call(self.action, self.payload)
        except DynamoDBUnavailable as error:
            if not isinstance(error, DynamoDBThrottled | DynamoDBUnreachable):
                self.unknown = True
            raise


def _described(table: TableHandle, op: Operation) -> str:
    return f"{op.kind} of {show_key(table.schema, op.logical)}"


def _outcome_unknown(table: TableHandle, what: str, error: Exception) -> DynamoDBUnavailable:
    """The 503 of a write that may or may not have been applied."""
    log.warning(
        "the %s on %r: outcome unknown (%s)",
        what,
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
