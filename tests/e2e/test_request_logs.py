"""Request ids and request logs over real HTTP (the contract's last section).

The session's server runs with ``SAAS_LOG_FORMAT=json``; its standard error is the log
file these tests read, one JSON object a line.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from typing import Any

import httpx
import pytest

from .conftest import Server, Tenant, assert_problem

ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


async def records_for(server: Server, request_id: str, *, count: int = 1) -> list[dict[str, Any]]:
    """The request records with ``request_id``, waiting a little for the lines to land."""
    for _ in range(100):
        found = []
        for line in server.log_path.read_text(errors="replace").splitlines():
            if request_id not in line:
                continue
            record = json.loads(line)  # every line that names the id is one JSON object
            if record.get("request_id") == request_id and "route" in record:
                found.append(record)
        if len(found) >= count:
            return found
        await asyncio.sleep(0.05)
    raise AssertionError(f"no request record for {request_id}:\n{server.log_tail()}")


async def test_a_clients_id_is_echoed_and_logged_with_the_request(
    client: httpx.AsyncClient, saas_server: Server, tenant: Tenant
) -> None:
    request_id = f"req-{uuid.uuid4().hex}"
    # the process's first use of each table checks its schema once (DescribeTable)
    warm = await client.post("/projects", json={"name": "Warm"}, headers=tenant.headers)
    assert warm.status_code == 201
    created = await client.post(
        "/projects", json={"name": "Logged"}, headers={**tenant.headers, "X-Request-ID": request_id}
    )
    assert created.status_code == 201, created.text
    assert created.headers["x-request-id"] == request_id
    pid = created.json()["id"]
    got = await client.get(
        f"/projects/{pid}", headers={**tenant.headers, "X-Request-ID": request_id + ".get"}
    )
    assert got.status_code == 200

    [post] = await records_for(saas_server, request_id)
    assert post["tenant"] == tenant.id
    assert post["method"] == "POST" and post["route"] == "/projects" and post["status"] == 201
    assert isinstance(post["duration_ms"], int | float) and post["duration_ms"] >= 0
    # the rate limit's UpdateItem and the commit's PutItem
    assert post["dynamodb"]["calls"] == 2, post
    assert post["commit"] == "committed" and post["rate_limit"], post
    assert post["dynamodb"]["write_units"] > 0
    [read] = await records_for(saas_server, request_id + ".get")
    assert read["route"] == "/projects/{project_id}", read  # the template, never the id
    assert pid not in json.dumps(read)
    assert read["dynamodb"]["calls"] == 2 and read["dynamodb"]["read_units"] > 0, read


@pytest.mark.parametrize("sent", [None, "", "x" * 129, "bad id", "semi;colon", "\xe9t\xe9"])
async def test_without_a_valid_id_a_new_one_is_made(
    client: httpx.AsyncClient, tenant: Tenant, sent: str | None
) -> None:
    headers: dict[str, Any] = dict(tenant.headers)
    if sent is not None:
        headers["X-Request-ID"] = sent.encode("latin-1")
    response = await client.get("/analytics/summary", headers=headers)
    assert response.status_code == 200
    made = response.headers["x-request-id"]
    assert ID.match(made) and made != sent


async def test_errors_carry_the_id_and_no_secret_reaches_the_log(
    client: httpx.AsyncClient, saas_server: Server, tenant: Tenant
) -> None:
    token = tenant.headers["Authorization"].removeprefix("Bearer ")
    base = f"err-{uuid.uuid4().hex}"
    forged = await client.get(
        "/projects", headers={"Authorization": f"Bearer {token}x", "X-Request-ID": base + ".401"}
    )
    assert_problem(forged, 401)
    assert forged.headers["x-request-id"] == base + ".401"
    missing = await client.get(
        "/projects/nope", headers={**tenant.headers, "X-Request-ID": base + ".404"}
    )
    assert_problem(missing, 404)
    assert missing.headers["x-request-id"] == base + ".404"
    body_marker = f"secret-body-{uuid.uuid4().hex}"
    await client.post(
        "/projects", json={"name": body_marker}, headers={**tenant.headers, "X-Request-ID": base}
    )

    [unauthorized] = await records_for(saas_server, base + ".401")
    assert unauthorized["status"] == 401 and unauthorized["tenant"] is None
    await records_for(saas_server, base)
    log = saas_server.log_path.read_text(errors="replace")
    assert token not in log and token.split(".")[2] not in log
    assert body_marker not in log
    assert "dev-only-secret" not in log
