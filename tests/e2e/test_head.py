"""HEAD on every GET route, over real HTTP: the GET's status and headers, no body.

RFC 9110 (9.1) asks every general-purpose server to support GET and HEAD; FastAPI's
``@app.get`` alone answers HEAD with a 405."""

from __future__ import annotations

import httpx

from .conftest import Tenant, assert_rate_headers, create_project, create_task, summary


async def test_every_get_route_answers_head_as_its_get_without_the_body(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    h = tenant.headers
    pid = (await create_project(client, tenant, "Heads"))["id"]
    await create_task(client, tenant, pid, title="one")
    for path in (
        "/health",
        "/projects",
        f"/projects/{pid}",
        f"/projects/{pid}/tasks",
        f"/projects/{pid}/tasks?status=open",
        "/analytics/summary",
    ):
        get = await client.get(path, headers=h)
        head = await client.head(path, headers=h)
        assert (path, head.status_code, get.status_code) == (path, 200, 200)
        assert head.content == b""
        assert head.headers["content-type"] == get.headers["content-type"]
        assert head.headers["content-length"] == get.headers["content-length"]
        assert "x-request-id" in head.headers
        if path != "/health":
            assert_rate_headers(head, 1000)


async def test_head_is_refused_as_get_is_and_writes_nothing(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    pid = (await create_project(client, tenant, "Private"))["id"]
    before = await summary(client, tenant)
    missing = await client.head(f"/projects/{pid}", headers=other_tenant.headers)
    assert missing.status_code == 404 and missing.content == b""
    assert missing.headers["content-type"] == "application/problem+json"
    assert (await client.head("/projects")).status_code == 401
    keyed = await client.head(
        "/projects", headers={**tenant.headers, "Idempotency-Key": "head-1"}
    )  # HEAD ignores the header: no replay, no record
    assert keyed.status_code == 200 and "idempotent-replayed" not in keyed.headers
    again = await client.head("/projects", headers={**tenant.headers, "Idempotency-Key": "head-1"})
    assert again.status_code == 200 and "idempotent-replayed" not in again.headers
    assert await summary(client, tenant) == before
    assert (
        await client.request("HEAD", "/imports/tasks", headers=tenant.headers)
    ).status_code == 405
