"""Table schemas the suite works with, and idempotent create/delete helpers.

The standard schema (used by the unit of work, the rate limiter, the test fixtures and
the example) is: string partition key ``pk``, string sort key ``sk``, one global
secondary index ``gsi1`` on ``gsi1pk``/``gsi1sk`` (projection ALL), and a TTL attribute
``ttl``. Tables are on-demand (PAY_PER_REQUEST).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, overload

from lift_asgi.dynamo.protocol import DynamoTransport
from lift_asgi.errors import DynamoDBError, TableNotFound

__all__ = [
    "GSISpec",
    "TableSpec",
    "create_table",
    "create_table_payload",
    "delete_table",
    "ttl_payload",
]


@dataclass(frozen=True, slots=True)
class GSISpec:
    name: str
    pk: str
    sk: str | None = None


@dataclass(frozen=True, slots=True)
class TableSpec:
    name: str
    pk: str = "pk"
    sk: str | None = "sk"
    gsis: tuple[GSISpec, ...] = field(default_factory=tuple)
    ttl_attribute: str | None = "ttl"

    @classmethod
    def standard(cls, name: str) -> TableSpec:
        return cls(name=name, gsis=(GSISpec("gsi1", "gsi1pk", "gsi1sk"),))


def _key_schema(pk: str, sk: str | None) -> list[dict[str, str]]:
    schema = [{"AttributeName": pk, "KeyType": "HASH"}]
    if sk:
        schema.append({"AttributeName": sk, "KeyType": "RANGE"})
    return schema


def create_table_payload(spec: TableSpec) -> dict[str, Any]:
    """The CreateTable request body for ``spec`` (all key attributes are strings)."""
    names: list[str] = [spec.pk] + ([spec.sk] if spec.sk else [])
    for gsi in spec.gsis:
        names += [gsi.pk] + ([gsi.sk] if gsi.sk else [])
    payload: dict[str, Any] = {
        "TableName": spec.name,
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [
            {"AttributeName": n, "AttributeType": "S"} for n in dict.fromkeys(names)
        ],
        "KeySchema": _key_schema(spec.pk, spec.sk),
    }
    if spec.gsis:
        payload["GlobalSecondaryIndexes"] = [
            {
                "IndexName": gsi.name,
                "KeySchema": _key_schema(gsi.pk, gsi.sk),
                "Projection": {"ProjectionType": "ALL"},
            }
            for gsi in spec.gsis
        ]
    return payload


def ttl_payload(spec: TableSpec) -> dict[str, Any]:
    return {
        "TableName": spec.name,
        "TimeToLiveSpecification": {"Enabled": True, "AttributeName": spec.ttl_attribute},
    }


@overload
async def create_table(
    spec: TableSpec | str,
    /,
    *,
    transport: DynamoTransport | None = None,
    endpoint: str | None = None,
    region: str | None = None,
    wait: float = 60.0,
) -> bool: ...


@overload
async def create_table(
    transport: DynamoTransport, spec: TableSpec | str, /, *, wait: float = 60.0
) -> bool: ...


async def create_table(
    first: TableSpec | str | DynamoTransport,
    second: TableSpec | str | None = None,
    /,
    *,
    transport: DynamoTransport | None = None,
    endpoint: str | None = None,
    region: str | None = None,
    wait: float = 60.0,
) -> bool:
    """Create ``spec`` if it does not exist, wait until it is ACTIVE, enable its TTL.

    ``await create_table(TableSpec.standard("app-data"))`` (a bare name means the
    standard schema) talks to ``endpoint`` (default ``AWS_ENDPOINT_URL_DYNAMODB``, else
    AWS) in ``region`` through a transport it opens and closes itself;
    ``create_table(spec, transport=t)`` or ``create_table(t, spec)`` uses yours and
    leaves it open. Returns True when this call created the table. Safe to run at every
    start: a table that exists is not an error, and is not logged as one.
    """
    # imported here: the specs above are needed without aiohttp (the rate limiter's
    # table module, the example's settings), a create is not
    from lift_asgi.dynamo.transport import AiodynamoTransport

    if second is not None:
        if not isinstance(first, DynamoTransport):
            raise TypeError("create_table(transport, spec): the first argument is a transport")
        transport, target = first, second
    elif isinstance(first, DynamoTransport):
        raise TypeError("create_table needs a TableSpec (or a table name)")
    else:
        target = first
    spec = TableSpec.standard(target) if isinstance(target, str) else target
    if transport is not None:
        if endpoint or region:
            raise TypeError("endpoint/region are for the transport create_table opens itself")
        return await _create(transport, spec, wait)
    own = AiodynamoTransport(endpoint, region)
    try:
        return await _create(own, spec, wait)
    finally:
        await own.close()


async def _create(transport: DynamoTransport, spec: TableSpec, wait: float) -> bool:
    created = True
    try:
        await transport.request("CreateTable", create_table_payload(spec))
    except DynamoDBError as exc:
        if exc.aws_code != "ResourceInUseException":
            raise
        created = False
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    while True:
        described = await transport.request("DescribeTable", {"TableName": spec.name})
        if described["Table"]["TableStatus"] == "ACTIVE":
            break
        if loop.time() > deadline:
            raise TimeoutError(f"table {spec.name!r} did not become ACTIVE in {wait:.0f}s")
        await asyncio.sleep(0.5)
    if spec.ttl_attribute:
        ttl = await transport.request("DescribeTimeToLive", {"TableName": spec.name})
        status = ttl.get("TimeToLiveDescription", {}).get("TimeToLiveStatus")
        if status not in {"ENABLED", "ENABLING"}:
            await transport.request("UpdateTimeToLive", ttl_payload(spec))
    return created


async def delete_table(
    transport: DynamoTransport | None,
    name: str,
    *,
    endpoint: str | None = None,
    region: str | None = None,
) -> bool:
    """Delete ``name``; returns False when it did not exist. ``transport=None``: one
    opened (``endpoint``, ``region``) and closed here."""
    if transport is None:
        from lift_asgi.dynamo.transport import AiodynamoTransport

        own = AiodynamoTransport(endpoint, region)
        try:
            return await delete_table(own, name)
        finally:
            await own.close()
    try:
        await transport.request("DeleteTable", {"TableName": name})
    except TableNotFound:
        return False
    return True
