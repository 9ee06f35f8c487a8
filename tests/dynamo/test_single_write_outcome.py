"""One conditional write whose outcome is unknown: its answer lost, its connection
dropped, or its answer later than the timeout.

The commit sends it again when a second application cannot change the result; a resend
that succeeds is the commit. A resend that fails its condition may have met the first
attempt's own unheard success or another writer's state, which nothing in the item tells
apart: that, an update that adds, and retries running out are a 503 that says the
outcome is unknown. Through the fault proxy, on both transports.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import aioboto3
import pytest
from botocore.config import Config

from lift_asgi.dynamo import DynamoTable, RetryPolicy
from lift_asgi.dynamo.tables import TableSpec
from lift_asgi.dynamo.transport import Aioboto3Transport, AiodynamoTransport, DynamoTransport
from lift_asgi.errors import ConditionFailed, DynamoDBUnavailable
from lift_asgi.testing import FaultProxy

pytestmark = pytest.mark.dynamodb

RETRY = RetryPolicy(attempts=4, base_delay=0.01, max_delay=0.05, deadline=10.0)


@pytest.fixture(params=["aiodynamo", "aioboto3"])
async def transport(
    request: pytest.FixtureRequest, dynamodb_fault_proxy: FaultProxy
) -> AsyncIterator[DynamoTransport]:
    async with transport_to(request.param, dynamodb_fault_proxy.endpoint) as made:
        yield made


@contextlib.asynccontextmanager
async def transport_to(kind: str, endpoint: str) -> AsyncIterator[DynamoTransport]:
    """A transport of ``kind`` to ``endpoint``, without the client's own retries."""
    if kind == "aioboto3":
        async with aioboto3.Session().client(
            "dynamodb",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            config=Config(retries={"mode": "standard", "total_max_attempts": 1}),
        ) as client:
            yield Aioboto3Transport(client)
        return
    aiodynamo = AiodynamoTransport.static(endpoint)
    try:
        yield aiodynamo
    finally:
        await aiodynamo.close()


@pytest.fixture
async def table(
    dynamodb_table: TableSpec, transport: DynamoTransport, dynamodb_fault_proxy: FaultProxy
) -> DynamoTable:
    table = DynamoTable(dynamodb_table.name, transport=transport, retry=RETRY, timeout=0.5)
    await table.verify()
    return table


async def seed(table: DynamoTable, proxy: FaultProxy, item: dict[str, Any]) -> None:
    async with table.unit_of_work("acme") as uow:
        uow.put(item)
    proxy.reset()


async def stored(table: DynamoTable, sk: str = "s") -> dict[str, Any] | None:
    return await table.unit_of_work("acme").get("p", sk, consistent=True)


async def landed_late(proxy: FaultProxy) -> None:
    """Wait until every call the proxy held has reached the server and been answered."""
    for _ in range(200):
        if all(call.status is not None for call in proxy.calls if call.fault == "delay"):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("a delayed call never reached the server")


async def test_a_resend_after_a_dropped_connection_that_succeeds_is_the_commit(
    table: DynamoTable, dynamodb_fault_proxy: FaultProxy
) -> None:
    await seed(table, dynamodb_fault_proxy, {"pk": "p", "sk": "s", "name": "a", "version": 1})
    dynamodb_fault_proxy.drop(operation="UpdateItem")  # not forwarded: outcome unknown
    async with table.unit_of_work("acme") as uow:
        uow.update(("p", "s"), set={"name": "b"}, remove=["gone"], expect_version=1)
    assert [c.fault for c in dynamodb_fault_proxy.calls_of("UpdateItem")] == ["drop", None]
    assert await stored(table) == {"pk": "p", "sk": "s", "name": "b", "version": 2}


async def test_a_write_slower_than_the_timeout_is_committed_once(
    table: DynamoTable, dynamodb_fault_proxy: FaultProxy
) -> None:
    await seed(table, dynamodb_fault_proxy, {"pk": "p", "sk": "s", "name": "a", "version": 1})
    dynamodb_fault_proxy.delay(1.5, operation="UpdateItem")  # past the 0.5 s timeout
    async with table.unit_of_work("acme") as uow:
        uow.update(("p", "s"), set={"name": "b"}, expect_version=1)
    await landed_late(dynamodb_fault_proxy)  # the first attempt reaches the server last
    assert await stored(table) == {"pk": "p", "sk": "s", "name": "b", "version": 2}
    late = dynamodb_fault_proxy.calls_of("UpdateItem")[0]
    assert (late.fault, late.status) == ("delay", 400)  # its condition failed: not applied


@pytest.mark.parametrize("kind", ["put if_absent", "update expecting a version", "delete"])
async def test_a_lost_answer_then_a_failed_condition_is_an_unknown_outcome(
    kind: str, table: DynamoTable, dynamodb_fault_proxy: FaultProxy
) -> None:
    # The first attempt landed; its answer was lost; the resend fails its condition
    # against that very write. Nothing tells it from another writer's: a 503 saying so.
    if kind != "put if_absent":
        await seed(table, dynamodb_fault_proxy, {"pk": "p", "sk": "s", "version": 1})
    operation = {"put if_absent": "PutItem", "update expecting a version": "UpdateItem"}
    dynamodb_fault_proxy.lose_answer(operation=operation.get(kind, "DeleteItem"))
    with pytest.raises(DynamoDBUnavailable) as caught:
        async with table.unit_of_work("acme") as uow:
            if kind == "put if_absent":
                uow.put({"pk": "p", "sk": "s", "title": "once"}, if_absent=True)
            elif kind == "delete":
                uow.delete(("p", "s"), expect_version=1)
            else:
                uow.update(("p", "s"), set={"name": "b"}, expect_version=1)
    assert_unknown(caught.value)
    expected = {
        "put if_absent": {"pk": "p", "sk": "s", "title": "once"},
        "update expecting a version": {"pk": "p", "sk": "s", "name": "b", "version": 2},
        "delete": None,
    }
    assert await stored(table) == expected[kind]  # applied once


async def test_another_writers_identical_state_is_never_taken_for_this_commit(
    table: DynamoTable, dynamodb_fault_proxy: FaultProxy
) -> None:
    # Optimistic locking: B moved the item from version 1 with the same change; A's own
    # attempt was refused (409) but that answer was lost. A must not be told it won.
    await seed(table, dynamodb_fault_proxy, {"pk": "p", "sk": "s", "version": 1})
    async with table.unit_of_work("acme") as uow:
        uow.update(("p", "s"), set={"status": "done"}, expect_version=1)  # writer B
    dynamodb_fault_proxy.lose_answer(operation="UpdateItem")
    with pytest.raises(DynamoDBUnavailable) as caught:
        async with table.unit_of_work("acme") as uow:
            uow.update(("p", "s"), set={"status": "done"}, expect_version=1)  # writer A
    assert_unknown(caught.value)


async def test_a_delete_of_an_item_that_never_existed_is_not_committed_by_a_lost_answer(
    table: DynamoTable, dynamodb_fault_proxy: FaultProxy
) -> None:
    dynamodb_fault_proxy.lose_answer(operation="DeleteItem")  # the server said 409; unheard
    with pytest.raises(DynamoDBUnavailable) as caught:
        async with table.unit_of_work("acme") as uow:
            uow.delete(("never", "existed"), if_exists=True)
    assert_unknown(caught.value)


async def test_a_conflict_without_an_unknown_outcome_is_a_409(
    table: DynamoTable, dynamodb_fault_proxy: FaultProxy
) -> None:
    await seed(table, dynamodb_fault_proxy, {"pk": "p", "sk": "s", "title": "theirs"})
    with pytest.raises(ConditionFailed) as caught:
        async with table.unit_of_work("acme") as uow:
            uow.put({"pk": "p", "sk": "s", "title": "mine"}, if_absent=True)
    assert caught.value.status == 409
    assert await stored(table) == {"pk": "p", "sk": "s", "title": "theirs"}


async def test_an_update_that_adds_after_a_lost_answer_says_the_outcome_is_unknown(
    table: DynamoTable, dynamodb_fault_proxy: FaultProxy
) -> None:
    await seed(table, dynamodb_fault_proxy, {"pk": "p", "sk": "s", "n": 5, "version": 1})
    dynamodb_fault_proxy.lose_answer(operation="UpdateItem")
    with pytest.raises(DynamoDBUnavailable) as caught:
        async with table.unit_of_work("acme") as uow:
            uow.update(("p", "s"), add={"n": 1}, expect_version=1)
    assert_unknown(caught.value)
    # resent once (the expected version rules out adding twice); it landed once
    assert len(dynamodb_fault_proxy.calls_of("UpdateItem")) == 2
    assert await stored(table) == {"pk": "p", "sk": "s", "n": 6, "version": 2}


@pytest.mark.parametrize("answer", ["lost", "applied-then-500", "no-json-200"])
async def test_an_add_without_a_version_is_not_resent_and_its_outcome_is_unknown(
    table: DynamoTable, dynamodb_fault_proxy: FaultProxy, answer: str
) -> None:
    """The add landed (the proxy forwarded it); its answer was lost, a 5xx (DynamoDB
    may answer one for a request it carried out) or a 200 cut short: none says so."""
    if answer == "no-json-200" and isinstance(table.transport, Aioboto3Transport):
        pytest.skip("botocore parses a 200 that is no JSON as an empty answer (a success)")
    await seed(table, dynamodb_fault_proxy, {"pk": "p", "sk": "s", "n": 5})
    if answer == "lost":
        dynamodb_fault_proxy.lose_answer(operation="UpdateItem")
    elif answer == "applied-then-500":
        dynamodb_fault_proxy.fail(operation="UpdateItem", applied=True)
    else:
        dynamodb_fault_proxy.garble_answer(operation="UpdateItem")
    with pytest.raises(DynamoDBUnavailable) as caught:
        async with table.unit_of_work("acme") as uow:
            uow.update(("p", "s"), add={"n": 1}, if_exists=True)
    assert_unknown(caught.value)
    assert len(dynamodb_fault_proxy.calls_of("UpdateItem")) == 1  # never added twice
    assert (await stored(table) or {})["n"] == 6


async def test_a_put_answered_with_no_json_is_resent_and_the_resend_is_the_commit(
    table: DynamoTable, dynamodb_fault_proxy: FaultProxy
) -> None:
    if isinstance(table.transport, Aioboto3Transport):
        pytest.skip("botocore parses a 200 that is no JSON as an empty answer (a success)")
    dynamodb_fault_proxy.garble_answer(operation="PutItem")
    async with table.unit_of_work("acme") as uow:
        uow.put({"pk": "p", "sk": "s", "v": 1})
    assert [call.fault for call in dynamodb_fault_proxy.calls_of("PutItem")] == ["garble", None]
    assert (await stored(table) or {})["v"] == 1


async def test_retries_that_run_out_after_an_unknown_outcome_say_so(
    table: DynamoTable, dynamodb_fault_proxy: FaultProxy
) -> None:
    dynamodb_fault_proxy.lose_answer(operation="PutItem")
    dynamodb_fault_proxy.fail(times=None, operation="PutItem")
    with pytest.raises(DynamoDBUnavailable) as caught:
        async with table.unit_of_work("acme") as uow:
            uow.put({"pk": "p", "sk": "s"}, if_absent=True)
    assert_unknown(caught.value)
    assert len(dynamodb_fault_proxy.calls_of("PutItem")) == RETRY.attempts


async def test_throttling_alone_is_still_retry_shortly(
    table: DynamoTable, dynamodb_fault_proxy: FaultProxy
) -> None:
    dynamodb_fault_proxy.throttle(times=None, operation="PutItem")
    with pytest.raises(DynamoDBUnavailable) as caught:
        async with table.unit_of_work("acme") as uow:
            uow.put({"pk": "p", "sk": "s"}, if_absent=True)
    assert "outcome" not in caught.value.extra  # never applied: nothing unknown
    assert await stored(table) is None


def assert_unknown(error: DynamoDBUnavailable) -> None:
    assert error.status == 503
    assert "outcome is unknown" in error.detail
    assert "retry shortly" not in error.detail
    assert error.extra["outcome"] == "unknown"
    assert error.extra["retry_after"] == RETRY.retry_after


@pytest.fixture(params=["aiodynamo", "aioboto3"])
async def unreachable(request: pytest.FixtureRequest) -> AsyncIterator[DynamoTransport]:
    """A transport to a port nobody listens on: every call fails to connect."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        endpoint = f"http://127.0.0.1:{probe.getsockname()[1]}"
    async with transport_to(request.param, endpoint) as made:
        yield made


@pytest.mark.parametrize("writes", [1, 2], ids=["one-write", "transaction"])
async def test_a_commit_that_could_not_connect_is_retry_shortly_not_unknown(
    dynamodb_table: TableSpec, unreachable: DynamoTransport, writes: int
) -> None:
    """Nothing was sent, so nothing can have been applied: the outcome is known."""
    table = DynamoTable(
        dynamodb_table.name, transport=unreachable, retry=RETRY, timeout=2.0, verify_table=False
    )
    with pytest.raises(DynamoDBUnavailable) as caught:
        async with table.unit_of_work("acme") as uow:
            for sk in range(writes):
                uow.update(("p", str(sk)), add={"n": 1})  # never sent twice once sent
    assert "outcome" not in caught.value.extra
    assert caught.value.detail == "The database is busy; retry shortly."
    assert unreachable.calls == RETRY.attempts
