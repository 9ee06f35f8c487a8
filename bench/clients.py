"""CPU per GetItem of the DynamoDB clients we could use, against one instant endpoint.

    python bench/clients.py [--calls 2000]

The endpoint is a minimal HTTP/1.1 server that answers every call with a canned
DynamoDB JSON body at once. It runs in a child process, so its CPU is not charged to the
clients; what is measured (``time.process_time`` of this process) is the client's own
work per call: building and signing the request, HTTP, parsing the answer. Every client
does the same GetItem, sequentially, on one event loop, in the same run, after a warm-up.

Like with like: every aiohttp row runs on the *same* session (the transport's own: one
connector, its timeout, no User-Agent), in alternating batches of one run; the best batch
of each counts. Rows, each with what it adds to the one before:

- raw aiohttp (pre-built JSON, no signing): the floor;
- raw aiohttp + lift's cached SigV4 signer: what signing costs;
- aiodynamo ``Client.send_request``: aiodynamo's own low-level call (its signer derives
  the key and formats the time on every call; its retry loop and health monitor);
- aiodynamo ``Table.get_item``: plus its item encoding and decoding;
- aiodynamo on httpx (its ``aiodynamo.http.httpx`` adapter), and aioboto3;
- lift-asgi's ``AiodynamoTransport``: the cached signer, the credential chain, error
  mapping and the observability cost hook, what the unit of work and the rate limiter
  use. Target: at most 1.2x raw aiohttp.

Ratios are CPU against raw aiohttp.
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
TARGET_RATIO = 1.2  # issue 10: AiodynamoTransport per GetItem, against raw aiohttp
OURS = "lift-asgi AiodynamoTransport"
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


#: A 1000-item Query page (the unit of work's page benchmark in bench/uow.py).
QUERY_PAGE = {
    "Items": [{**ITEM, "sk": {"S": f"p{i:04}"}} for i in range(1000)],
    "Count": 1000,
    "ScannedCount": 1000,
}


def _answers() -> dict[bytes, bytes]:
    return {
        b"GetItem": json.dumps({"Item": ITEM}).encode(),
        b"DescribeTable": json.dumps(DESCRIBE).encode(),
        b"Query": json.dumps(QUERY_PAGE).encode(),
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
    #: What this client does per call that the raw row does not.
    note: str = ""


Call = Callable[[], Awaitable[Any]]


async def _interleaved(
    calls: dict[str, Call], per_client: int, warmup: int, rounds: int
) -> dict[str, tuple[float, float]]:
    """CPU and wall µs per call of each client, measured in alternating batches; the
    best batch counts (other processes and GC pauses only ever add time)."""
    for call in calls.values():
        for _ in range(warmup):
            await call()
    best = {name: (float("inf"), float("inf")) for name in calls}
    batch = max(20, per_client // rounds)
    for _ in range(rounds):
        for name, call in calls.items():
            cpu, wall = time.process_time(), time.perf_counter()
            for _ in range(batch):
                await call()
            measured = (
                (time.process_time() - cpu) / batch * 1e6,
                (time.perf_counter() - wall) / batch * 1e6,
            )
            best[name] = (min(best[name][0], measured[0]), min(best[name][1], measured[1]))
    return best


NOTES = {
    "raw aiohttp (no signing)": "floor: pre-built JSON POST + json.loads, unsigned",
    "raw aiohttp + lift SigV4": "+ SigV4 headers from lift's cached signer",
    "aiodynamo Client.send_request": "+ aiodynamo's signer (key derived per call) and retry loop",
    "aiodynamo Table.get_item": "+ aiodynamo's item encoding/decoding",
    "aiodynamo + httpx get_item": "the same on aiodynamo's httpx adapter",
    "aioboto3": "botocore: validation, endpoint rules, signing, parsing",
    "lift-asgi AiodynamoTransport": "+ JSON encoding of the payload, cached signer, credentials, "
    "error mapping, cost hook",
}


async def _clients(
    endpoint: str, calls: int, warmup: int, rounds: int
) -> list[tuple[str, float, float]]:
    import aioboto3
    import httpx
    from aiodynamo.client import Client
    from aiodynamo.credentials import Key, StaticCredentials
    from aiodynamo.http.aiohttp import AIOHTTP
    from aiodynamo.http.httpx import HTTPX
    from yarl import URL

    from lift_asgi.dynamo.sigv4 import SigV4Signer
    from lift_asgi.dynamo.transport import AiodynamoTransport

    key = Key("testing", "testing")
    credentials = StaticCredentials(key)
    payload = {"TableName": TABLE, "Key": KEY}
    transport = AiodynamoTransport.static(endpoint)
    # One aiohttp session for every aiohttp-based row: the transport's own (one
    # connector, its timeout, no User-Agent), so the rows differ only in the client.
    session = transport._http()
    headers = {
        "Content-Type": "application/x-amz-json-1.0",
        "X-Amz-Target": "DynamoDB_20120810.GetItem",
    }
    signer = SigV4Signer("us-east-1", URL(endpoint))

    async def raw() -> Any:
        async with session.post(endpoint, data=json.dumps(payload), headers=headers) as r:
            return json.loads(await r.read())

    async def raw_signed() -> Any:
        body = json.dumps(payload, separators=(",", ":")).encode()
        signed = signer.headers(key, "GetItem", body)
        async with session.post(endpoint, data=body, headers=signed) as r:
            return json.loads(await r.read())

    client = Client(AIOHTTP(session), credentials, "us-east-1", endpoint=URL(endpoint))
    table = client.table(TABLE)

    async def aiodynamo_send() -> Any:
        return await client.send_request(action="GetItem", payload=payload)

    async def aiodynamo_get() -> Any:
        return await table.get_item({"pk": "tenant#projects", "sk": "p1"})

    async def ours() -> Any:
        return await transport.request("GetItem", payload)

    rows: dict[str, tuple[float, float]] = {}
    async with httpx.AsyncClient() as http:
        on_httpx = Client(HTTPX(http), credentials, "us-east-1", endpoint=URL(endpoint)).table(
            TABLE
        )

        async def aiodynamo_httpx() -> Any:
            return await on_httpx.get_item({"pk": "tenant#projects", "sk": "p1"})

        boto_session = aioboto3.Session()
        async with boto_session.client(
            "dynamodb",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        ) as boto:

            async def aioboto3_call() -> Any:
                return await boto.get_item(TableName=TABLE, Key=KEY)

            try:
                rows = await _interleaved(
                    {
                        "raw aiohttp (no signing)": raw,
                        "raw aiohttp + lift SigV4": raw_signed,
                        "aiodynamo Client.send_request": aiodynamo_send,
                        "aiodynamo Table.get_item": aiodynamo_get,
                        "aiodynamo + httpx get_item": aiodynamo_httpx,
                        "aioboto3": aioboto3_call,
                        "lift-asgi AiodynamoTransport": ours,
                    },
                    calls,
                    warmup,
                    rounds,
                )
            finally:
                await transport.close()
    return [(name, cpu, wall) for name, (cpu, wall) in rows.items()]


def run(calls: int = 2000, warmup: int = 200, rounds: int = 10) -> list[Row]:
    """Measure every client in one run; rows in µs per call, ratio to raw aiohttp."""
    with InstantEndpoint() as endpoint:
        measured = asyncio.run(_clients(endpoint, calls, warmup, rounds))
    base = measured[0][1]
    return [Row(name, cpu, wall, cpu / base, NOTES.get(name, "")) for name, cpu, wall in measured]


def render(rows: list[Row]) -> str:
    lines = [
        f"{'client':<32} {'CPU µs/call':>12} {'wall µs/call':>13} {'CPU ratio':>10}  what it adds",
        "-" * 120,
    ]
    lines += [
        f"{row.client:<32} {row.cpu_us:>12.0f} {row.wall_us:>13.0f} {row.ratio:>9.2f}x  {row.note}"
        for row in rows
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    rows = run(args.calls, args.warmup, args.rounds)
    print(f"GetItem against an instant endpoint, {args.calls} calls each (pid {os.getpid()})")
    print(render(rows))


if __name__ == "__main__":
    main()
