"""The example under DynamoDB faults, in process (ASGI) through the fault proxy: what
the end-to-end suite over uvicorn cannot provoke."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from examples.saas.app import create_app, task_item
from examples.saas.settings import Settings
from examples.saas.setup import create_tables, data_table_spec
from examples.saas.token import mint
from lift_asgi.dynamo import DynamoTable
from lift_asgi.testing import FaultProxy


@pytest.fixture
def env() -> dict[str, str]:
    suffix = uuid.uuid4().hex[:8]
    return {
        "SAAS_ENV": "dev",
        "SAAS_TABLE": f"faults-data-{suffix}",
        "SAAS_RATE_TABLE": f"faults-rate-{suffix}",
        "AWS_REGION": "us-east-1",
    }


@pytest.fixture
async def client(
    env: dict[str, str], dynamodb_env: str, dynamodb_fault_proxy: FaultProxy
) -> AsyncIterator[httpx.AsyncClient]:
    await create_tables(Settings.from_env({**env, "AWS_ENDPOINT_URL_DYNAMODB": dynamodb_env}))
    app = create_app(
        Settings.from_env({**env, "AWS_ENDPOINT_URL_DYNAMODB": dynamodb_fault_proxy.endpoint})
    )
    headers = {"authorization": f"Bearer {mint('acme', plan='enterprise')}"}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t", headers=headers) as http:
        yield http


async def _all_tasks(client: httpx.AsyncClient, project_id: str) -> list[dict[str, Any]]:
    listed: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": 100}
    while True:
        page = (await client.get(f"/projects/{project_id}/tasks", params=params)).json()
        listed += page["items"]
        if page["next_cursor"] is None:
            return listed
        params["cursor"] = page["next_cursor"]


async def test_an_import_failing_midway_leaves_exact_counters(
    client: httpx.AsyncClient, dynamodb_fault_proxy: FaultProxy
) -> None:
    project = (await client.post("/projects", json={"name": "p"})).json()
    # The first batch of 25 lands; every later batch write fails for good.
    dynamodb_fault_proxy.fail(times=None, operation="BatchWriteItem", after=1)
    tasks = [{"title": f"t{i}", "status": "open"} for i in range(60)]
    body = {"project_id": project["id"], "tasks": tasks}
    answer = await client.post("/imports/tasks", json=body)
    assert answer.status_code == 503
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["written"] == 25
    dynamodb_fault_proxy.reset()

    assert len(await _all_tasks(client, project["id"])) == 25
    summary = (await client.get("/analytics/summary")).json()
    assert summary == {"projects": 1, "tasks": {"open": 25, "in_progress": 0, "done": 0}}
    # the project's own count agrees: it cannot be deleted while tasks remain
    assert (await client.delete(f"/projects/{project['id']}")).status_code == 409


async def test_an_import_whose_batch_landed_unheard_keeps_counters_equal_to_the_listing(
    client: httpx.AsyncClient, dynamodb_fault_proxy: FaultProxy
) -> None:
    project = (await client.post("/projects", json={"name": "p"})).json()
    # The batch is applied but its answer is lost; every resend is throttled until the
    # retries give up. The tasks are all stored: read back, the import has succeeded.
    dynamodb_fault_proxy.lose_answer(operation="BatchWriteItem")
    dynamodb_fault_proxy.throttle(times=None, operation="BatchWriteItem")
    tasks = [{"title": f"t{i}"} for i in range(25)]
    answer = await client.post("/imports/tasks", json={"project_id": project["id"], "tasks": tasks})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"imported": 25}
    assert dynamodb_fault_proxy.calls_of("BatchGetItem")[0].payload["RequestItems"]
    dynamodb_fault_proxy.reset()

    assert len(await _all_tasks(client, project["id"])) == 25
    summary = (await client.get("/analytics/summary")).json()
    assert summary == {"projects": 1, "tasks": {"open": 25, "in_progress": 0, "done": 0}}
    assert (await client.delete(f"/projects/{project['id']}")).status_code == 409


async def test_an_import_that_cannot_read_back_counts_its_unknown_tasks_as_stored(
    client: httpx.AsyncClient, dynamodb_fault_proxy: FaultProxy
) -> None:
    project = (await client.post("/projects", json={"name": "p"})).json()
    dynamodb_fault_proxy.lose_answer(operation="BatchWriteItem")
    dynamodb_fault_proxy.throttle(times=None, operation="BatchWriteItem")
    dynamodb_fault_proxy.throttle(times=None, operation="BatchGetItem")
    tasks = [{"title": f"t{i}"} for i in range(25)]
    answer = await client.post("/imports/tasks", json={"project_id": project["id"], "tasks": tasks})
    assert answer.status_code == 503
    assert (answer.json()["written"], answer.json()["outcome_unknown"]) == (0, 25)
    assert "25 more may be" in answer.json()["detail"]
    dynamodb_fault_proxy.reset()
    # counted as stored (here they are): never fewer than the tasks, so no orphan
    assert len(await _all_tasks(client, project["id"])) == 25
    assert (await client.get("/analytics/summary")).json()["tasks"]["open"] == 25
    assert (await client.delete(f"/projects/{project['id']}")).status_code == 409


async def test_an_import_failing_in_its_second_status_settles_every_counter(
    client: httpx.AsyncClient, dynamodb_fault_proxy: FaultProxy
) -> None:
    project = (await client.post("/projects", json={"name": "p"})).json()
    # the open tasks' two batches land; the first done batch lands unheard; then throttled
    dynamodb_fault_proxy.lose_answer(operation="BatchWriteItem", after=2)
    dynamodb_fault_proxy.throttle(times=None, operation="BatchWriteItem")
    tasks = [{"title": f"o{i}"} for i in range(30)] + [
        {"title": f"d{i}", "status": "done"} for i in range(40)
    ]
    answer = await client.post("/imports/tasks", json={"project_id": project["id"], "tasks": tasks})
    assert answer.status_code == 503
    assert answer.json()["outcome_unknown"] == 0  # read back
    dynamodb_fault_proxy.reset()

    listed = await _all_tasks(client, project["id"])
    by_status = {s: sum(t["status"] == s for t in listed) for s in ("open", "in_progress", "done")}
    # the open tasks all landed, and the lost batch of done tasks too (25 or 15 of them,
    # whichever of the two done batches went first); the other was never written
    assert by_status["open"] == 30 and by_status["done"] in (25, 15)
    assert answer.json()["written"] == len(listed)
    summary = (await client.get("/analytics/summary")).json()
    assert summary == {"projects": 1, "tasks": by_status}


async def test_a_project_with_a_stored_task_its_count_missed_is_not_deleted(
    env: dict[str, str], client: httpx.AsyncClient, dynamodb_env: str
) -> None:
    # A batch write DynamoDB applies after the import gave up on it (and settled its
    # counts) leaves a task the project's count does not include: DELETE still sees it.
    project = (await client.post("/projects", json={"name": "p"})).json()
    table = DynamoTable(data_table_spec(env["SAAS_TABLE"]), endpoint=dynamodb_env)
    try:
        async with table.unit_of_work("acme") as uow:
            uow.put(task_item(project["id"], "late", "landed late", "open"))
    finally:
        await table.close()
    assert (await client.get(f"/projects/{project['id']}")).status_code == 200
    refused = await client.delete(f"/projects/{project['id']}")
    assert refused.status_code == 409
    assert len(await _all_tasks(client, project["id"])) == 1


async def test_an_import_whose_count_claim_meets_a_5xx_is_retried_safely(
    client: httpx.AsyncClient, dynamodb_fault_proxy: FaultProxy
) -> None:
    project = (await client.post("/projects", json={"name": "p"})).json()
    dynamodb_fault_proxy.reset()
    dynamodb_fault_proxy.fail(times=1, operation="TransactWriteItems")  # outcome unknown
    tasks = [{"title": f"t{i}", "status": "done"} for i in range(30)]
    answer = await client.post("/imports/tasks", json={"project_id": project["id"], "tasks": tasks})
    assert answer.json() == {"imported": 30}
    claims = dynamodb_fault_proxy.calls_of("TransactWriteItems")
    assert len(claims) == 2
    assert claims[0].payload["ClientRequestToken"] == claims[1].payload["ClientRequestToken"]
    # after the import, nothing else is written: no counter update that could fail late
    assert dynamodb_fault_proxy.operations()[-1] == "BatchWriteItem"
    summary = (await client.get("/analytics/summary")).json()
    assert summary["tasks"] == {"open": 0, "in_progress": 0, "done": 30}
    assert len(await _all_tasks(client, project["id"])) == 30


# -- the rate-limit table failing (examples/saas/README.md, "Rate limits": "When the
# rate-limit table cannot answer"): never past the plan's number; beyond the budget held,
# 503 with Retry-After.


@contextlib.asynccontextmanager
async def _limited_client(
    dynamodb_env: str, proxy: FaultProxy, free_rate: str, tenant: str
) -> AsyncIterator[httpx.AsyncClient]:
    """The example through the fault proxy, its free plan at ``free_rate``, as a free
    ``tenant``."""
    suffix = uuid.uuid4().hex[:8]
    env = {
        "SAAS_ENV": "dev",
        "SAAS_TABLE": f"faults-data-{suffix}",
        "SAAS_RATE_TABLE": f"faults-rate-{suffix}",
        "SAAS_RATE_FREE": free_rate,
        "AWS_REGION": "us-east-1",
    }
    await create_tables(Settings.from_env({**env, "AWS_ENDPOINT_URL_DYNAMODB": dynamodb_env}))
    app = create_app(Settings.from_env({**env, "AWS_ENDPOINT_URL_DYNAMODB": proxy.endpoint}))
    headers = {"authorization": f"Bearer {mint(f'{tenant}-{suffix}', plan='free')}"}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t", headers=headers) as http:
        yield http


@pytest.fixture
async def free_client(
    dynamodb_env: str, dynamodb_fault_proxy: FaultProxy
) -> AsyncIterator[httpx.AsyncClient]:
    async with _limited_client(dynamodb_env, dynamodb_fault_proxy, "10/minute", "free") as http:
        yield http


@pytest.mark.parametrize("fault", ["throttle", "5xx", "cut", "slow"])
async def test_a_failing_rate_limit_table_never_lets_a_free_tenant_past_its_plan(
    fault: str, free_client: httpx.AsyncClient, dynamodb_fault_proxy: FaultProxy
) -> None:
    rate_table = "faults-rate-"  # only the limiter's UpdateItem calls go to this table
    answers = [await free_client.get("/projects") for _ in range(3)]
    if fault == "throttle":
        dynamodb_fault_proxy.throttle(times=None, operation="UpdateItem")
    elif fault == "5xx":
        dynamodb_fault_proxy.fail(times=None, status=500, operation="UpdateItem")
    elif fault == "cut":
        dynamodb_fault_proxy.drop(times=None, operation="UpdateItem")
    else:  # slower than the limiter's 1 s timeout
        dynamodb_fault_proxy.delay(3.0, times=None, operation="UpdateItem")
    # (the slow table costs the limiter's 1 s timeout per call: fewer requests)
    answers += [await free_client.get("/projects") for _ in range(4 if fault == "slow" else 11)]
    assert all(
        c.payload["TableName"].startswith(rate_table)
        for c in dynamodb_fault_proxy.calls_of("UpdateItem")
    )
    statuses = [a.status_code for a in answers]
    admitted = [a for a in answers if a.status_code == 200]
    # what the table counted, and at most the units already leased from it
    assert 3 <= len(admitted) <= 10
    assert statuses == [200] * len(admitted) + [503] * (len(answers) - len(admitted))
    assert 503 in statuses
    for answer in admitted:  # every admitted response carries the headers
        assert answer.headers["x-ratelimit-limit"] == "10"
        assert {"x-ratelimit-remaining", "x-ratelimit-reset"} <= set(answer.headers)
    for answer in answers[len(admitted) :]:
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.json()["status"] == 503
        assert int(answer.headers["retry-after"]) >= 1
        assert answer.headers["x-request-id"]  # the refusals an operator looks up too
        # "every limited response carries" them: as a refusal's, the count unread
        assert answer.headers["x-ratelimit-limit"] == "10"
        assert answer.headers["x-ratelimit-remaining"] == "0"
        assert int(answer.headers["x-ratelimit-reset"]) >= int(answer.headers["retry-after"])
    dynamodb_fault_proxy.reset()
    for _ in range(40):  # a throttled key backs off (at most 2 s) before it asks again
        after = await free_client.get("/projects")
        if after.status_code == 200:
            break
        await asyncio.sleep(0.1)
    assert after.status_code == 200
    left = int(after.headers["x-ratelimit-remaining"])
    if after.headers["x-ratelimit-reset"] == admitted[-1].headers["x-ratelimit-reset"]:
        assert left <= 10 - len(admitted) - 1  # the same window still counts them
    else:  # the minute turned during the test (the slow table takes seconds): a new one
        assert left == 9
    assert (await free_client.get("/health")).status_code == 200


async def test_a_hot_tenants_data_request_makes_one_dynamodb_call(
    client: httpx.AsyncClient, dynamodb_fault_proxy: FaultProxy
) -> None:
    dynamodb_fault_proxy.reset()
    for _ in range(40):
        answer = await client.get("/projects")
        assert answer.status_code == 200 and "x-ratelimit-remaining" in answer.headers
    operations = dynamodb_fault_proxy.operations()
    assert operations.count("Query") == 40
    # leased budgets: the limiter's own writes are a handful, not one per request (two
    # single units, the slow start of requests milliseconds apart, then by the rate)
    assert operations.count("UpdateItem") <= 6


# -- a single conditional write whose answer is lost or late ------------------------


async def test_a_rename_whose_connection_dropped_is_sent_again_and_answered_200(
    env: dict[str, str], client: httpx.AsyncClient, dynamodb_fault_proxy: FaultProxy
) -> None:
    project = (await client.post("/projects", json={"name": "before"})).json()
    # PATCH is one conditional UpdateItem on the data table (expect_version=1); the rate
    # limiter's UpdateItem calls go to the other table and meet no fault
    dynamodb_fault_proxy.drop(operation="UpdateItem", table=env["SAAS_TABLE"])
    answer = await client.patch(f"/projects/{project['id']}", json={"name": "after", "version": 1})
    assert answer.status_code == 200, answer.text
    assert answer.json()["version"] == 2
    dynamodb_fault_proxy.reset()
    shown = (await client.get(f"/projects/{project['id']}")).json()
    assert (shown["name"], shown["version"]) == ("after", 2)


async def test_a_rename_whose_answer_was_lost_says_its_outcome_is_unknown(
    env: dict[str, str], client: httpx.AsyncClient, dynamodb_fault_proxy: FaultProxy
) -> None:
    project = (await client.post("/projects", json={"name": "before"})).json()
    dynamodb_fault_proxy.lose_answer(operation="UpdateItem", table=env["SAAS_TABLE"])
    answer = await client.patch(f"/projects/{project['id']}", json={"name": "after", "version": 1})
    # it landed, and the resend failed its condition against it: indistinguishable from
    # another writer's rename, so the client is told to read before sending it again
    assert answer.status_code == 503, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["outcome"] == "unknown" and "retry-after" in answer.headers
    dynamodb_fault_proxy.reset()
    shown = (await client.get(f"/projects/{project['id']}")).json()
    assert (shown["name"], shown["version"]) == ("after", 2)  # written once


# -- a keyed import: resumed by its retry, never repeated ----------------------------------


async def _keyed_import(
    client: httpx.AsyncClient, body: dict[str, Any], key: str
) -> httpx.Response:
    return await client.post("/imports/tasks", json=body, headers={"idempotency-key": key})


async def _assert_stored_once(
    client: httpx.AsyncClient, project_id: str, titles: list[str]
) -> None:
    """Each title stored once, and the counters equal to the listing."""
    listed = await _all_tasks(client, project_id)
    assert sorted(task["title"] for task in listed) == sorted(titles)
    assert len({task["id"] for task in listed}) == len(listed)
    summary = (await client.get("/analytics/summary")).json()
    assert summary["tasks"]["open"] == len(listed)


@pytest.mark.parametrize(
    ("landed", "stored"),
    [
        (1, 97),  # the second of three transactions fails: the handler answers
        (2, 194),  # the last one, which carries the record, fails: the unit of work answers
    ],
)
async def test_a_keyed_import_that_stopped_is_resumed_by_its_retry_not_repeated(
    client: httpx.AsyncClient, dynamodb_fault_proxy: FaultProxy, landed: int, stored: int
) -> None:
    project = (await client.post("/projects", json={"name": "p"})).json()
    titles = [f"t{i}" for i in range(250)]  # three transactions: 97 + 97 + 56 tasks
    body = {"project_id": project["id"], "tasks": [{"title": t} for t in titles]}
    k = uuid.uuid4().hex
    dynamodb_fault_proxy.throttle(times=None, operation="TransactWriteItems", after=landed)
    stopped = await _keyed_import(client, body, k)
    assert stopped.status_code == 503, stopped.text
    assert stopped.headers["content-type"] == "application/problem+json"
    if landed == 1:
        assert stopped.json()["written"] == stored
        assert "same Idempotency-Key" in stopped.json()["detail"]
    dynamodb_fault_proxy.reset()
    await _assert_stored_once(client, project["id"], titles[:stored])

    # not remembered: the retry executes, and writes only what the first left out
    resumed = await _keyed_import(client, body, k)
    assert resumed.status_code == 200, resumed.text
    assert "idempotent-replayed" not in resumed.headers
    assert resumed.json() == {"imported": 250}
    await _assert_stored_once(client, project["id"], titles)
    # the project's own count agrees: it is refused deletion, then the replay
    assert (await client.delete(f"/projects/{project['id']}")).status_code == 409
    replay = await _keyed_import(client, body, k)
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.content == resumed.content
    await _assert_stored_once(client, project["id"], titles)


async def test_a_keyed_import_whose_answer_was_lost_midway_stores_each_task_once(
    client: httpx.AsyncClient, dynamodb_fault_proxy: FaultProxy
) -> None:
    project = (await client.post("/projects", json={"name": "p"})).json()
    titles = [f"t{i}" for i in range(150)]
    body = {"project_id": project["id"], "tasks": [{"title": t} for t in titles]}
    # the first transaction is applied, its answer lost: sent again, it must not count twice
    dynamodb_fault_proxy.lose_answer(operation="TransactWriteItems")
    answer = await _keyed_import(client, body, uuid.uuid4().hex)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"imported": 150}
    assert any(c.lost_answer for c in dynamodb_fault_proxy.calls_of("TransactWriteItems"))
    dynamodb_fault_proxy.reset()
    await _assert_stored_once(client, project["id"], titles)


async def test_a_small_keyed_import_is_one_transaction_with_its_record(
    client: httpx.AsyncClient, dynamodb_fault_proxy: FaultProxy
) -> None:
    project = (await client.post("/projects", json={"name": "p"})).json()
    titles = [f"t{i}" for i in range(97)]
    body = {"project_id": project["id"], "tasks": [{"title": t} for t in titles]}
    dynamodb_fault_proxy.reset()
    assert (await _keyed_import(client, body, uuid.uuid4().hex)).status_code == 200
    writes = [c for c in dynamodb_fault_proxy.calls_of("TransactWriteItems")]
    assert len(writes) == 1
    items = writes[0].payload["TransactItems"]
    assert len(items) == 100  # 97 tasks, the project's count, the analytics, the record
    assert "BatchWriteItem" not in dynamodb_fault_proxy.operations()
    await _assert_stored_once(client, project["id"], titles)


@pytest.fixture
async def burst_client(
    dynamodb_env: str, dynamodb_fault_proxy: FaultProxy
) -> AsyncIterator[httpx.AsyncClient]:
    """A free plan of 3 a second, so that a window passes within a test."""
    async with _limited_client(dynamodb_env, dynamodb_fault_proxy, "3/second", "burst") as http:
        yield http


async def test_a_429_or_a_limiter_503_with_a_key_is_not_remembered(
    burst_client: httpx.AsyncClient, dynamodb_fault_proxy: FaultProxy
) -> None:
    """The contract: "A 429 ... is not remembered"; nor is a 503 from a rate-limit table
    that cannot answer. Once allowed, the same key executes, and is then remembered."""
    for _ in range(20):  # three admitted in one second, then the keyed one refused
        key = uuid.uuid4().hex
        keyed = {"idempotency-key": key}
        # named after its key: a try whose burst crossed a window may have created one
        body = {"name": f"keyed {key}"}
        answers = [await burst_client.post("/projects", json={"name": "n"}) for _ in range(3)]
        refused = await burst_client.post("/projects", json=body, headers=keyed)
        if [a.status_code for a in answers] == [201] * 3 and refused.status_code == 429:
            break
        await asyncio.sleep(1.0)  # a window boundary fell inside the burst: again
    else:
        pytest.fail("no burst of four fell inside one window")
    assert refused.headers["x-request-id"]
    assert refused.headers["x-ratelimit-limit"] == "3"
    assert "idempotent-replayed" not in refused.headers

    await asyncio.sleep(1.1)  # the next window
    dynamodb_fault_proxy.throttle(times=None, operation="UpdateItem")
    unavailable = [await burst_client.post("/projects", json=body, headers=keyed) for _ in range(4)]
    assert unavailable[-1].status_code == 503, [a.status_code for a in unavailable]
    dynamodb_fault_proxy.reset()
    await asyncio.sleep(3.1)  # a later window, well past the throttled key's back-off (2 s)

    executed = await burst_client.post("/projects", json=body, headers=keyed)
    assert executed.status_code == 201, executed.text
    if 201 not in {a.status_code for a in unavailable}:
        # neither the 429 nor the 503s were remembered: this is the first execution (a
        # request of the throttled burst admitted on budget already held would have been)
        assert "idempotent-replayed" not in executed.headers
    replay = await burst_client.post("/projects", json=body, headers=keyed)
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.content == executed.content
    names = [p["name"] for p in (await burst_client.get("/projects")).json()["items"]]
    assert names.count(body["name"]) == 1


@pytest.mark.parametrize("count", [40, 150])
async def test_a_keyed_import_sent_again_after_its_record_expired_adds_nothing_and_answers(
    env: dict[str, str], client: httpx.AsyncClient, dynamodb_env: str, count: int
) -> None:
    """Past its retention the key is forgotten (DynamoDB's TTL deletes the record): the
    same key and body then find every task stored, add none, and answer 200, not a 409
    that every later retry would repeat."""
    project = (await client.post("/projects", json={"name": "p"})).json()
    titles = [f"t{i}" for i in range(count)]
    body = {"project_id": project["id"], "tasks": [{"title": t} for t in titles]}
    k = uuid.uuid4().hex
    assert (await _keyed_import(client, body, k)).status_code == 200
    table = DynamoTable(data_table_spec(env["SAAS_TABLE"]), endpoint=dynamodb_env)
    try:  # what the TTL does, at once
        async with table.unit_of_work("acme") as uow:
            assert await uow.get(("_idempotency#" + k, "_")) is not None
            uow.delete(("_idempotency#" + k, "_"))
    finally:
        await table.close()
    again = await _keyed_import(client, body, k)
    assert again.status_code == 200, again.text
    assert "idempotent-replayed" not in again.headers
    assert again.json() == {"imported": count}
    await _assert_stored_once(client, project["id"], titles)


async def test_an_import_whose_count_correction_fails_too_says_it_overcounts(
    client: httpx.AsyncClient, dynamodb_fault_proxy: FaultProxy
) -> None:
    """Where "counts exact once the import has returned" stops: the batch writes fail,
    then the transaction that gives back the unstored tasks' counts fails as well. The
    counts then stay over (never under: the project is not deletable under a task), and
    the 503 says by how many."""
    project = (await client.post("/projects", json={"name": "p"})).json()
    dynamodb_fault_proxy.reset()
    dynamodb_fault_proxy.fail(times=None, operation="BatchWriteItem", after=1)
    dynamodb_fault_proxy.throttle(times=None, operation="TransactWriteItems", after=1)
    body = {"project_id": project["id"], "tasks": [{"title": f"t{i}"} for i in range(60)]}
    answer = await client.post("/imports/tasks", json=body)
    dynamodb_fault_proxy.reset()
    assert answer.status_code == 503, answer.text
    problem = answer.json()
    assert (problem["written"], problem["overcounted"]) == (25, 35)
    assert "count 35 tasks that are not stored" in problem["detail"]
    assert len(await _all_tasks(client, project["id"])) == 25
    summary = (await client.get("/analytics/summary")).json()
    assert summary["tasks"]["open"] == 60  # as the answer said: over by 35
    assert (await client.delete(f"/projects/{project['id']}")).status_code == 409


async def test_a_plan_of_several_windows_never_admits_past_any_of_them(
    dynamodb_env: str, dynamodb_fault_proxy: FaultProxy
) -> None:
    """The contract: "whatever the window type, no window ever admits more than the
    plan's number": a free plan of 2 a second and 3 a minute."""
    async with _limited_client(
        dynamodb_env, dynamodb_fault_proxy, "2/second;3/minute", "windows"
    ) as http:
        for _ in range(20):  # two admitted in one second, the third refused by it
            first = [(await http.get("/projects")).status_code for _ in range(3)]
            if first == [200, 200, 429]:
                break
            await asyncio.sleep(1.0)  # a second's boundary fell inside: again
        else:
            pytest.fail("no burst of three fell inside one second")
        await asyncio.sleep(1.1)  # the second's window has passed; the minute's has not
        later = [await http.get("/projects") for _ in range(3)]
    statuses = [a.status_code for a in later]
    # the minute allows one more, unless the burst straddled a minute's boundary
    assert statuses in ([200, 429, 429], [200, 200, 429]), statuses
    for answer in later:
        assert {"x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"} <= set(
            answer.headers
        )
    if statuses == [200, 429, 429]:
        assert int(later[1].headers["retry-after"]) > 1  # refused by the minute, not a second
