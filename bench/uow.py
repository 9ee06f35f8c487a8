"""What UnitOfWorkMiddleware costs per request, and how many DynamoDB calls it makes.

    python bench/uow.py [--requests 10000] [--rounds 20]

A FastAPI app answers four kinds of request, each called straight through ASGI (no
HTTP client in the measurement): read-only (touches nothing), one get, one write, five
writes. It runs once bare (no middleware, handlers that do not touch DynamoDB) and once
behind ``UnitOfWorkMiddleware``, with two transports:

- ``stub``: an in-process transport that answers at once without I/O. CPU with it is the
  middleware's own work plus the unit of work's (encoding, building the commit), i.e.
  excluding DynamoDB time;
- ``aiodynamo``: the real ``AiodynamoTransport`` against the instant endpoint of
  ``bench/clients.py`` (a child process), i.e. including the client's HTTP and signing.

Calls per request are counted at the transport (targets: 0 read-only, 1 get, 1 one-write,
1 five-write). Overhead is (CPU behind the middleware - bare CPU) / bare CPU for the
same route; target under 10% for the read-only request.

Then the hot path of the unit of work itself (rows ``100 puts`` and ``query 1000``, where
"bare" is the hand-written way: requests built by hand, a raw Query on the same
transport plus decoding): targets 100 puts at most 2x hand-built, a 1000-item page at
most 1.5x the raw Query plus decoding. ``run()`` returns the rows for
``bench/__main__.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from starlette.types import ASGIApp, Message

try:
    from bench.clients import DESCRIBE, ITEM, QUERY_PAGE, TABLE, InstantEndpoint
except ImportError:  # run as a script: python bench/uow.py
    from clients import (  # type: ignore[no-redef,import-not-found]
        DESCRIBE,
        ITEM,
        QUERY_PAGE,
        TABLE,
        InstantEndpoint,
    )

from lift_asgi.dynamo import DynamoTable, UnitOfWorkMiddleware
from lift_asgi.dynamo.codec import decode_item
from lift_asgi.dynamo.transport import AiodynamoTransport, DynamoTransport
from lift_asgi.stages import TENANT, RequestContext


class Tenant:
    id = "tenant"


ROUTES = ("read-only", "one get", "one write", "five writes")
PUTS_TARGET = 2.0  # issue 10: 100 puts, against building the requests by hand
QUERY_TARGET = 1.5  # issue 10: a 1000-item page, against the raw Query plus decoding
_PATHS = {"read-only": "/read", "one get": "/get", "one write": "/write1", "five writes": "/write5"}


class StubTransport:
    """Answers at once, in process: measures everything but DynamoDB itself."""

    timeout = 0.0  # instant: like AiodynamoTransport, it needs no extra timer

    def __init__(self) -> None:
        self.calls = 0
        self._answers: dict[str, dict[str, Any]] = {
            "GetItem": {"Item": ITEM},
            "DescribeTable": DESCRIBE,
            "Query": QUERY_PAGE,
        }

    async def request(self, action: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        self.calls += 1
        return self._answers.get(action, {})

    async def close(self) -> None:
        return None


def build(transport: DynamoTransport | None) -> ASGIApp:
    """The bench app; ``transport=None`` is the bare app without the middleware."""
    app = FastAPI()
    with_uow = transport is not None

    @app.get("/read")
    async def read(request: Request) -> dict[str, Any]:
        return {"ok": True}

    @app.get("/get")
    async def get(request: Request) -> dict[str, Any]:
        if with_uow:
            item = await request.state.uow.get("projects", "p1")
            return {"ok": item is not None}
        return {"ok": True}

    @app.post("/write1")
    async def write1(request: Request) -> dict[str, Any]:
        if with_uow:
            request.state.uow.put({"pk": "projects", "sk": "p1", "name": "Apollo", "version": 1})
        return {"ok": True}

    @app.post("/write5")
    async def write5(request: Request) -> dict[str, Any]:
        if with_uow:
            uow = request.state.uow
            for i in range(4):
                uow.put({"pk": "project#p1", "sk": f"task#{i}", "title": "t", "version": 1})
            uow.update(("projects", "p1"), add={"tasks_open": 4})
        return {"ok": True}

    if transport is not None:
        app.add_middleware(
            UnitOfWorkMiddleware,
            table=TABLE,
            transport=transport,
            cursor_secret="bench-secret-0123456789abcdef",
        )
    return app


async def _request(app: ASGIApp, path: str) -> int:
    method = "POST" if path.startswith("/write") else "GET"
    # what TenantMiddleware would have left in the stage contract
    context = RequestContext([TENANT])
    context.tenant = Tenant  # type: ignore[assignment]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"bench")],
        "client": ("127.0.0.1", 1000),
        "server": ("bench", 80),
        "state": {},
        "lift_asgi": context,
    }
    status = 0

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


async def _interleaved(apps: list[ASGIApp], path: str, requests: int, rounds: int) -> list[float]:
    """CPU µs per request of each app, measured in alternating short batches; the best
    batch of each counts (other processes and GC pauses only ever add time)."""
    for app in apps:
        for _ in range(100):
            status = await _request(app, path)
            assert status == 200, status
    best = [float("inf")] * len(apps)
    batch = max(50, requests // rounds)
    for _ in range(rounds):
        for index, app in enumerate(apps):
            start = time.process_time()
            for _ in range(batch):
                await _request(app, path)
            best[index] = min(best[index], (time.process_time() - start) / batch)
    return [value * 1e6 for value in best]


@dataclass(frozen=True)
class Row:
    request: str
    transport: str
    calls_per_request: float
    bare_us: float
    cpu_us: float

    @property
    def overhead_us(self) -> float:
        return self.cpu_us - self.bare_us

    @property
    def overhead_ratio(self) -> float:
        return self.overhead_us / self.bare_us


# -- the unit of work's hot path, against what a hand-written handler would do -------------

PUT_ITEMS = [
    {"pk": "project#p1", "sk": f"task#{i:03}", "title": "Write the docs", "version": 1}
    for i in range(100)
]
_QUERY = {
    "TableName": TABLE,
    "KeyConditionExpression": "#n0 = :v0",
    "ExpressionAttributeNames": {"#n0": "pk"},
    "ExpressionAttributeValues": {":v0": {"S": "tenant#projects"}},
}


def _hand_built_puts() -> list[dict[str, Any]]:
    """The 100 PutItem requests written by hand: tenant prefix and stamp, no checks."""
    return [
        {
            "TableName": TABLE,
            "Item": {
                "pk": {"S": "tenant#" + item["pk"]},
                "sk": {"S": item["sk"]},
                "title": {"S": item["title"]},
                "version": {"N": str(item["version"])},
                "_tenant": {"S": "tenant"},
            },
        }
        for item in PUT_ITEMS
    ]


async def _hot_path(transports: list[tuple[str, DynamoTransport]], rounds: int) -> list[Row]:
    """``100 puts``: 100 ``uow.put`` (checked, encoded, sized, buffered) vs the same
    requests built by hand (target at most 2x). ``query 1000``: one ``uow.query`` page of
    1000 items vs the same Query sent on the same transport plus ``decode_item`` of each
    item (target at most 1.5x). Rows: bare = the hand-written way, with = the unit of work."""
    rows: list[Row] = []
    table = DynamoTable(
        TABLE, transport=transports[0][1], cursor_secret="bench-secret-0123456789abcdef"
    )

    async def puts() -> None:
        uow = table.unit_of_work("tenant")
        for item in PUT_ITEMS:
            uow.put(item)

    async def hand() -> None:
        _hand_built_puts()

    bare_us, cpu_us = await _best([hand, puts], rounds * 5, 20)
    rows.append(Row("100 puts", "none", 0, bare_us, cpu_us))
    for name, transport in transports:
        table = DynamoTable(
            TABLE, transport=transport, cursor_secret="bench-secret-0123456789abcdef"
        )
        uow = table.unit_of_work("tenant")
        await uow.get("projects", "p1")  # the one-off table check

        async def page(uow: Any = uow) -> None:
            assert len(await uow.query("projects")) == 1000

        async def raw(transport: DynamoTransport = transport) -> None:
            result = await transport.request("Query", _QUERY)
            assert len([decode_item(item) for item in result["Items"]]) == 1000

        bare_us, cpu_us = await _best([raw, page], rounds, 5)
        rows.append(Row("query 1000", name, 1, bare_us, cpu_us))
    return rows


async def _best(calls: list[Any], rounds: int, batch: int) -> list[float]:
    """CPU µs per call of each coroutine function, best of alternating batches."""
    for call in calls:
        await call()
    best = [float("inf")] * len(calls)
    for _ in range(rounds):
        for index, call in enumerate(calls):
            start = time.process_time()
            for _ in range(batch):
                await call()
            best[index] = min(best[index], (time.process_time() - start) / batch)
    return [value * 1e6 for value in best]


async def _run(endpoint: str, requests: int, rounds: int) -> list[Row]:
    stub = StubTransport()
    real = AiodynamoTransport.static(endpoint)
    transports: list[tuple[str, DynamoTransport]] = [("stub", stub), ("aiodynamo", real)]
    rows: list[Row] = []
    try:
        for route in ROUTES:
            path = _PATHS[route]
            for name, transport in transports:
                bare, app = build(None), build(transport)
                await _request(app, "/get")  # the one-off table check
                before = transport.calls
                await _request(app, path)
                calls = transport.calls - before
                # real HTTP costs ~0.5 ms a call: fewer requests give the same precision
                count = requests if name == "stub" else max(500, requests // 5)
                bare_us, cpu_us = await _interleaved([bare, app], path, count, rounds)
                rows.append(Row(route, name, calls, bare_us, cpu_us))
        rows += await _hot_path(transports, rounds)
    finally:
        await real.close()
    return rows


def run(requests: int = 10000, rounds: int = 20) -> list[Row]:
    """Rows per (request kind, transport): calls per request, CPU µs bare and behind
    the middleware (``requests`` per app, in ``rounds`` alternating batches)."""
    with InstantEndpoint() as endpoint:
        return asyncio.run(_run(endpoint, requests, rounds))


def render(rows: list[Row]) -> str:
    lines = [
        f"{'request':<12} {'transport':<10} {'calls':>5} {'bare µs':>8} {'with µs':>8} "
        f"{'overhead µs':>11} {'overhead':>9}",
        "-" * 70,
    ]
    lines += [
        f"{row.request:<12} {row.transport:<10} {row.calls_per_request:>5.0f} "
        f"{row.bare_us:>8.1f} {row.cpu_us:>8.1f} {row.overhead_us:>11.1f} "
        f"{row.overhead_ratio:>8.1%}  ({row.cpu_us / row.bare_us:.2f}x)"
        for row in rows
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=10000)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    print(f"FastAPI + UnitOfWorkMiddleware, CPU per request (best of {args.rounds} batches)")
    print(render(run(args.requests, args.rounds)))


if __name__ == "__main__":
    main()
