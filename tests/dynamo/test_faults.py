"""What the unit of work does when DynamoDB throttles, fails, drops or stalls.

The local server never does any of that; the fault proxy in front of it does, and
records what the client really sent (retries, ClientRequestToken).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx
import pytest
from aiodynamo.credentials import Credentials, Key
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from lift_asgi.dynamo import Attr, DynamoTable, RetryPolicy, UnitOfWorkMiddleware
from lift_asgi.dynamo.tables import TableSpec
from lift_asgi.dynamo.transport import AiodynamoTransport
from lift_asgi.errors import DynamoDBError, DynamoDBUnavailable, TransactionCancelled
from lift_asgi.testing import FaultProxy

from .conftest import FAST_RETRY, TenantFromHeader, client_for, scan

pytestmark = pytest.mark.dynamodb

ACME = {"x-tenant": "acme"}
TWO = {"items": [{"pk": "p", "sk": "1"}, {"pk": "p", "sk": "2"}]}
ONE_NEW = {"items": [{"pk": "p", "sk": "1"}], "if_absent": True}
ONE_PLAIN = {"items": [{"pk": "p", "sk": "1"}]}


@pytest.fixture
async def proxied(dynamodb_fault_proxy: FaultProxy) -> AsyncIterator[AiodynamoTransport]:
    transport = AiodynamoTransport.static(dynamodb_fault_proxy.endpoint)
    yield transport
    await transport.close()


def app_for(table: str, transport: AiodynamoTransport, **options: Any) -> Starlette:
    async def write(request: Request) -> Response:
        body = await request.json()
        uow = request.state.uow
        for item in body["items"]:
            uow.put(item, if_absent=body.get("if_absent", False))
        return JSONResponse({"ok": True}, status_code=201)

    async def read(request: Request) -> Response:
        return JSONResponse({"item": await request.state.uow.get("p", "1")})

    options.setdefault("retry", FAST_RETRY)
    return Starlette(
        routes=[Route("/write", write, methods=["POST"]), Route("/read", read)],
        middleware=[
            Middleware(TenantFromHeader),
            Middleware(UnitOfWorkMiddleware, table=table, transport=transport, **options),
        ],
    )


def slow_app(table: TableSpec, transport: AiodynamoTransport, *, attempts: int) -> Starlette:
    """An app whose DynamoDB calls time out after 0.2 s, tried ``attempts`` times."""
    return app_for(
        table.name,
        transport,
        timeout=0.2,
        retry=RetryPolicy(attempts=attempts, base_delay=0.01, max_delay=0.02),
    )


@pytest.fixture
async def http(
    dynamodb_table: TableSpec, proxied: AiodynamoTransport, dynamodb_fault_proxy: FaultProxy
) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(app_for(dynamodb_table.name, proxied)) as client:
        await client.get("/read", headers=ACME)  # the one-off DescribeTable, out of the way
        dynamodb_fault_proxy.reset()
        yield client


def tokens(proxy: FaultProxy) -> list[str]:
    return [call.payload["ClientRequestToken"] for call in proxy.calls_of("TransactWriteItems")]


async def count(raw: AiodynamoTransport, table: TableSpec) -> int:
    return len(await scan(raw, table.name))


# -- transactions: retried with one token ------------------------------------------------


@pytest.mark.parametrize(
    "fault", ["throttle", "drop", "fail500", "fail503", "throttle-code"], ids=str
)
async def test_transient_commit_faults_are_retried_with_the_same_token(
    http: httpx.AsyncClient,
    dynamodb_fault_proxy: FaultProxy,
    raw: AiodynamoTransport,
    dynamodb_table: TableSpec,
    fault: str,
) -> None:
    op = "TransactWriteItems"
    if fault == "throttle":
        dynamodb_fault_proxy.throttle(times=2, operation=op)
    elif fault == "throttle-code":
        dynamodb_fault_proxy.throttle(times=2, operation=op, code="ThrottlingException")
    elif fault == "drop":
        dynamodb_fault_proxy.drop(times=2, operation=op)
    else:
        dynamodb_fault_proxy.fail(times=2, operation=op, status=int(fault[-3:]))
    response = await http.post("/write", json=TWO, headers=ACME)
    assert response.status_code == 201, response.text
    sent = tokens(dynamodb_fault_proxy)
    assert len(sent) == 3
    assert len(set(sent)) == 1 and len(sent[0]) == 36
    assert [c.fault for c in dynamodb_fault_proxy.calls_of(op)][-1] is None
    assert await count(raw, dynamodb_table) == 2


@pytest.mark.parametrize("answer", ["applied-then-500", "no-json-200"])
async def test_a_transaction_applied_but_answered_badly_is_retried_into_its_success(
    http: httpx.AsyncClient,
    dynamodb_fault_proxy: FaultProxy,
    raw: AiodynamoTransport,
    dynamodb_table: TableSpec,
    answer: str,
) -> None:
    """The server applied it; its answer was a 5xx or a 200 that is no JSON. The resend
    carries the same token, so DynamoDB answers it without applying it again."""
    if answer == "applied-then-500":
        dynamodb_fault_proxy.fail(operation="TransactWriteItems", applied=True)
    else:
        dynamodb_fault_proxy.garble_answer(operation="TransactWriteItems")
    response = await http.post("/write", json=TWO, headers=ACME)
    assert response.status_code == 201, response.text
    sent = tokens(dynamodb_fault_proxy)
    assert len(sent) == 2 and len(set(sent)) == 1
    assert await count(raw, dynamodb_table) == 2


async def test_each_commit_gets_its_own_token(
    http: httpx.AsyncClient, dynamodb_fault_proxy: FaultProxy
) -> None:
    for _ in range(2):
        assert (await http.post("/write", json=TWO, headers=ACME)).status_code == 201
    first, second = tokens(dynamodb_fault_proxy)
    assert first != second


async def test_persistent_throttling_is_a_503_with_retry_after(
    http: httpx.AsyncClient,
    dynamodb_fault_proxy: FaultProxy,
    raw: AiodynamoTransport,
    dynamodb_table: TableSpec,
) -> None:
    dynamodb_fault_proxy.throttle(times=None, operation="TransactWriteItems")
    response = await http.post("/write", json=TWO, headers=ACME)
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert int(response.headers["retry-after"]) >= 1
    assert response.json()["retry_after"] == int(response.headers["retry-after"])
    assert '"ok"' not in response.text
    sent = tokens(dynamodb_fault_proxy)
    assert len(sent) == FAST_RETRY.attempts and len(set(sent)) == 1
    assert await count(raw, dynamodb_table) == 0


async def test_persistent_dropped_connections_are_a_503(
    http: httpx.AsyncClient, dynamodb_fault_proxy: FaultProxy
) -> None:
    dynamodb_fault_proxy.drop(times=None, operation="TransactWriteItems")
    response = await http.post("/write", json=TWO, headers=ACME)
    assert response.status_code == 503
    assert "retry-after" in response.headers
    assert len(set(tokens(dynamodb_fault_proxy))) == 1


async def test_latency_past_the_timeout_is_a_503_not_a_hung_request(
    dynamodb_table: TableSpec,
    proxied: AiodynamoTransport,
    dynamodb_fault_proxy: FaultProxy,
    raw: AiodynamoTransport,
) -> None:
    app = slow_app(dynamodb_table, proxied, attempts=2)
    async with client_for(app) as client:
        await client.get("/read", headers=ACME)
        dynamodb_fault_proxy.delay(0.8, times=None, operation="TransactWriteItems")
        # the guard only turns a hang into a failure; it is not a timing assertion
        response = await asyncio.wait_for(client.post("/write", json=TWO, headers=ACME), 30)
    assert response.status_code == 503
    assert "retry-after" in response.headers
    assert len(dynamodb_fault_proxy.calls_of("TransactWriteItems")) == 2
    # the tries were sent and never answered: they land later, so not "retry shortly"
    problem = response.json()
    assert problem["outcome"] == "unknown" and "Read the data" in problem["detail"]
    # what a "retry shortly" would have had the client write twice
    await until_stored(raw, dynamodb_table, 2)
    assert len(set(tokens(dynamodb_fault_proxy))) == 1


async def until_stored(raw: AiodynamoTransport, table: TableSpec, items: int) -> None:
    """Wait for late copies to land (a guard against a hang, not a timing assertion)."""
    for _ in range(200):
        if await count(raw, table) == items:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{items} items were never stored")


async def test_a_transaction_whose_every_answer_was_lost_says_its_outcome_is_unknown(
    http: httpx.AsyncClient,
    dynamodb_fault_proxy: FaultProxy,
    raw: AiodynamoTransport,
    dynamodb_table: TableSpec,
) -> None:
    dynamodb_fault_proxy.lose_answer(times=None, operation="TransactWriteItems")
    response = await http.post("/write", json=TWO, headers=ACME)
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["outcome"] == "unknown"
    assert await count(raw, dynamodb_table) == 2  # applied once, by the first try
    assert len(set(tokens(dynamodb_fault_proxy))) == 1


async def test_a_running_first_copy_answered_in_progress_is_an_unknown_outcome(
    dynamodb_table: TableSpec,
    proxied: AiodynamoTransport,
    dynamodb_fault_proxy: FaultProxy,
    raw: AiodynamoTransport,
) -> None:
    """What DynamoDB answers a same-token retry while the first copy still runs."""
    app = slow_app(dynamodb_table, proxied, attempts=3)
    async with client_for(app) as client:
        await client.get("/read", headers=ACME)
        dynamodb_fault_proxy.delay(0.8, operation="TransactWriteItems")
        dynamodb_fault_proxy.error(
            "TransactionInProgressException", times=None, operation="TransactWriteItems"
        )
        response = await client.post("/write", json=TWO, headers=ACME)
    assert response.status_code == 503
    assert response.json()["outcome"] == "unknown"
    faults = [call.fault for call in dynamodb_fault_proxy.calls_of("TransactWriteItems")]
    assert faults == ["delay", "error", "error"]

    await until_stored(raw, dynamodb_table, 2)


async def test_a_transaction_only_throttled_is_still_retry_shortly(
    http: httpx.AsyncClient, dynamodb_fault_proxy: FaultProxy
) -> None:
    dynamodb_fault_proxy.throttle(times=None, operation="TransactWriteItems")
    response = await http.post("/write", json=TWO, headers=ACME)
    assert response.status_code == 503
    assert "outcome" not in response.json()
    assert response.json()["detail"] == "The database is busy; retry shortly."


# -- single writes and reads -----------------------------------------------------------------


async def test_throttled_single_write_is_retried(
    http: httpx.AsyncClient, dynamodb_fault_proxy: FaultProxy
) -> None:
    dynamodb_fault_proxy.throttle(times=2, operation="PutItem")
    assert (await http.post("/write", json=ONE_NEW, headers=ACME)).status_code == 201
    assert len(dynamodb_fault_proxy.calls_of("PutItem")) == 3
    assert dynamodb_fault_proxy.calls_of("TransactWriteItems") == []


@pytest.mark.parametrize(
    "code", ["TransactionConflictException", "ReplicatedWriteConflictException"]
)
async def test_single_write_meeting_a_running_transaction_is_retried(
    http: httpx.AsyncClient, dynamodb_fault_proxy: FaultProxy, code: str
) -> None:
    """DynamoDB refuses a plain write to an item inside a running transaction; it was
    not applied, so even a conditional write is sent again (then 503 if it persists)."""
    dynamodb_fault_proxy.error(code, times=2, operation="PutItem")
    assert (await http.post("/write", json=ONE_NEW, headers=ACME)).status_code == 201
    assert [c.fault for c in dynamodb_fault_proxy.calls_of("PutItem")] == ["error", "error", None]
    dynamodb_fault_proxy.reset()
    dynamodb_fault_proxy.error(code, times=None, operation="PutItem")
    again = {"items": [{"pk": "p", "sk": "2"}], "if_absent": True}
    response = await http.post("/write", json=again, headers=ACME)
    assert response.status_code == 503
    assert int(response.headers["retry-after"]) >= 1
    assert code not in response.text


async def test_conditional_single_write_is_resent_after_an_unknown_outcome(
    http: httpx.AsyncClient, dynamodb_fault_proxy: FaultProxy
) -> None:
    # A put is the same item again: resent; the resend succeeding is the commit
    # (tests/dynamo/test_single_write_outcome.py: when it fails its condition instead).
    dynamodb_fault_proxy.drop(times=1, operation="PutItem")
    response = await http.post("/write", json=ONE_NEW, headers=ACME)
    assert response.status_code == 201
    sent = dynamodb_fault_proxy.calls_of("PutItem")
    assert [call.fault for call in sent] == ["drop", None]
    assert sent[1].payload == sent[0].payload


async def test_idempotent_single_write_is_resent_after_an_unknown_outcome(
    http: httpx.AsyncClient, dynamodb_fault_proxy: FaultProxy
) -> None:
    dynamodb_fault_proxy.drop(times=1, operation="PutItem")
    assert (await http.post("/write", json=ONE_PLAIN, headers=ACME)).status_code == 201
    assert len(dynamodb_fault_proxy.calls_of("PutItem")) == 2


async def test_reads_are_retried_then_503(
    http: httpx.AsyncClient, dynamodb_fault_proxy: FaultProxy
) -> None:
    dynamodb_fault_proxy.fail(times=1, operation="GetItem", status=500)
    assert (await http.get("/read", headers=ACME)).json() == {"item": None}
    assert len(dynamodb_fault_proxy.calls_of("GetItem")) == 2
    dynamodb_fault_proxy.throttle(times=None, operation="GetItem")
    response = await http.get("/read", headers=ACME)
    assert response.status_code == 503
    assert "retry-after" in response.headers


# -- limits the emulator does not enforce --------------------------------------------------


async def test_library_refuses_oversized_batches_and_transactions(
    dynamodb_table: TableSpec, proxied: AiodynamoTransport, dynamodb_fault_proxy: FaultProxy
) -> None:
    table = DynamoTable(dynamodb_table.name, transport=proxied, verify_table=False)

    def put(i: int) -> dict[str, Any]:
        return {"pk": {"S": "p"}, "sk": {"S": str(i)}}

    batch = {"RequestItems": {table.name: [{"PutRequest": {"Item": put(i)}} for i in range(26)]}}
    with pytest.raises(ValueError, match="at most 25"):
        await table.call("BatchWriteItem", batch)
    transaction = {
        "TransactItems": [{"Put": {"TableName": table.name, "Item": put(i)}} for i in range(101)]
    }
    with pytest.raises(ValueError, match="at most 100"):
        await table.call("TransactWriteItems", transaction)
    keys = {"RequestItems": {table.name: {"Keys": [put(i) for i in range(101)]}}}
    with pytest.raises(ValueError, match="at most 100"):
        await table.call("BatchGetItem", keys)
    assert dynamodb_fault_proxy.calls == []


# -- transaction conflicts: the emulator cannot produce them, a stub transport can ---------


class ScriptedTransport:
    """Answers each call from a script of results or errors (for what no server does)."""

    def __init__(self, *script: Any) -> None:
        self.script = list(script)
        self.calls = 0
        self.payloads: list[tuple[str, Mapping[str, Any]]] = []

    async def request(self, action: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        self.calls += 1
        self.payloads.append((action, payload))
        step = self.script.pop(0) if self.script else {}
        if isinstance(step, Exception):
            raise step
        return dict(step)

    async def close(self) -> None:
        return None


def _conflict() -> TransactionCancelled:
    return TransactionCancelled(reasons=[None, "TransactionConflict"])


async def test_transaction_conflicts_are_retried_with_the_same_token() -> None:
    stub = ScriptedTransport(_conflict(), _conflict(), {})
    table = DynamoTable("stub-table", transport=stub, verify_table=False, retry=FAST_RETRY)
    uow = table.unit_of_work("acme")
    uow.put({"pk": "p", "sk": "1"})
    uow.put({"pk": "p", "sk": "2"})
    await uow.commit()
    sent = [payload["ClientRequestToken"] for _, payload in stub.payloads]
    assert len(sent) == 3 and len(set(sent)) == 1


async def test_endless_conflicts_are_a_503() -> None:
    stub = ScriptedTransport(*(_conflict() for _ in range(10)))
    table = DynamoTable("stub-table", transport=stub, verify_table=False, retry=FAST_RETRY)
    uow = table.unit_of_work("acme")
    uow.put({"pk": "p", "sk": "1"})
    uow.check(("p", "2"), Attr("x").exists())
    with pytest.raises(DynamoDBUnavailable) as caught:
        await uow.commit()
    assert caught.value.status == 503
    assert stub.calls == FAST_RETRY.attempts


async def test_other_cancellations_are_a_500_without_internals() -> None:
    stub = ScriptedTransport(TransactionCancelled(reasons=["ValidationError", None]))
    table = DynamoTable("stub-table", transport=stub, verify_table=False, retry=FAST_RETRY)
    uow = table.unit_of_work("acme")
    uow.put({"pk": "p", "sk": "1"})
    uow.put({"pk": "p", "sk": "2"})
    with pytest.raises(DynamoDBError) as caught:
        await uow.commit()
    error = caught.value
    assert error.status == 500 and "ValidationError" not in error.detail
    assert stub.calls == 1


class _Refreshable(Credentials):
    """Temporary credentials that a refresh replaces (counted)."""

    def __init__(self) -> None:
        self.refreshes = 0

    async def get_key(self, http: Any) -> Key:
        return Key(f"ASIA{self.refreshes}", "secret", token=f"token-{self.refreshes}")

    def invalidate(self) -> bool:
        self.refreshes += 1
        return True

    def is_disabled(self) -> bool:
        return False


async def test_expired_credentials_during_a_commit_are_refreshed_and_it_commits(
    dynamodb_table: TableSpec, dynamodb_fault_proxy: FaultProxy, raw: AiodynamoTransport
) -> None:
    credentials = _Refreshable()
    transport = AiodynamoTransport(dynamodb_fault_proxy.endpoint, credentials=credentials)
    try:
        async with client_for(app_for(dynamodb_table.name, transport)) as client:
            await client.get("/read", headers=ACME)
            dynamodb_fault_proxy.reset()
            dynamodb_fault_proxy.error("ExpiredTokenException", operation="TransactWriteItems")
            response = await client.post("/write", json=TWO, headers=ACME)
        assert response.status_code == 201, response.text
        assert credentials.refreshes == 1
        sent = tokens(dynamodb_fault_proxy)
        assert len(sent) == 2 and sent[0] == sent[1]  # the same transaction, sent again
        assert await count(raw, dynamodb_table) == 2
    finally:
        await transport.close()


async def test_create_table_throttled_is_a_503_and_closes_what_it_opened(
    dynamodb_fault_proxy: FaultProxy,
) -> None:
    from lift_asgi.dynamo.tables import create_table

    dynamodb_fault_proxy.throttle(operation="CreateTable")
    with pytest.raises(DynamoDBUnavailable):
        await create_table("never-made", endpoint=dynamodb_fault_proxy.endpoint)
    dynamodb_fault_proxy.drop(operation="CreateTable")
    with pytest.raises(DynamoDBUnavailable):
        await create_table("never-made", endpoint=dynamodb_fault_proxy.endpoint)
    assert dynamodb_fault_proxy.operations() == ["CreateTable", "CreateTable"]
