"""Table schemas the suite works with, and idempotent create/delete helpers.

The standard schema (used by the unit of work, the rate limiter, the test fixtures and
the example) is: string partition key ``pk``, string sort key ``sk``, one global
secondary index ``gsi1`` on ``gsi1pk``/``gsi1sk`` (projection ALL), and a TTL attribute
``ttl``. Tables are on-demand (PAY_PER_REQUEST).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from lift_asgi.dynamo.transport import DynamoTransport
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


async def create_table(transport: DynamoTransport, spec: TableSpec, *, wait: float = 60.0) -> bool:
    """Create ``spec`` if it does not exist and wait until it is ACTIVE.

    Returns True when this call created it. Safe to run any number of times.
    """
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


async def delete_table(transport: DynamoTransport, name: str) -> bool:
    """Delete ``name``; returns False when it did not exist."""
    try:
        await transport.request("DeleteTable", {"TableName": name})
    except TableNotFound:
        return False
    return True
