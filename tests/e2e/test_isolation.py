"""Tenants never see each other: by id, by listing, by cursor, by bulk, by import."""

from __future__ import annotations

import httpx

from .conftest import (
    Tenant,
    assert_problem,
    create_project,
    create_task,
    list_all,
    summary,
)

SECRET_NAME = "acme-confidential-project"
SECRET_TITLE = "acme-confidential-task"


async def test_another_tenants_data_is_a_404_never_a_403(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    owner, intruder = tenant, other_tenant
    project = await create_project(client, owner, SECRET_NAME)
    pid = project["id"]
    task = await create_task(client, owner, pid, title=SECRET_TITLE, id="owned-task")
    tid = task["id"]
    bulk = [{"title": f"more {i}", "status": "done"} for i in range(3)]
    response = await client.post(
        f"/projects/{pid}/tasks:bulk", json={"tasks": bulk}, headers=owner.headers
    )
    assert response.status_code == 201, response.text
    owner_tasks = await list_all(client, f"/projects/{pid}/tasks", owner)
    owner_summary = await summary(client, owner)
    assert owner_summary == {"projects": 1, "tasks": {"open": 1, "in_progress": 0, "done": 3}}

    h = intruder.headers
    attempts = [
        ("GET", f"/projects/{pid}", None),
        ("PATCH", f"/projects/{pid}", {"name": "mine now", "version": 1}),
        ("DELETE", f"/projects/{pid}", None),
        ("GET", f"/projects/{pid}/tasks", None),
        ("GET", f"/projects/{pid}/tasks?status=open", None),
        ("POST", f"/projects/{pid}/tasks", {"title": "planted"}),
        ("POST", f"/projects/{pid}/tasks", {"title": "planted", "id": "owned-task"}),
        ("POST", f"/projects/{pid}/tasks:bulk", {"tasks": [{"title": "planted"}]}),
        ("POST", f"/projects/{pid}/tasks:bulk", {"tasks": [{"title": "x", "id": "owned-task"}]}),
        ("PATCH", f"/projects/{pid}/tasks/{tid}", {"status": "done", "version": 1}),
        ("POST", "/imports/tasks", {"project_id": pid, "tasks": [{"title": "planted"}]}),
    ]
    for method, path, body in attempts:
        response = await client.request(method, path, json=body, headers=h)
        assert_problem(response, 404)
        assert SECRET_NAME not in response.text and SECRET_TITLE not in response.text

    # By listing: the intruder's world is empty.
    listed = await client.get("/projects", headers=h)
    assert listed.json() == {"items": [], "next_cursor": None}
    assert await summary(client, intruder) == {
        "projects": 0,
        "tasks": {"open": 0, "in_progress": 0, "done": 0},
    }

    # By cursor: the owner's cursors are refused, on the same path and on the intruder's own.
    owner_projects = await create_project(client, owner, "second")
    page = (await client.get("/projects", params={"limit": 1}, headers=owner.headers)).json()
    projects_cursor = page["next_cursor"]
    page = (
        await client.get(f"/projects/{pid}/tasks", params={"limit": 1}, headers=owner.headers)
    ).json()
    tasks_cursor = page["next_cursor"]
    assert isinstance(projects_cursor, str) and isinstance(tasks_cursor, str)
    own = await create_project(client, intruder, "intruder's own")
    await create_task(client, intruder, own["id"], title="intruder task")
    for path, cursor in (
        ("/projects", projects_cursor),
        (f"/projects/{own['id']}/tasks", tasks_cursor),
    ):
        response = await client.get(path, params={"cursor": cursor}, headers=h)
        assert_problem(response, 400)
        assert SECRET_NAME not in response.text and SECRET_TITLE not in response.text

    # The intruder's own listing shows only its own project.
    assert [p["id"] for p in await list_all(client, "/projects", intruder)] == [own["id"]]

    # Nothing of the owner's changed.
    assert (await client.get(f"/projects/{pid}", headers=owner.headers)).json() == project
    assert await list_all(client, f"/projects/{pid}/tasks", owner) == owner_tasks
    assert await summary(client, owner) == {**owner_summary, "projects": 2}
    ids = {p["id"] for p in await list_all(client, "/projects", owner)}
    assert ids == {pid, owner_projects["id"]}
