"""A raw, signed DynamoDB client for the fidelity suite: every answer as DynamoDB sent it
(status and JSON), errors included, so a test can state exactly what DynamoDB does.

Signed with lift-asgi's SigV4 signer and the default credential chain, so the same suite
runs against a local engine (dummy credentials), real DynamoDB or ScyllaDB Alternator.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

import aiohttp
from yarl import URL

from lift_asgi.dynamo.credentials import default_credentials
from lift_asgi.dynamo.sigv4 import SigV4Signer
from lift_asgi.dynamo.tables import GSISpec, TableSpec, create_table_payload, ttl_payload
from lift_asgi.dynamo.transport import _AiodynamoHttp  # its credential chain's HTTP


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]

    @property
    def code(self) -> str:
        """The error's short name (``ValidationException``), or "" for a success."""
        return str(self.body.get("__type", "")).rpartition("#")[2] if self.status != 200 else ""


class RawClient:
    def __init__(self, endpoint: str | None, region: str) -> None:
        url = URL(endpoint) if endpoint else None
        self.endpoint = endpoint
        self.region = region
        self._signer = SigV4Signer(region, url)
        self._credentials = default_credentials(url)
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _http(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is None or self._loop is not loop:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=100),
                timeout=aiohttp.ClientTimeout(total=30),
            )
            self._loop = loop
        return self._session

    async def call(self, action: str, payload: dict[str, Any]) -> Answer:
        session = self._http()
        body = json.dumps(payload).encode()
        key = await self._credentials.get_key(_AiodynamoHttp(session))
        assert key is not None, "no AWS credentials for the fidelity target"
        headers = self._signer.headers(key, action, body)
        async with session.post(self._signer.url, headers=headers, data=body) as response:
            raw = await response.read()
            return Answer(response.status, json.loads(raw) if raw else {})

    async def ok(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        answer = await self.call(action, payload)
        assert answer.status == 200, f"{action}: {answer.status} {answer.body}"
        return answer.body

    async def create_table(self, *, ttl: bool = True) -> TableSpec:
        spec = TableSpec(
            name=f"fidelity-{uuid.uuid4().hex[:12]}",
            pk="pk",
            sk="sk",
            gsis=(GSISpec("gsi1", "gsi1pk", "gsi1sk"),),
            ttl_attribute="ttl" if ttl else None,
        )
        await self.ok("CreateTable", create_table_payload(spec))
        deadline = time.monotonic() + 120  # real DynamoDB takes seconds
        while time.monotonic() < deadline:
            table = (await self.ok("DescribeTable", {"TableName": spec.name}))["Table"]
            indexes = table.get("GlobalSecondaryIndexes", [])
            if table["TableStatus"] == "ACTIVE" and all(
                i.get("IndexStatus", "ACTIVE") == "ACTIVE" for i in indexes
            ):
                break
            await asyncio.sleep(0.5)
        if ttl:
            await self.ok("UpdateTimeToLive", ttl_payload(spec))
        return spec

    async def delete_table(self, name: str) -> None:
        await self.call("DeleteTable", {"TableName": name})

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
