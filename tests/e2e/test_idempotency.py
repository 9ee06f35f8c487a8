"""Idempotent retries over real HTTP (the contract's "Idempotent retries" section)."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest

from .conftest import (
    Tenant,
    assert_problem,
    assert_project,
    create_project,
    list_all,
    summary,
)


def key() -> str:
    return f"key-{uuid.uuid4().hex}"


def with_key(tenant: Tenant, value: str) -> dict[str, str]:
    return {**tenant.headers, "Idempotency-Key": value}


async def test_a_retry_gets_the_first_response_and_writes_nothing(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    k = key()
    first = await client.post("/projects", json={"name": "Once"}, headers=with_key(tenant, k))
    assert first.status_code == 201, first.text
    assert "idempotent-replayed" not in first.headers
    assert_project(first.json(), name="Once", version=1)
    before = (await list_all(client, "/projects", tenant), await summary(client, tenant))
    for _ in range(2):
        again = await client.post("/projects", json={"name": "Once"}, headers=with_key(tenant, k))
        assert again.status_code == 201
        assert again.content == first.content
        assert again.headers["content-type"] == first.headers["content-type"]
        assert again.headers["idempotent-replayed"] == "true"
    after = (await list_all(client, "/projects", tenant), await summary(client, tenant))
    assert after == before
    assert [p["id"] for p in after[0]] == [first.json()["id"]]
    assert after[1]["projects"] == 1


async def test_every_write_route_honours_the_key(client: httpx.AsyncClient, tenant: Tenant) -> None:
    project = await create_project(client, tenant)
    pid = project["id"]
    task = {"title": "t", "id": "t1"}
    calls = [
        ("PATCH", f"/projects/{pid}", {"name": "Renamed", "version": 1}),
        ("POST", f"/projects/{pid}/tasks", task),
        ("POST", f"/projects/{pid}/tasks:bulk", {"tasks": [{"title": "b1"}, {"title": "b2"}]}),
        ("PATCH", f"/projects/{pid}/tasks/t1", {"status": "done", "version": 1}),
        ("POST", "/imports/tasks", {"project_id": pid, "tasks": [{"title": "i1"}]}),
    ]
    for method, path, body in calls:
        k = key()
        first = await client.request(method, path, json=body, headers=with_key(tenant, k))
        assert first.status_code in (200, 201), (path, first.text)
        again = await client.request(method, path, json=body, headers=with_key(tenant, k))
        assert again.status_code == first.status_code, (path, again.text)
        assert again.content == first.content, path
        assert again.headers["idempotent-replayed"] == "true", path
    tasks = await list_all(client, f"/projects/{pid}/tasks", tenant)
    assert len(tasks) == 4  # t1, two from the bulk, one imported: each once
    counts = (await summary(client, tenant))["tasks"]
    assert counts == {"open": 3, "in_progress": 0, "done": 1}
    shown = (await client.get(f"/projects/{pid}", headers=tenant.headers)).json()
    assert shown["version"] == 2 and shown["name"] == "Renamed"


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/projects", {"name": "Other body"}),
        ("PATCH", "/projects/{pid}", {"name": "Same", "version": 1}),
        ("POST", "/projects/{pid}/tasks", {"title": "another path"}),
        ("POST", "/projects?x=1", {"name": "Same"}),
    ],
    ids=["body", "method and path", "path", "query string"],
)
async def test_the_same_key_for_another_request_is_a_422_and_writes_nothing(
    client: httpx.AsyncClient, tenant: Tenant, method: str, path: str, body: dict[str, object]
) -> None:
    k = key()
    first = await client.post("/projects", json={"name": "Same"}, headers=with_key(tenant, k))
    assert first.status_code == 201
    pid = first.json()["id"]
    before = await summary(client, tenant)
    reused = await client.request(
        method, path.format(pid=pid), json=body, headers=with_key(tenant, k)
    )
    assert_problem(reused, 422)
    assert await summary(client, tenant) == before
    assert (await client.get(f"/projects/{pid}", headers=tenant.headers)).json()["version"] == 1


async def test_a_duplicate_while_the_first_is_handled_is_a_409_with_retry_after(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    project = await create_project(client, tenant)
    body = {"project_id": project["id"], "tasks": [{"title": f"t{i}"} for i in range(3000)]}
    k = key()

    async def send() -> httpx.Response:
        return await client.post("/imports/tasks", json=body, headers=with_key(tenant, k))

    responses = await asyncio.gather(*(send() for _ in range(5)))
    executed = [
        r for r in responses if r.status_code == 200 and "idempotent-replayed" not in r.headers
    ]
    assert len(executed) == 1, [r.status_code for r in responses]
    assert executed[0].json() == {"imported": 3000}
    busy = [r for r in responses if r.status_code == 409]
    assert busy, [r.status_code for r in responses]  # a 3000-task import outlasts its duplicates
    for response in busy:
        assert_problem(response, 409)
        assert int(response.headers["retry-after"]) >= 1
    assert (await summary(client, tenant))["tasks"]["open"] == 3000
    replay = await send()
    assert replay.content == executed[0].content and replay.headers["idempotent-replayed"] == "true"


async def test_keys_belong_to_a_tenant(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    k = key()
    mine = await client.post("/projects", json={"name": "P"}, headers=with_key(tenant, k))
    theirs = await client.post("/projects", json={"name": "P"}, headers=with_key(other_tenant, k))
    assert mine.status_code == theirs.status_code == 201
    assert "idempotent-replayed" not in theirs.headers
    assert mine.json()["id"] != theirs.json()["id"]
    assert (await summary(client, other_tenant))["projects"] == 1


async def test_handler_errors_below_500_are_remembered(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    k = key()
    missing = await client.patch(
        "/projects/nope", json={"name": "x", "version": 1}, headers=with_key(tenant, k)
    )
    assert_problem(missing, 404)
    again = await client.patch(
        "/projects/nope", json={"name": "x", "version": 1}, headers=with_key(tenant, k)
    )
    assert again.status_code == 404 and again.content == missing.content
    assert again.headers["idempotent-replayed"] == "true"
    k = key()
    invalid = await client.post("/projects", json={"name": ""}, headers=with_key(tenant, k))
    assert invalid.status_code == 422
    replayed = await client.post("/projects", json={"name": ""}, headers=with_key(tenant, k))
    assert replayed.content == invalid.content
    assert replayed.headers["idempotent-replayed"] == "true"


async def test_a_refused_token_is_not_remembered(client: httpx.AsyncClient, tenant: Tenant) -> None:
    k = key()
    refused = await client.post("/projects", json={"name": "A"}, headers={"Idempotency-Key": k})
    assert_problem(refused, 401)
    accepted = await client.post("/projects", json={"name": "A"}, headers=with_key(tenant, k))
    assert accepted.status_code == 201
    assert "idempotent-replayed" not in accepted.headers


@pytest.mark.parametrize(
    "value",
    ["", "x" * 256, "caf\u00e9", "tab\there"],
    ids=["empty", "256 characters", "non-ascii", "control character"],
)
async def test_a_malformed_key_is_a_400_and_writes_nothing(
    client: httpx.AsyncClient, tenant: Tenant, value: str
) -> None:
    request = client.build_request("POST", "/projects", json={"name": "K"}, headers=tenant.headers)
    request.headers["Idempotency-Key"] = value.encode("latin-1").decode("latin-1")
    assert_problem(await client.send(request), 400)
    assert (await summary(client, tenant))["projects"] == 0


async def test_a_key_of_255_characters_is_accepted(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    k = "k" * 254 + "~"
    first = await client.post("/projects", json={"name": "L"}, headers=with_key(tenant, k))
    assert first.status_code == 201
    again = await client.post("/projects", json={"name": "L"}, headers=with_key(tenant, k))
    assert again.headers["idempotent-replayed"] == "true"


async def test_without_the_header_and_on_get_and_delete_nothing_changes(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    for _ in range(2):
        assert (
            await client.post("/projects", json={"name": "N"}, headers=tenant.headers)
        ).status_code == 201
    assert (await summary(client, tenant))["projects"] == 2
    project = (await list_all(client, "/projects", tenant))[0]
    k = key()
    for _ in range(2):
        shown = await client.get(f"/projects/{project['id']}", headers=with_key(tenant, k))
        assert shown.status_code == 200 and "idempotent-replayed" not in shown.headers
    deleted = await client.delete(f"/projects/{project['id']}", headers=with_key(tenant, k))
    assert deleted.status_code == 204
    gone = await client.delete(f"/projects/{project['id']}", headers=with_key(tenant, k))
    assert_problem(gone, 404)
    assert "idempotent-replayed" not in gone.headers


async def test_every_valid_import_fits_the_key_s_body_cap(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """5000 titles of 500 non-ASCII characters, \\u-escaped as json.dumps writes them, is
    15 MB: a key must not turn a body the route accepts into a 413. One bad status makes
    it a validation error, so nothing is written and the body's reaching the route shows."""
    import json

    from .conftest import assert_validation_error

    project = await create_project(client, tenant)
    tasks = [{"title": "é" * 500} for _ in range(5000)]
    tasks[-1]["status"] = "bogus"
    body = json.dumps({"project_id": project["id"], "tasks": tasks}).encode()
    assert len(body) > 15_000_000
    headers = {**with_key(tenant, key()), "content-type": "application/json"}
    answer = await client.post("/imports/tasks", content=body, headers=headers)
    assert_validation_error(answer, "body", "tasks")
    assert answer.json()["detail"][0]["loc"] == ["body", "tasks", 4999, "status"]
    # beyond any valid import (32 MiB), a keyed body is refused before it is read whole
    huge = b'{"project_id": "p", "tasks": [' + b" " * (33 * 1024 * 1024) + b"]}"
    assert_problem(await client.post("/imports/tasks", content=huge, headers=headers), 413)
