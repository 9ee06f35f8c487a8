"""The rate-limit table: its spec and an idempotent create."""

from __future__ import annotations

from lift_asgi.dynamo.protocol import DynamoTransport
from lift_asgi.dynamo.tables import TableSpec, create_table

__all__ = ["create_rate_limit_table", "rate_limit_table_spec"]


def rate_limit_table_spec(
    name: str, *, pk: str = "pk", sk: str | None = "sk", ttl: str = "ttl"
) -> TableSpec:
    """The rate-limit table: string ``pk`` (+ ``sk``), TTL on ``ttl``, no index.

    The suite's standard table (``TableSpec.standard``) fits too: it has the same keys.
    """
    return TableSpec(name=name, pk=pk, sk=sk, gsis=(), ttl_attribute=ttl)


async def create_rate_limit_table(
    transport: DynamoTransport,
    name: str,
    *,
    pk: str = "pk",
    sk: str | None = "sk",
    ttl: str = "ttl",
) -> bool:
    """Create the rate-limit table (on demand, TTL enabled) unless it exists.

    Returns True when this call created it; safe to run at every start.
    """
    return await create_table(transport, rate_limit_table_spec(name, pk=pk, sk=sk, ttl=ttl))
