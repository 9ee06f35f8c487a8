"""Concurrent requests of one tenant: versions, ids and deletes stay exact under races.

These assert invariants, never timings: a correct server passes whatever the interleaving.
"""

from __future__ import annotations

import asyncio
from collections import Counter

import httpx

from .conftest import (
    Tenant,
    assert_problem,
    create_project,
    create_task,
    list_all,
    summary,
)

RACERS = 8


async def test_one_version_admits_one_update(client: httpx.AsyncClient, tenant: Tenant) -> None:
    h = tenant.headers
    project = await create_project(client, tenant)
    pid = project["id"]
    responses = await asyncio.gather(
        *(
            client.patch(f"/projects/{pid}", json={"name": f"n{i}", "version": 1}, headers=h)
            for i in range(RACERS)
        )
    )
    winners = [r for r in responses if r.status_code == 200]
    assert len(winners) == 1, [r.status_code for r in responses]
    for response in responses:
        if response.status_code != 200:
            assert_problem(response, 409)
    stored = (await client.get(f"/projects/{pid}", headers=h)).json()
    assert stored == winners[0].json() and stored["version"] == 2

    task = await create_task(client, tenant, pid, title="contended")
    path = f"/projects/{pid}/tasks/{task['id']}"
    targets = ["done", "in_progress"] * (RACERS // 2)
    responses = await asyncio.gather(
        *(client.patch(path, json={"status": s, "version": 1}, headers=h) for s in targets)
    )
    winners = [r for r in responses if r.status_code == 200]
    assert len(winners) == 1, [r.status_code for r in responses]
    for response in responses:
        if response.status_code != 200:
            assert_problem(response, 409)
    [stored_task] = await list_all(client, f"/projects/{pid}/tasks", tenant)
    assert stored_task == winners[0].json() and stored_task["version"] == 2
    tasks = {"open": 0, "in_progress": 0, "done": 0, stored_task["status"]: 1}
    assert await summary(client, tenant) == {"projects": 1, "tasks": tasks}


async def test_one_task_id_is_taken_once(client: httpx.AsyncClient, tenant: Tenant) -> None:
    h = tenant.headers
    pid = (await create_project(client, tenant))["id"]
    single = [
        client.post(f"/projects/{pid}/tasks", json={"title": f"s{i}", "id": "race"}, headers=h)
        for i in range(RACERS // 2)
    ]
    bulk = [
        client.post(
            f"/projects/{pid}/tasks:bulk",
            json={"tasks": [{"title": f"b{i}"}, {"title": f"b{i}", "id": "race"}]},
            headers=h,
        )
        for i in range(RACERS // 2)
    ]
    responses = await asyncio.gather(*single, *bulk)
    assert Counter(r.status_code for r in responses)[201] == 1, [r.status_code for r in responses]
    for response in responses:
        if response.status_code != 201:
            assert_problem(response, 409)
    tasks = await list_all(client, f"/projects/{pid}/tasks", tenant)
    assert [t["id"] for t in tasks].count("race") == 1
    assert await summary(client, tenant) == {
        "projects": 1,
        "tasks": {"open": len(tasks), "in_progress": 0, "done": 0},
    }


async def test_a_delete_racing_new_tasks_never_orphans_them(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """DELETE answers 204 or 409; a task creation (single, bulk or import) succeeds or is
    refused (404, or 409 for losing the race); never both a success and a 204: a deleted
    project has no tasks, and a task always has its project."""
    h = tenant.headers
    one = {"title": "late"}
    kinds = {
        "single": lambda pid: client.post(f"/projects/{pid}/tasks", json=one, headers=h),
        "bulk": lambda pid: client.post(
            f"/projects/{pid}/tasks:bulk", json={"tasks": [one]}, headers=h
        ),
        "import": lambda pid: client.post(
            "/imports/tasks", json={"project_id": pid, "tasks": [one] * 30}, headers=h
        ),
    }
    outcomes: list[tuple[str, str, int, int]] = []
    for kind, create in [*kinds.items()] * 3:
        pid = (await create_project(client, tenant, kind))["id"]
        deleted, created = await asyncio.gather(
            client.delete(f"/projects/{pid}", headers=h), create(pid)
        )
        assert deleted.status_code in (204, 409), deleted.text
        assert created.status_code in (200, 201, 404, 409), created.text
        outcomes.append((kind, pid, deleted.status_code, created.status_code))
    orphaned = [(kind, d, c) for kind, _pid, d, c in outcomes if d == 204 and c in (200, 201)]
    assert not orphaned, f"deleted (204) and written to (201/200), kind: {orphaned}"

    listing = await client.get("/projects", params={"limit": 100}, headers=h)
    assert listing.status_code == 200, listing.text
    alive = {p["id"] for p in listing.json()["items"]}
    open_tasks = 0
    for _kind, pid, deleted, _created in outcomes:
        if deleted == 204:
            assert pid not in alive
            assert_problem(await client.get(f"/projects/{pid}/tasks", headers=h), 404)
        else:
            assert pid in alive
            open_tasks += len(await list_all(client, f"/projects/{pid}/tasks", tenant, limit=100))
    assert await summary(client, tenant) == {
        "projects": len(alive),
        "tasks": {"open": open_tasks, "in_progress": 0, "done": 0},
    }
