"""The full request path with the observer outermost, against the local DynamoDB server.

``stack(endpoint)`` builds ``observe -> tenant (HS256 JWT) -> rate limit (DynamoDB storage)
-> unit of work`` with ``lift_asgi.install`` on a FastAPI app whose routes read, write,
conflict and log; ``records`` captures every log record of the process through the
suite's own filter and JSON formatter, as an operator's handler would.
"""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Annotated, Any

import httpx
import jwt
import pytest
from fastapi import Depends, FastAPI, Request
from starlette.types import ASGIApp, Message, Scope

import lift_asgi
from lift_asgi.dynamo import DynamoTable, RetryPolicy, UnitOfWork, get_uow
from lift_asgi.dynamo.tables import TableSpec
from lift_asgi.dynamo.transport import AiodynamoTransport
from lift_asgi.exception_handlers import PROBLEM_HANDLERS
from lift_asgi.observe import current_cost, current_request_id, log_handler
from lift_asgi.ratelimit import AsyncDynamoDBStorage
from lift_asgi.tenancy import JWTResolver

SECRET = "observe-test-secret-0123456789abcdef"
CURSOR_SECRET = "observe-cursor-secret-0123456789abcdef"
T0 = 1_800_000_000.0
FAST_RETRY = RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.02, deadline=5.0)

handler_log = logging.getLogger("tests.observe.handler")


def token(tenant: str = "acme", plan: str = "pro") -> str:
    claims = {"tenant_id": tenant, "sub": "alice", "plan": plan, "exp": int(time.time()) + 600}
    return jwt.encode(claims, SECRET, algorithm="HS256")


def bearer(tenant: str = "acme", plan: str = "pro") -> dict[str, str]:
    return {"authorization": f"Bearer {token(tenant, plan)}"}


def routes() -> FastAPI:
    app = FastAPI(exception_handlers=PROBLEM_HANDLERS)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/projects/{project_id}")
    async def read(project_id: str, uow: Annotated[UnitOfWork, Depends(get_uow)]) -> Any:
        item = await uow.get_or_404("projects", project_id)
        handler_log.info("read project %s", project_id)
        return {"id": project_id, "name": item["name"]}

    @app.put("/projects/{project_id}")
    async def write(
        project_id: str, request: Request, uow: Annotated[UnitOfWork, Depends(get_uow)]
    ) -> Any:
        body = await request.json()
        uow.put({"pk": "projects", "sk": project_id, "name": body["name"]}, if_absent=True)
        handler_log.info("writing project %s", project_id)
        return {"id": project_id}

    @app.get("/whoami")
    async def whoami(request: Request) -> Any:
        cost = current_cost()
        handler_log.warning("whoami asked")
        return {
            "request_id": current_request_id(),
            "state": request.state.request_id,
            "calls_so_far": cost.calls if cost is not None else None,
        }

    @app.post("/imports/{project_id}")
    async def bulk(project_id: str, uow: Annotated[UnitOfWork, Depends(get_uow)]) -> Any:
        items = [{"pk": f"tasks#{project_id}", "sk": f"t{i:03d}"} for i in range(30)]
        result = await uow.bulk_put(items, concurrency=2)
        uow.update(("stats", "counters"), add={"tasks": 30})
        return {"written": result.written}

    @app.get("/boom")
    async def boom() -> Any:
        raise RuntimeError("the handler failed")

    return app


def stack(
    endpoint: str,
    data: TableSpec,
    rate: TableSpec,
    *,
    limit: str = "100/minute",
    on_failure: str = "local",
    observe: dict[str, Any] | None = None,
    idempotency: dict[str, Any] | None = None,
    timeout: float = 2.0,
) -> tuple[FastAPI, AiodynamoTransport]:
    """The whole path on one transport to ``endpoint`` (the server, or a fault proxy)."""
    transport = AiodynamoTransport.static(endpoint, timeout=timeout)
    app = routes()
    lift_asgi.install(
        app,
        observe={} if observe is None else observe,
        tenant={"resolvers": [JWTResolver(key=SECRET, algorithms=["HS256"])]},
        rate_limit={
            "limit": limit,
            "key": "tenant",
            "storage": AsyncDynamoDBStorage(table=rate.name, transport=transport),
            "clock": lambda: T0 + 1,
            "on_failure": on_failure,
            "timeout": 1.5,
        },
        unit_of_work={
            "table": DynamoTable(
                data.name, transport=transport, cursor_secret=CURSOR_SECRET, retry=FAST_RETRY
            )
        },
        idempotency=idempotency,
        exempt=["/health"],
    )
    return app, transport


def client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, raise_app_exceptions=False), base_url="http://t"
    )


class Records:
    """Every record of the process, formatted by the suite's JSON formatter."""

    def __init__(self) -> None:
        self.stream = io.StringIO()

    @property
    def text(self) -> str:
        return self.stream.getvalue()

    @property
    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.text.splitlines() if line]

    def requests(self) -> list[dict[str, Any]]:
        return [line for line in self.lines if line["logger"] == "lift_asgi.request"]


@pytest.fixture
def records() -> Iterator[Records]:
    captured = Records()
    handler = log_handler(json=True, stream=captured.stream)
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield captured
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


@pytest.fixture
async def make_stack(
    dynamodb_endpoint: str, dynamodb_table: TableSpec, dynamodb_rate_limit_table: TableSpec
) -> AsyncIterator[Callable[..., tuple[FastAPI, AiodynamoTransport]]]:
    transports: list[AiodynamoTransport] = []

    def make(endpoint: str | None = None, **options: Any) -> tuple[FastAPI, AiodynamoTransport]:
        app, transport = stack(
            endpoint or dynamodb_endpoint, dynamodb_table, dynamodb_rate_limit_table, **options
        )
        transports.append(transport)
        return app, transport

    yield make
    for transport in transports:
        await transport.close()


async def run_asgi(app: ASGIApp, scope: Scope) -> list[Message]:
    """Call ``app`` with ``scope`` and an empty request body; the messages it sent."""
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent
