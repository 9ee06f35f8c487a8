"""CPU per GetItem of the DynamoDB clients we could use, against one instant endpoint.

    python bench/clients.py [--calls 2000]

The endpoint is a minimal HTTP/1.1 server that answers every call with a canned
DynamoDB JSON body at once. It runs in a child process, so its CPU is not charged to the
clients; what is measured (``time.process_time`` of this process) is the client's own
work per call: building and signing the request, HTTP, parsing the answer. Every client
does the same GetItem, sequentially, on one event loop, in the same run, after a warm-up.

Rows: raw aiohttp (pre-built JSON, no signing: the floor), aiodynamo on aiohttp,
aiodynamo on httpx (aiodynamo's own ``aiodynamo.http.httpx`` adapter), aioboto3, and
lift-asgi's ``AiodynamoTransport`` (aiodynamo's signer on one aiohttp session, what
the unit of work and the rate limiter use). Ratios are against raw aiohttp.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, ClassVar

TABLE = "bench"
KEY = {"pk": {"S": "tenant#projects"}, "sk": {"S": "p1"}}
ITEM = {
    "pk": {"S": "tenant#projects"},
    "sk": {"S": "p1"},
    "name": {"S": "Apollo"},
    "version": {"N": "3"},
    "_tenant": {"S": "tenant"},
}
DESCRIBE = {
    "Table": {
        "TableName": TABLE,
        "TableStatus": "ACTIVE",
        "KeySchema": [
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        "AttributeDefinitions": [
            {"AttributeName": name, "AttributeType": "S"}
            for name in ("pk", "sk", "gsi1pk", "gsi1sk")
        ],
        "GlobalSecondaryIndexes": [
            {
                "IndexName": "gsi1",
                "KeySchema": [
                    {"AttributeName": "gsi1pk", "KeyType": "HASH"},
                    {"AttributeName": "gsi1sk", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
    }
}


# -- the instant endpoint -------------------------------------------------------------------


def _answers() -> dict[bytes, bytes]:
    return {
        b"GetItem": json.dumps({"Item": ITEM}).encode(),
        b"DescribeTable": json.dumps(DESCRIBE).encode(),
    }


def _response(body: bytes) -> bytes:
    head = (
        "HTTP/1.1 200 OK\r\n"
        "Content-Type: application/x-amz-json-1.0\r\n"
        "x-amzn-RequestId: bench\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


class _Instant(asyncio.Protocol):
    """Answers each pipelined HTTP/1.1 request at once; the answer depends only on
    the ``X-Amz-Target`` action (GetItem, DescribeTable, anything else ``{}``)."""

    answers: ClassVar[dict[bytes, bytes]] = {
        action.lower(): _response(body) for action, body in _answers().items()
    }
    empty = _response(b"{}")

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end].lower()
            length = 0
            action = b""
            for line in head.split(b"\r\n"):
                if line.startswith(b"content-length:"):
                    length = int(line[15:])
                elif line.startswith(b"x-amz-target:"):
                    action = line.rpartition(b".")[2].strip()
            total = end + 4 + length
            if len(self.buffer) < total:
                return
            self.buffer = self.buffer[total:]
            self.transport.write(self.answers.get(action, self.empty))


def _serve(port_queue: Any) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(_Instant, "127.0.0.1", 0)
        port_queue.put(server.sockets[0].getsockname()[1])
        await asyncio.Event().wait()

    asyncio.run(main())


class InstantEndpoint:
    """The instant DynamoDB endpoint in a child process: ``with InstantEndpoint() as url``."""

    def __init__(self) -> None:
        context = multiprocessing.get_context("spawn")
        self._queue = context.Queue()
        self._process = context.Process(target=_serve, args=(self._queue,), daemon=True)

    def __enter__(self) -> str:
        self._process.start()
        port = self._queue.get(timeout=30)
        return f"http://127.0.0.1:{port}"

    def __exit__(self, *exc: object) -> None:
        self._process.terminate()
        self._process.join(5)


# -- the clients ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    client: str
    cpu_us: float
    wall_us: float
    ratio: float


Call = Callable[[], Awaitable[Any]]


async def _measure(call: Call, calls: int, warmup: int) -> tuple[float, float]:
    for _ in range(warmup):
        await call()
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(calls):
        await call()
    return (
        (time.process_time() - cpu) / calls * 1e6,
        (time.perf_counter() - wall) / calls * 1e6,
    )


async def _clients(endpoint: str, calls: int, warmup: int) -> list[tuple[str, float, float]]:
    import aioboto3
    import aiohttp
    import httpx
    from aiodynamo.client import Client
    from aiodynamo.credentials import Key, StaticCredentials
    from aiodynamo.http.aiohttp import AIOHTTP
    from aiodynamo.http.httpx import HTTPX
    from yarl import URL

    from lift_asgi.dynamo.transport import AiodynamoTransport

    results: list[tuple[str, float, float]] = []
    credentials = StaticCredentials(Key("testing", "testing"))
    payload = {"TableName": TABLE, "Key": KEY}

    async with aiohttp.ClientSession() as session:
        headers = {
            "Content-Type": "application/x-amz-json-1.0",
            "X-Amz-Target": "DynamoDB_20120810.GetItem",
        }

        async def raw() -> Any:
            async with session.post(endpoint, data=json.dumps(payload), headers=headers) as r:
                return json.loads(await r.read())

        results.append(("raw aiohttp (no signing)", *await _measure(raw, calls, warmup)))

        client = Client(AIOHTTP(session), credentials, "us-east-1", endpoint=URL(endpoint))
        table = client.table(TABLE)

        async def aiodynamo_aiohttp() -> Any:
            return await table.get_item({"pk": "tenant#projects", "sk": "p1"})

        results.append(("aiodynamo + aiohttp", *await _measure(aiodynamo_aiohttp, calls, warmup)))

    async with httpx.AsyncClient() as http:
        client = Client(HTTPX(http), credentials, "us-east-1", endpoint=URL(endpoint))
        table = client.table(TABLE)

        async def aiodynamo_httpx() -> Any:
            return await table.get_item({"pk": "tenant#projects", "sk": "p1"})

        results.append(("aiodynamo + httpx", *await _measure(aiodynamo_httpx, calls, warmup)))

    session3 = aioboto3.Session()
    async with session3.client(
        "dynamodb",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    ) as boto:

        async def aioboto3_call() -> Any:
            return await boto.get_item(TableName=TABLE, Key=KEY)

        results.append(("aioboto3", *await _measure(aioboto3_call, calls, warmup)))

    transport = AiodynamoTransport.static(endpoint)
    try:

        async def ours() -> Any:
            return await transport.request("GetItem", payload)

        results.append(("lift-asgi AiodynamoTransport", *await _measure(ours, calls, warmup)))
    finally:
        await transport.close()
    return results


def run(calls: int = 2000, warmup: int = 200) -> list[Row]:
    """Measure every client in one run; rows in µs per call, ratio to raw aiohttp."""
    with InstantEndpoint() as endpoint:
        measured = asyncio.run(_clients(endpoint, calls, warmup))
    base = measured[0][1]
    return [Row(name, cpu, wall, cpu / base) for name, cpu, wall in measured]


def render(rows: list[Row]) -> str:
    lines = [
        f"{'client':<32} {'CPU µs/call':>12} {'wall µs/call':>13} {'CPU ratio':>10}",
        "-" * 70,
    ]
    lines += [
        f"{row.client:<32} {row.cpu_us:>12.0f} {row.wall_us:>13.0f} {row.ratio:>9.2f}x"
        for row in rows
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=200)
    args = parser.parse_args()
    rows = run(args.calls, args.warmup)
    print(f"GetItem against an instant endpoint, {args.calls} calls each (pid {os.getpid()})")
    print(render(rows))


if __name__ == "__main__":
    main()
