"""Who is asking: tokens, tenant ids, plans, /health and the token CLI, over real HTTP."""

from __future__ import annotations

import time

import httpx
import jwt
import pytest

from examples.saas.settings import DEV_SECRET

from .conftest import (
    FREE_LIMIT,
    RATE_HEADERS,
    Server,
    Tenant,
    assert_problem,
    assert_rate_headers,
    bearer,
    child_env,
    claims_for,
    encode,
    new_tenant_id,
    run_module,
    unsigned,
)


async def test_health_needs_no_token_and_is_not_rate_limited(client: httpx.AsyncClient) -> None:
    for _ in range(FREE_LIMIT + 2):  # more than any free budget: still never limited
        response = await client.get("/health")
        assert response.status_code == 200
        assert response.json() == {"status": "ok"}
        for name in RATE_HEADERS:
            assert name not in response.headers, dict(response.headers)


def _bad_tokens() -> dict[str, str | None]:
    tenant_id = new_tenant_id()
    good = claims_for(tenant_id, plan="pro")
    valid = encode(good)
    header, payload, _signature = valid.split(".")
    without = {k: v for k, v in good.items() if k != "tenant_id"}
    no_exp = {k: v for k, v in good.items() if k != "exp"}
    return {
        "none": None,
        "not a jwt": "not-a-jwt",
        "forged signature": encode(good, secret="another-secret-of-at-least-32-bytes!!"),
        "signature of another token": f"{header}.{payload}.{encode({'x': 1}).split('.')[2]}",
        "alg none": unsigned(good),
        "alg none, valid signature kept": unsigned(good)[:-1] + "." + valid.split(".")[2],
        "expired": encode({**good, "iat": int(time.time()) - 7200, "exp": int(time.time()) - 3600}),
        "no tenant_id": encode(without),
        "no exp": encode(no_exp),
    }


@pytest.mark.parametrize("case", list(_bad_tokens()))
async def test_an_unacceptable_token_is_401(client: httpx.AsyncClient, case: str) -> None:
    token = _bad_tokens()[case]
    headers = {} if token is None else bearer(token)
    for method, path in (("GET", "/projects"), ("POST", "/projects")):
        response = await client.request(method, path, headers=headers, json={"name": "x"})
        assert_problem(response, 401)
        for name in RATE_HEADERS:  # refused before the limiter: no budget is spent
            assert name not in response.headers
        for leak in ("Traceback", "Signature verification failed", "has expired", "segments"):
            assert leak not in response.text  # no JWT library text in the answer


async def test_a_non_bearer_authorization_is_401(client: httpx.AsyncClient) -> None:
    token = encode(claims_for(new_tenant_id()))
    for value in (f"Basic {token}", token, "Bearer", f"Token {token}"):
        response = await client.get("/projects", headers={"Authorization": value})
        assert_problem(response, 401)


@pytest.mark.parametrize(
    "tenant_id",
    ["acme#corp", "acme/corp", "acme corp", "acmé", "", "a" * 65, "-acme", "acme\n"],
    ids=["hash", "slash", "space", "non-ascii", "empty", "65-chars", "leading-dash", "newline"],
)
async def test_a_malformed_tenant_id_is_400(client: httpx.AsyncClient, tenant_id: str) -> None:
    response = await client.get(
        "/projects", headers=bearer(encode(claims_for(tenant_id, plan="pro")))
    )
    assert_problem(response, 400)
    for name in RATE_HEADERS:
        assert name not in response.headers


@pytest.mark.parametrize("tenant_id", ["a", "A" + "b" * 63, "acme_corp.eu-1"])
async def test_a_well_formed_tenant_id_is_accepted(
    client: httpx.AsyncClient, tenant_id: str
) -> None:
    response = await client.get(
        "/projects", headers=bearer(encode(claims_for(tenant_id, plan="pro")))
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"items": [], "next_cursor": None}


@pytest.mark.parametrize(
    ("plan", "limit"),
    [
        ("free", FREE_LIMIT),
        ("pro", 1000),
        ("enterprise", 10000),
        (None, FREE_LIMIT),
        ("gold", FREE_LIMIT),
    ],
    ids=["free", "pro", "enterprise", "missing", "unknown"],
)
async def test_the_plan_sets_the_limit(
    client: httpx.AsyncClient, plan: str | None, limit: int
) -> None:
    extra = {} if plan is None else {"plan": plan}
    headers = bearer(encode(claims_for(new_tenant_id(), **extra)))
    first = await client.get("/projects", headers=headers)
    assert first.status_code == 200, first.text
    assert assert_rate_headers(first, limit) == limit - 1  # a fresh tenant's first request
    second = await client.get("/projects/nope", headers=headers)
    assert_problem(second, 404)  # errors are limited responses too
    remaining = assert_rate_headers(second, limit)
    if second.headers["x-ratelimit-reset"] == first.headers["x-ratelimit-reset"]:
        assert remaining == limit - 2  # same window: one more spent


async def test_a_token_from_the_cli_is_accepted(
    client: httpx.AsyncClient, saas_server: Server
) -> None:
    tenant_id = new_tenant_id("cli")
    # The server runs with SAAS_ENV=dev and no SAAS_JWT_SECRET; so does the CLI.
    env = child_env(saas_server.env["AWS_ENDPOINT_URL_DYNAMODB"])
    result = run_module(
        "examples.saas.token", "--tenant", tenant_id, "--plan", "pro", "--sub", "alice", env=env
    )
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    claims = jwt.decode(token, DEV_SECRET, algorithms=["HS256"])
    assert claims["tenant_id"] == tenant_id and claims["plan"] == "pro"
    assert claims["sub"] == "alice" and claims["exp"] > time.time()

    tenant = Tenant(tenant_id, "pro", bearer(token))
    created = await client.post("/projects", json={"name": "from cli"}, headers=tenant.headers)
    assert created.status_code == 201, created.text
    assert_rate_headers(created, 1000)
    listed = await client.get("/projects", headers=tenant.headers)
    assert [p["id"] for p in listed.json()["items"]] == [created.json()["id"]]


def test_the_app_refuses_to_start_without_a_secret_outside_dev(saas_server: Server) -> None:
    env = dict(saas_server.env)
    env.pop("SAAS_ENV", None)
    env.pop("SAAS_JWT_SECRET", None)
    result = run_module("uvicorn", "examples.saas.app:app", "--port", "0", env=env, timeout=30)
    assert result.returncode != 0
    assert "SAAS_JWT_SECRET" in result.stdout + result.stderr
