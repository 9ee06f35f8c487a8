"""What the unit of work's modules need of a table, as a protocol in a leaf module.

:class:`~lift_asgi.dynamo.client.DynamoTable` builds units of work
(:meth:`~lift_asgi.dynamo.client.DynamoTable.unit_of_work`), and the unit of work, its
reads, its commit and its bulk writes call back into the table. Typing those callers
against this protocol instead of the class keeps the imports one-way:
``client -> uow -> reads / commit / bulk -> handle``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from lift_asgi.dynamo.cursor import CursorSigner
from lift_asgi.dynamo.keys import Schema
from lift_asgi.dynamo.retry import RetryPolicy
from lift_asgi.dynamo.tables import TableSpec

__all__ = ["TableHandle"]


class TableHandle(Protocol):
    """One DynamoDB table as the unit of work uses it."""

    name: str
    spec: TableSpec
    schema: Schema
    cursors: CursorSigner
    retry: RetryPolicy
    bulk_concurrency: int

    async def call(self, action: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        """One call: table check, limits, timeout; no retry."""
        ...

    async def verify(self) -> None:
        """Check the table once (a no-op once it passed); raise when it is unusable."""
        ...

    async def retrying(
        self, action: str, payload: Mapping[str, Any], *, ambiguous_ok: bool = True
    ) -> dict[str, Any]:
        """:meth:`call` under the table's retry policy."""
        ...
