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
"""

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
