"""The whole request path in process: CPU per request, and DynamoDB calls per request.

    python -m bench.stack [--quick] [--no-dynamodb]

1. CPU per request, no sockets. Every variant is an ASGI app called directly with one
   prebuilt scope (the same headers for all: a bearer token is always present) and no-op
   ``receive``/``send``; ``time.process_time`` of this process, so time spent descheduled
   by other load does not count. Variants are measured in alternating short batches,
   each built twice (identical FastAPI apps differ by a few µs per instance here), and
   the best batch of each counts. Variants:

   - bare Starlette, bare FastAPI (one path-parameter route returning JSON);
   - FastAPI + each lift_asgi middleware alone: TenantMiddleware (HS256 JWT, verified
     once then cached), RateLimitMiddleware (``memory://``, key ``ip``, never refuses),
     UnitOfWorkMiddleware (the route touches no data; ``StubTransport``);
   - the full stack Tenant → RateLimit (``memory://``, key ``tenant``) → UnitOfWork on
     ``AiodynamoTransport`` against the instant endpoint of ``bench/clients.py`` (a child
     process), on the same route (no data) and on a route doing one ``uow.get``;
   - bare FastAPI doing the same GetItem by hand on the same transport (the baseline of
     the full stack's one-get route);
   - the floor: one middleware written by hand for this route doing the stages' work on
     it with none of their checks (:class:`_HandFused`): what this work costs inside
     FastAPI at the least, to read the full stack's ratio against;
   - FastAPI + slowapi, both middlewares: ``SlowAPIMiddleware`` and
     ``SlowAPIASGIMiddleware`` (``memory://``, default limit never reached).

2. DynamoDB calls per request kind of the full stack against the real local server
   (:class:`~lift_asgi.local.LocalDynamoDB`) through a
   :class:`~lift_asgi.testing.FaultProxy` that records every call, with the rate limiter
   on its DynamoDB storage (``AsyncDynamoDBStorage``, what ``async+dynamodb://`` builds).
   Each row is one request; its calls are what the proxy saw during it.

``run()`` returns both lists of rows for ``bench/__main__.py``; nothing here asserts on
time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import gc
import hashlib
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt
from fastapi import FastAPI, Request
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Scope

import lift_asgi
from bench.clients import TABLE, InstantEndpoint
from bench.uow import StubTransport
from lift_asgi.dynamo import (
    AiodynamoTransport,
    TableSpec,
    UnitOfWorkMiddleware,
    create_table,
)
from lift_asgi.ratelimit import AsyncDynamoDBStorage, RateLimitMiddleware, rate_limit_table_spec
from lift_asgi.tenancy import JWTResolver, TenantMiddleware

__all__ = ["CallsRow", "Row", "render", "render_calls", "run"]

SECRET = "bench-only-hs256-secret-0123456789abcdef"  # >= 32 bytes, as RFC 7518 asks
CURSOR_SECRET = "bench-cursor-secret-0123456789abcdef"
TENANT = "tenant"  # bench.clients' canned item belongs to this tenant
NEVER = "1000000000/minute"
EXEMPT = ["/health"]  # the quick start's exempt list, in every installed stack

TARGET_RATIO = 1.15  # issue 10: the full stack on a no-data route, against bare FastAPI
BARE = "FastAPI (bare)"
FULL = "FastAPI + full stack (every stage, installed), route touches no data"
THREE = "FastAPI + install(tenant, rate limit, unit of work)"
THREE_BY_HAND = "FastAPI + add_middleware x3 (tenant, rate limit, unit of work)"
FLOOR = "FastAPI + one hand-fused middleware doing the same work, no checks (the floor)"
BY_HAND = "FastAPI + one GetItem by hand (AiodynamoTransport)"
FULL_GET = "FastAPI + full stack (every stage), one uow.get (AiodynamoTransport)"
OURS_TENANT = "FastAPI + TenantMiddleware alone (HS256 JWT, cached)"
OURS_RATE = "FastAPI + RateLimitMiddleware alone (memory, key ip)"
SLOWAPI = "FastAPI + slowapi SlowAPIMiddleware (memory)"
SLOWAPI_ASGI = "FastAPI + slowapi SlowAPIASGIMiddleware (memory)"


def token(tenant: str = TENANT, plan: str = "enterprise") -> str:
    now = int(time.time())
    claims = {"tenant_id": tenant, "sub": "alice", "plan": plan, "iat": now, "exp": now + 86400}
    return jwt.encode(claims, SECRET, algorithm="HS256")


def scope(path: str, bearer: str, method: str = "GET") -> Scope:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"host", b"api.example.com"),
            (b"user-agent", b"bench/1.0"),
            (b"accept", b"*/*"),
            (b"authorization", f"Bearer {bearer}".encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("api.example.com", 80),
    }


# -- the apps -------------------------------------------------------------------------


def _starlette() -> ASGIApp:
    async def project(request: Any) -> JSONResponse:
        return JSONResponse({"id": request.path_params["project_id"]})

    return Starlette(routes=[Route("/projects/{project_id}", project)])


def _fastapi(get: Callable[[Request], Any] | None = None) -> FastAPI:
    """One no-data route; with ``get``, also ``/data/{project_id}`` awaiting it."""
    app = FastAPI()

    @app.get("/projects/{project_id}")
    async def project(project_id: str) -> dict[str, str]:
        return {"id": project_id}

    if get is not None:

        @app.get("/data/{project_id}")
        async def data(project_id: str, request: Request) -> dict[str, bool]:
            return {"found": (await get(request)) is not None}

    return app


def _tenant_middleware(app: FastAPI) -> None:
    app.add_middleware(TenantMiddleware, resolvers=[JWTResolver(key=SECRET, algorithms=["HS256"])])


STAGES = ("observe", "tenant", "rate_limit", "idempotency", "unit_of_work")


def _stage_options(transport: Any) -> dict[str, Any]:
    """Every stage's options for the in-process rows (memory limiter, never refusing)."""
    return {
        # records on (the default): the logger is below its level, as in a service that
        # has not turned request logs on
        "observe": {},
        "tenant": {"resolvers": [JWTResolver(key=SECRET, algorithms=["HS256"])]},
        "rate_limit": {"limit": NEVER, "key": "tenant", "storage": "memory://"},
        "idempotency": {},  # GET routes: the stage is passed, no key is claimed
        "unit_of_work": {"table": TABLE, "transport": transport, "cursor_secret": CURSOR_SECRET},
    }


def _installed(transport: Any, stages: tuple[str, ...] = STAGES) -> FastAPI:
    """FastAPI with ``stages`` installed by ``lift_asgi.install`` (and a data route)."""

    async def get(request: Request) -> Any:
        return await request.state.uow.get("projects", "p1")

    app = _fastapi(get if "unit_of_work" in stages else None)
    options = _stage_options(transport)
    # exempt=["/health"] as in the README's quick start and the example: the requests
    # measured are not exempt, but every stage that skips paths checks for it
    lift_asgi.install(app, exempt=EXEMPT, **{stage: options[stage] for stage in stages})
    return app


def _three_by_hand(transport: Any) -> FastAPI:
    """Tenant → RateLimit → UnitOfWork with add_middleware: the installer's baseline."""
    app = _fastapi()
    app.add_middleware(
        UnitOfWorkMiddleware, table=TABLE, transport=transport, cursor_secret=CURSOR_SECRET
    )
    app.add_middleware(RateLimitMiddleware, limit=NEVER, key="tenant", storage="memory://")
    _tenant_middleware(app)
    return app


class _HandFused:
    """The floor of the full stack: one middleware written by hand for this one route,
    doing what the stages do on it (a request id from a counter, the tenant from a
    sha256-keyed token cache, a fixed-window count in a dict, the five rate-limit
    headers and the id header added in one send wrapper, a unit-of-work-sized object,
    one ContextVar) with none of their checks, options, failure handling or records.
    Not a product: a lower bound on what this work costs inside FastAPI."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.tenants: dict[bytes, Any] = {}
        self.counts: dict[str, list[int]] = {}
        self.prefix = uuid.uuid4().hex[:16]
        self.counter = iter(range(1 << 62))

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/health"):  # (EXEMPT)
            await self.app(scope, receive, send)
            return
        authorization = b""
        for key, value in scope["headers"]:
            if key == b"authorization":
                authorization = value
        request_id = f"{self.prefix}{next(self.counter):016x}"
        digest = hashlib.sha256(authorization).digest()
        tenant = self.tenants.get(digest)
        if tenant is None:
            tenant = self.tenants[digest] = lift_asgi.Tenant(TENANT, plan="enterprise")
        now = time.time()
        index = int(now // 60)
        count = self.counts.get(tenant.id)
        if count is None or count[0] != index:
            count = self.counts[tenant.id] = [index, 0]
        count[1] += 1
        left, reset = 1_000_000_000 - count[1], (index + 1) * 60
        added = [
            (b"x-ratelimit-limit", b"1000000000"),
            (b"x-ratelimit-remaining", b"%d" % left),
            (b"x-ratelimit-reset", b"%d" % reset),
            (b"ratelimit-policy", b'"default";q=1000000000;w=60'),
            (b"ratelimit", b'"default";r=%d;t=%d' % (left, reset - int(now))),
            (b"x-request-id", request_id.encode()),
        ]
        work = _Work(tenant.id)
        state = scope.setdefault("state", {})
        state["request_id"], state["tenant"], state["uow"] = request_id, tenant, work

        def send_with_headers(message: Message) -> Any:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *added]
            return send(message)

        reset_var = _FLOOR_VAR.set(work)
        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            _FLOOR_VAR.reset(reset_var)
            work.closed = True


class _Work:
    __slots__ = ("closed", "ops", "tenant_id")

    def __init__(self, tenant_id: str) -> None:
        self.tenant_id, self.ops, self.closed = tenant_id, None, False


_FLOOR_VAR: contextvars.ContextVar[_Work] = contextvars.ContextVar("bench_floor")


def _floor() -> FastAPI:
    app = _fastapi()
    app.add_middleware(_HandFused)
    return app


def _slowapi(middleware_name: str) -> Callable[[], ASGIApp]:
    def build() -> ASGIApp:
        from slowapi import Limiter
        from slowapi import middleware as slowapi_middleware
        from slowapi.util import get_remote_address

        limiter = Limiter(
            key_func=get_remote_address, default_limits=[NEVER], storage_uri="memory://"
        )
        app = _fastapi()
        app.state.limiter = limiter
        app.add_middleware(getattr(slowapi_middleware, middleware_name))
        return app

    return build


@dataclass(frozen=True)
class _Variant:
    name: str
    build: Callable[[], ASGIApp]
    path: str
    slow: bool = False  # makes a DynamoDB call: fewer requests per batch


def _variants(transport: AiodynamoTransport) -> list[_Variant]:
    def tenant_only() -> ASGIApp:
        app = _fastapi()
        _tenant_middleware(app)
        return app

    def rate_only() -> ASGIApp:
        app = _fastapi()
        app.add_middleware(RateLimitMiddleware, limit=NEVER, key="ip", storage="memory://")
        return app

    def uow_only() -> ASGIApp:
        app = _fastapi()
        app.add_middleware(
            UnitOfWorkMiddleware,
            table=TABLE,
            transport=StubTransport(),
            cursor_secret=CURSOR_SECRET,
            tenant_from=lambda scope: TENANT,  # what TenantMiddleware would provide
        )
        return app

    def by_hand() -> ASGIApp:
        payload = {"TableName": TABLE, "Key": {"pk": {"S": "x"}, "sk": {"S": "p1"}}}

        async def get(request: Request) -> Any:
            return (await transport.request("GetItem", payload)).get("Item")

        return _fastapi(get)

    return [
        _Variant("Starlette (bare)", _starlette, "/projects/42"),
        _Variant(BARE, _fastapi, "/projects/42"),
        _Variant(
            "FastAPI + TenantMiddleware alone (HS256 JWT, cached)", tenant_only, "/projects/42"
        ),
        _Variant(OURS_RATE, rate_only, "/projects/42"),
        _Variant("FastAPI + UnitOfWorkMiddleware alone (no data)", uow_only, "/projects/42"),
        _Variant(
            "FastAPI + install(observe)",
            lambda: _installed(transport, ("observe",)),
            "/projects/42",
        ),
        _Variant(
            "FastAPI + install(tenant, rate limit)",
            lambda: _installed(transport, ("tenant", "rate_limit")),
            "/projects/42",
        ),
        _Variant(
            THREE,
            lambda: _installed(transport, ("tenant", "rate_limit", "unit_of_work")),
            "/projects/42",
        ),
        _Variant(THREE_BY_HAND, lambda: _three_by_hand(transport), "/projects/42"),
        _Variant(
            "FastAPI + install(tenant, rate limit, idempotency, unit of work)",
            lambda: _installed(transport, STAGES[1:]),
            "/projects/42",
        ),
        _Variant(FULL, lambda: _installed(transport), "/projects/42"),
        _Variant(FLOOR, _floor, "/projects/42"),
        _Variant(SLOWAPI, _slowapi("SlowAPIMiddleware"), "/projects/42"),
        _Variant(SLOWAPI_ASGI, _slowapi("SlowAPIASGIMiddleware"), "/projects/42"),
        _Variant(BY_HAND, by_hand, "/data/42", slow=True),
        _Variant(FULL_GET, lambda: _installed(transport), "/data/42", slow=True),
    ]


# -- measuring ------------------------------------------------------------------------


async def _receive() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _discard(message: Message) -> None:
    return None


async def _status(app: ASGIApp, request: Scope) -> int:
    statuses: list[int] = []

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    await app(dict(request), _receive, send)
    return statuses[0]


async def _batch(app: ASGIApp, request: Scope, count: int) -> float:
    """CPU seconds per request over ``count`` back-to-back requests."""
    receive, send = _receive, _discard
    gc.collect()
    start = time.process_time()
    for _ in range(count):
        await app(dict(request), receive, send)
    return (time.process_time() - start) / count


@dataclass(frozen=True)
class Row:
    name: str
    us_per_request: float
    ratio: float  # to bare FastAPI, same run
    added_us: float  # over bare FastAPI


async def _cpu(endpoint: str, batch: int, rounds: int, instances: int) -> list[Row]:
    transport = AiodynamoTransport.static(endpoint)
    bearer = token()
    try:
        variants = _variants(transport)
        apps: list[tuple[_Variant, ASGIApp, Scope]] = []
        for variant in variants:
            request = scope(variant.path, bearer)
            for _ in range(instances):
                app = variant.build()
                for _ in range(50 if variant.slow else 200):  # warm-up, one-off checks
                    status = await _status(app, request)
                    if status != 200:
                        raise RuntimeError(f"{variant.name}: answered {status}, not 200")
                apps.append((variant, app, request))
        best = {variant.name: float("inf") for variant in variants}
        for _ in range(rounds):
            for variant, app, request in apps:
                count = max(20, batch // 8) if variant.slow else batch
                best[variant.name] = min(best[variant.name], await _batch(app, request, count))
    finally:
        await transport.close()
    bare = best[BARE]
    return [
        Row(v.name, best[v.name] * 1e6, best[v.name] / bare, (best[v.name] - bare) * 1e6)
        for v in variants
    ]


# -- DynamoDB calls per request ---------------------------------------------------------


@dataclass(frozen=True)
class CallsRow:
    request: str
    status: int
    calls: int
    operations: str  # e.g. "UpdateItem + GetItem"
    expected: int | None = None
    kind: str | None = None  # short name for the headline


# The request kinds of the headline, by row label.
KINDS = {
    "read (one get)": "read",
    "one write": "one write",
    "five writes (one transaction)": "five writes",
    "bulk of 50 (one atomic transaction)": "bulk of 50",
    "admitted, route touches no data": "admitted, no data",
    "refused (429; the last unit was taken by another worker)": "refused",
    "blocked (refused again, from the blocked-key cache)": "blocked",
}


def describe(calls: list[Any]) -> str:
    """``UpdateItem + TransactWriteItems (50 items)`` from FaultProxy calls."""
    parts = []
    for call in calls:
        name = call.operation
        items = call.payload.get("TransactItems")
        if items is None and call.operation == "BatchWriteItem":
            items = [r for reqs in call.payload.get("RequestItems", {}).values() for r in reqs]
        part = f"{name} ({len(items)} items)" if items is not None else name
        if call.status is not None and call.status >= 400:
            part += f" -> {call.status}"  # e.g. the refused hit's failed condition
        parts.append(part)
    counts = Counter(parts)
    return " + ".join(p if n == 1 else f"{n} x {p}" for p, n in counts.items()) or "none"


def _writes_app(
    table: str, transport: Any, storage: Any, limits: dict[str, str], clock: Any
) -> FastAPI:
    """The full stack (every stage) with write routes, its rate limiter on DynamoDB."""
    app = FastAPI()

    @app.get("/ping")
    async def ping() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/projects/{project_id}")
    async def read(project_id: str, request: Request) -> dict[str, bool]:
        return {"found": await request.state.uow.get("projects", project_id) is not None}

    @app.post("/projects/{project_id}")
    async def write_one(project_id: str, request: Request) -> dict[str, bool]:
        request.state.uow.put({"pk": "projects", "sk": project_id, "name": "Apollo"})
        return {"ok": True}

    @app.post("/projects/{project_id}/tasks:{count}")
    async def write_many(project_id: str, count: int, request: Request) -> dict[str, int]:
        uow = request.state.uow
        for i in range(count):
            uow.put({"pk": f"project#{project_id}", "sk": f"task#{uuid.uuid4().hex}#{i}"})
        return {"written": count}

    lift_asgi.install(
        app,
        observe={},
        tenant={"resolvers": [JWTResolver(key=SECRET, algorithms=["HS256"])]},
        rate_limit={"limit": limits, "key": "tenant", "storage": storage, "clock": clock},
        idempotency={},  # these requests carry no Idempotency-Key: no call of its own
        unit_of_work={
            "table": TableSpec.standard(table),
            "transport": transport,
            "cursor_secret": CURSOR_SECRET,
        },
    )
    return app


async def _calls() -> list[CallsRow]:
    from lift_asgi.local import LocalDynamoDB
    from lift_asgi.testing import FaultProxy

    suffix = uuid.uuid4().hex[:8]
    data_table, rate_table = f"bench-data-{suffix}", f"bench-rate-{suffix}"
    rows: list[CallsRow] = []
    frozen = [float(int(time.time() // 60) * 60 + 1)]  # one window for the whole sequence
    clock: Callable[[], float] = lambda: frozen[0]  # noqa: E731
    limits = {"enterprise": NEVER, "free": "2/minute", "default": "free"}

    async with LocalDynamoDB() as server:
        proxy = FaultProxy(server.endpoint).start()
        transport = AiodynamoTransport.static(proxy.endpoint)
        try:
            await create_table(transport, TableSpec.standard(data_table))
            await create_table(transport, rate_limit_table_spec(rate_table))

            def worker() -> FastAPI:  # one process (a uvicorn worker, a Lambda container)
                storage = AsyncDynamoDBStorage(table=rate_table, transport=transport)
                return _writes_app(data_table, transport, storage, limits, clock)

            big, small = token(TENANT, "enterprise"), token("small-co", "free")

            first, second = worker(), worker()
            # (label, worker, path, token, method, status, expected calls)
            sequence: list[tuple[str, FastAPI, str, str, str, int, int | None]] = [
                ("first data access of a process (+ one-off table check)",
                 first, "/projects/p0", big, "GET", 200, None),
                ("one write", first, "/projects/p1", big, "POST", 200, 2),
                ("read (one get)", first, "/projects/p1", big, "GET", 200, 2),
                ("five writes (one transaction)",
                 first, "/projects/p1/tasks:5", big, "POST", 200, 2),
                ("bulk of 50 (one atomic transaction)",
                 first, "/projects/p1/tasks:50", big, "POST", 200, 2),
                ("admitted, route touches no data", first, "/ping", big, "GET", 200, 1),
                # a tenant on a 2/minute plan: admitted twice, then refused, then blocked
                ("rate-limited tenant, admitted", first, "/ping", small, "GET", 200, 1),
                ("rate-limited tenant, admitted (last unit)",
                 first, "/ping", small, "GET", 200, 1),
                ("refused (429; the last unit was taken by another worker)",
                 second, "/ping", small, "GET", 429, 1),
                ("blocked (refused again, from the blocked-key cache)",
                 second, "/ping", small, "GET", 429, 0),
                ("refused by the worker that took the last unit (it saw the count)",
                 first, "/ping", small, "GET", 429, 0),
            ]  # fmt: skip
            for name, app, path, bearer, method, status, expected in sequence:
                proxy.reset()
                got = await _status(app, scope(path, bearer, method))
                if got != status:
                    raise RuntimeError(f"{name}: answered {got}, expected {status}")
                calls = list(proxy.calls)
                row = CallsRow(name, got, len(calls), describe(calls), expected, KINDS.get(name))
                rows.append(row)
        finally:
            await transport.close()
            proxy.stop()
    return rows


# -- entry points ---------------------------------------------------------------------


def run(
    batch: int = 1000, rounds: int = 20, instances: int = 2, dynamodb: bool = True
) -> tuple[list[Row], list[CallsRow], list[StageRow]]:
    """CPU rows (the bare FastAPI baseline among them), DynamoDB calls per request, and
    each stage's own cost around a trivial app."""
    with InstantEndpoint() as endpoint:
        cpu = asyncio.run(_cpu(endpoint, batch, rounds, instances))
    stages = asyncio.run(_stage_costs(max(batch, 500) * 2, max(rounds // 2, 3)))
    calls = asyncio.run(_calls()) if dynamodb else []
    return cpu, calls, stages


def added_ratio(rows: list[Row], slower: str, faster: str) -> float:
    """How many times more ``slower`` adds over bare FastAPI than ``faster`` does."""
    by_name = {row.name: row for row in rows}
    return by_name[slower].added_us / max(by_name[faster].added_us, 1e-9)


def render(rows: list[Row]) -> str:
    width = max(len(row.name) for row in rows)
    lines = [f"{'variant':<{width}}  {'µs/req':>8}  {'+µs':>8}  {'ratio':>6}"]
    lines.append("-" * len(lines[0]))
    lines += [
        f"{row.name:<{width}}  {row.us_per_request:>8.1f}  {row.added_us:>+8.1f}  {row.ratio:>6.2f}"
        for row in rows
    ]
    return "\n".join(lines)


def render_calls(rows: list[CallsRow]) -> str:
    width = max(len(row.request) for row in rows)
    lines = [f"{'request':<{width}}  status  calls  expected  operations"]
    lines.append("-" * (len(lines[0]) + 20))
    for row in rows:
        expected = "" if row.expected is None else str(row.expected)
        lines.append(
            f"{row.request:<{width}}  {row.status:>6}  {row.calls:>5}  {expected:>8}  "
            f"{row.operations}"
        )
    return "\n".join(lines)


# -- where the time goes ----------------------------------------------------------------


async def _trivial(scope: Scope, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


@dataclass(frozen=True)
class StageRow:
    stage: str
    us: float  # what adding this stage (inside the ones above) adds around a trivial app


async def _stage_costs(batch: int, rounds: int) -> list[StageRow]:
    """Each stage's own cost: the stack around a trivial ASGI app, grown one stage at a
    time in the request path's order; a row is what its stage added (best batches)."""
    transport = StubTransport()
    options = _stage_options(transport)
    request = scope("/projects/42", token())
    stacks: list[tuple[str, Any]] = [("trivial ASGI app", _trivial)]
    for n in range(1, len(STAGES) + 1):
        chosen = STAGES[:n]
        if "unit_of_work" in chosen or "idempotency" not in chosen:
            picked = chosen
        else:
            continue  # idempotency needs the unit of work: measured together below
        stacks.append(
            (
                " + ".join(picked),
                lift_asgi.install(_trivial, **{stage: options[stage] for stage in picked}),
            )
        )
    for _, app in stacks:
        for _ in range(200):
            await _status(app, request)
    best = {name: float("inf") for name, _ in stacks}
    for _ in range(rounds):
        for name, app in stacks:
            best[name] = min(best[name], await _batch(app, request, batch))
    rows, previous = [], None
    for name, _ in stacks:
        if previous is not None:
            added = name.removeprefix(previous + " + ") if previous != "trivial ASGI app" else name
            rows.append(StageRow(added, (best[name] - best[previous]) * 1e6))
        previous = name
    return rows  # fmt: skip


def profile(requests: int = 20000, top: int = 25) -> str:
    """cProfile of the full stack on the no-data route: lift_asgi's functions by own
    time per request (cProfile inflates small functions; read the ranks, and
    ``_stage_costs`` for the µs)."""
    import cProfile
    import pstats

    async def go() -> cProfile.Profile:
        with InstantEndpoint() as endpoint:
            transport = AiodynamoTransport.static(endpoint)
            try:
                app = _installed(transport)
                request = scope("/projects/42", token())
                for _ in range(500):
                    await _status(app, request)
                profiler = cProfile.Profile()
                profiler.enable()
                await _batch(app, request, requests)
                profiler.disable()
                return profiler
            finally:
                await transport.close()

    stats = pstats.Stats(asyncio.run(go()))
    rows = []
    for (path, line, function), (_cc, calls, tottime, cumtime, _) in stats.stats.items():  # type: ignore[attr-defined]
        if "lift_asgi" in path:
            where = path[path.rindex("lift_asgi") :]
            rows.append((tottime, cumtime, calls, f"{where}:{line}:{function}"))
    rows.sort(reverse=True)
    lines = [f"{'own µs/req':>10}  {'cum µs/req':>10}  {'calls/req':>9}  function"]
    for tottime, cumtime, calls, name in rows[:top]:
        lines.append(
            f"{tottime / requests * 1e6:>10.2f}  {cumtime / requests * 1e6:>10.2f}  "
            f"{calls / requests:>9.1f}  {name}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer requests (a smoke run)")
    parser.add_argument("--no-dynamodb", action="store_true", help="skip counting calls")
    parser.add_argument(
        "--profile", action="store_true", help="where the full stack's time goes, then exit"
    )
    args = parser.parse_args(argv)
    if args.profile:
        print("Each stage's own cost around a trivial ASGI app, added in order (µs/request):")
        for row in asyncio.run(_stage_costs(2000, 10)):
            print(f"  {row.stage:<40} {row.us:+6.1f}")
        print()
        print(profile())
        return
    params = {"batch": 200, "rounds": 4, "instances": 1} if args.quick else {}
    cpu, calls, stages = run(**params, dynamodb=not args.no_dynamodb)
    print("CPU per request in process, best batch; ratios to bare FastAPI in this run")
    print(render(cpu))
    print(
        f"SlowAPIASGIMiddleware adds {added_ratio(cpu, SLOWAPI_ASGI, OURS_RATE):.1f}x "
        "what RateLimitMiddleware adds"
    )
    print()
    print("Each stage's own cost around a trivial ASGI app, added in order (µs/request):")
    for row in stages:
        print(f"  {row.stage:<40} {row.us:+6.1f}")
    if calls:
        print()
        print(render_calls(calls))


if __name__ == "__main__":
    main()
