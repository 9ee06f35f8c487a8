"""What is and is not remembered when something fails: 5xx, failed commits, lost answers,
exceptions, expired claims, a full unit of work, DynamoDB faults on the claim."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Mapping
from typing import Any

import httpx
import pytest
from starlette.types import ASGIApp, Receive, Scope, Send

from lift_asgi.dynamo.tables import TableSpec
from lift_asgi.dynamo.transport import AiodynamoTransport, DynamoTransport
from lift_asgi.testing.faults import FaultProxy

from .conftest import ACME, Clock, Probe, build, client_for, data, live, records, scan

pytestmark = pytest.mark.dynamodb

KEYED = {**ACME, "idempotency-key": "k-1"}


class CrashesOn:
    """A transport that raises a plain exception (a bug, not a DynamoDB error) on the
    next call of ``operation``, before sending it."""

    def __init__(self, inner: DynamoTransport, operation: str) -> None:
        self.inner = inner
        self.operation = operation
        self.armed = True

    @property
    def calls(self) -> int:
        return self.inner.calls

    async def request(self, action: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        if action == self.operation and self.armed:
            self.armed = False
            raise RuntimeError("the process failed while committing")
        return await self.inner.request(action, payload)

    async def close(self) -> None:
        await self.inner.close()


@pytest.fixture
async def proxied(dynamodb_fault_proxy: FaultProxy) -> Any:
    transport = AiodynamoTransport.static(dynamodb_fault_proxy.endpoint)
    yield transport
    await transport.close()


def app_on(
    table: TableSpec, transport: DynamoTransport, probe: Probe, clock: Clock, **uow: Any
) -> ASGIApp:
    return build(table.name, transport, probe, idempotency={"clock": clock}, **uow)


async def test_a_5xx_is_not_remembered_and_the_retry_executes(
    http: httpx.AsyncClient, probe: Probe, raw: AiodynamoTransport, dynamodb_table: TableSpec
) -> None:
    probe.fail_first = 1
    failed = await http.post("/items", json={"id": "a"}, headers=KEYED)
    assert failed.status_code == 500
    assert live(await scan(raw, dynamodb_table.name)) == {}  # no data, the claim released
    retried = await http.post("/items", json={"id": "a"}, headers=KEYED)
    assert retried.status_code == 201
    assert "idempotent-replayed" not in retried.headers
    assert probe.runs == {"create": 2}
    replayed = await http.post("/items", json={"id": "a"}, headers=KEYED)
    assert replayed.content == retried.content
    assert data(await scan(raw, dynamodb_table.name))["acme#stats/counts"]["items"] == 1


async def test_a_commit_that_fails_is_released_and_the_retry_executes(
    dynamodb_fault_proxy: FaultProxy,
    proxied: AiodynamoTransport,
    probe: Probe,
    clock: Clock,
    raw: AiodynamoTransport,
    dynamodb_table: TableSpec,
) -> None:
    app = app_on(dynamodb_table, proxied, probe, clock)
    dynamodb_fault_proxy.fail(times=None, status=500, operation="TransactWriteItems")
    async with client_for(app) as client:
        failed = await client.post("/items", json={"id": "b"}, headers=KEYED)
        assert failed.status_code == 503
        assert failed.headers["content-type"] == "application/problem+json"
        assert live(await scan(raw, dynamodb_table.name)) == {}
        dynamodb_fault_proxy.reset()
        retried = await client.post("/items", json={"id": "b"}, headers=KEYED)
    assert retried.status_code == 201
    assert "idempotent-replayed" not in retried.headers
    assert probe.runs == {"create": 2}
    assert data(await scan(raw, dynamodb_table.name))["acme#stats/counts"]["items"] == 1


async def test_a_commit_refused_by_a_condition_is_not_remembered(
    http: httpx.AsyncClient, probe: Probe, raw: AiodynamoTransport, dynamodb_table: TableSpec
) -> None:
    assert (await http.post("/items", json={"id": "c"}, headers=ACME)).status_code == 201
    for _ in range(2):  # the id is taken: the commit fails, and the retry executes again
        taken = await http.post("/items", json={"id": "c"}, headers=KEYED)
        assert taken.status_code == 409
        assert "idempotent-replayed" not in taken.headers
    assert probe.runs == {"create": 3}
    assert records(live(await scan(raw, dynamodb_table.name))) == {}


async def test_a_lost_commit_answer_writes_once_and_the_retry_replays_it(
    dynamodb_fault_proxy: FaultProxy,
    proxied: AiodynamoTransport,
    probe: Probe,
    clock: Clock,
    raw: AiodynamoTransport,
    dynamodb_table: TableSpec,
) -> None:
    """The transaction lands, its answer is lost, the unit of work retries it with the
    same ClientRequestToken (DynamoDB, and the local server, answer the first outcome)."""
    app = app_on(dynamodb_table, proxied, probe, clock)
    dynamodb_fault_proxy.lose_answer(operation="TransactWriteItems")
    async with client_for(app) as client:
        first = await client.post("/items", json={"id": "d"}, headers=KEYED)
        again = await client.post("/items", json={"id": "d"}, headers=KEYED)
    sent = dynamodb_fault_proxy.calls_of("TransactWriteItems")
    assert len(sent) == 2 and len({c.payload["ClientRequestToken"] for c in sent}) == 1
    assert first.status_code == 201
    assert again.status_code == 201 and again.content == first.content
    assert again.headers["idempotent-replayed"] == "true"
    assert probe.runs == {"create": 1}
    stored = await scan(raw, dynamodb_table.name)
    assert data(stored)["acme#stats/counts"]["items"] == 1
    assert records(stored)["acme#_idempotency#k-1/_"]["state"] == "completed"


async def test_a_commit_that_landed_though_every_retry_failed_answers_the_original(
    dynamodb_fault_proxy: FaultProxy,
    proxied: AiodynamoTransport,
    probe: Probe,
    clock: Clock,
    raw: AiodynamoTransport,
    dynamodb_table: TableSpec,
) -> None:
    """The first try lands and its answer is lost; every retry meets a 500, so the unit
    of work gives up with a 503. The record, committed with the data, says it landed:
    the client gets the handler's 201, not a 503 that would invite a second execution."""
    app = app_on(dynamodb_table, proxied, probe, clock)
    dynamodb_fault_proxy.lose_answer(operation="TransactWriteItems")
    dynamodb_fault_proxy.fail(times=None, status=500, operation="TransactWriteItems")
    async with client_for(app) as client:
        first = await client.post("/items", json={"id": "d2"}, headers=KEYED)
        dynamodb_fault_proxy.reset()
        again = await client.post("/items", json={"id": "d2"}, headers=KEYED)
    assert first.status_code == 201, first.text
    assert first.json() == {"id": "d2", "run": 1}
    assert again.content == first.content and again.headers["idempotent-replayed"] == "true"
    assert probe.runs == {"create": 1}
    assert data(await scan(raw, dynamodb_table.name))["acme#stats/counts"]["items"] == 1


async def test_a_commit_slower_than_the_timeout_writes_once(
    dynamodb_fault_proxy: FaultProxy,
    proxied: AiodynamoTransport,
    probe: Probe,
    clock: Clock,
    raw: AiodynamoTransport,
    dynamodb_table: TableSpec,
) -> None:
    """Latency past the timeout: the first try lands late, after the client gave up on it."""
    app = app_on(dynamodb_table, proxied, probe, clock, timeout=0.2)
    dynamodb_fault_proxy.delay(0.6, operation="TransactWriteItems")
    async with client_for(app) as client:
        first = await client.post("/items", json={"id": "e"}, headers=KEYED)
        await asyncio.sleep(0.6)  # let the late try land (no timing is asserted)
        again = await client.post("/items", json={"id": "e"}, headers=KEYED)
    assert first.status_code == 201
    assert again.content == first.content and again.headers["idempotent-replayed"] == "true"
    assert probe.runs == {"create": 1}
    assert data(await scan(raw, dynamodb_table.name))["acme#stats/counts"]["items"] == 1


async def test_every_commit_try_past_the_timeout_is_retry_shortly_with_a_key(
    dynamodb_fault_proxy: FaultProxy,
    proxied: AiodynamoTransport,
    probe: Probe,
    clock: Clock,
    raw: AiodynamoTransport,
    dynamodb_table: TableSpec,
) -> None:
    """Without a key this is an "outcome unknown" 503 (the tries may land later); with
    one the claim is released, the late tries fail its condition, the resend is safe."""
    app = app_on(dynamodb_table, proxied, probe, clock, timeout=0.2)
    # each try lands 1.5 s late, after the retries ran out and the record was read
    dynamodb_fault_proxy.delay(1.5, times=None, operation="TransactWriteItems")
    async with client_for(app) as client:
        first = await client.post("/items", json={"id": "u"}, headers=KEYED)
        tries = dynamodb_fault_proxy.calls_of("TransactWriteItems")
        late = len(tries)
        await asyncio.sleep(2.0)  # let the late tries land (no timing is asserted)
        # each reached the server and was cancelled by the released record's condition
        assert [call.status for call in tries] == [400] * late
        assert live(await scan(raw, dynamodb_table.name)) == {}
        dynamodb_fault_proxy.reset()
        again = await client.post("/items", json={"id": "u"}, headers=KEYED)
    assert late > 1
    assert first.status_code == 503, first.text
    assert "outcome" not in first.json()
    assert first.json()["detail"] == "The database is busy; retry shortly."
    assert again.status_code == 201
    assert probe.runs == {"create": 2}
    assert data(await scan(raw, dynamodb_table.name))["acme#stats/counts"]["items"] == 1


async def test_an_exception_after_the_handler_wrote_leaves_no_data_and_no_record(
    make: Any, probe: Probe, raw: AiodynamoTransport, dynamodb_table: TableSpec
) -> None:
    async with client_for(make(), raise_app_exceptions=False) as client:
        crashed = await client.post("/items", json={"id": "f", "raise": True}, headers=KEYED)
        assert crashed.status_code == 500
        assert live(await scan(raw, dynamodb_table.name)) == {}
        retried = await client.post("/items", json={"id": "f", "raise": True}, headers=KEYED)
    assert retried.status_code == 500
    assert probe.runs == {"create": 2}  # not remembered: the retry executed


async def test_a_crash_during_the_commit_leaves_no_data_and_no_completed_record(
    transport: AiodynamoTransport,
    probe: Probe,
    clock: Clock,
    raw: AiodynamoTransport,
    dynamodb_table: TableSpec,
) -> None:
    crashing = CrashesOn(transport, "TransactWriteItems")
    app = app_on(dynamodb_table, crashing, probe, clock)
    async with client_for(app) as client:
        crashed = await client.post("/items", json={"id": "g"}, headers=KEYED)
        assert crashed.status_code == 500
        assert crashed.headers["content-type"] == "application/problem+json"
        assert live(await scan(raw, dynamodb_table.name)) == {}
        retried = await client.post("/items", json={"id": "g"}, headers=KEYED)
    assert retried.status_code == 201
    assert probe.runs == {"create": 2}


async def test_a_unit_of_work_at_100_operations_is_refused_before_anything_commits(
    http: httpx.AsyncClient, probe: Probe, raw: AiodynamoTransport, dynamodb_table: TableSpec
) -> None:
    refused = await http.post("/many", headers=KEYED)
    assert refused.status_code == 500
    assert refused.headers["content-type"] == "application/problem+json"
    assert "no room" in refused.json()["detail"]
    assert live(await scan(raw, dynamodb_table.name)) == {}
    assert (await http.post("/many", headers=ACME)).status_code == 201  # without a key: fine


async def test_an_expired_claim_is_retaken_and_the_stale_request_cannot_commit(
    http: httpx.AsyncClient,
    probe: Probe,
    clock: Clock,
    raw: AiodynamoTransport,
    dynamodb_table: TableSpec,
) -> None:
    probe.gate = asyncio.Event()
    stale = asyncio.create_task(http.post("/items", json={"id": "h"}, headers=KEYED))
    await probe.entered.wait()
    assert (await http.post("/items", json={"id": "h"}, headers=KEYED)).status_code == 409
    clock.now += 61  # past the 60 s in-progress expiry: the first is presumed dead
    retaken = await http.post("/items", json={"id": "h"}, headers=KEYED)
    assert retaken.status_code == 201
    probe.gate.set()
    late = await stale
    assert late.status_code == 409
    assert late.json()["type"].endswith("idempotency-claim-lost")
    assert probe.runs == {"create": 2}
    assert data(await scan(raw, dynamodb_table.name))["acme#stats/counts"]["items"] == 1
    replayed = await http.post("/items", json={"id": "h"}, headers=KEYED)
    assert replayed.content == retaken.content


class _Deadline:
    def get_remaining_time_in_millis(self) -> int:
        return 12_345


async def test_under_lambda_the_claim_expires_at_the_invocations_deadline(
    make: Any, probe: Probe, clock: Clock, raw: AiodynamoTransport, dynamodb_table: TableSpec
) -> None:
    inner = make()

    async def under_mangum(scope: Scope, receive: Receive, send: Send) -> None:
        scope["aws.context"] = _Deadline()
        await inner(scope, receive, send)

    probe.gate = asyncio.Event()
    async with client_for(under_mangum) as client:
        first = asyncio.create_task(client.post("/items", json={"id": "i"}, headers=KEYED))
        await probe.entered.wait()
        claim = records(await scan(raw, dynamodb_table.name))["acme#_idempotency#k-1/_"]
        assert claim["state"] == "in_progress"
        assert claim["expires_at"] == math.ceil(clock.now + 12.345)
        probe.gate.set()
        assert (await first).status_code == 201


async def test_a_throttled_claim_is_retried(
    dynamodb_fault_proxy: FaultProxy,
    proxied: AiodynamoTransport,
    probe: Probe,
    clock: Clock,
    dynamodb_table: TableSpec,
) -> None:
    app = app_on(dynamodb_table, proxied, probe, clock)
    dynamodb_fault_proxy.throttle(times=2, operation="PutItem")
    async with client_for(app) as client:
        assert (await client.post("/items", json={"id": "j"}, headers=KEYED)).status_code == 201
    assert len(dynamodb_fault_proxy.calls_of("PutItem")) == 3
    assert probe.runs == {"create": 1}


async def test_dynamodb_unreachable_at_the_claim_is_a_503_and_nothing_runs(
    dynamodb_fault_proxy: FaultProxy,
    proxied: AiodynamoTransport,
    probe: Probe,
    clock: Clock,
    dynamodb_table: TableSpec,
) -> None:
    app = app_on(dynamodb_table, proxied, probe, clock)
    await _warm(app)
    dynamodb_fault_proxy.drop(times=None, operation="PutItem")
    async with client_for(app) as client:
        response = await client.post("/items", json={"id": "k"}, headers=KEYED)
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert "retry-after" in response.headers
    assert probe.runs == {}


async def test_a_lost_claim_answer_is_recognised_by_its_token(
    dynamodb_fault_proxy: FaultProxy,
    proxied: AiodynamoTransport,
    probe: Probe,
    clock: Clock,
    dynamodb_table: TableSpec,
) -> None:
    app = app_on(dynamodb_table, proxied, probe, clock)
    dynamodb_fault_proxy.lose_answer(operation="PutItem")
    async with client_for(app) as client:
        response = await client.post("/items", json={"id": "l"}, headers=KEYED)
    assert response.status_code == 201
    # the claim landed, its answer was lost; the retry's failed condition returned our token
    assert len(dynamodb_fault_proxy.calls_of("PutItem")) == 2
    assert probe.runs == {"create": 1}


@pytest.mark.parametrize("renewed", [True, False], ids=["renewed", "under-lambda"])
async def test_a_request_slower_than_the_claim_expiry_keeps_its_key_while_it_runs(
    dynamodb_table: TableSpec,
    transport: AiodynamoTransport,
    probe: Probe,
    clock: Clock,
    raw: AiodynamoTransport,
    renewed: bool,
) -> None:
    """The claim is renewed every third of in_progress_expiry while the app runs: a
    retry of a slow request (a long import under throttling) is a 409, not a second
    run alongside it whose success makes the first one's commit a claim lost. Under
    Lambda the claim lasts the invocation and is not renewed (the old behaviour)."""
    app = build(
        dynamodb_table.name,
        transport,
        probe,
        idempotency={"clock": clock, "in_progress_expiry": 1},
    )

    async def post() -> httpx.Response:
        scope = {} if renewed else {"aws.context": _Context()}
        async with client_for(_with_scope(app, scope)) as client:
            return await client.post("/items", json={"id": "s"}, headers=KEYED)

    probe.gate = asyncio.Event()
    first = asyncio.create_task(post())
    await probe.entered.wait()
    for _ in range(5):  # 2.5 s of the claim's clock pass, renewals in between
        clock.now += 0.5
        await asyncio.sleep(0.4)  # past a renewal's period (1/3 s; no timing is asserted)
    retry = await post()
    probe.gate.set()
    answered = await first
    if renewed:
        assert retry.status_code == 409, retry.text
        assert answered.status_code == 201
        assert probe.runs == {"create": 1}
    else:  # expired and retaken: the retry ran; the first lost its claim
        assert retry.status_code == 201
        assert answered.status_code == 409 and "claim" in answered.json()["type"]
        assert probe.runs == {"create": 2}
    assert data(await scan(raw, dynamodb_table.name))["acme#stats/counts"]["items"] == 1


async def test_a_renewal_that_fails_leaves_the_claim_to_its_expiry_and_the_request_runs_on(
    dynamodb_fault_proxy: FaultProxy,
    proxied: AiodynamoTransport,
    probe: Probe,
    clock: Clock,
    dynamodb_table: TableSpec,
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = build(
        dynamodb_table.name, proxied, probe, idempotency={"clock": clock, "in_progress_expiry": 1}
    )
    dynamodb_fault_proxy.fail(times=None, operation="UpdateItem")  # every renewal: a 500
    probe.gate = asyncio.Event()
    async with client_for(app) as client:
        first = asyncio.create_task(client.post("/items", json={"id": "f"}, headers=KEYED))
        await probe.entered.wait()
        await asyncio.sleep(0.8)  # two renewals' time (no timing is asserted)
        probe.gate.set()
        answered = await first
    assert answered.status_code == 201  # the claim had not expired: its commit held
    assert dynamodb_fault_proxy.calls_of("UpdateItem")  # renewals were tried
    assert any("renewing idempotency key" in r.getMessage() for r in caplog.records)


async def test_a_request_faster_than_a_renewal_makes_none_even_after_its_answer(
    dynamodb_fault_proxy: FaultProxy,
    proxied: AiodynamoTransport,
    probe: Probe,
    clock: Clock,
    dynamodb_table: TableSpec,
) -> None:
    """The first renewal waits on a timer the answer stops: no UpdateItem is sent, not
    during the request nor once a renewal's period has passed after it."""
    app = build(
        dynamodb_table.name, proxied, probe, idempotency={"clock": clock, "in_progress_expiry": 1}
    )
    async with client_for(app) as client:
        answered = await client.post("/items", json={"id": "q"}, headers=KEYED)
        await asyncio.sleep(0.5)  # past the first renewal's time (no timing is asserted)
    assert answered.status_code == 201
    assert dynamodb_fault_proxy.calls_of("TransactWriteItems")  # the request went through
    assert dynamodb_fault_proxy.calls_of("UpdateItem") == []


class _Context:
    """A Lambda context whose invocation has 1 s left (the claim's expiry under it)."""

    def get_remaining_time_in_millis(self) -> int:
        return 1000


def _with_scope(app: ASGIApp, extra: dict[str, Any]) -> ASGIApp:
    async def wrapped(scope: Any, receive: Any, send: Any) -> None:
        await app({**scope, **extra}, receive, send)

    return wrapped


async def test_a_late_copy_of_a_released_claim_does_not_take_the_key_back(
    dynamodb_fault_proxy: FaultProxy,
    proxied: AiodynamoTransport,
    probe: Probe,
    clock: Clock,
    raw: AiodynamoTransport,
    dynamodb_table: TableSpec,
) -> None:
    """The claim's first copy is slow: its resend takes the key, the handler's 500
    releases it, then the first copy lands. Deleting the claim let that copy take the
    key back for nobody: every retry was a 409 until the claim expired."""
    app = app_on(dynamodb_table, proxied, probe, clock, timeout=0.3)
    probe.fail_first = 1
    dynamodb_fault_proxy.delay(1.0, operation="PutItem")
    async with client_for(app) as client:
        failed = await client.post("/items", json={"id": "r"}, headers=KEYED)
        first_copy = dynamodb_fault_proxy.calls_of("PutItem")[0]
        await asyncio.sleep(1.0)  # let the first copy land (no timing is asserted)
        assert first_copy.fault == "delay" and first_copy.status == 400  # refused
        assert live(await scan(raw, dynamodb_table.name)) == {}
        retried = await client.post("/items", json={"id": "r"}, headers=KEYED)
    assert failed.status_code == 500
    assert retried.status_code == 201, retried.text
    assert probe.runs == {"create": 2}


async def _warm(app: ASGIApp) -> None:
    """One request without a key, so the table check is done before faults start."""
    async with client_for(app) as client:
        assert (await client.get("/items/none", headers=ACME)).status_code == 404


async def test_a_table_whose_ttl_attribute_is_expires_at_keeps_claim_and_record_apart(
    dynamodb_table_factory: Callable[..., TableSpec],
    transport: AiodynamoTransport,
    raw: AiodynamoTransport,
    probe: Probe,
    clock: Clock,
) -> None:
    """The claim's in-progress expiry is not the table's TTL attribute when that is
    named ``expires_at``: the claim keeps both deadlines, and the completion (which drops
    the in-progress one) commits instead of refusing to set and remove one attribute."""
    spec = dynamodb_table_factory(ttl_attribute="expires_at")
    app = build(spec, transport, probe, idempotency={"clock": clock})  # type: ignore[arg-type]
    probe.gate = asyncio.Event()
    async with client_for(app) as client:
        first = asyncio.create_task(client.post("/items", json={"id": "t"}, headers=KEYED))
        await probe.entered.wait()
        claim = records(await scan(raw, spec.name))["acme#_idempotency#k-1/_"]
        assert claim["claim_expires_at"] == math.ceil(clock.now + 60)
        assert claim["expires_at"] == math.ceil(clock.now + 24 * 3600)
        probe.gate.set()
        answer = await first
        assert answer.status_code == 201, answer.text
        record = records(await scan(raw, spec.name))["acme#_idempotency#k-1/_"]
        assert record["state"] == "completed" and "claim_expires_at" not in record
        assert record["expires_at"] == math.ceil(clock.now + 24 * 3600)
        replay = await client.post("/items", json={"id": "t"}, headers=KEYED)
        assert replay.headers["idempotent-replayed"] == "true"


@pytest.mark.parametrize("headers", [ACME, KEYED], ids=["no key", "keyed"])
async def test_a_background_task_runs_after_the_commit_with_or_without_a_key(
    dynamodb_table: TableSpec,
    transport: AiodynamoTransport,
    raw: AiodynamoTransport,
    probe: Probe,
    headers: dict[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The plain path commits at the response's start; a keyed request commits when its
    # held response is complete. Either way a BackgroundTask runs after the commit: its
    # failure cannot undo what the client was told, and its writes (without its own
    # `await uow.commit()`) are not committed, keyed or not.
    from starlette.applications import Starlette
    from starlette.background import BackgroundTask
    from starlette.middleware import Middleware
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    from lift_asgi.dynamo import UnitOfWorkMiddleware, current_uow
    from lift_asgi.exception_handlers import PROBLEM_HANDLERS
    from lift_asgi.idempotency import IdempotencyMiddleware
    from lift_asgi.tenancy import HeaderResolver, TenantMiddleware

    def after() -> None:
        current_uow().put({"pk": "audit", "sk": "o1"})
        raise ConnectionError("the mail server is unreachable")

    async def create(request: Request) -> Response:
        probe.ran("create")
        current_uow().put({"pk": "orders", "sk": "o1"})
        return JSONResponse({"id": "o1"}, status_code=201, background=BackgroundTask(after))

    app = Starlette(
        routes=[Route("/orders", create, methods=["POST"])],
        middleware=[
            Middleware(TenantMiddleware, resolvers=[HeaderResolver()]),
            Middleware(IdempotencyMiddleware),
            Middleware(UnitOfWorkMiddleware, table=dynamodb_table.name, transport=transport),
        ],
        exception_handlers=PROBLEM_HANDLERS,
    )
    async with client_for(app, raise_app_exceptions=False) as http:
        first = await http.post("/orders", headers=headers)
        again = await http.post("/orders", headers=headers)
    assert first.status_code == 201
    stored = await scan(raw, dynamodb_table.name)
    assert set(data(stored)) == {"acme#orders/o1"}  # the handler's write, not the task's
    lost = [r for r in caplog.records if "were discarded" in r.getMessage()]
    # each run of the task: its write is discarded, and said so, though the task raised
    assert [r.levelname for r in lost] == ["ERROR"] * probe.runs["create"]
    assert "BackgroundTask" in lost[0].getMessage()
    if headers is KEYED:
        assert again.headers["idempotent-replayed"] == "true"
        assert probe.runs["create"] == 1
        assert [record["state"] for record in records(stored).values()] == ["completed"]
    else:
        assert probe.runs["create"] == 2
