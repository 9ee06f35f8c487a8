"""Batch reads and bulk writes, outside the unit of work's transaction.

``bulk_put``/``bulk_delete`` are for volume (imports, clean-ups), not atomicity: they run
when called, as BatchWriteItem calls of at most 25 requests, at most
``bulk_concurrency`` calls in flight (a fixed pool of workers), each chunk's
``UnprocessedItems`` re-sent with backoff until written or the retry policy gives up.
What was written stays written. A failure raises the DynamoDB error with, in its
``extra``:

- ``written``: how many items are known to have landed (a call that answered and did
  not return them as unprocessed);
- ``outcome_unknown``: how many were sent in a call whose outcome is unknown (its answer
  was lost, or it outlasted the timeout and may be applied later) and never confirmed
  by a later answer. They may be stored or not: read them back (consistently) to know.

The other items (never sent, throttled, returned unprocessed) are known not written.

``batch_get`` reads up to 100 keys per BatchGetItem the same way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from lift_asgi.dynamo.keys import KeyLike, Scope
from lift_asgi.dynamo.limits import MAX_BATCH_GET, MAX_BATCH_WRITE
from lift_asgi.dynamo.retry import any_unavailable, run_with_retries
from lift_asgi.errors import (
    DuplicateItem,
    DynamoDBError,
    DynamoDBThrottled,
    DynamoDBUnavailable,
    LiftError,
)

if TYPE_CHECKING:
    from lift_asgi.dynamo.handle import TableHandle

__all__ = ["BulkResult", "batch_get", "bulk_write"]

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class BulkResult:
    """What a bulk write did: ``written`` items stored, ``retried`` item sends repeated
    (unprocessed or failed calls), ``calls`` BatchWriteItem calls made."""

    written: int
    retried: int
    calls: int


@dataclass(slots=True)
class _Progress:
    written: int = 0
    retried: int = 0
    calls: int = 0
    unknown: int = 0


async def _pool(
    chunks: Sequence[_T], concurrency: int, work: Callable[[_T], Awaitable[None]]
) -> None:
    """Run ``work`` over ``chunks`` with ``concurrency`` workers; stop at the first error."""
    remaining = iter(chunks)
    errors: list[Exception] = []

    async def worker() -> None:
        for chunk in remaining:
            if errors:
                return
            try:
                await work(chunk)
            except Exception as exc:
                errors.append(exc)
                return

    workers = max(1, min(concurrency, len(chunks)))
    await asyncio.gather(*(worker() for _ in range(workers)))
    if errors:
        raise errors[0]


async def bulk_write(
    table: TableHandle,
    requests: Sequence[dict[str, Any]],
    *,
    concurrency: int | None = None,
) -> BulkResult:
    """Send ``PutRequest``/``DeleteRequest`` entries in BatchWriteItem calls of 25."""
    if not requests:
        return BulkResult(0, 0, 0)
    schema = table.schema
    key_names = (schema.pk, schema.sk) if schema.sk else (schema.pk,)

    def identity(request: Mapping[str, Any]) -> tuple[Any, ...]:
        body = request.get("PutRequest", {}).get("Item") or request["DeleteRequest"]["Key"]
        return tuple(body[name]["S"] for name in key_names)

    seen: set[tuple[Any, ...]] = set()
    for request in requests:
        key = identity(request)
        if key in seen:
            raise DuplicateItem(
                "The same item appears twice in one bulk write; DynamoDB refuses duplicates."
            )
        seen.add(key)
    progress = _Progress()
    name = table.name

    async def write(chunk: list[dict[str, Any]]) -> None:
        pending = chunk
        #: items sent in a call of unknown outcome, not confirmed by a later answer
        uncertain: set[tuple[Any, ...]] = set()

        async def attempt() -> None:
            nonlocal pending
            progress.calls += 1
            try:
                result = await table.call("BatchWriteItem", {"RequestItems": {name: pending}})
            except DynamoDBUnavailable as error:
                progress.retried += len(pending)
                if not isinstance(error, DynamoDBThrottled):  # throttled: not applied
                    uncertain.update(map(identity, pending))
                raise
            unprocessed = (result.get("UnprocessedItems") or {}).get(name) or []
            progress.written += len(pending) - len(unprocessed)
            if uncertain:  # what this answer processed is known written now
                uncertain.intersection_update(map(identity, unprocessed))
            if unprocessed:
                progress.retried += len(unprocessed)
                pending = unprocessed
                raise DynamoDBThrottled(aws_code="UnprocessedItems")

        try:
            await run_with_retries(attempt, table.retry, any_unavailable)
        finally:
            progress.unknown += len(uncertain)

    chunks = [
        list(requests[i : i + MAX_BATCH_WRITE]) for i in range(0, len(requests), MAX_BATCH_WRITE)
    ]
    try:
        await _pool(chunks, concurrency or table.bulk_concurrency, write)
    except LiftError as error:
        raise _with_written(error, progress.written, progress.unknown) from error
    return BulkResult(progress.written, progress.retried, progress.calls)


def _with_written(error: LiftError, written: int, unknown: int) -> LiftError:
    """A new error like ``error`` that also says how many items are known stored and how
    many have an unknown outcome."""
    detail = error.detail
    if unknown:
        detail = (
            f"The bulk write stopped: {written} item(s) were written and the outcome of "
            f"{unknown} more is unknown (they may have been stored)."
        )
    counts = {"written": written, "outcome_unknown": unknown}
    if isinstance(error, DynamoDBUnavailable):
        return type(error)(detail, aws_code=error.aws_code, retry_after=error.retry_after, **counts)
    if isinstance(error, DynamoDBError):
        return DynamoDBError(detail, aws_code=error.aws_code, **counts)
    return error


async def batch_get(
    table: TableHandle,
    scope: Scope,
    keys: Iterable[KeyLike],
    *,
    consistent: bool = False,
    concurrency: int | None = None,
) -> list[dict[str, Any] | None]:
    """The items at ``keys`` in order (``None`` where absent or not the scope's)."""
    schema = scope.schema
    positions: dict[tuple[str, str | None], list[int]] = {}
    physical_keys: list[dict[str, Any]] = []
    count = 0
    for index, key in enumerate(keys):
        physical, _ = scope.key(key)
        identity = (
            physical[schema.pk]["S"],
            physical[schema.sk]["S"] if schema.sk else None,
        )
        slot = positions.get(identity)
        if slot is None:
            positions[identity] = [index]
            physical_keys.append(physical)
        else:
            slot.append(index)
        count = index + 1
    results: list[dict[str, Any] | None] = [None] * count
    if not physical_keys:
        return results
    name = table.name

    async def read(chunk: list[dict[str, Any]]) -> None:
        pending = chunk

        async def attempt() -> None:
            nonlocal pending
            request: dict[str, Any] = {"Keys": pending}
            if consistent:
                request["ConsistentRead"] = True
            result = await table.call("BatchGetItem", {"RequestItems": {name: request}})
            for raw in (result.get("Responses") or {}).get(name, ()):
                identity = (
                    raw[schema.pk]["S"],
                    raw[schema.sk]["S"] if schema.sk else None,
                )
                item = scope.visible(raw)
                for position in positions.get(identity, ()):
                    results[position] = item
            unprocessed = ((result.get("UnprocessedKeys") or {}).get(name) or {}).get("Keys")
            if unprocessed:
                pending = unprocessed
                raise DynamoDBThrottled(aws_code="UnprocessedKeys")

        await run_with_retries(attempt, table.retry, any_unavailable)

    chunks = [
        physical_keys[i : i + MAX_BATCH_GET] for i in range(0, len(physical_keys), MAX_BATCH_GET)
    ]
    await _pool(chunks, concurrency or table.bulk_concurrency, read)
    return results
