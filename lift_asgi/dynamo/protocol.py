"""The one small protocol every DynamoDB call of the suite goes through, in a leaf module.

:class:`DynamoTransport` is what the table helpers, the rate-limit storage and the unit of
work are typed by; :mod:`lift_asgi.dynamo.transport` holds its implementations (and
re-exports it). Kept apart so that a module typed by it imports no HTTP client: the
annotations resolve at run time too (``typing.get_type_hints``), without aiohttp.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

__all__ = ["DynamoTransport"]


@runtime_checkable
class DynamoTransport(Protocol):
    """Sends one DynamoDB JSON-protocol request and returns the decoded answer, or
    raises one of :mod:`lift_asgi.errors`' DynamoDB errors; never retries. ``calls``
    counts the requests sent."""

    calls: int

    async def request(self, action: str, payload: Mapping[str, Any]) -> dict[str, Any]: ...

    async def close(self) -> None: ...
