"""The tenant-scoped unit of work: reads at once, writes buffered, one atomic commit.

A :class:`UnitOfWork` belongs to one request (or one ``async with`` block) and one
tenant. Reads (:meth:`~UnitOfWork.get`, :meth:`~UnitOfWork.query`,
:meth:`~UnitOfWork.batch_get`) go to DynamoDB when called and never see the writes
buffered in the same unit. Writes (:meth:`~UnitOfWork.put`, :meth:`~UnitOfWork.update`,
:meth:`~UnitOfWork.delete`, :meth:`~UnitOfWork.check`) are checked and encoded at once,
so a bad item fails where it was added, and sent together by :meth:`~UnitOfWork.commit`:
nothing buffered, no call; one write, one PutItem / UpdateItem / DeleteItem; two to 100
operations, or any ``check``, one TransactWriteItems. The 101st operation raises
:class:`~lift_asgi.errors.TooManyOperations` when it is added.

This module is the API and the buffer; the work is done by one module per concern:

- :mod:`~lift_asgi.dynamo.reads`: GetItem and Query (items, cursors);
- :mod:`~lift_asgi.dynamo.operations`: building and checking each write request;
- :mod:`~lift_asgi.dynamo.commit`: sending the buffer, its retries and its 409;
- :mod:`~lift_asgi.dynamo.bulk`: BatchGetItem and BatchWriteItem, outside the transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, NoReturn

from lift_asgi.dynamo import reads
from lift_asgi.dynamo.bulk import BulkResult, batch_get, bulk_write
from lift_asgi.dynamo.commit import commit_operations
from lift_asgi.dynamo.conditions import Condition, SortKeyCondition
from lift_asgi.dynamo.keys import KeyLike, Scope, TenantScope, UnscopedScope
from lift_asgi.dynamo.limits import MAX_TRANSACTION_BYTES, MAX_TRANSACTION_ITEMS
from lift_asgi.dynamo.operations import (
    Operation,
    build_check,
    build_delete,
    build_put,
    build_update,
    check_size,
    plain_put,
    show_key,
    stored_item,
)
from lift_asgi.dynamo.reads import Page
from lift_asgi.errors import (
    DuplicateItem,
    InvalidItem,
    NotFound,
    TooManyOperations,
    Unauthorized,
)

if TYPE_CHECKING:
    from lift_asgi.dynamo.handle import TableHandle

__all__ = ["Operation", "Page", "UnitOfWork", "UnscopedTable"]

log = logging.getLogger("lift_asgi.dynamo")


class _View:
    """Reads and buffered writes through one :class:`Scope` into one unit of work."""

    __slots__ = ()

    def _scope(self) -> Scope:
        raise NotImplementedError

    @property
    def _work(self) -> UnitOfWork:
        raise NotImplementedError

    @property
    def _table(self) -> TableHandle:
        return self._work.table

    # -- reads ----------------------------------------------------------------------

    async def get(
        self, key: KeyLike, sk: str | None = None, *, consistent: bool = False
    ) -> dict[str, Any] | None:
        """The item at ``key`` (``get(pk, sk)`` or ``get({"pk": ..., "sk": ...})``), or
        ``None``. Reads the table, not the writes buffered in this unit of work."""
        return await reads.get_item(
            self._table, self._scope(), reads.key_arg(key, sk), consistent=consistent
        )

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
        the previous page of the *same* query (``None`` or ``""``: the first page);
        anything else is a 400.
        """
        return await reads.query(
            self._table,
            self._scope(),
            pk,
            sk,
            index=index,
            filter=filter,
            limit=limit,
            cursor=cursor,
            consistent=consistent,
            scan_forward=scan_forward,
        )

    async def batch_get(
        self, keys: Iterable[KeyLike], *, consistent: bool = False
    ) -> list[dict[str, Any] | None]:
        """The items at ``keys``, in the same order, ``None`` where there is none.

        BatchGetItem in chunks of 100 keys (duplicates asked once), unprocessed keys
        retried with backoff; at most ``bulk_concurrency`` calls in flight.
        """
        return await batch_get(self._table, self._scope(), keys, consistent=consistent)

    # -- bulk (not atomic, executed at once) ------------------------------------------

    async def bulk_put(
        self, items: Iterable[Mapping[str, Any]], *, concurrency: int | None = None
    ) -> BulkResult:
        """Write ``items`` now, outside the unit of work's transaction: BatchWriteItem in
        chunks of 25, unprocessed items retried with backoff. Not atomic: on failure, what
        was written stays written; the error's ``extra`` says how many items are known
        stored (``written``) and how many may be (``outcome_unknown``: sent in a call
        whose answer never came; read them back to know)."""
        scope = self._scope()
        requests = []
        for item in items:
            encoded, size = stored_item(scope, item)
            check_size(size)
            requests.append({"PutRequest": {"Item": encoded}})
        return await bulk_write(self._table, requests, concurrency=concurrency)

    async def bulk_delete(
        self, keys: Iterable[KeyLike], *, concurrency: int | None = None
    ) -> BulkResult:
        """Delete ``keys`` now, outside the transaction (BatchWriteItem, 25 per call)."""
        scope = self._scope()
        requests = [{"DeleteRequest": {"Key": scope.key(key)[0]}} for key in keys]
        return await bulk_write(self._table, requests, concurrency=concurrency)

    # -- buffered writes --------------------------------------------------------------

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
        work = self._work
        if work._closed:
            work._check_open()
        work._add(build_put(scope, item, if_absent, condition, expect_version))

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
        self._work._add(
            build_update(
                scope,
                key,
                set=set,
                add=add,
                remove=remove,
                condition=condition,
                expect_version=expect_version,
                if_exists=if_exists,
            )
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
        self._work._add(
            build_delete(
                scope, key, condition=condition, expect_version=expect_version, if_exists=if_exists
            )
        )

    def check(self, key: KeyLike, condition: Condition) -> None:
        """Buffer a condition on the item at ``key``: the commit fails (409, nothing
        written) unless it holds. Makes the commit a transaction."""
        scope = self._scope()
        self._work._check_open()
        self._work._add(build_check(scope, key, condition))


class UnitOfWork(_View):
    """One request's tenant-scoped access to one table. See the module docstring.

    Handlers get it from ``request.state.uow``, :func:`~lift_asgi.dynamo.current_uow`
    or ``Depends(get_uow)``. A request without a tenant has a unit of work whose
    tenant-scoped methods raise :class:`~lift_asgi.errors.Unauthorized` (401); only
    :meth:`unscoped` reaches the table then.
    """

    # The buffer's state starts as class-level defaults, shadowed on first write: one
    # request in most makes a unit of work it never writes to (no __slots__ for that).
    # _ops is set in __init__ all the same: it is read on every request, and an instance
    # attribute reads faster than a class default.
    table: TableHandle
    tenant_id: str | None
    _scope_cache: TenantScope | None = None
    _ops: list[Operation] | None = None
    #: identity -> position in _ops: the same item twice is refused when added (made
    #: with _ops, by the first write after a discard)
    _seen: dict[tuple[str, str, str | None], int] | None = None
    _bytes = 0
    _closed = False

    def __init__(self, table: TableHandle, tenant_id: str | None) -> None:
        # UnitOfWorkMiddleware makes its units without this frame (object.__new__ and the
        # same three attributes): what one sets, the other must (tests/dynamo/test_hot_path.py)
        self.table = table
        self.tenant_id = tenant_id
        self._ops = None

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

    def put(
        self,
        item: Mapping[str, Any],
        *,
        if_absent: bool = False,
        condition: Condition | None = None,
        expect_version: int | None = None,
    ) -> None:
        # _View.put without its indirections: the hot path of a handler that writes.
        scope = self._scope_cache or self._scope()
        if self._closed:
            self._check_open()
        if if_absent or condition is not None or expect_version is not None:
            self._add(build_put(scope, item, if_absent, condition, expect_version))
        else:  # build_put's own test, without its call
            self._add(plain_put(scope, item))

    put.__doc__ = _View.put.__doc__

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

    def _add(self, operation: Operation) -> None:
        ops = self._ops
        seen = self._seen
        if ops is None or seen is None:  # the first write (since a discard) makes both
            ops = self._ops = []
            seen = self._seen = {}
        count = len(ops)
        if count >= MAX_TRANSACTION_ITEMS:
            self._refuse_too_many(operation)
        identity = operation.identity
        if identity in seen:
            self._refuse_duplicate(operation, seen[identity])
        total = self._bytes + operation.size
        if total > MAX_TRANSACTION_BYTES:
            raise InvalidItem(
                "The buffered writes exceed DynamoDB's 4 MB limit for one transaction."
            )
        self._bytes = total
        seen[identity] = count
        ops.append(operation)

    def _refuse_too_many(self, operation: Operation) -> NoReturn:
        count = len(self._ops or ())
        log.info(
            "the %s of %s would be operation %d",
            operation.kind,
            show_key(self.table.schema, operation.logical),
            count + 1,
        )
        raise TooManyOperations(
            f"A unit of work commits at most {MAX_TRANSACTION_ITEMS} operations atomically "
            f"(DynamoDB's transaction limit); this {operation.kind} would be operation "
            f"{count + 1}. Commit earlier with `await uow.commit()` or use "
            "bulk_put/bulk_delete (not atomic)."
        )

    def _refuse_duplicate(self, operation: Operation, earlier: int) -> NoReturn:
        ops = self._ops or []
        log.info(
            "the %s of %s touches the same item as operation %d",
            operation.kind,
            show_key(self.table.schema, operation.logical),
            earlier + 1,
        )
        raise DuplicateItem(
            f"The {operation.kind} (operation {len(ops) + 1}) touches the same item as "
            f"operation {earlier + 1} (a {ops[earlier].kind}); DynamoDB refuses one item "
            "twice in a transaction."
        )

    def discard(self) -> int:
        """Drop every buffered operation; returns how many there were."""
        count = len(self._ops) if self._ops else 0
        self._ops = None
        self._seen = None
        self._bytes = 0
        return count

    def _end(self) -> None:
        """The request is over: no more writes are accepted."""
        leftover = self.discard()
        self._closed = True
        if leftover:  # written data lost: the handler's mistake, an error for the log
            log.error(
                "%d operation(s) buffered after the response started were discarded; "
                "call `await uow.commit()` for writes made while streaming or in a "
                "BackgroundTask",
                leftover,
            )

    # -- commit -----------------------------------------------------------------------

    async def commit(self) -> int:
        """Send the buffered operations now (see :mod:`~lift_asgi.dynamo.commit`); returns
        how many were committed. The buffer is empty afterwards, whatever the outcome."""
        ops = self._ops
        if not ops:
            return 0
        self.discard()
        await commit_operations(self.table, ops)
        return len(ops)

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
