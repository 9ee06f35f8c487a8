"""UnitOfWorkMiddleware over HTTP, on bare Starlette and on FastAPI."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated, Any

import httpx
import pytest
from fastapi import Depends, FastAPI, Request
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request as StarletteRequest
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Message

from lift_asgi.dynamo import (
    DynamoTable,
    UnitOfWork,
    UnitOfWorkMiddleware,
    current_uow,
    get_uow,
)
from lift_asgi.dynamo.tables import TableSpec
from lift_asgi.dynamo.transport import AiodynamoTransport, DynamoTransport
from lift_asgi.errors import ConfigurationError, LiftError
from lift_asgi.stages import TENANT, UNIT_OF_WORK, context
from lift_asgi.tenancy import HeaderResolver, TenantMiddleware

from .conftest import FAST_RETRY, SECRET, TenantFromHeader, client_for, scan

pytestmark = pytest.mark.dynamodb

ACME = {"x-tenant": "acme"}
Uow = Annotated[UnitOfWork, Depends(get_uow)]


# -- the app under test, once per framework --------------------------------------------


async def _apply(uow: UnitOfWork, body: dict[str, Any]) -> None:
    for item in body.get("items", ()):
        uow.put(item, if_absent=body.get("if_absent", False))
    for update in body.get("updates", ()):
        uow.update(
            tuple(update["key"]),  # type: ignore[arg-type]
            set=update.get("set"),
            add=update.get("add"),
            expect_version=update.get("expect_version"),
        )
    if body.get("commit_early"):
        await uow.commit()
        uow.put({"pk": "after", "sk": "early"})
    if body.get("raise"):
        raise RuntimeError("the handler failed after buffering writes")


def _stream(uow: UnitOfWork, raw: DynamoTransport, table: str, once: bool) -> StreamingResponse:
    uow.put({"pk": "stream", "sk": "1"}, if_absent=once)

    async def body() -> AsyncIterator[bytes]:
        key = {"pk": {"S": "acme#stream"}, "sk": {"S": "1"}}
        found = await raw.request("GetItem", {"TableName": table, "Key": key})
        yield b"committed-before-first-byte:" + (b"yes" if "Item" in found else b"no")
        for i in range(5):
            yield f"|chunk{i}".encode()

    return StreamingResponse(body(), media_type="text/plain")


def starlette_app(raw: DynamoTransport, table: str, **options: Any) -> ASGIApp:
    async def write(request: StarletteRequest) -> Response:
        body = await request.json()
        await _apply(request.state.uow, body)
        return JSONResponse({"written": True}, status_code=body.get("status", 201))

    async def read(request: StarletteRequest) -> Response:
        uow: UnitOfWork = request.state.uow
        assert current_uow() is uow
        item = await uow.get_or_404(request.path_params["pk"], request.path_params["sk"])
        return JSONResponse(item)

    async def listing(request: StarletteRequest) -> Response:
        uow: UnitOfWork = request.state.uow
        page = await uow.query(
            request.path_params["pk"],
            limit=int(request.query_params.get("limit", 20)),
            cursor=request.query_params.get("cursor"),
        )
        return JSONResponse({"items": page.items, "next_cursor": page.next_cursor})

    async def noop(request: StarletteRequest) -> Response:
        return JSONResponse({"tenant": request.state.uow.tenant_id})

    async def unscoped(request: StarletteRequest) -> Response:
        uow: UnitOfWork = request.state.uow
        item = await uow.unscoped().get(request.path_params["pk"], request.path_params["sk"])
        return JSONResponse({"item": item})

    async def stream(request: StarletteRequest) -> Response:
        once = request.query_params.get("once") == "1"
        return _stream(request.state.uow, raw, table, once)

    return Starlette(
        routes=[
            Route("/write", write, methods=["POST"]),
            Route("/items/{pk}/{sk}", read),
            Route("/list/{pk}", listing),
            Route("/noop", noop),
            Route("/unscoped/{pk}/{sk}", unscoped),
            Route("/stream", stream),
        ],
        middleware=[
            Middleware(TenantFromHeader),
            Middleware(UnitOfWorkMiddleware, table=table, **options),
        ],
    )


def fastapi_app(raw: DynamoTransport, table: str, **options: Any) -> ASGIApp:
    app = FastAPI()

    @app.post("/write")
    async def write(request: Request, uow: Uow) -> Response:
        body = await request.json()
        await _apply(uow, body)
        return JSONResponse({"written": True}, status_code=body.get("status", 201))

    @app.get("/items/{pk}/{sk}")
    async def read(pk: str, sk: str, uow: Uow) -> dict[str, Any]:
        assert current_uow() is uow
        return await uow.get_or_404(pk, sk)

    @app.get("/list/{pk}")
    async def listing(pk: str, uow: Uow, limit: int = 20, cursor: str | None = None) -> Any:
        page = await uow.query(pk, limit=limit, cursor=cursor)
        return {"items": page.items, "next_cursor": page.next_cursor}

    @app.get("/noop")
    async def noop(request: Request) -> dict[str, Any]:
        return {"tenant": request.state.uow.tenant_id}

    @app.get("/unscoped/{pk}/{sk}")
    async def unscoped(pk: str, sk: str, request: Request) -> dict[str, Any]:
        return {"item": await request.state.uow.unscoped().get(pk, sk)}

    @app.get("/stream")
    async def stream(uow: Uow, once: int = 0) -> StreamingResponse:
        return _stream(uow, raw, table, bool(once))

    app.add_middleware(UnitOfWorkMiddleware, table=table, **options)
    app.add_middleware(TenantFromHeader)
    return app


@pytest.fixture(params=["starlette", "fastapi"])
def framework(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_app(framework: str, raw: AiodynamoTransport, dynamodb_table: TableSpec) -> Any:
    def make(transport: DynamoTransport, **options: Any) -> ASGIApp:
        options.setdefault("cursor_secret", SECRET)
        options.setdefault("retry", FAST_RETRY)
        build = starlette_app if framework == "starlette" else fastapi_app
        return build(raw, dynamodb_table.name, transport=transport, **options)

    return make


@pytest.fixture
async def http(
    make_app: Any, aiodynamo_transport: AiodynamoTransport
) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(make_app(aiodynamo_transport)) as client:
        yield client


async def stored(raw: DynamoTransport, table: TableSpec) -> list[str]:
    return sorted(f"{item['pk']}/{item['sk']}" for item in await scan(raw, table.name))


# -- commit on success, discard otherwise -------------------------------------------------


async def test_success_commits_every_write(
    http: httpx.AsyncClient, raw: DynamoTransport, dynamodb_table: TableSpec
) -> None:
    items = [{"pk": "p", "sk": str(i)} for i in range(3)]
    response = await http.post("/write", json={"items": items}, headers=ACME)
    assert response.status_code == 201, response.text
    assert response.json() == {"written": True}
    assert await stored(raw, dynamodb_table) == ["acme#p/0", "acme#p/1", "acme#p/2"]
    got = await http.get("/items/p/1", headers=ACME)
    assert got.json() == {"pk": "p", "sk": "1"}


@pytest.mark.parametrize("status", [400, 404, 409, 422, 500])
async def test_error_status_discards_every_write(
    http: httpx.AsyncClient, raw: DynamoTransport, dynamodb_table: TableSpec, status: int
) -> None:
    items = [{"pk": "p", "sk": "1"}, {"pk": "p", "sk": "2"}]
    response = await http.post("/write", json={"items": items, "status": status}, headers=ACME)
    assert response.status_code == status
    assert await stored(raw, dynamodb_table) == []


async def test_app_exception_after_writes_discards_them(
    make_app: Any,
    aiodynamo_transport: AiodynamoTransport,
    raw: DynamoTransport,
    dynamodb_table: TableSpec,
) -> None:
    app = make_app(aiodynamo_transport)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        body = {"items": [{"pk": "p", "sk": "1"}, {"pk": "p", "sk": "2"}], "raise": True}
        response = await client.post("/write", json=body, headers=ACME)
    assert response.status_code == 500
    assert await stored(raw, dynamodb_table) == []


async def test_failed_condition_replaces_the_response_with_a_409(
    http: httpx.AsyncClient, raw: DynamoTransport, dynamodb_table: TableSpec
) -> None:
    await http.post("/write", json={"items": [{"pk": "p", "sk": "taken"}]}, headers=ACME)
    items = [{"pk": "p", "sk": "new1"}, {"pk": "p", "sk": "taken"}, {"pk": "p", "sk": "new2"}]
    response = await http.post("/write", json={"items": items, "if_absent": True}, headers=ACME)
    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == 409
    assert problem["operation"] == {"number": 2, "of": 3, "kind": "put"}
    assert '"written":true' not in response.text  # the app's own body was dropped
    assert "acme#" not in response.text
    assert await stored(raw, dynamodb_table) == ["acme#p/taken"]


async def test_version_conflict_is_409(http: httpx.AsyncClient) -> None:
    create = {"items": [{"pk": "p", "sk": "1", "name": "a", "version": 1}]}
    assert (await http.post("/write", json=create, headers=ACME)).status_code == 201
    update = {"updates": [{"key": ["p", "1"], "set": {"name": "b"}, "expect_version": 1}]}
    assert (await http.post("/write", json=update, headers=ACME)).status_code == 201
    stale = await http.post("/write", json=update, headers=ACME)
    assert stale.status_code == 409
    assert "expected version 1" in stale.json()["detail"]
    assert (await http.get("/items/p/1", headers=ACME)).json()["version"] == 2


@pytest.mark.parametrize(
    ("member", "said"),
    [
        ('"score": NaN', "finite"),
        ('"score": Infinity', "finite"),
        ('"score": -Infinity', "finite"),
        ('"title": "a\\ud800"', "surrogate"),  # valid JSON, not UTF-8
        ('"": 1', "must not be empty"),
    ],
)
async def test_what_a_clients_json_holds_and_dynamodb_cannot_store_is_a_400_problem(
    http: httpx.AsyncClient, raw: DynamoTransport, dynamodb_table: TableSpec, member: str, said: str
) -> None:
    # Python's json (Starlette's request.json()) parses all of these: client data, refused
    # as an item DynamoDB cannot store (InvalidItem), not a programming error's 500
    body = '{"items": [{"pk": "p", "sk": "1"}, {"pk": "p", "sk": "2", MEMBER}]}'
    body = body.replace("MEMBER", member)
    headers = {**ACME, "content-type": "application/json"}
    response = await http.post("/write", content=body, headers=headers)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == "urn:lift-asgi:problem:invalid-item"
    assert said in response.json()["detail"]
    assert await stored(raw, dynamodb_table) == []


async def test_101_operations_is_a_clear_500(
    http: httpx.AsyncClient, raw: DynamoTransport, dynamodb_table: TableSpec
) -> None:
    items = [{"pk": "p", "sk": f"{i:03}"} for i in range(101)]
    response = await http.post("/write", json={"items": items}, headers=ACME)
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert "at most 100 operations" in response.json()["detail"]
    assert await stored(raw, dynamodb_table) == []


async def test_commit_early_then_again_at_the_response(
    http: httpx.AsyncClient, raw: DynamoTransport, dynamodb_table: TableSpec
) -> None:
    body = {"items": [{"pk": "p", "sk": "1"}], "commit_early": True}
    assert (await http.post("/write", json=body, headers=ACME)).status_code == 201
    assert await stored(raw, dynamodb_table) == ["acme#after/early", "acme#p/1"]


async def test_atomic_counter_in_the_same_transaction(
    http: httpx.AsyncClient, raw: DynamoTransport, dynamodb_table: TableSpec
) -> None:
    body = {
        "items": [{"pk": "project-p1", "sk": "task#1"}],
        "updates": [{"key": ["project-p1", "meta"], "add": {"tasks_open": 1}}],
    }
    for _ in range(2):
        body["items"][0]["sk"] = f"task#{_}"  # type: ignore[index]
        assert (await http.post("/write", json=body, headers=ACME)).status_code == 201
    counter = await http.get("/items/project-p1/meta", headers=ACME)
    assert counter.json()["tasks_open"] == 2
    body["if_absent"] = True  # the task exists: the counter must not move either
    assert (await http.post("/write", json=body, headers=ACME)).status_code == 409
    counter = await http.get("/items/project-p1/meta", headers=ACME)
    assert counter.json()["tasks_open"] == 2


# -- no writes, no calls --------------------------------------------------------------


async def test_request_without_writes_makes_no_dynamodb_call(
    http: httpx.AsyncClient, aiodynamo_transport: AiodynamoTransport
) -> None:
    before = aiodynamo_transport.calls
    for _ in range(3):
        response = await http.get("/noop", headers=ACME)
        assert response.json() == {"tenant": "acme"}
    assert aiodynamo_transport.calls == before
    await http.get("/items/p/1", headers=ACME)  # a read is one call (plus the table check)
    assert aiodynamo_transport.calls == before + 2
    await http.get("/items/p/1", headers=ACME)
    assert aiodynamo_transport.calls == before + 3


# -- errors raised by handlers, tenants ------------------------------------------------------


async def test_get_or_404_becomes_a_problem(http: httpx.AsyncClient) -> None:
    response = await http.get("/items/p/missing", headers=ACME)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == 404


async def test_no_tenant_gets_401_but_can_use_unscoped(
    http: httpx.AsyncClient, raw: DynamoTransport, dynamodb_table: TableSpec
) -> None:
    response = await http.get("/items/p/1")
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    response = await http.post("/write", json={"items": [{"pk": "p", "sk": "1"}]})
    assert response.status_code == 401
    assert await stored(raw, dynamodb_table) == []
    assert (await http.get("/noop")).json() == {"tenant": None}
    await raw.request(
        "PutItem",
        {"TableName": dynamodb_table.name, "Item": {"pk": {"S": "global"}, "sk": {"S": "1"}}},
    )
    response = await http.get("/unscoped/global/1")
    assert response.json() == {"item": {"pk": "global", "sk": "1"}}


async def test_tenants_cannot_read_each_other(http: httpx.AsyncClient) -> None:
    items = [{"pk": "projects", "sk": f"p{i}"} for i in range(3)]
    await http.post("/write", json={"items": items}, headers=ACME)
    globex = {"x-tenant": "globex"}
    assert (await http.get("/items/projects/p1", headers=globex)).status_code == 404
    assert (await http.get("/list/projects", headers=globex)).json()["items"] == []
    page = (await http.get("/list/projects?limit=2", headers=ACME)).json()
    assert [i["sk"] for i in page["items"]] == ["p0", "p1"]
    foreign = await http.get(f"/list/projects?cursor={page['next_cursor']}", headers=globex)
    assert foreign.status_code == 400
    assert foreign.json()["type"].endswith("invalid-cursor")
    own = await http.get(f"/list/projects?limit=2&cursor={page['next_cursor']}", headers=ACME)
    assert [i["sk"] for i in own.json()["items"]] == ["p2"]
    other_listing = await http.get(f"/list/tasks?cursor={page['next_cursor']}", headers=ACME)
    assert other_listing.status_code == 400
    forged = await http.get("/list/projects?cursor=eyJwayI6e319.AAAA", headers=ACME)
    assert forged.status_code == 400


async def test_current_uow_outside_a_request_raises() -> None:
    with pytest.raises(RuntimeError, match="UnitOfWorkMiddleware"):
        current_uow()


# -- streaming ---------------------------------------------------------------------------


async def test_streaming_response_commits_before_the_first_byte(
    http: httpx.AsyncClient,
) -> None:
    response = await http.get("/stream", headers=ACME)
    assert response.status_code == 200
    assert response.text == "committed-before-first-byte:yes" + "".join(
        f"|chunk{i}" for i in range(5)
    )


async def test_streaming_response_with_a_failing_commit_is_replaced(
    http: httpx.AsyncClient,
) -> None:
    assert (await http.get("/stream?once=1", headers=ACME)).status_code == 200
    again = await http.get("/stream?once=1", headers=ACME)  # the item exists now
    assert again.status_code == 409
    assert again.headers["content-type"] == "application/problem+json"
    assert "chunk" not in again.text and "committed" not in again.text


# -- 50 tenants at once ----------------------------------------------------------------------


async def test_fifty_concurrent_tenants_each_see_only_their_own(
    http: httpx.AsyncClient, raw: DynamoTransport, dynamodb_table: TableSpec
) -> None:
    async def tenant_writes(n: int) -> int:
        headers = {"x-tenant": f"tenant{n}"}
        items = [{"pk": "projects", "sk": f"t{n}-a"}, {"pk": "projects", "sk": f"t{n}-b"}]
        response = await http.post("/write", json={"items": items}, headers=headers)
        return response.status_code

    statuses = await asyncio.gather(*(tenant_writes(n) for n in range(50)))
    assert statuses == [201] * 50

    async def tenant_reads(n: int) -> list[str]:
        response = await http.get("/list/projects", headers={"x-tenant": f"tenant{n}"})
        return [item["sk"] for item in response.json()["items"]]

    listings = await asyncio.gather(*(tenant_reads(n) for n in range(50)))
    for n, listing in enumerate(listings):
        assert listing == [f"t{n}-a", f"t{n}-b"]
    assert len(await stored(raw, dynamodb_table)) == 100


# -- the table check over HTTP ----------------------------------------------------------------


async def test_missing_table_is_a_500_problem_naming_it(
    framework: str, raw: AiodynamoTransport, aiodynamo_transport: AiodynamoTransport
) -> None:
    build = starlette_app if framework == "starlette" else fastapi_app
    app = build(raw, "missing-table-abc", transport=aiodynamo_transport)
    async with client_for(app) as client:
        response = await client.get("/items/p/1", headers=ACME)
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert "missing-table-abc" in problem["detail"]
    assert "Traceback" not in response.text


async def test_wrong_key_schema_is_a_500_problem_naming_it(
    framework: str,
    raw: AiodynamoTransport,
    aiodynamo_transport: AiodynamoTransport,
    dynamodb_table_factory: Any,
) -> None:
    spec: TableSpec = dynamodb_table_factory(sk="created_at")
    build = starlette_app if framework == "starlette" else fastapi_app
    app = build(raw, spec.name, transport=aiodynamo_transport)
    async with client_for(app) as client:
        response = await client.post(
            "/write", json={"items": [{"pk": "p", "sk": "1"}]}, headers=ACME
        )
    assert response.status_code == 500
    detail = response.json()["detail"]
    assert spec.name in detail and "sort key is 'created_at', expected 'sk'" in detail


# -- lifecycle ---------------------------------------------------------------------------


async def _lifespan(app: ASGIApp) -> list[str]:
    queue: asyncio.Queue[Message] = asyncio.Queue()
    sent: list[str] = []
    await queue.put({"type": "lifespan.startup"})
    await queue.put({"type": "lifespan.shutdown"})

    async def receive() -> Message:
        return await queue.get()

    async def send(message: Message) -> None:
        sent.append(message["type"])

    await app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, receive, send)
    return sent


async def test_shared_transport_opens_lazily_and_closes_on_shutdown(
    framework: str, raw: AiodynamoTransport, dynamodb_env: str, dynamodb_table: TableSpec
) -> None:
    build = starlette_app if framework == "starlette" else fastapi_app
    app = build(raw, dynamodb_table.name, cursor_secret=SECRET)
    async with client_for(app) as client:
        assert (await client.get("/items/p/1", headers=ACME)).status_code == 404
        again = await client.get("/items/p/1", headers=ACME)
        assert again.status_code == 404
    from lift_asgi.dynamo.transport import shared_transport

    shared = shared_transport()
    assert shared._session is not None and not shared._session.closed
    assert await _lifespan(app) == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert shared._session is None


def test_a_table_arn_and_a_long_timeout_stay_accepted(
    aiodynamo_transport: AiodynamoTransport,
) -> None:
    arn = "arn:aws:dynamodb:us-east-1:123456789012:table/saas-data"  # another account's
    table = DynamoTable(arn, transport=aiodynamo_transport, timeout=2e9)
    assert table.name == arn and table.timeout == 2e9


def test_options_are_checked_at_construction(aiodynamo_transport: AiodynamoTransport) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None: ...

    cases: list[tuple[dict[str, Any], str]] = [
        ({}, "table"),
        ({"table": ""}, "table"),
        ({"table": "   "}, "table"),
        ({"table": "t-1", "timeout": 0}, "timeout"),
        ({"table": "t-1", "retry": "often"}, "retry"),
        ({"table": "t-1", "bulk_concurrency": 0}, "bulk_concurrency"),
        ({"table": "t-1", "cursor_secret": "short"}, "cursor_secret"),
        ({"table": "t-1", "tenant_attribute": ""}, "tenant_attribute"),
        ({"table": "t-1", "version_attribute": "sk"}, "table"),
        # one attribute for both: every versioned update was a 500, a create a 400
        ({"table": "t-1", "tenant_attribute": "version"}, "version_attribute"),
        ({"table": "t-1", "version_attribute": "_tenant"}, "version_attribute"),
        ({"table": "t-1", "transport": aiodynamo_transport, "client": object()}, "transport"),
        ({"table": "t-1", "transport": object()}, "transport"),
        ({"table": "t-1", "tenant_from": "state"}, "tenant_from"),
        ({"table": DynamoTable("t-1", transport=aiodynamo_transport), "timeout": 1}, "timeout"),
        # a URL without its scheme was a path: every request a 503 telling clients to retry
        ({"table": "t-1", "endpoint": "localhost:8000"}, "endpoint"),
        ({"table": "t-1", "endpoint": "not a url"}, "endpoint"),
        ({"table": "t-1", "endpoint": "http://"}, "endpoint"),
        ({"table": "t-1", "endpoint": "http://h:99999"}, "endpoint"),
        ({"table": "t-1", "endpoint": 5}, "endpoint"),
        ({"table": "t-1", "region": "us east 1"}, "region"),
        ({"table": "t-1", "region": 5}, "region"),
        ({"table": "t-1", "verify_table": "no"}, "verify_table"),
        # each escaped as a bare ValueError/OverflowError, or was taken
        ({"table": "bad name!"}, "table"),
        ({"table": "arn:aws:dynamodb:eu-west-1:12345:table/t-1"}, "table"),  # no account
        ({"table": "t-1", "timeout": 10**400}, "timeout"),
        ({"table": "t-1", "endpoint": "http://[::1"}, "endpoint"),
        ({"table": "t-1", "endpoint": "http://a b"}, "endpoint"),
        ({"table": "t-1", "region": 0}, "region"),
        ({"table": "t-1", "region": []}, "region"),
        ({"table": "t-1", "region": ""}, "region"),
    ]
    for options, option in cases:
        with pytest.raises(ConfigurationError) as caught:
            UnitOfWorkMiddleware(app, **options)
        assert caught.value.option == option, options


@pytest.mark.parametrize(
    ("variable", "value"),
    [("AWS_ENDPOINT_URL_DYNAMODB", "localhost:8000"), ("AWS_REGION", "Europe West")],
)
def test_a_bad_endpoint_or_region_in_the_environment_is_named(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError) as caught:
        DynamoTable("t-1", verify_table=False)
    assert caught.value.option == variable


def test_good_endpoints_and_regions_are_taken() -> None:
    for endpoint, region in [
        ("http://127.0.0.1:8000", "local"),
        ("https://dynamodb.eu-west-1.amazonaws.com", "eu-west-1"),
        ("http://[::1]:8000/", "us-gov-west-1"),
    ]:
        table = DynamoTable("t-1", endpoint=endpoint, region=region, verify_table=False)
        assert table.name == "t-1"


# -- with the real TenantMiddleware, the aioboto3 client and tenant_from ----------------------


async def test_behind_the_real_tenant_middleware(
    raw: AiodynamoTransport, aiodynamo_transport: AiodynamoTransport, dynamodb_table: TableSpec
) -> None:
    app = FastAPI()

    @app.post("/projects/{pid}")
    async def create(pid: str, uow: Annotated[UnitOfWork, Depends(get_uow)]) -> dict[str, str]:
        uow.put({"pk": "projects", "sk": pid}, if_absent=True)
        return {"id": pid}

    @app.get("/projects/{pid}")
    async def show(pid: str, uow: Annotated[UnitOfWork, Depends(get_uow)]) -> dict[str, Any]:
        return await uow.get_or_404("projects", pid)

    app.add_middleware(
        UnitOfWorkMiddleware, table=dynamodb_table.name, transport=aiodynamo_transport
    )
    app.add_middleware(TenantMiddleware, resolvers=[HeaderResolver()])
    async with client_for(app) as client:
        created = await client.post("/projects/p1", headers={"x-tenant-id": "acme"})
        assert created.status_code == 200
        assert (await client.get("/projects/p1", headers={"x-tenant-id": "acme"})).json() == {
            "pk": "projects",
            "sk": "p1",
        }
        assert (
            await client.get("/projects/p1", headers={"x-tenant-id": "globex"})
        ).status_code == 404
        assert (await client.get("/projects/p1")).status_code == 401
        taken = await client.post("/projects/p1", headers={"x-tenant-id": "acme"})
        assert taken.status_code == 409
    assert await stored(raw, dynamodb_table) == ["acme#projects/p1"]


async def test_aioboto3_client_through_the_middleware(
    make_app: Any, aioboto3_client: Any, raw: DynamoTransport, dynamodb_table: TableSpec
) -> None:
    app = make_app(None, client=aioboto3_client)
    async with client_for(app) as client:
        items = [{"pk": "p", "sk": "1"}, {"pk": "p", "sk": "2"}]
        assert (await client.post("/write", json={"items": items}, headers=ACME)).status_code == 201
        listing = (await client.get("/list/p", headers=ACME)).json()
        assert [i["sk"] for i in listing["items"]] == ["1", "2"]
        conflict = await client.post(
            "/write", json={"items": items, "if_absent": True}, headers=ACME
        )
        assert conflict.status_code == 409
    assert await stored(raw, dynamodb_table) == ["acme#p/1", "acme#p/2"]


async def test_tenant_from_replaces_the_state_lookup(
    raw: AiodynamoTransport, aiodynamo_transport: AiodynamoTransport, dynamodb_table: TableSpec
) -> None:
    def from_path(scope: Any) -> str | None:
        return str(scope["path"]).split("/")[2] if scope["path"].startswith("/t/") else None

    async def show(request: StarletteRequest) -> Response:
        return JSONResponse({"tenant": request.state.uow.tenant_id})

    app = Starlette(
        routes=[Route("/t/{tenant}", show)],
        middleware=[
            Middleware(
                UnitOfWorkMiddleware,
                table=dynamodb_table.name,
                transport=aiodynamo_transport,
                tenant_from=from_path,
            )
        ],
    )
    async with client_for(app) as client:
        assert (await client.get("/t/initech")).json() == {"tenant": "initech"}


async def test_websocket_and_unknown_scopes_pass_through(
    aiodynamo_transport: AiodynamoTransport,
) -> None:
    seen: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["type"])
        assert "uow" not in scope.get("state", {})

    middleware = UnitOfWorkMiddleware(app, table="t-1", transport=aiodynamo_transport)

    async def nothing() -> Message:
        return {}

    async def ignore(message: Message) -> None:
        return None

    await middleware({"type": "websocket", "state": {}}, nothing, ignore)
    assert seen == ["websocket"]


def test_an_inverted_index_is_refused_at_construction() -> None:
    """An index keyed on the table's sort key would hold that key tenant-prefixed while
    get/update address it bare: refused, naming the option, instead of splitting items."""
    from lift_asgi.dynamo.tables import GSISpec

    spec = TableSpec(name="orders", gsis=(GSISpec("inverted", pk="sk", sk="pk"),))
    with pytest.raises(ConfigurationError, match=r"^table: .*'sk' is the table's sort key"):
        UnitOfWorkMiddleware(Starlette(), table=spec)


# -- LiftErrors come out as problems however the app is wired (issue 9) -------------------


def _wrapped(framework: str, table: str, transport: DynamoTransport, **options: Any) -> ASGIApp:
    """The README's plugin-test pattern: the middleware wraps the app itself, and the app
    was given no PROBLEM_HANDLERS (its ServerErrorMiddleware would answer a plain 500)."""

    async def starlette_read(request: StarletteRequest) -> Response:
        return JSONResponse(await current_uow().get_or_404("p", request.path_params["sk"]))

    inner: Starlette
    if framework == "starlette":
        inner = Starlette(routes=[Route("/items/{sk}", starlette_read)])
    else:
        inner = FastAPI()

        @inner.get("/items/{sk}")
        async def fastapi_read(sk: str) -> dict[str, Any]:
            return await current_uow().get_or_404("p", sk)

    return UnitOfWorkMiddleware(
        inner,
        table=table,
        transport=transport,
        retry=FAST_RETRY,
        tenant_from=lambda scope: "acme",
        **options,
    )


async def test_a_wrapped_app_without_problem_handlers_answers_a_miss_with_a_404_problem(
    framework: str, aiodynamo_transport: AiodynamoTransport, dynamodb_table: TableSpec
) -> None:
    app = _wrapped(framework, dynamodb_table.name, aiodynamo_transport)
    async with client_for(app) as client:
        response = await client.get("/items/missing")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == 404


async def test_a_wrapped_app_without_problem_handlers_names_a_missing_table(
    framework: str, aiodynamo_transport: AiodynamoTransport
) -> None:
    app = _wrapped(framework, "no-such-table-xyz", aiodynamo_transport)
    async with client_for(app) as client:
        response = await client.get("/items/1")
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert "no-such-table-xyz" in response.json()["detail"]


async def test_a_wrapped_app_without_problem_handlers_answers_503_when_dynamodb_is_unreachable(
    framework: str, dynamodb_fault_proxy: Any, dynamodb_table: TableSpec
) -> None:
    transport = AiodynamoTransport.static(dynamodb_fault_proxy.endpoint)
    app = _wrapped(framework, dynamodb_table.name, transport, verify_table=False)
    dynamodb_fault_proxy.drop(times=None, operation="GetItem")
    try:
        async with client_for(app) as client:
            response = await client.get("/items/1")
    finally:
        await transport.close()
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert int(response.headers["retry-after"]) >= 1
    assert len(dynamodb_fault_proxy.calls_of("GetItem")) == FAST_RETRY.attempts


async def test_a_plain_asgi_app_raising_a_lift_error_gets_its_problem(
    aiodynamo_transport: AiodynamoTransport, dynamodb_table: TableSpec
) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await current_uow().get_or_404("p", "missing")

    wrapped = UnitOfWorkMiddleware(
        app, table=dynamodb_table.name, transport=aiodynamo_transport, tenant_from=lambda s: "a"
    )
    async with client_for(wrapped) as client:
        response = await client.get("/")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


def test_an_apps_own_lift_error_handler_is_kept(aiodynamo_transport: AiodynamoTransport) -> None:
    async def mine(request: Any, exc: Exception) -> Response:
        return Response("mine", status_code=418)

    inner = Starlette(exception_handlers={LiftError: mine})
    UnitOfWorkMiddleware(inner, table="t-1", transport=aiodynamo_transport, tenant_from=str)
    assert inner.exception_handlers[LiftError] is mine


# -- the stage contract (issue 9) ---------------------------------------------------------


async def _lifespan_messages(app: ASGIApp) -> list[Message]:
    queue: asyncio.Queue[Message] = asyncio.Queue()
    sent: list[Message] = []
    await queue.put({"type": "lifespan.startup"})

    async def receive() -> Message:
        return await queue.get()

    async def send(message: Message) -> None:
        sent.append(message)
        if message["type"] == "lifespan.startup.complete":
            await queue.put({"type": "lifespan.shutdown"})

    await app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, receive, send)
    return sent


def _untenanted(table: str, transport: DynamoTransport, handled: list[str]) -> ASGIApp:
    async def hello(request: StarletteRequest) -> Response:
        handled.append(request.url.path)
        return JSONResponse({"ok": True})

    return Starlette(
        routes=[Route("/", hello)],
        middleware=[Middleware(UnitOfWorkMiddleware, table=table, transport=transport)],
    )


async def test_without_a_tenant_stage_lifespan_startup_fails_naming_tenant_from(
    aiodynamo_transport: AiodynamoTransport, dynamodb_table: TableSpec
) -> None:
    app = _untenanted(dynamodb_table.name, aiodynamo_transport, [])
    sent = await _lifespan_messages(app)
    assert [m["type"] for m in sent] == ["lifespan.startup.failed"]
    assert "tenant_from" in sent[0]["message"]
    assert "TenantMiddleware" in sent[0]["message"]


async def test_without_a_tenant_stage_and_no_lifespan_a_request_is_a_logged_500_problem(
    aiodynamo_transport: AiodynamoTransport,
    dynamodb_table: TableSpec,
    caplog: pytest.LogCaptureFixture,
) -> None:
    handled: list[str] = []
    app = _untenanted(dynamodb_table.name, aiodynamo_transport, handled)
    async with client_for(app) as client:  # httpx's ASGITransport runs no lifespan
        response = await client.get("/")
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert "tenant_from" in response.json()["detail"]
    assert handled == []
    assert any("tenant_from" in r.getMessage() for r in caplog.records if r.levelname == "ERROR")


async def test_tenant_middleware_outside_passes_startup_and_its_exempt_paths_get_401(
    aiodynamo_transport: AiodynamoTransport, dynamodb_table: TableSpec
) -> None:
    app = FastAPI()

    @app.get("/open")
    async def open_route(uow: Uow) -> dict[str, str]:
        return {"never": "reached"}

    app.add_middleware(
        UnitOfWorkMiddleware, table=dynamodb_table.name, transport=aiodynamo_transport
    )
    app.add_middleware(TenantMiddleware, resolvers=[HeaderResolver()], exempt=["/open"])
    sent = await _lifespan_messages(app)
    assert [m["type"] for m in sent] == [
        "lifespan.startup.complete",
        "lifespan.shutdown.complete",
    ]
    async with client_for(app) as client:
        response = await client.get("/open")
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"


async def test_the_context_carries_the_stage_the_uow_and_the_commit_outcome(
    http_app_probe: tuple[ASGIApp, list[Any]],
) -> None:
    app, seen = http_app_probe
    async with client_for(app) as client:
        await client.post("/write", json={"items": [{"pk": "p", "sk": "1"}]}, headers=ACME)
        await client.get("/noop", headers=ACME)
        await client.post(
            "/write", json={"items": [{"pk": "p", "sk": "2"}], "status": 400}, headers=ACME
        )
        await client.post(
            "/write", json={"items": [{"pk": "p", "sk": "1"}], "if_absent": True}, headers=ACME
        )
    assert [ctx.commit for ctx in seen] == ["committed", "none", "discarded", "conflict"]
    assert all(ctx.stages == [TENANT, UNIT_OF_WORK] for ctx in seen)
    assert all(isinstance(ctx.uow, UnitOfWork) for ctx in seen)
    assert [ctx.uow.tenant_id for ctx in seen] == ["acme"] * 4


@pytest.fixture
def http_app_probe(
    make_app: Any, aiodynamo_transport: AiodynamoTransport
) -> tuple[ASGIApp, list[Any]]:
    inner = make_app(aiodynamo_transport)
    seen: list[Any] = []

    async def probe(scope: Any, receive: Any, send: Any) -> None:
        await inner(scope, receive, send)
        if scope["type"] == "http":
            seen.append(context(scope))

    return probe, seen


def test_the_uow_contextvar_lives_with_its_owner() -> None:
    import importlib.util

    from lift_asgi.dynamo import middleware

    assert importlib.util.find_spec("lift_asgi._context") is None  # dissolved (issue 10)
    assert not hasattr(middleware, "uow_var")  # the request context's one ContextVar


# -- DynamoTable's options pass through, not re-declared (issue 10) ----------------------------


def test_table_options_are_dynamo_tables_and_mistakes_name_them(
    aiodynamo_transport: AiodynamoTransport,
) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None: ...

    middleware = UnitOfWorkMiddleware(
        app,
        table="t-1",
        transport=aiodynamo_transport,
        timeout=2.5,
        bulk_concurrency=7,
        verify_table=False,
        retry=FAST_RETRY,
        tenant_attribute="_owner",
        version_attribute="rev",
    )
    table = middleware.table
    assert (table.timeout, table.bulk_concurrency, table.retry) == (2.5, 7, FAST_RETRY)
    assert (table.schema.tenant_attribute, table.schema.version_attribute) == ("_owner", "rev")
    with pytest.raises(ConfigurationError) as caught:
        UnitOfWorkMiddleware(app, table="t-1", timeuot=1)
    assert caught.value.option == "timeuot"
    assert "timeout" in str(caught.value)  # the message lists the real options
    ready = DynamoTable("t-1", transport=aiodynamo_transport)
    with pytest.raises(ConfigurationError) as caught:
        UnitOfWorkMiddleware(app, table=ready, tenant_attribute="_tenant")
    assert caught.value.option == "tenant_attribute"
    assert UnitOfWorkMiddleware(app, table=ready, tenant_from=str).table is ready
