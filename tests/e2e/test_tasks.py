"""Tasks over real HTTP: create, all-or-nothing bulk, listing by status with cursors, updates."""

from __future__ import annotations

from typing import Any

import httpx

from .conftest import (
    Tenant,
    assert_invalid_parameters,
    assert_problem,
    assert_task,
    assert_validation_error,
    create_project,
    create_task,
    list_all,
    pages,
    summary,
    tampered,
)


def counts(open_: int = 0, in_progress: int = 0, done: int = 0) -> dict[str, int]:
    return {"open": open_, "in_progress": in_progress, "done": done}


async def task_ids(client: httpx.AsyncClient, tenant: Tenant, pid: str, **params: Any) -> list[str]:
    return [t["id"] for t in await list_all(client, f"/projects/{pid}/tasks", tenant, **params)]


async def test_task_creation_and_validation(client: httpx.AsyncClient, tenant: Tenant) -> None:
    h = tenant.headers
    pid = (await create_project(client, tenant))["id"]
    path = f"/projects/{pid}/tasks"

    response = await client.post(path, json={"title": "first"}, headers=h)
    assert response.status_code == 201, response.text
    first = response.json()
    assert_task(first, project_id=pid, title="first", status="open", version=1)
    for status in ("in_progress", "done"):
        task = await create_task(client, tenant, pid, title=status, status=status)
        assert_task(task, project_id=pid, title=status, status=status, version=1)
    own = await create_task(client, tenant, pid, title="mine", id="my-Task_01")
    assert_task(own, project_id=pid, title="mine", status="open", version=1)
    assert own["id"] == "my-Task_01"
    longest = await create_task(client, tenant, pid, title="t" * 500, id="X" * 64)
    assert longest["id"] == "X" * 64 and longest["title"] == "t" * 500

    taken = await client.post(path, json={"title": "again", "id": "my-Task_01"}, headers=h)
    assert_problem(taken, 409)
    invalid_bodies: list[dict[str, Any]] = [
        {},
        {"title": ""},
        {"title": "t" * 501},
        {"title": "x", "status": "closed"},
        {"title": "x", "status": None},
        {"title": "x", "id": ""},
        {"title": "x", "id": "X" * 65},
        {"title": "x", "id": "a#b"},
        {"title": "x", "id": "a.b"},
        {"title": "x", "id": "a b"},
        {"title": "x", "id": "é"},
    ]
    for body in invalid_bodies:
        assert_validation_error(await client.post(path, json=body, headers=h), "body")
    assert_problem(await client.post("/projects/nope/tasks", json={"title": "x"}, headers=h), 404)

    listed = await list_all(client, path, tenant)
    assert len(listed) == 5
    mine = next(t for t in listed if t["id"] == "my-Task_01")
    assert mine["title"] == "mine"  # the refused duplicate did not overwrite it
    assert await summary(client, tenant) == {"projects": 1, "tasks": counts(3, 1, 1)}


async def test_bulk_is_all_or_nothing(client: httpx.AsyncClient, tenant: Tenant) -> None:
    h = tenant.headers
    pid = (await create_project(client, tenant))["id"]
    bulk = f"/projects/{pid}/tasks:bulk"
    await create_task(client, tenant, pid, title="already here", id="taken")

    batch = [
        {"title": "a", "id": "b-1"},
        {"title": "b", "status": "done"},
        {"title": "c", "id": "taken"},
        {"title": "d", "status": "in_progress", "id": "b-4"},
    ]
    assert_problem(await client.post(bulk, json={"tasks": batch}, headers=h), 409)
    twice = [{"title": "a", "id": "b-1"}, {"title": "b"}, {"title": "c", "id": "b-1"}]
    assert_problem(await client.post(bulk, json={"tasks": twice}, headers=h), 409)
    assert await task_ids(client, tenant, pid) == ["taken"]  # none of either batch landed
    assert await summary(client, tenant) == {"projects": 1, "tasks": counts(1)}

    # The same ids are free: proof that the refused batches wrote nothing.
    without_taken = [task for task in batch if task.get("id") != "taken"]
    response = await client.post(bulk, json={"tasks": without_taken}, headers=h)
    assert response.status_code == 201, response.text
    items = response.json()["items"]
    assert response.json().keys() == {"items"} and len(items) == 3
    for item, sent in zip(items, without_taken, strict=True):
        assert_task(item, project_id=pid, title=sent["title"], version=1)
        assert item["status"] == sent.get("status", "open")
        if "id" in sent:
            assert item["id"] == sent["id"]
    assert len({item["id"] for item in items}) == 3

    fifty = [{"title": f"n{i}", "status": ("open", "done")[i % 2]} for i in range(50)]
    full = await client.post(bulk, json={"tasks": fifty}, headers=h)
    assert full.status_code == 201, full.text
    assert len(full.json()["items"]) == 50
    for body in ({"tasks": []}, {"tasks": [*fifty, {"title": "51st"}]}, {"tasks": [{}]}, {}):
        assert_validation_error(await client.post(bulk, json=body, headers=h), "body")
    assert_problem(
        await client.post("/projects/nope/tasks:bulk", json={"tasks": [{"title": "x"}]}, headers=h),
        404,
    )
    assert len(await task_ids(client, tenant, pid, limit=100)) == 1 + 3 + 50
    assert await summary(client, tenant) == {"projects": 1, "tasks": counts(1 + 1 + 25, 1, 1 + 25)}


async def test_task_listing_newest_first_by_status_with_cursors(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    h = tenant.headers
    pid = (await create_project(client, tenant))["id"]
    path = f"/projects/{pid}/tasks"
    statuses = ["open", "in_progress", "done"]
    created = [
        await create_task(client, tenant, pid, title=f"t{i}", status=statuses[i % 3])
        for i in range(13)
    ]
    newest_first = [t["id"] for t in reversed(created)]

    by_five = await pages(client, path, tenant, limit=5)
    assert [len(page) for page in by_five] == [5, 5, 3]
    listed = [t for page in by_five for t in page]
    assert [t["id"] for t in listed] == newest_first  # every task once, newest first
    for task in listed:
        assert_task(task, project_id=pid, version=1)
    stamps = [t["created_at"] for t in listed]
    assert stamps == sorted(stamps, reverse=True)

    for status in statuses:
        want = [t["id"] for t in reversed(created) if t["status"] == status]
        by_two = await pages(client, path, tenant, status=status, limit=2)
        assert all(len(page) <= 2 for page in by_two)
        got = [t for page in by_two for t in page]
        assert [t["id"] for t in got] == want
        assert {t["status"] for t in got} == {status}

    default = await client.get(path, headers=h)  # limit defaults to 20
    assert len(default.json()["items"]) == 13 and default.json()["next_cursor"] is None
    more = [{"title": f"bulk{i}"} for i in range(10)]
    assert (await client.post(f"{path}:bulk", json={"tasks": more}, headers=h)).status_code == 201
    default = await client.get(path, headers=h)
    assert len(default.json()["items"]) == 20 and default.json()["next_cursor"] is not None
    assert len(await task_ids(client, tenant, pid, limit=100)) == 23

    for params in ({"limit": 0}, {"limit": 101}, {"status": "closed"}):
        assert_invalid_parameters(await client.get(path, params=params, headers=h), "query")
    assert_problem(await client.get("/projects/nope/tasks", headers=h), 404)


async def test_a_cursor_only_works_for_its_own_listing(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    h = tenant.headers
    a = (await create_project(client, tenant, "a"))["id"]
    b = (await create_project(client, tenant, "b"))["id"]
    await create_project(client, tenant, "c")
    for pid in (a, b):
        tasks = [{"title": f"{i}", "status": ("open", "done")[i % 2]} for i in range(6)]
        response = await client.post(
            f"/projects/{pid}/tasks:bulk", json={"tasks": tasks}, headers=h
        )
        assert response.status_code == 201, response.text

    async def cursor_of(path: str, **params: Any) -> str:
        body = (await client.get(path, params={"limit": 1, **params}, headers=h)).json()
        assert isinstance(body["next_cursor"], str), body
        cursor: str = body["next_cursor"]
        return cursor

    open_a = await cursor_of(f"/projects/{a}/tasks", status="open")
    all_a = await cursor_of(f"/projects/{a}/tasks")
    projects = await cursor_of("/projects")

    # Each cursor works where it was issued...
    for path, params, cursor in (
        (f"/projects/{a}/tasks", {"status": "open"}, open_a),
        (f"/projects/{a}/tasks", {}, all_a),
        ("/projects", {}, projects),
    ):
        ok = await client.get(path, params={**params, "cursor": cursor}, headers=h)
        assert ok.status_code == 200, ok.text

    # ...and nowhere else, and not once edited.
    misuses = [
        (f"/projects/{a}/tasks", {"status": "done"}, open_a),  # other status
        (f"/projects/{a}/tasks", {}, open_a),  # by status → all
        (f"/projects/{a}/tasks", {"status": "open"}, all_a),  # all → by status
        (f"/projects/{b}/tasks", {"status": "open"}, open_a),  # other project
        (f"/projects/{b}/tasks", {}, all_a),
        ("/projects", {}, all_a),  # tasks → projects
        (f"/projects/{a}/tasks", {}, projects),  # projects → tasks
        ("/projects", {}, tampered(projects)),
        (f"/projects/{a}/tasks", {}, tampered(all_a)),
        (f"/projects/{a}/tasks", {"status": "open"}, open_a[:-3]),
        ("/projects", {}, projects + "A"),
        ("/projects", {}, "not-a-cursor"),
        ("/projects", {}, "e30.AAAA"),
    ]
    for path, params, cursor in misuses:
        response = await client.get(path, params={**params, "cursor": cursor}, headers=h)
        assert_problem(response, 400)


async def test_task_updates_use_versions(client: httpx.AsyncClient, tenant: Tenant) -> None:
    h = tenant.headers
    pid = (await create_project(client, tenant))["id"]
    other_pid = (await create_project(client, tenant, "other"))["id"]
    task = await create_task(client, tenant, pid, title="draft")
    tid = task["id"]
    path = f"/projects/{pid}/tasks/{tid}"

    titled = await client.patch(path, json={"title": "final", "version": 1}, headers=h)
    assert titled.status_code == 200, titled.text
    assert_task(titled.json(), project_id=pid, title="final", status="open", version=2)
    assert titled.json()["id"] == tid and titled.json()["created_at"] == task["created_at"]

    moved = await client.patch(path, json={"status": "in_progress", "version": 2}, headers=h)
    assert moved.status_code == 200, moved.text
    assert_task(moved.json(), title="final", status="in_progress", version=3)
    both = await client.patch(
        path, json={"title": "shipped", "status": "done", "version": 3}, headers=h
    )
    assert both.status_code == 200, both.text
    assert_task(both.json(), title="shipped", status="done", version=4)
    same = await client.patch(path, json={"status": "done", "version": 4}, headers=h)
    assert same.status_code == 200, same.text
    assert_task(same.json(), title="shipped", status="done", version=5)

    for stale in (1, 4, 6):
        refused = await client.patch(path, json={"title": "lost", "version": stale}, headers=h)
        assert_problem(refused, 409)
    refused = await client.patch(path, json={"status": "open", "version": 4}, headers=h)
    assert_problem(refused, 409)

    assert await task_ids(client, tenant, pid, status="done") == [tid]
    assert await task_ids(client, tenant, pid, status="open") == []
    assert await task_ids(client, tenant, pid, status="in_progress") == []
    [stored] = await list_all(client, f"/projects/{pid}/tasks", tenant)
    assert_task(stored, title="shipped", status="done", version=5)
    assert await summary(client, tenant) == {"projects": 2, "tasks": counts(done=1)}

    for wrong in (
        f"/projects/{pid}/tasks/nope",
        f"/projects/nope/tasks/{tid}",
        f"/projects/{other_pid}/tasks/{tid}",  # the task lives in another project
    ):
        assert_problem(await client.patch(wrong, json={"title": "x", "version": 5}, headers=h), 404)
    for body in ({"title": "x"}, {"status": "closed", "version": 5}, {"title": "", "version": 5}):
        assert_validation_error(await client.patch(path, json=body, headers=h), "body")
    [unchanged] = await list_all(client, f"/projects/{pid}/tasks", tenant)
    assert unchanged == stored
