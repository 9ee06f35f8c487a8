"""What an Idempotency-Key costs: DynamoDB calls and CPU per request.

    python bench/idempotency.py [--requests 300] [--rounds 3]

A Starlette app behind TenantMiddleware → IdempotencyMiddleware → UnitOfWorkMiddleware,
against the project's local DynamoDB server (a child process), called straight through
ASGI (no HTTP client in the measurement). Three routes: ``two writes`` (a put and a
counter, one TransactWriteItems), ``one write`` (one PutItem) and ``no write``. Each runs:

- ``no stage``: the app without IdempotencyMiddleware (what the stage costs a request
  without a key is ``no key`` against it);
- ``no key``: the baseline, the same request without the header;
- ``first``: a new key each time (claim + the commit the request needed anyway);
- ``replay``: the key of an earlier, completed request (the failed claim carries it);
- ``conflict``: a key whose claim is still in progress (409 from the failed claim).

Calls are counted at the transport (targets: first ≤ baseline + 1, replay 1, conflict 1;
a request that writes nothing needs a completion write of its own, so its first run is
baseline + 2). CPU is this process's time per request (the server's is its own process),
best of ``rounds`` interleaved batches; the ratios are against the baseline of the route.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message

from lift_asgi.dynamo import UnitOfWorkMiddleware, current_uow
from lift_asgi.dynamo.codec import encode_value
from lift_asgi.dynamo.tables import TableSpec
from lift_asgi.dynamo.transport import AiodynamoTransport
from lift_asgi.idempotency import IdempotencyMiddleware
from lift_asgi.idempotency.record import fingerprint
from lift_asgi.local import LocalDynamoDB
from lift_asgi.tenancy import HeaderResolver, TenantMiddleware
from lift_asgi.testing.plugin import create_local_table, delete_local_table

ROUTES = {"two writes": "/two", "one write": "/one", "no write": "/none"}
KINDS = ("no stage", "no key", "first", "replay", "conflict")


def build(table: str, transport: AiodynamoTransport, *, stage: bool = True) -> ASGIApp:
    async def two(request: Request) -> Response:
        body = await request.json()
        uow = current_uow()
        uow.put({"pk": "items", "sk": body["id"], "name": "bench"})
        uow.update({"pk": "stats", "sk": "counts"}, add={"items": 1})
        return JSONResponse({"id": body["id"]}, status_code=201)

    async def one(request: Request) -> Response:
        body = await request.json()
        current_uow().put({"pk": "items", "sk": body["id"], "name": "bench"})
        return JSONResponse({"id": body["id"]}, status_code=201)

    async def none(request: Request) -> Response:
        body = await request.json()
        return JSONResponse({"id": body["id"]})

    return Starlette(
        routes=[
            Route("/two", two, methods=["POST"]),
            Route("/one", one, methods=["POST"]),
            Route("/none", none, methods=["POST"]),
        ],
        middleware=[
            Middleware(TenantMiddleware, resolvers=[HeaderResolver()]),
            *([Middleware(IdempotencyMiddleware)] if stage else []),
            Middleware(UnitOfWorkMiddleware, table=table, transport=transport),
        ],
    )


async def call(app: ASGIApp, path: str, body: bytes, key: str | None) -> int:
    headers = [
        (b"host", b"bench"),
        (b"x-tenant-id", b"bench"),
        (b"content-type", b"application/json"),
    ]
    if key is not None:
        headers.append((b"idempotency-key", key.encode()))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "client": ("127.0.0.1", 1000),
        "server": ("bench", 80),
    }
    status = 0
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            await asyncio.sleep(3600)
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


@dataclass(frozen=True)
class Row:
    route: str
    request: str
    status: int
    calls: int
    extra_calls: int
    """Calls beyond the same request without a key."""
    cpu_us: float
    cpu_ratio: float
    """CPU against the same request without a key."""


class Bench:
    def __init__(self, endpoint: str, table: str) -> None:
        self.endpoint = endpoint
        self.table = table
        self.transport = AiodynamoTransport.static(endpoint)
        self.app = build(table, self.transport)
        self.bare = build(table, self.transport, stage=False)

    def request(self, route: str, kind: str) -> Callable[[], tuple[str, bytes, str | None]]:
        """A factory of ``(path, body, key)`` for one kind of request on one route."""
        path = ROUTES[route]
        if kind in ("no stage", "no key", "first"):

            def fresh() -> tuple[str, bytes, str | None]:
                ident = uuid.uuid4().hex
                return path, json.dumps({"id": ident}).encode(), None if kind != "first" else ident

            return fresh
        key = f"{kind}-{route}"
        body = json.dumps({"id": key}).encode()
        return lambda: (path, body, key)

    async def seed(self, route: str) -> None:
        """The replay key, completed; the conflict key, claimed in progress for an hour."""
        path, body, key = self.request(route, "replay")()
        assert await call(self.app, path, body, key) in (200, 201)
        path, body, key = self.request(route, "conflict")()
        now = time.time()
        item = {
            "pk": f"bench#_idempotency#{key}",
            "sk": "_",
            "_tenant": "bench",
            "state": "in_progress",
            "token": "someone-else",
            "fingerprint": fingerprint("POST", path, body),
            "expires_at": math.ceil(now + 3600),
            "ttl": math.ceil(now + 86400),
        }
        await self.transport.request(
            "PutItem",
            {"TableName": self.table, "Item": {k: encode_value(v) for k, v in item.items()}},
        )

    async def measure(
        self, route: str, kind: str, requests: int, rounds: int
    ) -> tuple[int, int, float]:
        make = self.request(route, kind)
        app = self.bare if kind == "no stage" else self.app
        path, body, key = make()
        before = self.transport.calls
        status = await call(app, path, body, key)
        calls = self.transport.calls - before
        best = math.inf
        batch = max(10, requests // rounds)
        for _ in range(rounds):
            work = [make() for _ in range(batch)]
            start = time.process_time()
            for path, body, key in work:
                await call(app, path, body, key)
            best = min(best, (time.process_time() - start) / batch)
        return status, calls, best * 1e6

    async def run(self, requests: int, rounds: int) -> list[Row]:
        rows: list[Row] = []
        try:
            for app in (self.app, self.bare):  # the one-off table check of each
                await call(app, "/one", b'{"id": "warm"}', None)
            for route in ROUTES:
                await self.seed(route)
                measured = {
                    kind: await self.measure(route, kind, requests, rounds) for kind in KINDS
                }
                _, base_calls, base_us = measured["no key"]
                rows.extend(
                    Row(route, kind, status, calls, calls - base_calls, cpu, cpu / base_us)
                    for kind, (status, calls, cpu) in measured.items()
                )
        finally:
            await self.transport.close()
        return rows


def run(requests: int = 300, rounds: int = 3) -> list[Row]:
    server = LocalDynamoDB().start()
    spec = TableSpec.standard(f"bench-idem-{uuid.uuid4().hex[:8]}")
    try:
        create_local_table(server.endpoint, spec)
        return asyncio.run(Bench(server.endpoint, spec.name).run(requests, rounds))
    finally:
        delete_local_table(server.endpoint, spec.name)
        server.stop()


def render(rows: list[Row]) -> str:
    lines = [
        f"{'route':<11} {'request':<9} {'status':>6} {'calls':>5} {'extra':>5} "
        f"{'CPU µs':>8} {'vs no key':>9}",
        "-" * 60,
    ]
    lines += [
        f"{row.route:<11} {row.request:<9} {row.status:>6} {row.calls:>5} "
        f"{row.extra_calls:>+5.0f} {row.cpu_us:>8.0f} {row.cpu_ratio:>8.2f}x"
        for row in rows
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print("Idempotency-Key: DynamoDB calls and client CPU per request (local server)")
    print(render(run(args.requests, args.rounds)))


if __name__ == "__main__":
    main()
