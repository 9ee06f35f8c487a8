"""README promises of the tenant stage that no other test pinned: the hard limits on a
tenant id whatever ``tenant_id_pattern`` allows, the default JWT ``leeway`` of 5 s, and
a refused token's reason logged at debug level (never sent)."""

from __future__ import annotations

import logging
import time

import httpx
import jwt
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from lift_asgi.tenancy import HeaderResolver, JWTResolver, TenantMiddleware, current_tenant

SECRET = "readme-test-hs256-secret-0123456789abcdef"


async def _whoami(request: Request) -> JSONResponse:
    tenant = current_tenant()
    return JSONResponse({"tenant": tenant.id if tenant else None})


def _app(resolver: object, **options: object) -> TenantMiddleware:
    return TenantMiddleware(
        Starlette(routes=[Route("/whoami", _whoami)]), resolvers=[resolver], **options
    )


async def _get(app: TenantMiddleware, headers: dict[str, str]) -> httpx.Response:
    transport = httpx.ASGITransport(app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        return await http.get("/whoami", headers=headers)


@pytest.mark.parametrize(
    ("tenant_id", "status"),
    [
        ("a" * 256, 200),  # the longest id a custom rule may allow
        ("a" * 257, 400),
        ("acme\x01", 400),  # a control character
        ("acme\x7f", 400),
        ("ac#me", 400),
    ],
)
async def test_a_custom_pattern_never_widens_the_hard_limits(tenant_id: str, status: int) -> None:
    app = _app(HeaderResolver(name="x-tenant-id"), tenant_id_pattern=lambda _: True)
    answer = await _get(app, {"x-tenant-id": tenant_id})
    assert answer.status_code == status
    if status == 400:
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.json()["status"] == 400
    else:
        assert answer.json() == {"tenant": tenant_id}


def _token(expired_seconds_ago: float) -> str:
    now = time.time()
    claims = {"tenant_id": "acme", "iat": int(now) - 3600, "exp": int(now - expired_seconds_ago)}
    return jwt.encode(claims, SECRET, algorithm="HS256")


@pytest.mark.parametrize(("ago", "status"), [(2, 200), (30, 401)])
async def test_the_default_leeway_is_five_seconds(ago: float, status: int) -> None:
    app = _app(JWTResolver(key=SECRET, algorithms=["HS256"]))
    answer = await _get(app, {"authorization": f"Bearer {_token(ago)}"})
    assert answer.status_code == status


async def test_a_refused_tokens_reason_is_logged_at_debug_and_never_sent(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = _app(JWTResolver(key=SECRET, algorithms=["HS256"]))
    caplog.set_level(logging.DEBUG, logger="lift_asgi.tenancy")
    answer = await _get(app, {"authorization": f"Bearer {_token(600)}"})
    assert answer.status_code == 401
    assert answer.json()["detail"] == "The bearer token is invalid or expired."  # generic
    assert "ExpiredSignature" not in answer.text
    reasons = [
        r for r in caplog.records if r.name.startswith("lift_asgi.tenancy") and r.levelno == 10
    ]
    assert any("ExpiredSignatureError" in r.getMessage() for r in reasons), [
        r.getMessage() for r in caplog.records
    ]
