"""The tenant-scoped unit of work: reads at once, writes buffered, one atomic commit.

A :class:`UnitOfWork` belongs to one request (or one ``async with`` block) and one
tenant. Reads (:meth:`~UnitOfWork.get`, :meth:`~UnitOfWork.query`,
:meth:`~UnitOfWork.batch_get`) go to DynamoDB when called and never see the writes
buffered in the same unit. Writes (:meth:`~UnitOfWork.put`, :meth:`~UnitOfWork.update`,
:meth:`~UnitOfWork.delete`, :meth:`~UnitOfWork.check`) are checked and encoded at once,
so a bad item fails where it was added, and sent together by :meth:`~UnitOfWork.commit`:

- nothing buffered: no call;
- one write: one PutItem / UpdateItem / DeleteItem carrying its condition;
- two to 100 operations, or any ``check``: one TransactWriteItems with a fresh
  ClientRequestToken (DynamoDB has no stand-alone condition check, so even a lone
  ``check`` is a one-item transaction). The 101st operation raises
  :class:`~lift_asgi.errors.TooManyOperations` when it is added.

Retries follow the table's :class:`~lift_asgi.dynamo.client.RetryPolicy`. A transaction
is retried on throttling, 5xx, timeouts, dropped connections and TransactionConflict, with
the same ClientRequestToken (so DynamoDB applies it at most once). A single write is
retried on throttling (never applied) and, when applying it twice is harmless (no
condition, no ``add``), on failures of unknown outcome too; otherwise such a failure is a
503 rather than a write that might land twice.

A condition that fails is a 409 :class:`~lift_asgi.errors.ConditionFailed` that names the
operation by its number (from 1, in the order the handler added them) and kind, and
means nothing was written; the keys are logged, never shown to the client.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any

from lift_asgi.dynamo.codec import MAX_ITEM_BYTES, encode_value, item_size
from lift_asgi.dynamo.conditions import SK, Condition, Expression, SortKeyCondition
from lift_asgi.dynamo.keys import (
    MAX_SK_BYTES,
    KeyLike,
    Scope,
    TenantScope,
    UnscopedScope,
    check_key_value,
)
from lift_asgi.errors import (
    ConditionFailed,
    DuplicateItem,
    DynamoDBError,
    DynamoDBUnavailable,
    InvalidCursor,
    InvalidItem,
    NotFound,
    TooManyOperations,
    TransactionCancelled,
    Unauthorized,
)

if TYPE_CHECKING:
    from lift_asgi.dynamo.bulk import BulkResult
    from lift_asgi.dynamo.client import DynamoTable

__all__ = ["Operation", "Page", "UnitOfWork", "UnscopedTable"]

log = logging.getLogger("lift_asgi.dynamo")

_MAX_OPERATIONS = 100
_MAX_TRANSACTION_BYTES = 4 * 1024 * 1024
_MAX_QUERY_CALLS = 10
_SINGLE_ACTION = {"put": "PutItem", "update": "UpdateItem", "delete": "DeleteItem"}
_TRANSACT_KIND = {"put": "Put", "update": "Update", "delete": "Delete", "check": "ConditionCheck"}
_RETRYABLE_REASONS = frozenset(
    {
        "TransactionConflict",
        "ThrottlingError",
        "ProvisionedThroughputExceeded",
        "RequestLimitExceeded",
    }
)


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


@dataclass(slots=True)
class Operation:
    """One buffered write, ready to send."""

    kind: str
    key: dict[str, Any]
    request: dict[str, Any]
    idempotent: bool
    expected_version: int | None
    size: int


def _key_arg(key: KeyLike, sk: str | None) -> KeyLike:
    if sk is None:
        return key
    if not isinstance(key, str):
        raise InvalidItem("Give the key as get(pk, sk) or get({'pk': ..., 'sk': ...}).")
    return (key, sk)


def _version(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"expect_version must be an int >= 0, not {value!r}")
    return value


class _View:
    """Reads and buffered writes through one :class:`Scope` into one unit of work."""

    __slots__ = ()

    def _scope(self) -> Scope:
        raise NotImplementedError

    @property
    def _work(self) -> UnitOfWork:
        raise NotImplementedError

    @property
    def _table(self) -> DynamoTable:
        return self._work.table

    # -- reads ----------------------------------------------------------------------

    async def get(
        self, key: KeyLike, sk: str | None = None, *, consistent: bool = False
    ) -> dict[str, Any] | None:
        """The item at ``key`` (``get(pk, sk)`` or ``get({"pk": ..., "sk": ...})``), or
        ``None``. Reads the table, not the writes buffered in this unit of work."""
        scope = self._scope()
        physical, _ = scope.key(_key_arg(key, sk))
        payload: dict[str, Any] = {"TableName": self._table.name, "Key": physical}
        if consistent:
            payload["ConsistentRead"] = True
        result = await self._table.retrying("GetItem", payload)
        raw = result.get("Item")
        return scope.visible(raw) if raw else None

    async def get_or_404(
        self,
        key: KeyLike,
        sk: str | None = None,
        *,
        consistent: bool = False,
        detail: str | None = None,
    ) -> dict[str, Any]:
        """:meth:`get`, raising :class:`~lift_asgi.errors.NotFound` (404) when absent."""
        item = await self.get(key, sk, consistent=consistent)
        if item is None:
            raise NotFound(detail or "The requested item was not found.")
        return item

    async def query(
        self,
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
        """Items of partition ``pk`` (of the table, or of ``index``).

        ``sk``: a sort-key condition (:class:`SK`; a string means equal). ``filter``: a
        :class:`Condition` applied after the key condition. ``limit``: at most this many
        items; with a filter, further DynamoDB pages are read (up to 10 calls) to fill the
        page. Without ``limit``, one DynamoDB page. ``scan_forward=False``: descending
        sort key (newest first for time-ordered keys). ``cursor``: the ``next_cursor`` of
        the previous page of the *same* query; anything else is a 400.
        """
        scope = self._scope()
        table = self._table
        schema = scope.schema
        pk_attribute, sk_attribute = schema.index_keys(index)
        if consistent and index is not None:
            raise ValueError("consistent reads are not supported on global secondary indexes")
        if limit is not None and (
            isinstance(limit, bool) or not isinstance(limit, int) or limit < 1
        ):
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
            self._check_condition(scope, filter)
            payload["FilterExpression"] = filter.render(expr)
        if not scan_forward:
            payload["ScanIndexForward"] = False
        expr.apply(payload)
        binding = json.dumps(
            [scope.binding, payload], sort_keys=True, separators=(",", ":"), default=str
        ).encode()
        if cursor is not None:
            start = table.cursors.decode(cursor, binding)
            if not scope.owns(start):
                raise InvalidCursor("The cursor is not valid for this listing.")
            payload["ExclusiveStartKey"] = start
        if consistent:
            payload["ConsistentRead"] = True
        items: list[dict[str, Any]] = []
        last: dict[str, Any] | None = None
        for _ in range(_MAX_QUERY_CALLS):
            if limit is not None:
                payload["Limit"] = limit - len(items)
            result = await table.retrying("Query", payload)
            for raw in result.get("Items", ()):
                item = scope.visible(raw)
                if item is not None:
                    items.append(item)
            last = result.get("LastEvaluatedKey")
            if not last or limit is None or len(items) >= limit:
                break
            payload["ExclusiveStartKey"] = last
        next_cursor = table.cursors.encode(last, binding) if last else None
        return Page(items, next_cursor)

    async def batch_get(
        self, keys: Iterable[KeyLike], *, consistent: bool = False
    ) -> list[dict[str, Any] | None]:
        """The items at ``keys``, in the same order, ``None`` where there is none.

        BatchGetItem in chunks of 100 keys (duplicates asked once), unprocessed keys
        retried with backoff; at most ``bulk_concurrency`` calls in flight.
        """
        from lift_asgi.dynamo.bulk import batch_get

        return await batch_get(self._table, self._scope(), keys, consistent=consistent)

    # -- bulk (not atomic, executed at once) ------------------------------------------

    async def bulk_put(
        self, items: Iterable[Mapping[str, Any]], *, concurrency: int | None = None
    ) -> BulkResult:
        """Write ``items`` now, outside the unit of work's transaction: BatchWriteItem in
        chunks of 25, unprocessed items retried with backoff. Not atomic: on failure, what
        was written stays written (the error's ``written`` says how much)."""
        from lift_asgi.dynamo.bulk import bulk_write

        scope = self._scope()
        requests = []
        for item in items:
            encoded = self._stored_item(scope, item)
            _check_size(item_size(encoded))
            requests.append({"PutRequest": {"Item": encoded}})
        return await bulk_write(self._table, requests, concurrency=concurrency)

    async def bulk_delete(
        self, keys: Iterable[KeyLike], *, concurrency: int | None = None
    ) -> BulkResult:
        """Delete ``keys`` now, outside the transaction (BatchWriteItem, 25 per call)."""
        from lift_asgi.dynamo.bulk import bulk_write

        scope = self._scope()
        requests = [{"DeleteRequest": {"Key": scope.key(key)[0]}} for key in keys]
        return await bulk_write(self._table, requests, concurrency=concurrency)

    # -- buffered writes --------------------------------------------------------------

    def _stored_item(self, scope: Scope, item: Mapping[str, Any]) -> dict[str, Any]:
        if not isinstance(item, Mapping):
            raise TypeError(f"an item is a mapping, not {type(item).__name__}")
        schema = scope.schema
        if schema.pk not in item:
            raise InvalidItem(f"The item has no '{schema.pk}' attribute.")
        if schema.sk is not None and schema.sk not in item:
            raise InvalidItem(f"The item has no '{schema.sk}' attribute.")
        return scope.stored(item)

    def _check_condition(self, scope: Scope, condition: Condition) -> None:
        if not isinstance(condition, Condition):
            raise TypeError("conditions are built with Attr(...) or Condition.raw(...)")
        if scope.stamp() is None:
            return
        schema = scope.schema
        for name in condition.compared():
            if name in schema.prefixed or name == schema.tenant_attribute:
                raise ValueError(
                    f"a condition cannot compare '{name}' with a value: it is stored with the "
                    "tenant prefix; address the item through its key instead"
                )

    def _conditions(
        self,
        scope: Scope,
        expr: Expression,
        condition: Condition | None,
        *,
        must_exist: bool | None = None,
        expected_version: int | None = None,
    ) -> str | None:
        parts: list[str] = []
        if must_exist is not None:
            function = "attribute_exists" if must_exist else "attribute_not_exists"
            parts.append(f"{function}({expr.name(scope.schema.pk)})")
        if expected_version is not None:
            parts.append(
                f"{expr.name(scope.schema.version_attribute)} = "
                f"{expr.encoded({'N': str(expected_version)})}"
            )
        if condition is not None:
            self._check_condition(scope, condition)
            parts.append(condition.render(expr))
        if not parts:
            return None
        if len(parts) == 1:
            return parts[0]
        return " AND ".join(f"({part})" for part in parts)

    def _buffer(
        self,
        kind: str,
        scope: Scope,
        physical: dict[str, Any],
        logical: tuple[str, str | None],
        request: dict[str, Any],
        *,
        idempotent: bool,
        expected_version: int | None = None,
        size: int = 0,
    ) -> None:
        schema = scope.schema
        key: dict[str, Any] = {schema.pk: logical[0]}
        if schema.sk is not None:
            key[schema.sk] = logical[1]
        identity = (
            schema.table,
            physical[schema.pk]["S"],
            physical[schema.sk]["S"] if schema.sk else None,
        )
        self._work._add(Operation(kind, key, request, idempotent, expected_version, size), identity)

    def put(
        self,
        item: Mapping[str, Any],
        *,
        if_absent: bool = False,
        condition: Condition | None = None,
        expect_version: int | None = None,
    ) -> None:
        """Buffer a put of ``item`` (it replaces the whole item).

        ``if_absent=True``: only if no item has this key (create). ``expect_version=n``:
        only if the stored version is ``n``; the item is written with version ``n + 1``.
        ``condition``: any other :class:`Condition` on the stored item.
        """
        scope = self._scope()
        self._work._check_open()
        if if_absent and expect_version is not None:
            raise ValueError("if_absent and expect_version exclude each other")
        encoded = self._stored_item(scope, item)
        schema = scope.schema
        if expect_version is not None:
            expect_version = _version(expect_version)
            encoded[schema.version_attribute] = {"N": str(expect_version + 1)}
        size = _check_size(item_size(encoded))
        physical = {schema.pk: encoded[schema.pk]}
        if schema.sk is not None:
            physical[schema.sk] = encoded[schema.sk]
        logical = (str(item[schema.pk]), str(item[schema.sk]) if schema.sk else None)
        request: dict[str, Any] = {"TableName": schema.table, "Item": encoded}
        expression = None
        if if_absent or condition is not None or expect_version is not None:
            expr = Expression()
            expression = self._conditions(
                scope,
                expr,
                condition,
                must_exist=False if if_absent else None,
                expected_version=expect_version,
            )
            request["ConditionExpression"] = expression
            expr.apply(request)
        self._buffer(
            "put",
            scope,
            physical,
            logical,
            request,
            idempotent=expression is None,
            expected_version=expect_version,
            size=size,
        )

    def update(
        self,
        key: KeyLike,
        *,
        set: Mapping[str, Any] | None = None,
        add: Mapping[str, Any] | None = None,
        remove: Iterable[str] = (),
        condition: Condition | None = None,
        expect_version: int | None = None,
        if_exists: bool = False,
    ) -> None:
        """Buffer an update of the item at ``key`` (created if absent, as in DynamoDB,
        unless ``if_exists=True``).

        ``set``: attributes to set; ``add``: numbers to add (atomic counters, e.g.
        ``add={"tasks_open": 1}``) or members to add to a set; ``remove``: attributes
        to remove. ``expect_version=n``: only if the stored version is ``n``, and sets it
        to ``n + 1``.
        """
        scope = self._scope()
        self._work._check_open()
        schema = scope.schema
        physical, logical = scope.key(key)
        expr = Expression()
        protected = {schema.pk, schema.sk, schema.tenant_attribute}
        touched: dict[str, str] = {}

        def claim(name: Any, clause: str) -> str:
            if not isinstance(name, str) or not name:
                raise TypeError(f"attribute names must be non-empty strings, not {name!r}")
            if name in protected:
                raise ValueError(f"update cannot {clause} '{name}': it is part of the key")
            if name in touched:
                raise ValueError(f"'{name}' is both in {touched[name]} and {clause}")
            touched[name] = clause
            return expr.name(name)

        sets: list[str] = []
        size = 0
        for name, value in (set or {}).items():
            placeholder = claim(name, "set")
            if name in schema.prefixed:
                encoded = {"S": scope.partition(value, name)}
            elif name in schema.key_attributes:
                encoded = {"S": check_key_value(name, value, MAX_SK_BYTES)}
            else:
                encoded = encode_value(value)
            size += item_size({name: encoded})
            sets.append(f"{placeholder} = {expr.encoded(encoded)}")
        if expect_version is not None:
            expect_version = _version(expect_version)
            placeholder = claim(schema.version_attribute, "the version")
            sets.append(f"{placeholder} = {expr.encoded({'N': str(expect_version + 1)})}")
        adds: list[str] = []
        for name, value in (add or {}).items():
            placeholder = claim(name, "add")
            if name in schema.key_attributes:
                raise ValueError(f"update cannot add to the key attribute '{name}'")
            encoded = encode_value(value)
            if not encoded.keys() & {"N", "SS", "NS", "BS"}:
                raise TypeError(f"add takes numbers or sets, not {type(value).__name__} ('{name}')")
            size += item_size({name: encoded})
            adds.append(f"{placeholder} {expr.encoded(encoded)}")
        removes = [
            claim(name, "remove") for name in ([remove] if isinstance(remove, str) else remove)
        ]
        if not (sets or adds or removes):
            raise ValueError("update needs set=, add=, remove= or expect_version=")
        stamp = scope.stamp()
        if stamp is not None:
            sets.append(f"{expr.name(stamp[0])} = {expr.encoded(stamp[1])}")
        if size > MAX_ITEM_BYTES:
            raise InvalidItem(
                f"The update writes {size} bytes; DynamoDB stores at most "
                f"{MAX_ITEM_BYTES} bytes per item."
            )
        clauses = []
        if sets:
            clauses.append("SET " + ", ".join(sets))
        if adds:
            clauses.append("ADD " + ", ".join(adds))
        if removes:
            clauses.append("REMOVE " + ", ".join(removes))
        request: dict[str, Any] = {
            "TableName": schema.table,
            "Key": physical,
            "UpdateExpression": " ".join(clauses),
        }
        expression = self._conditions(
            scope,
            expr,
            condition,
            must_exist=True if if_exists else None,
            expected_version=expect_version,
        )
        if expression is not None:
            request["ConditionExpression"] = expression
        expr.apply(request)
        self._buffer(
            "update",
            scope,
            physical,
            logical,
            request,
            idempotent=expression is None and not adds,
            expected_version=expect_version,
            size=size,
        )

    def delete(
        self,
        key: KeyLike,
        *,
        condition: Condition | None = None,
        expect_version: int | None = None,
        if_exists: bool = False,
    ) -> None:
        """Buffer a delete of the item at ``key`` (``if_exists=True``: 409 when there is
        none; ``expect_version=n``: only if the stored version is ``n``)."""
        scope = self._scope()
        self._work._check_open()
        physical, logical = scope.key(key)
        request: dict[str, Any] = {"TableName": scope.schema.table, "Key": physical}
        if expect_version is not None:
            expect_version = _version(expect_version)
        expr = Expression()
        expression = self._conditions(
            scope,
            expr,
            condition,
            must_exist=True if if_exists else None,
            expected_version=expect_version,
        )
        if expression is not None:
            request["ConditionExpression"] = expression
            expr.apply(request)
        self._buffer(
            "delete",
            scope,
            physical,
            logical,
            request,
            idempotent=expression is None,
            expected_version=expect_version,
        )

    def check(self, key: KeyLike, condition: Condition) -> None:
        """Buffer a condition on the item at ``key``: the commit fails (409, nothing
        written) unless it holds. Makes the commit a transaction."""
        scope = self._scope()
        self._work._check_open()
        if condition is None:
            raise ValueError("check needs a condition")
        physical, logical = scope.key(key)
        expr = Expression()
        expression = self._conditions(scope, expr, condition)
        request: dict[str, Any] = {
            "TableName": scope.schema.table,
            "Key": physical,
            "ConditionExpression": expression,
        }
        expr.apply(request)
        self._buffer("check", scope, physical, logical, request, idempotent=False)


class UnitOfWork(_View):
    """One request's tenant-scoped access to one table. See the module docstring.

    Handlers get it from ``request.state.uow``, :func:`~lift_asgi.dynamo.current_uow`
    or ``Depends(get_uow)``. A request without a tenant has a unit of work whose
    tenant-scoped methods raise :class:`~lift_asgi.errors.Unauthorized` (401); only
    :meth:`unscoped` reaches the table then.
    """

    __slots__ = ("_bytes", "_closed", "_ops", "_scope_cache", "_seen", "table", "tenant_id")

    def __init__(self, table: DynamoTable, tenant_id: str | None) -> None:
        self.table = table
        self.tenant_id = tenant_id
        self._scope_cache: TenantScope | None = None
        self._ops: list[Operation] | None = None
        self._seen: dict[tuple[str, str, str | None], int] | None = None
        self._bytes = 0
        self._closed = False

    def __repr__(self) -> str:
        return (
            f"UnitOfWork(table={self.table.name!r}, tenant={self.tenant_id!r}, "
            f"pending={self.pending})"
        )

    @property
    def _work(self) -> UnitOfWork:
        return self

    def _scope(self) -> Scope:
        scope = self._scope_cache
        if scope is None:
            if self.tenant_id is None:
                raise Unauthorized(
                    "This request has no tenant, so it has no tenant-scoped data access."
                )
            scope = self._scope_cache = TenantScope(self.table.schema, self.tenant_id)
        return scope

    def unscoped(self) -> UnscopedTable:
        """The table WITHOUT tenant isolation: physical keys, no prefix, no tenant
        attribute written or checked. Its writes join this unit of work's transaction.
        For cross-tenant admin work and tenant-less routes only; grep for it in review."""
        return UnscopedTable(self)

    @property
    def pending(self) -> int:
        """How many operations are buffered."""
        return len(self._ops) if self._ops else 0

    @property
    def operations(self) -> list[Operation]:
        """The buffered operations, in the order they were added (a copy)."""
        return list(self._ops or ())

    # -- buffer -----------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(
                "this unit of work has ended (its request is over); writes are no longer "
                "buffered. Use table.unit_of_work(tenant_id) outside a request."
            )

    def _add(self, operation: Operation, identity: tuple[str, str, str | None]) -> None:
        ops = self._ops
        seen = self._seen
        if ops is None or seen is None:
            ops = self._ops = []
            seen = self._seen = {}
        if len(ops) >= _MAX_OPERATIONS:
            raise TooManyOperations(
                f"A unit of work commits at most {_MAX_OPERATIONS} operations atomically "
                f"(DynamoDB's transaction limit); the {operation.kind} of "
                f"{_show(operation.key)} would be operation {len(ops) + 1}. Commit earlier "
                "with `await uow.commit()` or use bulk_put/bulk_delete (not atomic)."
            )
        earlier = seen.get(identity)
        if earlier is not None:
            log.info(
                "the %s of %s touches the same item as operation %d",
                operation.kind,
                _show(operation.key),
                earlier + 1,
            )
            raise DuplicateItem(
                f"The {operation.kind} (operation {len(ops) + 1}) touches the same item as "
                f"operation {earlier + 1} (a {ops[earlier].kind}); DynamoDB refuses one item "
                "twice in a transaction."
            )
        total = self._bytes + operation.size
        if total > _MAX_TRANSACTION_BYTES:
            raise InvalidItem(
                "The buffered writes exceed DynamoDB's 4 MB limit for one transaction."
            )
        self._bytes = total
        seen[identity] = len(ops)
        ops.append(operation)

    def discard(self) -> int:
        """Drop every buffered operation; returns how many there were."""
        count = len(self._ops) if self._ops else 0
        self._ops = self._seen = None
        self._bytes = 0
        return count

    def _end(self) -> None:
        """The request is over: no more writes are accepted."""
        leftover = self.discard()
        self._closed = True
        if leftover:
            log.warning(
                "%d operation(s) buffered after the response started were discarded; "
                "call `await uow.commit()` for writes made while streaming",
                leftover,
            )

    # -- commit -----------------------------------------------------------------------

    async def commit(self) -> int:
        """Send the buffered operations now (see the module docstring); returns how many
        were committed. The buffer is empty afterwards, whatever the outcome."""
        ops = self._ops
        if not ops:
            return 0
        self.discard()
        if len(ops) == 1 and ops[0].kind != "check":
            await self._commit_one(ops[0])
        else:
            await self._commit_transaction(ops)
        return len(ops)

    async def _commit_one(self, op: Operation) -> None:
        try:
            await self.table.retrying(
                _SINGLE_ACTION[op.kind], op.request, ambiguous_ok=op.idempotent
            )
        except ConditionFailed:
            raise _conflict([0], [op], self.table.name) from None

    async def _commit_transaction(self, ops: Sequence[Operation]) -> None:
        table = self.table
        payload = {
            "TransactItems": [{_TRANSACT_KIND[op.kind]: op.request} for op in ops],
            "ClientRequestToken": str(uuid.uuid4()),
        }
        deadline = time.monotonic() + table.retry.deadline
        attempt = 0
        while True:
            try:
                await table.call("TransactWriteItems", payload)
                return
            except TransactionCancelled as exc:
                reasons = exc.reasons
                failed = [
                    i for i, reason in enumerate(reasons) if reason == "ConditionalCheckFailed"
                ]
                if failed:
                    raise _conflict(failed, ops, table.name) from None
                codes = {reason for reason in reasons if reason is not None}
                if not codes or not codes <= _RETRYABLE_REASONS:
                    log.error("TransactWriteItems on %r cancelled: %s", table.name, reasons)
                    raise DynamoDBError(
                        "The database refused the transaction.",
                        aws_code="TransactionCanceledException",
                    ) from None
                attempt += 1
                await table.backoff(
                    attempt, deadline, DynamoDBUnavailable(aws_code="TransactionConflict")
                )
            except DynamoDBUnavailable as exc:
                attempt += 1
                await table.backoff(attempt, deadline, exc)
            except DynamoDBError as exc:
                if exc.aws_code != "TransactionInProgressException":
                    raise
                attempt += 1
                await table.backoff(attempt, deadline, DynamoDBUnavailable(aws_code=exc.aws_code))

    # -- outside HTTP -----------------------------------------------------------------

    async def __aenter__(self) -> UnitOfWork:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if exc_type is None:
                await self.commit()
        finally:
            self.discard()
            self._closed = True


class UnscopedTable(_View):
    """The table without tenant isolation (see :meth:`UnitOfWork.unscoped`)."""

    __slots__ = ("_owner", "_unscoped")

    def __init__(self, owner: UnitOfWork) -> None:
        self._owner = owner
        self._unscoped = UnscopedScope(owner.table.schema)

    @property
    def _work(self) -> UnitOfWork:
        return self._owner

    def _scope(self) -> Scope:
        return self._unscoped


def _check_size(size: int) -> int:
    if size > MAX_ITEM_BYTES:
        raise InvalidItem(
            f"The item is {size} bytes; DynamoDB stores at most {MAX_ITEM_BYTES} bytes per item."
        )
    return size


def _show(key: Mapping[str, Any]) -> str:
    return json.dumps(key, separators=(", ", ": "), default=str)


def _conflict(failed: list[int], ops: Sequence[Operation], table: str) -> ConditionFailed:
    """The 409 of a commit whose condition(s) failed.

    The client learns which operation failed, numbered from 1 in the order the handler
    added them (the same number in ``detail``, ``operation`` and ``failed``), and its
    kind: never a key, which would show the stored key layout. The keys go to the log.
    """
    first = ops[failed[0]]
    number = failed[0] + 1
    note = (
        f" (expected version {first.expected_version})"
        if first.expected_version is not None
        else ""
    )
    log.info(
        "commit on %r: %s",
        table,
        "; ".join(
            f"the {ops[i].kind} of {_show(ops[i].key)} (operation {i + 1} of {len(ops)}) "
            "failed its condition"
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
