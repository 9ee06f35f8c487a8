"""Idempotency-Key against the local server: replays, duplicates, key reuse, tenants."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from starlette.types import ASGIApp

from lift_asgi.dynamo.tables import TableSpec
from lift_asgi.dynamo.transport import AiodynamoTransport
from lift_asgi.idempotency.record import fingerprint

from .conftest import ACME, GLOBEX, Clock, Probe, client_for, data, live, records, scan

pytestmark = pytest.mark.dynamodb


def keyed(key: str, tenant: dict[str, str] = ACME) -> dict[str, str]:
    return {**tenant, "idempotency-key": key}


async def test_a_replay_is_byte_identical_and_writes_nothing(
    http: httpx.AsyncClient,
    probe: Probe,
    raw: AiodynamoTransport,
    transport: AiodynamoTransport,
    dynamodb_table: TableSpec,
) -> None:
    first = await http.post("/items", json={"id": "a"}, headers=keyed("k-1"))
    assert first.status_code == 201
    assert "idempotent-replayed" not in first.headers
    stored = await scan(raw, dynamodb_table.name)
    calls = transport.calls
    again = await http.post("/items", json={"id": "a"}, headers=keyed("k-1"))
    assert transport.calls == calls + 1  # the claim that failed, carrying the record
    assert again.status_code == 201
    assert again.content == first.content
    assert again.headers["content-type"] == first.headers["content-type"]
    assert again.headers["location"] == "/items/a"
    assert again.headers["idempotent-replayed"] == "true"
    assert "x-per-request" not in again.headers  # not one of the headers that matter
    assert probe.runs == {"create": 1}
    assert await scan(raw, dynamodb_table.name) == stored
    assert data(stored)["acme#stats/counts"]["items"] == 1


async def test_first_execution_costs_the_claim_and_one_commit(
    http: httpx.AsyncClient, transport: AiodynamoTransport
) -> None:
    await http.post("/items", json={"id": "warm"}, headers=ACME)  # the table check happens once
    calls = transport.calls
    assert (await http.post("/items", json={"id": "b"}, headers=keyed("k"))).status_code == 201
    assert transport.calls == calls + 2  # PutItem claim + the TransactWriteItems


async def test_a_request_that_writes_nothing_is_remembered_with_one_conditional_write(
    http: httpx.AsyncClient, probe: Probe, transport: AiodynamoTransport
) -> None:
    await http.post("/items", json={"id": "warm"}, headers=ACME)
    calls = transport.calls
    first = await http.post("/noop", headers=keyed("n"))
    assert transport.calls == calls + 2  # the claim, then one UpdateItem completing it
    again = await http.post("/noop", headers=keyed("n"))
    assert again.content == first.content == b'{"run":1}'
    assert again.headers["idempotent-replayed"] == "true"
    assert probe.runs["noop"] == 1


async def test_twenty_concurrent_duplicates_execute_the_handler_once(
    http: httpx.AsyncClient, probe: Probe, raw: AiodynamoTransport, dynamodb_table: TableSpec
) -> None:
    probe.gate = asyncio.Event()

    async def post() -> httpx.Response:
        return await http.post("/items", json={"id": "c"}, headers=keyed("same"))

    tasks = [asyncio.create_task(post()) for _ in range(20)]
    await probe.entered.wait()
    await asyncio.sleep(0.3)  # let the 19 others meet the claim (no timing is asserted)
    probe.gate.set()
    responses = await asyncio.gather(*tasks)
    assert probe.runs == {"create": 1}
    statuses = sorted(r.status_code for r in responses)
    assert set(statuses) <= {201, 409}
    assert statuses.count(201) >= 1
    originals = [r for r in responses if r.status_code == 201]
    assert len({r.content for r in originals}) == 1
    for conflict in (r for r in responses if r.status_code == 409):
        assert conflict.headers["content-type"] == "application/problem+json"
        assert int(conflict.headers["retry-after"]) >= 1
    assert data(await scan(raw, dynamodb_table.name))["acme#stats/counts"]["items"] == 1


async def test_in_progress_is_a_409_with_retry_after_and_writes_nothing(
    http: httpx.AsyncClient, probe: Probe, raw: AiodynamoTransport, dynamodb_table: TableSpec
) -> None:
    probe.gate = asyncio.Event()
    first = asyncio.create_task(http.post("/items", json={"id": "d"}, headers=keyed("slow")))
    await probe.entered.wait()
    second = await http.post("/items", json={"id": "d"}, headers=keyed("slow"))
    assert second.status_code == 409
    assert second.headers["content-type"] == "application/problem+json"
    assert second.headers["retry-after"] == "1"
    assert second.json()["status"] == 409
    assert data(await scan(raw, dynamodb_table.name)) == {}
    probe.gate.set()
    assert (await first).status_code == 201
    assert probe.runs == {"create": 1}


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/items", {"id": "other"}),
        ("POST", "/noop", {"id": "e"}),
        ("POST", "/items?x=1", {"id": "e"}),
    ],
    ids=["another body", "another path", "another query string"],
)
async def test_the_same_key_for_another_request_is_a_422_and_writes_nothing(
    http: httpx.AsyncClient,
    probe: Probe,
    raw: AiodynamoTransport,
    dynamodb_table: TableSpec,
    method: str,
    path: str,
    body: dict[str, Any],
) -> None:
    assert (await http.post("/items", json={"id": "e"}, headers=keyed("k"))).status_code == 201
    stored = await scan(raw, dynamodb_table.name)
    reused = await http.request(method, path, json=body, headers=keyed("k"))
    assert reused.status_code == 422
    assert reused.headers["content-type"] == "application/problem+json"
    assert reused.json()["status"] == 422
    assert probe.runs == {"create": 1}
    assert await scan(raw, dynamodb_table.name) == stored


async def test_the_query_string_is_part_of_the_request(
    http: httpx.AsyncClient, probe: Probe
) -> None:
    first = await http.post("/items?source=a", json={"id": "q"}, headers=keyed("k"))
    assert first.status_code == 201
    again = await http.post("/items?source=a", json={"id": "q"}, headers=keyed("k"))
    assert again.headers["idempotent-replayed"] == "true"
    assert again.content == first.content
    for other in ("/items", "/items?source=b", "/items?source=a&x=1"):
        reused = await http.post(other, json={"id": "q"}, headers=keyed("k"))
        assert reused.status_code == 422, other
    assert probe.runs == {"create": 1}


def test_a_request_without_a_query_string_keeps_its_earlier_fingerprint() -> None:
    # records written before the query string counted still match their retries
    digest = hashlib.sha256(b"POST\n/items\n" + b'{"id":"e"}').hexdigest()
    assert fingerprint("POST", "/items", b'{"id":"e"}') == digest
    assert fingerprint("POST", "/items", b'{"id":"e"}', b"") == digest
    assert fingerprint("POST", "/items", b"x", b"a=1") != fingerprint("POST", "/items?a=1", b"x")
    assert fingerprint("POST", "/items", b"1\nx", b"a=") != fingerprint(
        "POST", "/items", b"x", b"a=1"
    )


async def test_the_fingerprint_is_checked_while_the_first_is_in_progress_too(
    http: httpx.AsyncClient, probe: Probe
) -> None:
    probe.gate = asyncio.Event()
    first = asyncio.create_task(http.post("/items", json={"id": "f"}, headers=keyed("k")))
    await probe.entered.wait()
    reused = await http.post("/items", json={"id": "g"}, headers=keyed("k"))
    assert reused.status_code == 422
    probe.gate.set()
    await first


async def test_keys_belong_to_a_tenant(
    http: httpx.AsyncClient, probe: Probe, raw: AiodynamoTransport, dynamodb_table: TableSpec
) -> None:
    acme = await http.post("/items", json={"id": "h"}, headers=keyed("shared", ACME))
    globex = await http.post("/items", json={"id": "h"}, headers=keyed("shared", GLOBEX))
    assert acme.status_code == globex.status_code == 201
    assert "idempotent-replayed" not in globex.headers
    assert probe.runs == {"create": 2}
    stored = await scan(raw, dynamodb_table.name)
    assert sorted(records(stored)) == [
        "acme#_idempotency#shared/_",
        "globex#_idempotency#shared/_",
    ]
    assert {item["_tenant"] for item in records(stored).values()} == {"acme", "globex"}


async def test_handler_4xx_answers_are_remembered(
    http: httpx.AsyncClient, probe: Probe, raw: AiodynamoTransport, dynamodb_table: TableSpec
) -> None:
    missing = await http.patch("/items/nope", json={"name": "x"}, headers=keyed("p"))
    assert missing.status_code == 404
    assert (await http.post("/items", json={"id": "nope"}, headers=ACME)).status_code == 201
    again = await http.patch("/items/nope", json={"name": "x"}, headers=keyed("p"))
    assert again.status_code == 404
    assert again.content == missing.content
    assert again.headers["idempotent-replayed"] == "true"
    assert probe.runs["rename"] == 1


async def test_requests_without_the_header_or_with_other_methods_are_untouched(
    http: httpx.AsyncClient, probe: Probe, raw: AiodynamoTransport, dynamodb_table: TableSpec
) -> None:
    for _ in range(2):
        await http.post("/items", json={"id": "i"}, headers=ACME)
    assert probe.runs == {"create": 2}
    for _ in range(2):
        shown = await http.get("/items/i", headers=keyed("g"))
        assert shown.status_code == 200 and "idempotent-replayed" not in shown.headers
    assert records(live(await scan(raw, dynamodb_table.name))) == {}


@pytest.mark.parametrize(
    "value",
    [b"", b"x" * 256, "cl\u00e9".encode("latin-1"), b"tab\there", b"nul\x00"],
    ids=["empty", "256 chars", "non-ascii", "control", "nul"],
)
async def test_a_malformed_key_is_a_400_problem_and_nothing_runs(
    http: httpx.AsyncClient, probe: Probe, value: bytes
) -> None:
    request = http.build_request("POST", "/items", json={"id": "j"}, headers=ACME)
    request.headers["idempotency-key"] = value.decode("latin-1")
    response = await http.send(request)
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert probe.runs == {}


async def test_a_key_of_255_printable_characters_is_accepted(http: httpx.AsyncClient) -> None:
    key = ("".join(chr(c) for c in range(0x20, 0x7F)) * 3)[:255]
    assert (await http.post("/items", json={"id": "k"}, headers=keyed(key))).status_code == 201
    again = await http.post("/items", json={"id": "k"}, headers=keyed(key))
    assert again.headers["idempotent-replayed"] == "true"


async def test_two_key_headers_are_a_400(http: httpx.AsyncClient, probe: Probe) -> None:
    request = http.build_request("POST", "/items", json={"id": "l"}, headers=ACME)
    request.headers.update(httpx.Headers([("idempotency-key", "a"), ("idempotency-key", "b")]))
    assert (await http.send(request)).status_code == 400
    assert probe.runs == {}


async def test_a_streaming_response_is_held_whole_remembered_and_replayed(
    http: httpx.AsyncClient, probe: Probe
) -> None:
    first = await http.post("/stream", headers=keyed("s"))
    assert first.content == b"chunk0|chunk1|chunk2|chunk3|chunk4|run1"
    again = await http.post("/stream", headers=keyed("s"))
    assert again.content == first.content
    assert again.headers["content-type"].startswith("text/plain")
    assert probe.runs == {"stream": 1}


async def test_a_response_over_the_cap_is_refused_and_writes_nothing(
    http: httpx.AsyncClient, probe: Probe, raw: AiodynamoTransport, dynamodb_table: TableSpec
) -> None:
    response = await http.post("/big", headers=keyed("b"))
    assert response.status_code == 500
    assert "max_response_bytes" in response.json()["detail"]
    assert live(await scan(raw, dynamodb_table.name)) == {}  # no data, and the claim released
    assert (await http.post("/big", headers=keyed("b"))).status_code == 500
    assert probe.runs == {"big": 2}


async def test_a_body_over_the_request_cap_is_a_413(
    make: Callable[..., ASGIApp], probe: Probe
) -> None:
    async with client_for(make(max_request_bytes=64)) as client:
        response = await client.post("/items", json={"id": "m" * 100}, headers=keyed("big"))
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    assert probe.runs == {}


async def test_a_record_is_kept_for_the_retention_and_forgotten_after(
    http: httpx.AsyncClient,
    probe: Probe,
    clock: Clock,
    raw: AiodynamoTransport,
    dynamodb_table: TableSpec,
) -> None:
    await http.post("/noop", headers=keyed("r"))
    record = records(await scan(raw, dynamodb_table.name))["acme#_idempotency#r/_"]
    assert record["ttl"] == clock.now + 24 * 3600
    clock.now += 24 * 3600 - 1
    assert (await http.post("/noop", headers=keyed("r"))).headers["idempotent-replayed"] == "true"
    clock.now += 2  # expired: DynamoDB may not have deleted it yet, it is ignored
    fresh = await http.post("/noop", headers=keyed("r"))
    assert "idempotent-replayed" not in fresh.headers
    assert probe.runs == {"noop": 2}


async def test_another_query_string_is_a_422_that_says_so(
    http: httpx.AsyncClient, raw: AiodynamoTransport, dynamodb_table: TableSpec
) -> None:
    # the query string is part of what makes two requests the same (POST /transfer?amount=)
    first = await http.post("/items", json={"id": "q"}, headers=keyed("query"))
    again = await http.post("/items?source=retry", json={"id": "q"}, headers=keyed("query"))
    assert first.status_code == 201
    assert again.status_code == 422
    assert "query string" in again.json()["detail"]
