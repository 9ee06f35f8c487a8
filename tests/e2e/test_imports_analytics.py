"""Bulk imports, and the analytics counters against full listings after a mixed workload."""

from __future__ import annotations

from collections import Counter
from typing import Any

import httpx

from .conftest import (
    Tenant,
    assert_problem,
    assert_task,
    assert_validation_error,
    create_project,
    create_task,
    list_all,
    summary,
)

STATUSES = ("open", "in_progress", "done")


def statuses(n: int, offset: int = 0) -> list[str]:
    """A deterministic, uneven mix: i % 6 → 3 open, 2 in_progress, 1 done in 6."""
    pattern = ("open", "in_progress", "open", "done", "in_progress", "open")
    return [pattern[(i + offset) % len(pattern)] for i in range(n)]


async def listed_counts(client: httpx.AsyncClient, tenant: Tenant) -> dict[str, Any]:
    """What full listings show: projects, and tasks by status seen two ways
    (the unfiltered listing grouped by status, and the by-status listings)."""
    projects = await list_all(client, "/projects", tenant, limit=100)
    grouped: Counter[str] = Counter()
    filtered: Counter[str] = Counter()
    for project in projects:
        path = f"/projects/{project['id']}/tasks"
        tasks = await list_all(client, path, tenant, limit=100)
        assert len({t["id"] for t in tasks}) == len(tasks)
        grouped.update(t["status"] for t in tasks)
        for status in STATUSES:
            filtered[status] += len(await list_all(client, path, tenant, status=status, limit=100))
    by_status = {status: grouped[status] for status in STATUSES}
    assert by_status == {status: filtered[status] for status in STATUSES}
    return {"projects": len(projects), "tasks": by_status}


async def test_import_writes_every_task_with_server_ids(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    h = tenant.headers
    pid = (await create_project(client, tenant, "import target"))["id"]
    await create_task(client, tenant, pid, title="before the import", status="done")
    mix = statuses(300)
    tasks = [{"title": f"imp-{i}", "status": s} for i, s in enumerate(mix)]
    tasks[0] = {"title": "imp-0"}  # status defaults to open
    response = await client.post(
        "/imports/tasks", json={"project_id": pid, "tasks": tasks}, headers=h
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"imported": 300}

    listed = await list_all(client, f"/projects/{pid}/tasks", tenant, limit=100)
    assert len(listed) == 301 and len({t["id"] for t in listed}) == 301
    imported = {t["title"]: t for t in listed if t["title"].startswith("imp-")}
    assert len(imported) == 300
    for i, status in enumerate(mix):
        assert_task(imported[f"imp-{i}"], project_id=pid, status=status, version=1)
    want = Counter(mix)
    assert await summary(client, tenant) == {
        "projects": 1,
        "tasks": {
            "open": want["open"],
            "in_progress": want["in_progress"],
            "done": want["done"] + 1,
        },
    }
    assert_problem(await client.delete(f"/projects/{pid}", headers=h), 409)

    # Server ids only: an id in the payload is refused or ignored, never used.
    chosen = [
        {"title": "chosen-1", "id": "client-id-1"},
        {"title": "chosen-2", "id": "client-id-2"},
    ]
    response = await client.post(
        "/imports/tasks", json={"project_id": pid, "tasks": chosen}, headers=h
    )
    assert response.status_code in (200, 422), response.text
    ids = {t["id"] for t in await list_all(client, f"/projects/{pid}/tasks", tenant, limit=100)}
    assert not ids & {"client-id-1", "client-id-2"}
    if response.status_code == 200:
        assert response.json() == {"imported": 2} and len(ids) == 303

    assert_problem(
        await client.post(
            "/imports/tasks", json={"project_id": "nope", "tasks": [{"title": "x"}]}, headers=h
        ),
        404,
    )
    invalid: list[dict[str, Any]] = [
        {"project_id": pid, "tasks": []},
        {"project_id": pid, "tasks": [{"title": "x"}] * 5001},
        {"project_id": pid, "tasks": [{"title": ""}]},
        {"project_id": pid, "tasks": [{"title": "x", "status": "closed"}]},
        {"tasks": [{"title": "x"}]},
    ]
    for body in invalid:
        assert_validation_error(await client.post("/imports/tasks", json=body, headers=h), "body")
    after = await list_all(client, f"/projects/{pid}/tasks", tenant, limit=100)
    assert len(after) == len(ids)  # nothing invalid was written


async def test_analytics_equal_the_listings_after_a_mixed_workload(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    h = tenant.headers
    want_tasks: Counter[str] = Counter()  # this test's own bookkeeping

    async def check(projects: int, *, listings: bool = True) -> None:
        want = {"projects": projects, "tasks": {s: want_tasks[s] for s in STATUSES}}
        assert await summary(client, tenant) == want
        if listings:
            assert await listed_counts(client, tenant) == want

    await check(0)  # a new tenant: all zeros
    p1, p2, p3, p4 = [(await create_project(client, tenant, f"p{i}"))["id"] for i in range(4)]
    patch = {"name": "renamed", "version": 1}
    assert (await client.patch(f"/projects/{p4}", json=patch, headers=h)).status_code == 200
    assert (await client.delete(f"/projects/{p4}", headers=h)).status_code == 204
    assert_problem(await client.delete(f"/projects/{p4}", headers=h), 404)

    singles = [
        await create_task(client, tenant, p1, title=f"s{i}", status=status)
        for i, status in enumerate(statuses(7))
    ]
    want_tasks.update(statuses(7))
    await create_task(client, tenant, p1, title="own id", id="fixed", status="done")
    want_tasks["done"] += 1
    dup = await client.post(f"/projects/{p1}/tasks", json={"title": "d", "id": "fixed"}, headers=h)
    assert_problem(dup, 409)
    await check(3, listings=False)

    batch = [{"title": f"b{i}", "status": s} for i, s in enumerate(statuses(20, offset=1))]
    response = await client.post(f"/projects/{p2}/tasks:bulk", json={"tasks": batch}, headers=h)
    assert response.status_code == 201, response.text
    want_tasks.update(statuses(20, offset=1))
    clash = [
        {"title": "new", "status": "done"},
        {"title": "x", "id": response.json()["items"][0]["id"]},
    ]
    response = await client.post(f"/projects/{p2}/tasks:bulk", json={"tasks": clash}, headers=h)
    assert_problem(response, 409)

    for task, status in zip(singles, ("done", "open", "in_progress", "done", "open"), strict=False):
        path = f"/projects/{p1}/tasks/{task['id']}"
        moved = await client.patch(path, json={"status": status, "version": 1}, headers=h)
        assert moved.status_code == 200, moved.text
        want_tasks[task["status"]] -= 1
        want_tasks[status] += 1
        stale = await client.patch(path, json={"status": "in_progress", "version": 1}, headers=h)
        assert_problem(stale, 409)
    await check(3)

    imports = [{"title": f"i{i}", "status": s} for i, s in enumerate(statuses(120, offset=2))]
    body = {"project_id": p3, "tasks": imports}
    response = await client.post("/imports/tasks", json=body, headers=h)
    assert response.status_code == 200 and response.json() == {"imported": 120}
    want_tasks.update(statuses(120, offset=2))
    assert_problem(await client.delete(f"/projects/{p3}", headers=h), 409)
    await check(3)
    assert want_tasks.total() == 7 + 1 + 20 + 120
