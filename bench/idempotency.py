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

Each runs on two transports: ``local server`` (the real client: its HTTP and signing
count) and ``stub`` (in process, instant: the stage's and the unit of work's own CPU; its
claims of the replay and conflict keys fail with the records the server holds).

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
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message

from lift_asgi.dynamo import UnitOfWorkMiddleware, current_uow
from lift_asgi.dynamo.codec import encode_value
from lift_asgi.dynamo.tables import TableSpec
from lift_asgi.dynamo.transport import AiodynamoTransport, DynamoTransport
from lift_asgi.errors import ConditionFailed
from lift_asgi.idempotency import IdempotencyMiddleware
from lift_asgi.idempotency.record import fingerprint
from lift_asgi.local import LocalDynamoDB
from lift_asgi.tenancy import HeaderResolver, TenantMiddleware
from lift_asgi.testing.plugin import create_local_table, delete_local_table

ROUTES = {"two writes": "/two", "one write": "/one", "no write": "/none"}
KINDS = ("no stage", "no key", "first", "replay", "conflict")


class StubTransport:
    """Answers at once, in process: the stage's and the unit of work's own CPU, without
    DynamoDB's HTTP and signing. A claim of a key in ``old`` fails as DynamoDB's would,
    returning that stored record (ALL_OLD); every other call succeeds."""

    timeout = 0.0  # instant: no extra timer, like AiodynamoTransport

    def __init__(self) -> None:
        self.calls = 0
        self.old: dict[str, dict[str, Any]] = {}

    async def request(self, action: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        self.calls += 1
        if action == "PutItem" and "ReturnValuesOnConditionCheckFailure" in payload:
            old = self.old.get(payload["Item"]["pk"]["S"])
            if old is not None:
                failed = ConditionFailed(aws_code="ConditionalCheckFailedException")
                failed.item = old
                raise failed
        return {}

    async def close(self) -> None:
        return None


def build(table: str, transport: DynamoTransport, *, stage: bool = True) -> ASGIApp:
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
            Middleware(
                UnitOfWorkMiddleware,
                table=table,
                transport=transport,
                verify_table=not isinstance(transport, StubTransport),
            ),
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
    transport: str
    route: str
    request: str
    status: int
    calls: int
    extra_calls: int
    """Calls beyond the same request without a key."""
    cpu_us: float
    cpu_ratio: float
    """CPU against the same request without a key."""


@dataclass
class Setup:
    name: str
    transport: DynamoTransport
    app: ASGIApp
    bare: ASGIApp


class Bench:
    def __init__(self, endpoint: str, table: str) -> None:
        self.table = table
        self.real = AiodynamoTransport.static(endpoint)
        self.stub = StubTransport()
        self.setups = [
            Setup(name, transport, build(table, transport), build(table, transport, stage=False))
            for name, transport in (("local server", self.real), ("stub", self.stub))
        ]

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
        """The replay key, completed; the conflict key, claimed in progress for an hour;
        the stub answers their claims with the records the server holds."""
        path, body, key = self.request(route, "replay")()
        assert await call(self.setups[0].app, path, body, key) in (200, 201)
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
        await self.real.request(
            "PutItem",
            {"TableName": self.table, "Item": {k: encode_value(v) for k, v in item.items()}},
        )
        for kind in ("replay", "conflict"):
            pk = f"bench#_idempotency#{kind}-{route}"
            found = await self.real.request(
                "GetItem",
                {"TableName": self.table, "Key": {"pk": {"S": pk}, "sk": {"S": "_"}}},
            )
            self.stub.old[pk] = found["Item"]

    async def measure(
        self, setup: Setup, route: str, kind: str, requests: int, rounds: int
    ) -> tuple[int, int, float]:
        make = self.request(route, kind)
        app = setup.bare if kind == "no stage" else setup.app
        path, body, key = make()
        before = setup.transport.calls
        status = await call(app, path, body, key)
        calls = setup.transport.calls - before
        best = math.inf
        count = requests if setup.transport is self.real else requests * 10
        batch = max(10, count // rounds)
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
            for setup in self.setups:
                for app in (setup.app, setup.bare):  # the one-off table check of each
                    await call(app, "/one", b'{"id": "warm"}', None)
            for route in ROUTES:
                await self.seed(route)
            for setup in self.setups:
                for route in ROUTES:
                    measured = {
                        kind: await self.measure(setup, route, kind, requests, rounds)
                        for kind in KINDS
                    }
                    _, base_calls, base_us = measured["no key"]
                    rows.extend(
                        Row(
                            setup.name,
                            route,
                            kind,
                            status,
                            calls,
                            calls - base_calls,
                            cpu,
                            cpu / base_us,
                        )
                        for kind, (status, calls, cpu) in measured.items()
                    )
        finally:
            await self.real.close()
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
        f"{'transport':<12} {'route':<11} {'request':<9} {'status':>6} {'calls':>5} "
        f"{'extra':>5} {'CPU µs':>8} {'vs no key':>9}",
        "-" * 73,
    ]
    lines += [
        f"{row.transport:<12} {row.route:<11} {row.request:<9} {row.status:>6} {row.calls:>5} "
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
