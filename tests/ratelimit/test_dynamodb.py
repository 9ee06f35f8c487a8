"""The DynamoDB storages and the middleware on them, against the local DynamoDB server.

Calls are counted through the transport (``transport.calls``), never timed. Faults come
from the plugin's fault proxy or from a second local server that is stopped mid-test.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import aioboto3
import limits
import pytest
from botocore.config import Config
from fastapi import FastAPI, Request
from limits.aio.strategies import FixedWindowRateLimiter, SlidingWindowCounterRateLimiter
from limits.storage import storage_from_string
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp

from lift_asgi.dynamo.tables import TableSpec
from lift_asgi.dynamo.transport import Aioboto3Transport, AiodynamoTransport
from lift_asgi.errors import ConditionFailed, ConfigurationError
from lift_asgi.local import LocalDynamoDB
from lift_asgi.ratelimit import (
    AsyncDynamoDBStorage,
    DynamoDBStorage,
    RateLimitMiddleware,
    Rule,
    api_key_digest,
    create_rate_limit_table,
    rate_limit_table_spec,
)
from lift_asgi.ratelimit.items import failed_item as _failed_item
from lift_asgi.testing.faults import FaultProxy
from lift_asgi.testing.plugin import create_local_table

from .conftest import T0, Clock, client_for, scan

pytestmark = pytest.mark.dynamodb


async def _ok(request: Any) -> JSONResponse:
    return JSONResponse({"ok": True})


def app_on(storage: Any, clock: Clock, **options: Any) -> tuple[ASGIApp, RateLimitMiddleware]:
    inner = Starlette(routes=[Route("/a", _ok), Route("/strict", _ok), Route("/lenient", _ok)])
    if "rules" not in options:
        options.setdefault("limit", "2/minute")
    options.setdefault("timeout", 10)  # a loaded machine must not look like a failure
    middleware = RateLimitMiddleware(inner, storage=storage, clock=clock, **options)
    return middleware, middleware


@pytest.fixture
def storage(
    rate_limit_table: TableSpec, transport: AiodynamoTransport, clock: Clock
) -> AsyncDynamoDBStorage:
    return AsyncDynamoDBStorage(table=rate_limit_table.name, transport=transport, clock=clock)


@pytest.fixture
async def aioboto3_client(dynamodb_endpoint: str) -> AsyncIterator[Any]:
    async with aioboto3.Session().client(
        "dynamodb",
        endpoint_url=dynamodb_endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"mode": "standard", "total_max_attempts": 1}),
    ) as client:
        yield client


async def get_item(transport: Any, table: str, key: str) -> dict[str, Any]:
    answer = await transport.request(
        "GetItem",
        {"TableName": table, "Key": {"pk": {"S": "rl#" + key}, "sk": {"S": "rl"}}},
    )
    item: dict[str, Any] = answer.get("Item", {})
    return item


async def keeps_failed_item(transport: Any, table: str) -> bool:
    """Whether this transport hands back the item of a failed condition."""
    try:
        await transport.request(
            "PutItem",
            {
                "TableName": table,
                "Item": {"pk": {"S": "probe"}, "sk": {"S": "probe"}},
                "ConditionExpression": "attribute_not_exists(pk)",
            },
        )
        await transport.request(
            "PutItem",
            {
                "TableName": table,
                "Item": {"pk": {"S": "probe"}, "sk": {"S": "probe"}},
                "ConditionExpression": "attribute_not_exists(pk)",
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            },
        )
    except ConditionFailed as exc:
        return _failed_item(exc) is not None
    raise AssertionError("the probe's condition did not fail")


# ------------------------------------------------------------------ limits' own users


async def test_limits_fixed_window_on_async_dynamodb(
    rate_limit_table: TableSpec, dynamodb_env: str
) -> None:
    # Credentials from the environment (dynamodb_env), as for any limits user.
    storage = storage_from_string(
        f"async+dynamodb://{rate_limit_table.name}?endpoint_url={dynamodb_env}&region=us-east-1"
    )
    assert isinstance(storage, AsyncDynamoDBStorage)
    limiter = FixedWindowRateLimiter(storage)
    item = limits.parse("2/minute")
    assert await storage.check()
    assert await limiter.hit(item, "alice")
    assert await limiter.hit(item, "alice")
    assert not await limiter.hit(item, "alice")
    assert not await limiter.test(item, "alice")
    assert await limiter.hit(item, "bob")
    stats = await limiter.get_window_stats(item, "alice")
    assert stats.remaining == 0 and stats.reset_time > 0
    await limiter.clear(item, "alice")
    assert await limiter.hit(item, "alice")
    assert await storage.reset() == 2  # alice and bob


async def test_limits_sliding_window_counter_on_async_dynamodb(storage: Any, clock: Clock) -> None:
    limiter = SlidingWindowCounterRateLimiter(storage)
    item = limits.parse("3/minute")
    clock.now = T0 + 30
    assert [await limiter.hit(item, "k") for _ in range(4)] == [True, True, True, False]
    previous, previous_ttl, current, current_ttl = await storage.get_sliding_window(
        item.key_for("k"), 60
    )
    assert (previous, previous_ttl, current) == (0, 0.0, 3)
    assert current_ttl == pytest.approx(90)
    clock.now = T0 + 80  # 2/3 of the previous three still count: floor(2) + 1 <= 3
    assert await limiter.hit(item, "k")
    assert not await limiter.hit(item, "k")
    await limiter.clear(item, "k")
    assert await limiter.hit(item, "k")


async def test_expired_items_are_ignored_before_ttl_deletion(
    storage: AsyncDynamoDBStorage, transport: Any, rate_limit_table: TableSpec, clock: Clock
) -> None:
    for _ in range(5):
        await storage.incr("k", 60)
    assert await storage.get("k") == 5
    clock.advance(61)
    item = await get_item(transport, rate_limit_table.name, "k")
    assert item["n"] == {"N": "5"}  # still in the table: TTL deletion runs late
    assert int(item["ttl"]["N"]) < clock.now
    assert await storage.get("k") == 0
    assert await storage.get_expiry("k") == clock.now
    assert await storage.incr("k", 60) == 1  # a fresh window, not 6


def test_storage_options_are_checked() -> None:
    with pytest.raises(ConfigurationError) as info:
        AsyncDynamoDBStorage("async+dynamodb://?region=us-east-1")
    assert info.value.option == "table"
    with pytest.raises(ConfigurationError) as info:
        AsyncDynamoDBStorage("async+dynamodb://t?endpoint=http://x")
    assert info.value.option == "endpoint"
    with pytest.raises(ConfigurationError) as info:
        DynamoDBStorage("dynamodb://t?tabel=x")
    assert info.value.option == "tabel"


async def test_create_rate_limit_table_is_idempotent(transport: AiodynamoTransport) -> None:
    name = "rl-helper-test"
    try:
        assert await create_rate_limit_table(transport, name) is True
        assert await create_rate_limit_table(transport, name) is False
        ttl = await transport.request("DescribeTimeToLive", {"TableName": name})
        assert ttl["TimeToLiveDescription"]["AttributeName"] == "ttl"
        assert rate_limit_table_spec(name).sk == "sk"
    finally:
        await transport.request("DeleteTable", {"TableName": name})


# ---------------------------------------------------------- the middleware on DynamoDB


async def test_fixed_window_across_a_boundary_ignores_expired_counters(
    storage: Any, transport: Any, rate_limit_table: TableSpec, clock: Clock
) -> None:
    app, _ = app_on(storage, clock)
    clock.now = T0 + 50
    async with client_for(app) as http:
        statuses = [(await http.get("/a")).status_code for _ in range(3)]
        assert statuses == [200, 200, 429]
    old = f"60s{int(T0 // 60)}"
    item = await get_item(transport, rate_limit_table.name, "default#127.0.0.1")
    assert item[old] == {"N": "2"} and int(item["ttl"]["N"]) == T0 + 120
    clock.now = T0 + 125  # past the TTL; the local server, like DynamoDB, has not deleted it
    fresh = AsyncDynamoDBStorage(table=rate_limit_table.name, transport=transport, clock=clock)
    app, _ = app_on(fresh, clock)  # another worker: it never saw this key
    async with client_for(app) as http:
        response = await http.get("/a")
        assert response.status_code == 200
        assert response.headers["x-ratelimit-remaining"] == "1"
        item = await get_item(transport, rate_limit_table.name, "default#127.0.0.1")
        assert item[old] == {"N": "2"}  # ignored, not reset
        assert (await http.get("/a")).headers["x-ratelimit-remaining"] == "0"
    item = await get_item(transport, rate_limit_table.name, "default#127.0.0.1")
    assert old not in item  # removed by the hit after the one that saw it


async def test_sliding_window_across_a_boundary(
    storage: Any, transport: AiodynamoTransport, clock: Clock
) -> None:
    app, _ = app_on(storage, clock, limit="4/minute", strategy="sliding-window-counter")
    clock.now = T0 + 40
    async with client_for(app) as http:
        assert [(await http.get("/a")).status_code for _ in range(5)] == [200] * 4 + [429]
        clock.now = T0 + 75  # 3/4 of the previous four count: one more fits
        calls = transport.calls
        assert (await http.get("/a")).status_code == 200
        assert transport.calls - calls == 1  # the previous count was seen: no extra call
        assert (await http.get("/a")).status_code == 429
        clock.now = T0 + 105  # 1/4 counts: floor(1) + 1 + 2 <= 4
        assert [(await http.get("/a")).status_code for _ in range(3)] == [200, 200, 429]


async def test_multi_window_is_all_or_nothing(
    storage: Any, transport: Any, rate_limit_table: TableSpec, clock: Clock
) -> None:
    app, _ = app_on(storage, clock, limit="1/second;3/minute")
    async with client_for(app) as http:
        for _ in range(3):
            assert (await http.get("/a")).status_code == 200
            assert (await http.get("/a")).status_code == 429
            clock.advance(1)
        refused = await http.get("/a")
    assert refused.status_code == 429 and refused.headers["x-ratelimit-limit"] == "3"
    item = await get_item(transport, rate_limit_table.name, "default#127.0.0.1")
    assert item[f"60s{int(T0 // 60)}"] == {"N": "3"}  # refusals were never counted


async def test_dynamodb_calls_per_request(
    rate_limit_table: TableSpec, transport: AiodynamoTransport, clock: Clock
) -> None:
    # Two middlewares on one table: two workers (or Lambda containers) of one service.
    def worker() -> RateLimitMiddleware:
        storage = AsyncDynamoDBStorage(
            table=rate_limit_table.name, transport=transport, clock=clock
        )
        return app_on(storage, clock, limit="2/minute")[1]

    first, second = worker(), worker()
    clock.now = T0 + 10

    async def calls_for(app: ASGIApp, expected_status: int) -> int:
        before = transport.calls
        async with client_for(app) as http:
            assert (await http.get("/a")).status_code == expected_status
        return transport.calls - before

    assert await calls_for(first, 200) == 1  # admitted
    assert await calls_for(first, 200) == 1  # admitted, the last unit
    assert await calls_for(first, 429) == 0  # blocked: this worker saw the last unit go
    assert await calls_for(second, 429) == 1  # refused by DynamoDB
    assert await calls_for(second, 429) == 0  # blocked
    assert second.stats.blocked == 1 and second.stats.refused == 2
    clock.advance(60)
    assert await calls_for(second, 200) == 1  # a new window: still one call


@pytest.mark.parametrize("kind", ["aiodynamo", "aioboto3"])
async def test_refusals_need_the_old_item_only_for_multi_window(
    kind: str,
    rate_limit_table: TableSpec,
    transport: AiodynamoTransport,
    aioboto3_client: Any,
    clock: Clock,
) -> None:
    used: Any = transport if kind == "aiodynamo" else Aioboto3Transport(aioboto3_client)
    keeps_item = await keeps_failed_item(used, rate_limit_table.name)
    assert keeps_item or kind == "aiodynamo"  # botocore always keeps it

    def worker() -> RateLimitMiddleware:
        storage = AsyncDynamoDBStorage(table=rate_limit_table.name, transport=used, clock=clock)
        return app_on(storage, clock, limit="1/second;5/minute")[1]

    async with client_for(worker()) as http:
        assert (await http.get("/a")).status_code == 200
    before = used.calls
    async with client_for(worker()) as http:  # another worker: nothing cached
        refused = await http.get("/a")
    assert refused.status_code == 429 and refused.headers["x-ratelimit-limit"] == "1"
    # With the old item in the error, one call; without it, one more read.
    assert used.calls - before == (1 if keeps_item else 2)


async def test_a_sliding_window_worker_that_guessed_wrong_asks_again(
    rate_limit_table: TableSpec, transport: AiodynamoTransport, clock: Clock
) -> None:
    def worker() -> RateLimitMiddleware:
        storage = AsyncDynamoDBStorage(
            table=rate_limit_table.name, transport=transport, clock=clock
        )
        return app_on(storage, clock, limit="4/minute", strategy="sliding-window-counter")[1]

    clock.now = T0 + 50
    async with client_for(worker()) as http:
        for _ in range(2):
            assert (await http.get("/a")).status_code == 200
    # Another worker, half way into the next window: it has never seen the previous count
    # (2, weighted to 1), guesses none, is told otherwise, and asks again.
    clock.now = T0 + 90
    keeps_item = await keeps_failed_item(transport, rate_limit_table.name)
    before = transport.calls
    async with client_for(worker()) as http:
        response = await http.get("/a")
    assert response.status_code == 200
    assert response.headers["x-ratelimit-remaining"] == "2"  # 4 - floor(2 * 0.5) - 1
    # Refused on its guess, then (without the old item in the error) a read, then admitted.
    assert transport.calls - before == (2 if keeps_item else 3)


@pytest.mark.parametrize("strategy", ["fixed-window", "sliding-window-counter"])
async def test_no_over_admission_under_concurrency(
    strategy: str, rate_limit_table: TableSpec, transport: Any, clock: Clock
) -> None:
    # Five workers, ten concurrent requests each, one limit of ten. Fail closed, with time
    # to spare: the serialised server is slow under 50 calls, and no request may slip by.
    workers = [
        app_on(
            AsyncDynamoDBStorage(table=rate_limit_table.name, transport=transport, clock=clock),
            clock,
            limit="10/minute",
            strategy=strategy,
            on_failure="refuse",
            timeout=60,
        )[1]
        for _ in range(5)
    ]
    clients = [client_for(app) for app in workers]
    try:
        responses = await asyncio.gather(*(http.get("/a") for http in clients for _ in range(10)))
    finally:
        for http in clients:
            await http.aclose()
    statuses = [r.status_code for r in responses]
    assert statuses.count(200) == 10 and statuses.count(429) == 40
    assert sum(worker.stats.admitted for worker in workers) == 10
    item = await get_item(transport, rate_limit_table.name, "default#127.0.0.1")
    assert item[f"60s{int(T0 // 60)}"] == {"N": "10"}


async def test_api_keys_are_never_stored_raw(
    storage: Any, transport: Any, rate_limit_table: TableSpec, clock: Clock
) -> None:
    secret = "sk_live_0123456789abcdef"
    app, _ = app_on(storage, clock, limit="1/minute", key=("api_key", "route"))
    async with client_for(app) as http:
        assert (await http.get("/a", headers={"x-api-key": secret})).status_code == 200
        assert (await http.get("/a", headers={"x-api-key": secret})).status_code == 429
        assert (await http.get("/a", headers={"x-api-key": secret + "x"})).status_code == 200
    dumped = json.dumps(await scan(transport, rate_limit_table.name))
    assert secret not in dumped
    assert api_key_digest(secret.encode()) in dumped


async def test_fastapi_with_tenant_plans_on_dynamodb(storage: Any, clock: Clock) -> None:
    from lift_asgi.tenancy import HeaderResolver, TenantMiddleware

    app = FastAPI()

    @app.get("/projects/{id}")
    async def project(id: str, request: Request) -> dict[str, str]:
        return {"id": id, "tenant": request.state.tenant.id}

    app.add_middleware(
        RateLimitMiddleware,
        limit={"free": "2/minute", "pro": "3/minute", "default": "free"},
        key="tenant",
        storage=storage,
        clock=clock,
    )
    app.add_middleware(TenantMiddleware, resolvers=[HeaderResolver()], default_plan="pro")
    async with client_for(app) as http:
        acme = [
            (await http.get(f"/projects/{n}", headers={"x-tenant-id": "acme"})).status_code
            for n in range(4)
        ]
        globex = await http.get("/projects/1", headers={"x-tenant-id": "globex"})
    assert acme == [200, 200, 200, 429]
    assert globex.status_code == 200 and globex.json()["tenant"] == "globex"
    assert globex.headers["x-ratelimit-remaining"] == "2"


# ------------------------------------------------------------------------- failures


async def test_dynamodb_stopped_open_rules_admit_refuse_rules_503(
    clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    server = LocalDynamoDB().start()
    transport = AiodynamoTransport.static(server.endpoint)
    try:
        spec = create_local_table(server.endpoint, rate_limit_table_spec("rl-stopped"))
        storage = AsyncDynamoDBStorage(table=spec.name, transport=transport, clock=clock)
        app, middleware = app_on(
            storage,
            clock,
            rules=[
                Rule("5/minute", path_prefix="/lenient", name="lenient", on_failure="open"),
                Rule("5/minute", path_prefix="/strict", name="strict", on_failure="refuse"),
            ],
        )
        async with client_for(app) as http:
            assert (await http.get("/lenient")).headers["x-ratelimit-remaining"] == "4"
            server.stop()
            caplog.set_level(logging.WARNING, logger="lift_asgi.ratelimit")
            for _ in range(3):
                admitted = await http.get("/lenient")
                assert admitted.status_code == 200
                assert "x-ratelimit-limit" not in admitted.headers
            refused = await http.get("/strict")
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "5"
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["status"] == 503
        assert middleware.stats.uncounted == 3 and middleware.stats.unavailable == 1
        warnings = [r for r in caplog.records if r.name == "lift_asgi.ratelimit"]
        assert len(warnings) == 1  # at most one warning per interval
    finally:
        server.stop()
        await transport.close()


@pytest.mark.parametrize("fault", ["throttle", "fail", "delay"])
async def test_injected_faults_open_rules_admit_refuse_rules_503(
    fault: str, dynamodb_fault_proxy: FaultProxy, rate_limit_table: TableSpec, clock: Clock
) -> None:
    transport = AiodynamoTransport.static(dynamodb_fault_proxy.endpoint)
    storage = AsyncDynamoDBStorage(table=rate_limit_table.name, transport=transport, clock=clock)
    app, middleware = app_on(
        storage,
        clock,
        timeout=1.0 if fault == "delay" else 10,
        unavailable_retry_after=2,
        rules=[
            Rule("5/minute", path_prefix="/lenient", name="lenient", on_failure="open"),
            Rule("5/minute", path_prefix="/strict", name="strict", on_failure="refuse"),
        ],
    )
    try:
        async with client_for(app) as http:
            if fault == "throttle":
                dynamodb_fault_proxy.throttle(times=2, operation="UpdateItem")
            elif fault == "fail":
                dynamodb_fault_proxy.fail(times=2, status=500)
            else:
                dynamodb_fault_proxy.delay(3.0, times=2, operation="UpdateItem")
            lenient = await http.get("/lenient")
            strict = await http.get("/strict")
            assert lenient.status_code == 200 and "x-ratelimit-limit" not in lenient.headers
            assert strict.status_code == 503 and strict.headers["retry-after"] == "2"
            assert middleware.stats.uncounted == 1 and middleware.stats.unavailable == 1
            # Faults used up: both rules count again.
            assert (await http.get("/strict")).headers["x-ratelimit-limit"] == "5"
            assert (await http.get("/lenient")).status_code == 200
    finally:
        await transport.close()


# ------------------------------------------------------------------ the sync storage


def test_slowapi_counts_in_dynamodb(rate_limit_table: TableSpec, dynamodb_env: str) -> None:
    from slowapi import Limiter, _rate_limit_exceeded_handler
    from slowapi.errors import RateLimitExceeded
    from slowapi.util import get_remote_address

    limiter = Limiter(
        key_func=get_remote_address,
        storage_uri=f"dynamodb://{rate_limit_table.name}?endpoint_url={dynamodb_env}",
    )
    app = FastAPI()
    app.state.limiter = limiter
    app.add_exception_handler(RateLimitExceeded, _rate_limit_exceeded_handler)  # type: ignore[arg-type]

    @app.get("/limited")
    @limiter.limit("2/minute")
    async def limited(request: Request) -> dict[str, bool]:
        return {"ok": True}

    async def run() -> list[int]:
        async with client_for(app) as http:
            return [(await http.get("/limited")).status_code for _ in range(3)]

    assert asyncio.run(run()) == [200, 200, 429]
    storage = limiter._storage
    assert isinstance(storage, DynamoDBStorage)
    page = storage.client.scan(TableName=rate_limit_table.name)
    counts = [item["n"]["N"] for item in page["Items"] if "n" in item]
    assert counts == ["3"]  # slowapi's fixed window counts every hit, refused or not


def test_sync_storage_sliding_window_and_expiry(
    rate_limit_table: TableSpec, dynamodb_env: str
) -> None:
    from limits.strategies import SlidingWindowCounterRateLimiter as SyncSliding

    clock = Clock(T0 + 30)
    storage = DynamoDBStorage(table=rate_limit_table.name, clock=clock)
    assert storage.check()
    sliding = SyncSliding(storage)
    item = limits.parse("2/minute")
    assert [sliding.hit(item, "s") for _ in range(3)] == [True, True, False]
    assert storage.incr("f", 10) == 1 and storage.incr("f", 10) == 2
    clock.advance(11)
    assert storage.get("f") == 0 and storage.incr("f", 10) == 1
    assert storage.calls > 0


def test_the_middleware_refuses_the_sync_storage() -> None:
    with pytest.raises(ConfigurationError) as info:
        RateLimitMiddleware(Starlette(), limit="1/minute", storage=DynamoDBStorage(table="t"))
    assert info.value.option == "storage"


async def test_limits_storage_errors_can_be_wrapped(
    dynamodb_fault_proxy: FaultProxy, rate_limit_table: TableSpec
) -> None:
    transport = AiodynamoTransport.static(dynamodb_fault_proxy.endpoint)
    storage = AsyncDynamoDBStorage(
        table=rate_limit_table.name, transport=transport, wrap_exceptions=True
    )
    dynamodb_fault_proxy.throttle(times=1)
    try:
        with pytest.raises(limits.errors.StorageError):
            await storage.incr("k", 60)
        assert await storage.incr("k", 60) == 1
    finally:
        await transport.close()
