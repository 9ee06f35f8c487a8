"""DynamoDB cost per request: every call counted, with its latency and consumed capacity.

The transports (:mod:`lift_asgi.dynamo.transport`) ask :func:`current_cost` once per
call; outside an observed request (or when it counts no cost) it answers ``None`` and
the call goes on untouched. Inside one it answers the request's :class:`RequestCost`,
made on the request's first call (a request that makes none pays nothing for it), and
the call goes through :meth:`RequestCost.call`, which

- asks DynamoDB for ``ReturnConsumedCapacity: TOTAL`` on the actions that accept it (not
  on DescribeTable, CreateTable and the like), unless the caller asked for more already;
- counts the call, its latency and the capacity units the answer reports, split into
  read and write units by what the action does (the answer's own ``ReadCapacityUnits`` /
  ``WriteCapacityUnits`` when it gives them);
- counts throttles, cancelled transactions and retries (a call of an action after a
  retryable failure of the same action in the same request: transports never retry, so
  that is the caller's retry);
- hands the call to the OpenTelemetry integration for a client span and the latency
  metric, when it is on.

One :class:`RequestCost` is shared by every task of the request (``asyncio.gather`` in a
bulk write copies the context, not the object), so the totals are the request's.
A failed conditional write costs write units on DynamoDB, but its error answer reports
none: such a call is counted, with zero units.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from lift_asgi.errors import DynamoDBThrottled, DynamoDBUnavailable, TransactionCancelled
from lift_asgi.stages import current_context

__all__ = [
    "CAPACITY_ACTIONS",
    "CallTelemetry",
    "OperationCost",
    "RequestCost",
    "current_cost",
    "table_names",
]

#: The actions whose request takes ``ReturnConsumedCapacity``.
CAPACITY_ACTIONS: Final = frozenset(
    {
        "GetItem",
        "PutItem",
        "UpdateItem",
        "DeleteItem",
        "Query",
        "Scan",
        "BatchGetItem",
        "BatchWriteItem",
        "TransactGetItems",
        "TransactWriteItems",
        "ExecuteStatement",
        "BatchExecuteStatement",
        "ExecuteTransaction",
    }
)
_WRITES: Final = frozenset(
    {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}
)
_TRANSACT_KINDS: Final = ("Put", "Update", "Delete", "ConditionCheck", "Get")

Send = Callable[[str, Mapping[str, Any]], Awaitable[dict[str, Any]]]


class CallTelemetry(Protocol):
    """What :class:`RequestCost` asks of the OpenTelemetry integration, per call."""

    def call_started(self, action: str, payload: Mapping[str, Any]) -> Any: ...

    def call_ended(
        self,
        handle: Any,
        action: str,
        seconds: float,
        answer: Mapping[str, Any] | None,
        error: BaseException | None,
        retry: bool,
    ) -> None: ...


@dataclass(slots=True)
class OperationCost:
    """One DynamoDB action's share of a request."""

    calls: int = 0
    read_units: float = 0.0
    write_units: float = 0.0
    seconds: float = 0.0
    errors: int = 0


@dataclass(slots=True, eq=False)
class RequestCost:
    """What one request cost in DynamoDB so far; read it from a handler with
    :func:`current_cost` (show-back per tenant) or from the request record."""

    calls: int = 0
    read_units: float = 0.0
    write_units: float = 0.0
    seconds: float = 0.0
    """Wall time spent waiting for DynamoDB (calls made concurrently add up)."""
    throttles: int = 0
    cancellations: int = 0
    retries: int = 0
    errors: int = 0
    operations: dict[str, OperationCost] = field(default_factory=dict)
    telemetry: CallTelemetry | None = field(default=None, repr=False)
    _failed: set[str] = field(default_factory=set, repr=False)

    async def call(self, send: Send, action: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        """Send one call through ``send`` (the transport's own), counting it."""
        if action in CAPACITY_ACTIONS and "ReturnConsumedCapacity" not in payload:
            payload = {**payload, "ReturnConsumedCapacity": "TOTAL"}
        retry = action in self._failed
        telemetry = self.telemetry
        handle = telemetry.call_started(action, payload) if telemetry is not None else None
        start = time.perf_counter()
        try:
            answer = await send(action, payload)
        except BaseException as error:
            seconds = time.perf_counter() - start
            self._count(action, seconds, None, error, retry)
            if telemetry is not None:
                telemetry.call_ended(handle, action, seconds, None, error, retry)
            raise
        seconds = time.perf_counter() - start
        self._count(action, seconds, answer, None, retry)
        if telemetry is not None:
            telemetry.call_ended(handle, action, seconds, answer, None, retry)
        return answer

    def _count(
        self,
        action: str,
        seconds: float,
        answer: Mapping[str, Any] | None,
        error: BaseException | None,
        retry: bool,
    ) -> None:
        operation = self.operations.get(action)
        if operation is None:
            operation = self.operations[action] = OperationCost()
        operation.calls += 1
        operation.seconds += seconds
        self.calls += 1
        self.seconds += seconds
        if retry:
            self.retries += 1
        if error is not None:
            operation.errors += 1
            self.errors += 1
            if isinstance(error, DynamoDBThrottled):
                self.throttles += 1
            elif isinstance(error, TransactionCancelled):
                self.cancellations += 1
            if isinstance(error, DynamoDBThrottled | DynamoDBUnavailable):
                self._failed.add(action)
            else:
                self._failed.discard(action)
            return
        self._failed.discard(action)
        if answer is None:
            return
        read, write = capacity(action, answer.get("ConsumedCapacity"))
        operation.read_units += read
        operation.write_units += write
        self.read_units += read
        self.write_units += write

    def summary(self) -> dict[str, Any]:
        """The figures of the request record (``dynamodb`` in a JSON line)."""
        return {
            "calls": self.calls,
            "read_units": self.read_units,
            "write_units": self.write_units,
            "latency_ms": round(self.seconds * 1000, 3),
            "throttles": self.throttles,
            "retries": self.retries,
            "errors": self.errors,
        }


def capacity(action: str, consumed: Any) -> tuple[float, float]:
    """(read units, write units) of a ``ConsumedCapacity`` answer (one entry or a list)."""
    if consumed is None:
        return 0.0, 0.0
    entries = consumed if isinstance(consumed, list) else (consumed,)
    read = write = 0.0
    is_write = action in _WRITES
    for entry in entries:
        if not isinstance(entry, Mapping):
            continue
        split_read = entry.get("ReadCapacityUnits")
        split_write = entry.get("WriteCapacityUnits")
        if split_read is not None or split_write is not None:
            read += float(split_read or 0)
            write += float(split_write or 0)
            continue
        units = float(entry.get("CapacityUnits") or 0)
        if is_write:
            write += units
        else:
            read += units
    return read, write


def table_names(action: str, payload: Mapping[str, Any]) -> list[str]:
    """The tables a call touches (``aws.dynamodb.table_names``), in first-seen order."""
    name = payload.get("TableName")
    if isinstance(name, str):
        return [name]
    names: dict[str, None] = {}
    requested = payload.get("RequestItems")
    if isinstance(requested, Mapping):
        names.update(dict.fromkeys(str(key) for key in requested))
    items = payload.get("TransactItems")
    if isinstance(items, list):
        for item in items:
            if not isinstance(item, Mapping):
                continue
            for kind in _TRANSACT_KINDS:
                part = item.get(kind)
                if isinstance(part, Mapping) and isinstance(part.get("TableName"), str):
                    names[part["TableName"]] = None
                    break
    return list(names)


def current_cost() -> RequestCost | None:
    """The DynamoDB cost of the request being handled so far, ``None`` outside one (or
    when the observer counts no cost). Its commit comes after the handler returns: the
    request record has the final figures.

    The accounting lives in the request's stage contract (``context(scope).cost``),
    reached through the suite's one context variable (:data:`lift_asgi.stages.context_var`);
    the observer's ids there (``context(scope).ids``) say whether it is counted."""
    context = current_context()
    if context is None:
        return None
    ids = context.ids
    if ids is None or not ids.count_cost:
        return None
    cost: RequestCost | None = context.cost
    if cost is None:
        cost = context.cost = RequestCost(telemetry=ids.telemetry)
    return cost
