"""The per-tenant rate limit, in DynamoDB, seen over HTTP (the server runs with
``SAAS_RATE_FREE=10/minute``)."""

from __future__ import annotations

import asyncio
import time

import httpx

from .conftest import (
    FREE_LIMIT,
    assert_problem,
    assert_rate_headers,
    make_tenant,
)

BURST = 40


async def _away_from_a_minute_boundary(margin: float = 5.0) -> None:
    """A burst must not straddle the start of a minute: with a fixed window that would
    be two windows, each rightly admitting the limit. Waits at most ``margin`` seconds."""
    left = 60.0 - time.time() % 60.0
    if left < margin:
        await asyncio.sleep(left + 0.25)


async def test_a_burst_admits_exactly_the_limit_and_other_tenants_are_unaffected(
    client: httpx.AsyncClient,
) -> None:
    hot, bystander, paying = make_tenant("free"), make_tenant("free"), make_tenant("pro")
    await _away_from_a_minute_boundary()

    hot_requests = [client.get("/analytics/summary", headers=hot.headers) for _ in range(BURST)]
    bystander_requests = [client.get("/projects", headers=bystander.headers) for _ in range(5)]
    paying_requests = [client.get("/projects", headers=paying.headers) for _ in range(5)]
    responses = await asyncio.gather(*hot_requests, *bystander_requests, *paying_requests)
    hot_responses = responses[:BURST]
    others = responses[BURST:]

    admitted = [r for r in hot_responses if r.status_code == 200]
    refused = [r for r in hot_responses if r.status_code != 200]
    assert len(admitted) == FREE_LIMIT, sorted(r.status_code for r in hot_responses)
    assert len(refused) == BURST - FREE_LIMIT
    for response in admitted:
        assert_rate_headers(response, FREE_LIMIT)
    for response in refused:
        assert_problem(response, 429)
        retry_after = response.headers.get("retry-after", "")
        assert retry_after.isdigit(), retry_after  # whole seconds
        assert int(retry_after) in range(1, 61)
        assert assert_rate_headers(response, FREE_LIMIT) == 0

    for response in others:  # tenants never share a budget
        assert response.status_code == 200, response.text
    bystander_left = [assert_rate_headers(r, FREE_LIMIT) for r in others[:5]]
    assert max(bystander_left) == FREE_LIMIT - 1 and min(bystander_left) >= FREE_LIMIT - 5
    for response in others[5:]:
        assert_rate_headers(response, 1000)

    # The budget is the tenant's, on every limited route; /health stays open.
    for method, path in (("POST", "/projects"), ("GET", "/projects/x"), ("GET", "/projects")):
        response = await client.request(method, path, json={"name": "x"}, headers=hot.headers)
        assert_problem(response, 429)
    assert (await client.get("/health", headers=hot.headers)).status_code == 200
