"""Projects over real HTTP: create, read, update with versions, delete, list with cursors."""

from __future__ import annotations

import httpx
import pytest

from .conftest import (
    Tenant,
    assert_invalid_parameters,
    assert_problem,
    assert_project,
    assert_rate_headers,
    assert_validation_error,
    create_project,
    create_task,
    pages,
    summary,
)


async def test_project_lifecycle(client: httpx.AsyncClient, tenant: Tenant) -> None:
    h = tenant.headers
    response = await client.post("/projects", json={"name": "Alpha"}, headers=h)
    assert response.status_code == 201, response.text
    assert_rate_headers(response, 1000)
    project = response.json()
    assert_project(project, name="Alpha", version=1)
    pid = project["id"]

    got = await client.get(f"/projects/{pid}", headers=h)
    assert got.status_code == 200 and got.json() == project

    renamed = await client.patch(f"/projects/{pid}", json={"name": "Beta", "version": 1}, headers=h)
    assert renamed.status_code == 200, renamed.text
    assert_project(renamed.json(), name="Beta", version=2)
    assert renamed.json()["id"] == pid and renamed.json()["created_at"] == project["created_at"]
    again = await client.patch(f"/projects/{pid}", json={"name": "Gamma", "version": 2}, headers=h)
    assert again.status_code == 200, again.text
    assert_project(again.json(), name="Gamma", version=3)

    for stale in (1, 2, 4):  # behind, and ahead of, the stored version
        refused = await client.patch(
            f"/projects/{pid}", json={"name": "Stale", "version": stale}, headers=h
        )
        assert_problem(refused, 409)
    current = (await client.get(f"/projects/{pid}", headers=h)).json()
    assert_project(current, name="Gamma", version=3)  # no refused update landed

    assert_problem(
        await client.patch("/projects/nope", json={"name": "x", "version": 1}, headers=h), 404
    )
    assert_problem(await client.get("/projects/nope", headers=h), 404)
    assert_problem(await client.delete("/projects/nope", headers=h), 404)

    deleted = await client.delete(f"/projects/{pid}", headers=h)
    assert deleted.status_code == 204 and deleted.content == b""
    assert_problem(await client.get(f"/projects/{pid}", headers=h), 404)
    assert_problem(await client.delete(f"/projects/{pid}", headers=h), 404)
    assert_problem(
        await client.patch(f"/projects/{pid}", json={"name": "x", "version": 3}, headers=h), 404
    )
    assert (await client.get("/projects", headers=h)).json() == {"items": [], "next_cursor": None}
    assert (await summary(client, tenant))["projects"] == 0


async def test_project_bodies_are_validated_by_fastapi(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    h = tenant.headers
    longest = await client.post("/projects", json={"name": "n" * 200}, headers=h)
    assert longest.status_code == 201, longest.text
    assert_project(longest.json(), name="n" * 200, version=1)
    pid = longest.json()["id"]
    for body in ({}, {"name": ""}, {"name": "n" * 201}, {"name": None}, {"title": "x"}):
        assert_validation_error(await client.post("/projects", json=body, headers=h), "body")
    not_json = await client.post(
        "/projects", content=b"{not json", headers={**h, "Content-Type": "application/json"}
    )
    assert_validation_error(not_json, "body")
    for body in ({"name": "x"}, {"version": 1}, {"name": "", "version": 1}):
        response = await client.patch(f"/projects/{pid}", json=body, headers=h)
        assert_validation_error(response, "body")
    listed = (await client.get("/projects", headers=h)).json()["items"]
    assert [p["id"] for p in listed] == [pid]  # nothing invalid was created
    assert_project(listed[0], name="n" * 200, version=1)  # nor updated


@pytest.mark.parametrize("text", ["\\ud800x", "x\\udfff", "\\udc00\\ud800"])
async def test_a_lone_surrogate_in_a_body_is_a_422_not_a_500(
    client: httpx.AsyncClient, tenant: Tenant, text: str
) -> None:
    """FastAPI's 422 echoes the input; a lone surrogate in it once broke the encoder."""
    h = {**tenant.headers, "Content-Type": "application/json"}
    body = b'{"name": "' + text.encode() + b'"}'
    created = await client.post("/projects", content=body, headers=h)
    assert created.status_code == 422, created.text
    assert created.headers["content-type"].startswith("application/json")
    assert isinstance(created.json()["detail"], list)
    project = (await client.post("/projects", json={"name": "p"}, headers=tenant.headers)).json()
    task = body.replace(b'"name"', b'"title"')
    answered = await client.post(f"/projects/{project['id']}/tasks", content=task, headers=h)
    assert answered.status_code == 422, answered.text
    listed = (await client.get("/projects", headers=tenant.headers)).json()["items"]
    assert [p["id"] for p in listed] == [project["id"]]


async def test_a_project_with_tasks_cannot_be_deleted(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    h = tenant.headers
    project = await create_project(client, tenant, "busy")
    await create_task(client, tenant, project["id"], title="keeps it alive")
    assert_problem(await client.delete(f"/projects/{project['id']}", headers=h), 409)
    still = await client.get(f"/projects/{project['id']}", headers=h)
    assert still.status_code == 200 and still.json() == project
    tasks = (await client.get(f"/projects/{project['id']}/tasks", headers=h)).json()["items"]
    assert len(tasks) == 1
    assert await summary(client, tenant) == {
        "projects": 1,
        "tasks": {"open": 1, "in_progress": 0, "done": 0},
    }


async def test_project_listing_pages_and_limits(client: httpx.AsyncClient, tenant: Tenant) -> None:
    h = tenant.headers
    created = [(await create_project(client, tenant, f"p{i:02d}"))["id"] for i in range(23)]

    first = await client.get("/projects", headers=h)  # limit defaults to 20
    assert first.status_code == 200, first.text
    body = first.json()
    assert body.keys() == {"items", "next_cursor"}
    assert len(body["items"]) == 20 and isinstance(body["next_cursor"], str)
    for item in body["items"]:
        assert_project(item, version=1)
    rest = await client.get("/projects", params={"cursor": body["next_cursor"]}, headers=h)
    assert rest.status_code == 200, rest.text
    assert len(rest.json()["items"]) == 3 and rest.json()["next_cursor"] is None
    default_ids = [p["id"] for p in body["items"] + rest.json()["items"]]
    assert sorted(default_ids) == sorted(created)

    by_seven = await pages(client, "/projects", tenant, limit=7)
    assert [len(page) for page in by_seven] == [7, 7, 7, 2]
    seven_ids = [p["id"] for page in by_seven for p in page]
    assert len(seven_ids) == len(set(seven_ids)) and sorted(seven_ids) == sorted(created)
    assert seven_ids == default_ids  # one order, whatever the page size

    whole = await client.get("/projects", params={"limit": 100}, headers=h)
    assert len(whole.json()["items"]) == 23 and whole.json()["next_cursor"] is None
    one = await client.get("/projects", params={"limit": 1}, headers=h)
    assert len(one.json()["items"]) == 1 and one.json()["next_cursor"] is not None
    empty = await client.get("/projects", params={"limit": 1, "cursor": ""}, headers=h)
    assert empty.json()["items"] == one.json()["items"]  # `cursor=`: the first page, no 400

    for limit in ("0", "101", "-1", "abc", "1.5"):
        response = await client.get("/projects", params={"limit": limit}, headers=h)
        assert_invalid_parameters(response, "query", "limit")


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/no-such-route", 404),
        ("PUT", "/projects", 405),
        ("DELETE", "/projects", 405),
        # no API docs are served (they would need a token, which a browser cannot send)
        ("GET", "/docs", 404),
        ("GET", "/openapi.json", 404),
    ],
)
async def test_errors_outside_the_routes_are_problems(
    client: httpx.AsyncClient, tenant: Tenant, method: str, path: str, status: int
) -> None:
    """The contract's rule for *every* error: problem+json, ``status`` = HTTP status."""
    assert_problem(await client.request(method, path, headers=tenant.headers), status)


@pytest.mark.parametrize("path", ["/projects/", "/health/", "/analytics/summary/"])
async def test_a_trailing_slash_never_redirects_to_the_clients_host(
    client: httpx.AsyncClient, tenant: Tenant, path: str
) -> None:
    """Starlette's slash redirect builds its Location from the Host header the client
    sent; the example answers a 404 problem instead of pointing anywhere."""
    headers = {**tenant.headers, "Host": "evil.example"}
    response = await client.get(path, headers=headers, follow_redirects=False)
    assert "location" not in response.headers
    assert_problem(response, 404)


@pytest.mark.parametrize(
    "bad_id",
    ["a" * 1017, "a" * 65, "x%23y", "%C3%A9t%C3%A9", "a.b"],
    ids=["past-the-key-limit", "65-chars", "hash", "non-ascii", "dot"],
)
async def test_a_path_id_no_stored_id_can_have_is_a_404_on_every_route(
    client: httpx.AsyncClient, tenant: Tenant, bad_id: str
) -> None:
    # not the key check's 400 naming a key attribute: the id names nothing that exists
    h = tenant.headers
    pid = (await create_project(client, tenant))["id"]
    tid = (await create_task(client, tenant, pid))["id"]
    answers = [
        await client.get(f"/projects/{bad_id}", headers=h),
        await client.patch(f"/projects/{bad_id}", json={"name": "x", "version": 1}, headers=h),
        await client.delete(f"/projects/{bad_id}", headers=h),
        await client.post(f"/projects/{bad_id}/tasks", json={"title": "t"}, headers=h),
        await client.post(
            f"/projects/{bad_id}/tasks:bulk", json={"tasks": [{"title": "t"}]}, headers=h
        ),
        await client.get(f"/projects/{bad_id}/tasks", headers=h),
        await client.patch(f"/projects/{bad_id}/tasks/{tid}", json={"version": 1}, headers=h),
        await client.patch(f"/projects/{pid}/tasks/{bad_id}", json={"version": 1}, headers=h),
        await client.post(
            "/imports/tasks", json={"project_id": bad_id[:64], "tasks": [{"title": "t"}]}, headers=h
        ),
    ]
    for answer in answers:
        assert_problem(answer, 404)
        assert "'sk'" not in answer.json()["detail"]
    assert (await summary(client, tenant))["projects"] == 1  # nothing written
