"""DynamoDB for lift-asgi: the tenant-scoped unit of work and what it stands on.

- :class:`UnitOfWorkMiddleware`, :func:`current_uow`, :func:`get_uow`: one unit of work
  per HTTP request, committed atomically when the response is a success.
- :class:`UnitOfWork`, :class:`UnscopedTable`, :class:`Page`: reads, buffered writes,
  commit; :class:`BulkResult` for bulk writes.
- :class:`Attr`, :class:`Condition`, :class:`SK`: condition, filter and sort-key builders.
- :class:`DynamoTable`, :class:`RetryPolicy`: the process-wide table handle and retries.
- :mod:`~lift_asgi.dynamo.transport`, :mod:`~lift_asgi.dynamo.tables`: the transports and
  table helpers shared with the rate limiter.

Modules, from the leaves up (no import cycles; ``tests/dynamo/test_layout.py`` checks):
``limits`` (DynamoDB's limits), ``error_codes`` (error code → suite error),
``botocore_errors`` (botocore method names and exceptions), ``credentials`` (the default
chain; dummy keys for loopback endpoints), ``sigv4`` (the cached signer), ``transport``,
``codec``, ``conditions``, ``cursor`` (sealed cursors), ``tables``, ``keys`` (schema and
tenant scopes), ``retry`` (the one retry loop), ``operations`` (write requests),
``reads`` (GetItem, Query), ``bulk`` (batch calls), ``commit`` (one write or one
transaction), ``uow`` (the API and the buffer), ``client`` (``DynamoTable``), ``middleware``.

Names are imported on first use (PEP 562), as at the top level: a module that needs a
leaf (``limits``, ``botocore_errors``) loads that leaf, not aiohttp and aiodynamo.
"""

import importlib as _importlib
import typing as _typing

if _typing.TYPE_CHECKING:
    from lift_asgi.dynamo.bulk import BulkResult
    from lift_asgi.dynamo.client import DynamoTable, RetryPolicy
    from lift_asgi.dynamo.conditions import SK, Attr, Condition, SortKeyCondition
    from lift_asgi.dynamo.middleware import UnitOfWorkMiddleware, current_uow, get_uow
    from lift_asgi.dynamo.tables import GSISpec, TableSpec, create_table, delete_table
    from lift_asgi.dynamo.transport import (
        Aioboto3Transport,
        AiodynamoTransport,
        DynamoTransport,
        shared_transport,
    )
    from lift_asgi.dynamo.uow import Page, UnitOfWork, UnscopedTable

# name -> the module that defines it (imported on first access of the name)
_WHERE = {
    "BulkResult": "bulk",
    "DynamoTable": "client",
    "RetryPolicy": "client",
    "SK": "conditions",
    "Attr": "conditions",
    "Condition": "conditions",
    "SortKeyCondition": "conditions",
    "UnitOfWorkMiddleware": "middleware",
    "current_uow": "middleware",
    "get_uow": "middleware",
    "GSISpec": "tables",
    "TableSpec": "tables",
    "create_table": "tables",
    "delete_table": "tables",
    "Aioboto3Transport": "transport",
    "AiodynamoTransport": "transport",
    "DynamoTransport": "protocol",
    "shared_transport": "transport",
    "Page": "uow",
    "UnitOfWork": "uow",
    "UnscopedTable": "uow",
}

__all__ = [
    "SK",
    "Aioboto3Transport",
    "AiodynamoTransport",
    "Attr",
    "BulkResult",
    "Condition",
    "DynamoTable",
    "DynamoTransport",
    "GSISpec",
    "Page",
    "RetryPolicy",
    "SortKeyCondition",
    "TableSpec",
    "UnitOfWork",
    "UnitOfWorkMiddleware",
    "UnscopedTable",
    "create_table",
    "current_uow",
    "delete_table",
    "get_uow",
    "shared_transport",
]


if not _typing.TYPE_CHECKING:  # for mypy the imports above define the names

    def __getattr__(name: str) -> object:
        module = _WHERE.get(name)
        if module is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        value = getattr(_importlib.import_module(f"{__name__}.{module}"), name)
        globals()[name] = value  # later lookups skip this function
        return value
