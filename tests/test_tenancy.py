"""TenantMiddleware against a bare Starlette app and a FastAPI app, with real PyJWT and keys.

Every HTTP refusal must be an ``application/problem+json`` document whose ``status``
equals the HTTP status (see ``assert_problem``).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import itertools
import json
import random
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Annotated, Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi import Depends, FastAPI, WebSocket
from fastapi import Request as FastAPIRequest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocket as StarletteWebSocket

from lift_asgi.errors import (
    ConfigurationError,
    LiftError,
    Unauthorized,
)
from lift_asgi.exception_handlers import problem_exception_handler
from lift_asgi.tenancy import (
    HeaderResolver,
    JWTResolver,
    PathResolver,
    SubdomainResolver,
    Tenant,
    TenantMiddleware,
    current_tenant,
    get_tenant,
    jwt_resolver,
    require_tenant,
    tenant_from_scope,
)

# ------------------------------------------------------------------------------ keys


@pytest.fixture(scope="session")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="session")
def other_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="session")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="session")
def public_pem(rsa_key: rsa.RSAPrivateKey) -> bytes:
    return rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


HS_SECRET = b"0123456789abcdef0123456789abcdef-lift-asgi"
_DROP = object()


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {
        "tenant_id": "acme",
        "sub": "user-1",
        "plan": "pro",
        "iat": now,
        "exp": now + 300,
    }
    base.update(overrides)
    return {name: value for name, value in base.items() if value is not _DROP}


def sign(key: Any, algorithm: str = "RS256", headers: dict[str, Any] | None = None, **kw: Any):
    return jwt.encode(claims(**kw), key, algorithm=algorithm, headers=headers)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hand_made_token(header: dict[str, Any], payload: dict[str, Any], secret: bytes | None) -> str:
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(payload).encode())}"
    if secret is None:
        return signing_input + "."
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


# ------------------------------------------------------------------------------ apps


def describe(tenant: Tenant | None, request: Request | StarletteWebSocket) -> dict[str, Any]:
    ambient = current_tenant()
    state = request.state.tenant
    return {
        "id": tenant.id if tenant else None,
        "user": tenant.user if tenant else None,
        "plan": tenant.plan if tenant else None,
        "source": tenant.source if tenant else None,
        "context": ambient.id if ambient else None,
        "state": state.id if state else None,
    }


async def interleaved(request: Request) -> dict[str, Any]:
    """Await a few times and record the ambient tenant each time (isolation test)."""
    seen = []
    trace: list[str] = request.app.state.trace
    for _ in range(5):
        await asyncio.sleep(random.random() / 1000)
        tenant = current_tenant()
        seen.append(tenant.id if tenant else None)
        trace.append(tenant.id if tenant else "-")
    return {"seen": seen, "state": request.state.tenant.id}


def starlette_app(**options: Any) -> Starlette:
    async def whoami(request: Request) -> JSONResponse:
        return JSONResponse(describe(request.state.tenant, request))

    async def slow(request: Request) -> JSONResponse:
        return JSONResponse(await interleaved(request))

    async def ws(websocket: StarletteWebSocket) -> None:
        await websocket.accept()
        await websocket.send_json(describe(websocket.state.tenant, websocket))
        await websocket.close()

    app = Starlette(
        routes=[
            Route("/whoami", whoami),
            Route("/health", whoami),
            Route("/health/deep", whoami),
            Route("/healthz", whoami),
            Route("/docs", whoami),
            Route("/tenants/{tid}/items", whoami),
            Route("/slow", slow),
            WebSocketRoute("/ws", ws),
        ],
        middleware=[Middleware(TenantMiddleware, **options)],
        exception_handlers={LiftError: problem_exception_handler},
    )
    app.state.trace = []
    return app


TenantDep = Annotated[Tenant, Depends(get_tenant)]


def fastapi_app(**options: Any) -> FastAPI:
    app = FastAPI()
    app.add_middleware(TenantMiddleware, **options)
    app.add_exception_handler(LiftError, problem_exception_handler)
    app.state.trace = []

    @app.get("/whoami")
    async def whoami(request: FastAPIRequest, tenant: TenantDep) -> dict[str, Any]:
        return describe(tenant, request)

    @app.get("/tenants/{tid}/items")
    async def items(tid: str, request: FastAPIRequest, tenant: TenantDep) -> dict[str, Any]:
        return describe(tenant, request)

    async def health(request: FastAPIRequest) -> dict[str, Any]:
        return describe(request.state.tenant, request)

    app.get("/health")(health)
    app.get("/health/deep")(health)
    app.get("/healthz")(health)  # not exempt: the middleware itself must refuse it

    @app.get("/health/needs-tenant")
    async def needs(tenant: TenantDep) -> dict[str, Any]:  # exempt, yet asks for a tenant
        return {"id": tenant.id}

    @app.get("/slow")
    async def slow(request: FastAPIRequest, tenant: TenantDep) -> dict[str, Any]:
        return await interleaved(request)

    @app.websocket("/ws")
    async def ws(websocket: WebSocket, tenant: TenantDep) -> None:
        await websocket.accept()
        await websocket.send_json(describe(tenant, websocket))
        await websocket.close()

    return app


AppFactory = Callable[..., ASGIApp]


@pytest.fixture(params=["starlette", "fastapi"])
def make_app(request: pytest.FixtureRequest) -> AppFactory:
    return starlette_app if request.param == "starlette" else fastapi_app


@asynccontextmanager
async def client(app: ASGIApp, host: str = "testserver") -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=f"http://{host}") as http:
        yield http


async def get(app: ASGIApp, path: str = "/whoami", **kwargs: Any) -> httpx.Response:
    async with client(app) as http:
        return await http.get(path, **kwargs)


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["type"].startswith("urn:lift-asgi:problem:")
    return body


GENERIC_TOKEN_DETAIL = "The bearer token is invalid or expired."


def assert_token_refused(response: httpx.Response) -> None:
    body = assert_problem(response, 401)
    # A generic detail: never PyJWT's exception text.
    assert body["detail"] == GENERIC_TOKEN_DETAIL
    assert response.headers["www-authenticate"] == "Bearer"


# ----------------------------------------------------------------------- JWT: accepted


async def test_valid_token_sets_state_contextvar_and_dependency(
    make_app: AppFactory, rsa_key: rsa.RSAPrivateKey
) -> None:
    app = make_app(resolvers=[JWTResolver(key=rsa_key.public_key())])
    response = await get(app, headers=bearer(sign(rsa_key)))
    assert response.status_code == 200, response.text
    assert response.json() == {
        "id": "acme",
        "user": "user-1",
        "plan": "pro",
        "source": "jwt",
        "context": "acme",
        "state": "acme",
    }
    assert current_tenant() is None  # reset after the request


@pytest.mark.parametrize("algorithm", ["ES256", "HS256"])
async def test_other_key_kinds_verify(
    make_app: AppFactory, ec_key: ec.EllipticCurvePrivateKey, algorithm: str
) -> None:
    signing, verifying = (
        (ec_key, ec_key.public_key()) if algorithm == "ES256" else (HS_SECRET, HS_SECRET)
    )
    app = make_app(resolvers=[JWTResolver(key=verifying)])
    response = await get(app, headers=bearer(sign(signing, algorithm)))
    assert response.status_code == 200, response.text
    assert response.json()["id"] == "acme"


async def test_pem_public_key_and_custom_claim_names(
    make_app: AppFactory, rsa_key: rsa.RSAPrivateKey, public_pem: bytes
) -> None:
    resolver = JWTResolver(
        key=public_pem.decode(), tenant_claim="org", user_claim="email", plan_claim="tier"
    )
    app = make_app(resolvers=[resolver])
    token = sign(rsa_key, org="globex", email="a@b.c", tier="free", tenant_id=_DROP)
    response = await get(app, headers=bearer(token))
    assert response.status_code == 200, response.text
    assert response.json()["id"] == "globex"
    assert response.json()["user"] == "a@b.c"
    assert response.json()["plan"] == "free"


async def test_default_plan_when_the_source_names_none(
    make_app: AppFactory, rsa_key: rsa.RSAPrivateKey
) -> None:
    app = make_app(resolvers=[JWTResolver(key=rsa_key.public_key())], default_plan="free")
    without = await get(app, headers=bearer(sign(rsa_key, plan=_DROP)))
    with_plan = await get(app, headers=bearer(sign(rsa_key, plan="pro")))
    assert without.json()["plan"] == "free"
    assert with_plan.json()["plan"] == "pro"


async def test_audience_and_issuer(make_app: AppFactory, rsa_key: rsa.RSAPrivateKey) -> None:
    resolver = JWTResolver(key=rsa_key.public_key(), audience="api", issuer="https://idp")
    app = make_app(resolvers=[resolver])
    good = await get(app, headers=bearer(sign(rsa_key, aud="api", iss="https://idp")))
    assert good.status_code == 200, good.text
    assert_token_refused(
        await get(app, headers=bearer(sign(rsa_key, aud="other", iss="https://idp")))
    )
    assert_token_refused(
        await get(app, headers=bearer(sign(rsa_key, aud="api", iss="https://evil")))
    )


async def test_audiences_and_issuers_given_as_any_iterable_hold_for_every_token(
    rsa_key: rsa.RSAPrivateKey,
) -> None:
    # PyJWT tests membership per token: a generator was spent by the first one
    resolver = JWTResolver(
        key=rsa_key.public_key(),
        audience=(name for name in ["api", "admin"]),
        issuer=(name for name in ["https://idp", "https://other-idp"]),
        cache_size=0,
    )
    for aud, iss in [
        ("admin", "https://other-idp"),
        ("admin", "https://other-idp"),
        ("api", "https://idp"),
    ]:
        tenant, _, _ = await resolver.verify(sign(rsa_key, aud=aud, iss=iss))
        assert tenant.id == "acme"
    with pytest.raises(Unauthorized):
        await resolver.verify(sign(rsa_key, aud="elsewhere", iss="https://idp"))


async def test_token_with_audience_refused_when_none_configured(
    make_app: AppFactory, rsa_key: rsa.RSAPrivateKey
) -> None:
    app = make_app(resolvers=[JWTResolver(key=rsa_key.public_key())])
    assert_token_refused(await get(app, headers=bearer(sign(rsa_key, aud="someone-else"))))


# ----------------------------------------------------------------------- JWT: refused


async def test_forged_signature(
    make_app: AppFactory, rsa_key: rsa.RSAPrivateKey, other_rsa_key: rsa.RSAPrivateKey
) -> None:
    app = make_app(resolvers=[JWTResolver(key=rsa_key.public_key())])
    assert_token_refused(await get(app, headers=bearer(sign(other_rsa_key))))

    # A genuine signature over a different payload: swap in another tenant's claims.
    header, _, signature = sign(rsa_key).split(".")
    forged_payload = b64url(json.dumps(claims(tenant_id="victim")).encode())
    tampered = f"{header}.{forged_payload}.{signature}"
    assert_token_refused(await get(app, headers=bearer(tampered)))


@pytest.mark.parametrize("alg", ["none", "None", "NONE", ""])
async def test_alg_none_refused(make_app: AppFactory, rsa_key: rsa.RSAPrivateKey, alg: str) -> None:
    app = make_app(resolvers=[JWTResolver(key=rsa_key.public_key())])
    token = hand_made_token({"alg": alg, "typ": "JWT"}, claims(), secret=None)
    assert_token_refused(await get(app, headers=bearer(token)))


async def test_alg_none_refused_for_hmac_resolver(make_app: AppFactory) -> None:
    app = make_app(resolvers=[JWTResolver(key=HS_SECRET)])
    token = hand_made_token({"alg": "none", "typ": "JWT"}, claims(), secret=None)
    assert_token_refused(await get(app, headers=bearer(token)))


async def test_hs_rs_confusion_refused(
    make_app: AppFactory, rsa_key: rsa.RSAPrivateKey, public_pem: bytes
) -> None:
    """An HS256 token whose HMAC secret is the (public) RSA key PEM must not verify."""
    app = make_app(resolvers=[JWTResolver(key=public_pem, algorithms=["RS256"])])
    forged = hand_made_token({"alg": "HS256", "typ": "JWT"}, claims(), secret=public_pem)
    assert_token_refused(await get(app, headers=bearer(forged)))
    # The same resolver accepts a real RS256 token, so the refusal above is about the alg.
    assert (await get(app, headers=bearer(sign(rsa_key)))).status_code == 200


async def test_rs_token_refused_by_hmac_resolver(
    make_app: AppFactory, other_rsa_key: rsa.RSAPrivateKey
) -> None:
    app = make_app(resolvers=[JWTResolver(key=HS_SECRET)])
    assert_token_refused(await get(app, headers=bearer(sign(other_rsa_key, "RS256"))))


async def test_expired_and_leeway(make_app: AppFactory, rsa_key: rsa.RSAPrivateKey) -> None:
    app = make_app(resolvers=[JWTResolver(key=rsa_key.public_key(), leeway=30)])
    now = int(time.time())
    assert_token_refused(await get(app, headers=bearer(sign(rsa_key, exp=now - 120))))
    within = await get(app, headers=bearer(sign(rsa_key, exp=now - 5)))
    assert within.status_code == 200, within.text


async def test_not_yet_valid_and_leeway(make_app: AppFactory, rsa_key: rsa.RSAPrivateKey) -> None:
    app = make_app(resolvers=[JWTResolver(key=rsa_key.public_key(), leeway=30)])
    now = int(time.time())
    assert_token_refused(await get(app, headers=bearer(sign(rsa_key, nbf=now + 120))))
    within = await get(app, headers=bearer(sign(rsa_key, nbf=now + 5)))
    assert within.status_code == 200, within.text


HUGE = 10**400  # "1" followed by 400 zeros: a valid JSON number no float can hold


@pytest.mark.parametrize("claim", ["exp", "nbf", "iat"])
@pytest.mark.parametrize(
    "value",
    [HUGE, -HUGE, float("inf"), 1e300, "future", True, [1]],
    ids=["1e400-int", "minus-1e400", "Infinity", "1e300", "numeric-string", "true", "list"],
)
async def test_a_signed_token_whose_dates_are_not_numericdates_is_a_401(
    make_app: AppFactory, claim: str, value: Any
) -> None:
    """RFC 7519 NumericDate is a JSON number; PyJWT takes ``"1767225600"`` and a huge one
    overflowed a float (a 500). Each is a signed, otherwise valid token: 401."""
    if value == "future":
        value = str(int(time.time()) + 300)
    app = make_app(resolvers=[JWTResolver(key=HS_SECRET)])
    token = hand_made_token({"alg": "HS256", "typ": "JWT"}, claims(**{claim: value}), HS_SECRET)
    assert_token_refused(await get(app, headers=bearer(token)))


async def test_numericdates_that_are_numbers_still_pass(make_app: AppFactory) -> None:
    now = time.time()
    app = make_app(resolvers=[JWTResolver(key=HS_SECRET)])
    payload = claims(exp=now + 300.5, nbf=now - 1.25, iat=int(now))
    token = hand_made_token({"alg": "HS256", "typ": "JWT"}, payload, HS_SECRET)
    response = await get(app, headers=bearer(token))
    assert response.status_code == 200, response.text


async def test_missing_exp_refused_by_default(
    make_app: AppFactory, rsa_key: rsa.RSAPrivateKey
) -> None:
    strict = make_app(resolvers=[JWTResolver(key=rsa_key.public_key())])
    assert_token_refused(await get(strict, headers=bearer(sign(rsa_key, exp=_DROP))))
    relaxed = make_app(resolvers=[JWTResolver(key=rsa_key.public_key(), required_claims=())])
    response = await get(relaxed, headers=bearer(sign(rsa_key, exp=_DROP)))
    assert response.status_code == 200, response.text


async def test_missing_tenant_claim_is_401(
    make_app: AppFactory, rsa_key: rsa.RSAPrivateKey
) -> None:
    app = make_app(resolvers=[JWTResolver(key=rsa_key.public_key())])
    response = await get(app, headers=bearer(sign(rsa_key, tenant_id=_DROP)))
    body = assert_problem(response, 401)
    assert body["detail"] == "The bearer token names no tenant."


@pytest.mark.parametrize("value", ["Bearer", "Bearer    ", "Bearer not.a.jwt", "Bearer ùñí"])
async def test_malformed_bearer_values(
    make_app: AppFactory, rsa_key: rsa.RSAPrivateKey, value: str
) -> None:
    app = make_app(resolvers=[JWTResolver(key=rsa_key.public_key())])
    response = await get(app, headers={"authorization": value.encode()})
    assert_problem(response, 401)


async def test_other_auth_scheme_is_not_a_token(
    make_app: AppFactory, rsa_key: rsa.RSAPrivateKey
) -> None:
    """``Basic`` credentials are not this resolver's source: the next resolver answers."""
    app = make_app(resolvers=[JWTResolver(key=rsa_key.public_key()), HeaderResolver()])
    response = await get(app, headers={"authorization": "Basic dTpw", "x-tenant-id": "acme"})
    assert response.status_code == 200, response.text
    assert response.json()["source"] == "header"


async def test_invalid_token_is_not_skipped_for_a_later_resolver(
    make_app: AppFactory, other_rsa_key: rsa.RSAPrivateKey, rsa_key: rsa.RSAPrivateKey
) -> None:
    app = make_app(resolvers=[JWTResolver(key=rsa_key.public_key()), HeaderResolver()])
    headers = {**bearer(sign(other_rsa_key)), "x-tenant-id": "acme"}
    assert_token_refused(await get(app, headers=headers))


# ------------------------------------------------------------------------ tenant ids


BAD_IDS = [
    "a#b",
    "a/b",
    "tënant",
    "",
    "a" * 65,
    "a b",
    "-acme",
    "acme\t",
    "\uff41\uff43\uff4d\uff45",
]  # last: fullwidth "acme"


@pytest.mark.parametrize("tenant_id", BAD_IDS)
async def test_malformed_tenant_id_in_token_is_400(
    make_app: AppFactory, rsa_key: rsa.RSAPrivateKey, tenant_id: str
) -> None:
    app = make_app(resolvers=[JWTResolver(key=rsa_key.public_key())])
    response = await get(app, headers=bearer(sign(rsa_key, tenant_id=tenant_id)))
    assert_problem(response, 400)


@pytest.mark.parametrize("tenant_id", BAD_IDS)
async def test_malformed_tenant_id_in_header_is_400(make_app: AppFactory, tenant_id: str) -> None:
    app = make_app(resolvers=[HeaderResolver()])
    response = await get(app, headers={"x-tenant-id": tenant_id.encode()})
    assert_problem(response, 400)


@pytest.mark.parametrize("tenant_id", ["a", "a" * 64, "Acme_Corp.eu-1", "42"])
async def test_wellformed_tenant_ids_pass(make_app: AppFactory, tenant_id: str) -> None:
    app = make_app(resolvers=[HeaderResolver()])
    response = await get(app, headers={"x-tenant-id": tenant_id})
    assert response.status_code == 200, response.text
    assert response.json()["id"] == tenant_id


async def test_non_string_tenant_claim(make_app: AppFactory, rsa_key: rsa.RSAPrivateKey) -> None:
    app = make_app(resolvers=[JWTResolver(key=rsa_key.public_key())])
    numeric = await get(app, headers=bearer(sign(rsa_key, tenant_id=1234)))
    assert numeric.json()["id"] == "1234"
    assert_problem(await get(app, headers=bearer(sign(rsa_key, tenant_id=["a"]))), 400)


async def test_custom_tenant_id_pattern_and_callable_floor(make_app: AppFactory) -> None:
    only_digits = make_app(resolvers=[HeaderResolver()], tenant_id_pattern=r"\d{3}")
    assert (await get(only_digits, headers={"x-tenant-id": "123"})).status_code == 200
    assert_problem(await get(only_digits, headers={"x-tenant-id": "1234"}), 400)  # fullmatch

    # Even a custom regex never lets through what breaks a "{tenant}#{pk}" key.
    hashes = make_app(resolvers=[HeaderResolver()], tenant_id_pattern=r"[a-z#]+")
    assert (await get(hashes, headers={"x-tenant-id": "ab"})).status_code == 200
    assert_problem(await get(hashes, headers={"x-tenant-id": "a#b"}), 400)

    anything = make_app(resolvers=[HeaderResolver()], tenant_id_pattern=lambda _: True)
    assert (await get(anything, headers={"x-tenant-id": "team@acme"})).status_code == 200
    # A permissive callable still never lets through what breaks a "{tenant}#{pk}" key.
    assert_problem(await get(anything, headers={"x-tenant-id": "a#b"}), 400)
    assert_problem(await get(anything, headers={"x-tenant-id": ""}), 400)


# --------------------------------------------------------------------- missing, exempt


async def test_no_source_is_401(make_app: AppFactory, rsa_key: rsa.RSAPrivateKey) -> None:
    app = make_app(resolvers=[JWTResolver(key=rsa_key.public_key()), HeaderResolver()])
    body = assert_problem(await get(app), 401)
    assert body["title"] == "Unauthorized"


async def test_exempt_paths_pass_without_tenant(make_app: AppFactory) -> None:
    app = make_app(resolvers=[HeaderResolver()], exempt=("/health", "/docs/"))
    for path in ("/health", "/health/deep"):
        response = await get(app, path)
        assert response.status_code == 200, (path, response.text)
        assert response.json()["id"] is None
        assert response.json()["state"] is None
        assert response.json()["context"] is None
    # Prefixes match on segment boundaries only.
    assert_problem(await get(app, "/healthz"), 401)


async def test_exempt_path_still_ignores_a_given_tenant(make_app: AppFactory) -> None:
    app = make_app(resolvers=[HeaderResolver()], exempt=("/health",))
    response = await get(app, "/health", headers={"x-tenant-id": "acme"})
    assert response.json()["state"] is None


async def test_exempt_route_asking_for_a_tenant_is_a_401_problem() -> None:
    app = fastapi_app(resolvers=[HeaderResolver()], exempt=("/health",))
    assert_problem(await get(app, "/health/needs-tenant"), 401)


async def test_exempt_is_relative_to_root_path() -> None:
    app = starlette_app(resolvers=[HeaderResolver()], exempt=("/health",))
    transport = httpx.ASGITransport(app=app, root_path="/prod")
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        response = await http.get("/prod/health")
    assert response.status_code == 200, response.text
    assert response.json()["state"] is None


# ------------------------------------------------------------------------ consistency


async def test_header_and_token_disagree_in_consistency_mode(
    make_app: AppFactory, rsa_key: rsa.RSAPrivateKey
) -> None:
    resolvers = [JWTResolver(key=rsa_key.public_key()), HeaderResolver()]
    strict = make_app(resolvers=resolvers, require_consistent=True)
    token = sign(rsa_key, tenant_id="acme")

    mismatch = await get(strict, headers={**bearer(token), "x-tenant-id": "globex"})
    body = assert_problem(mismatch, 403)
    assert "jwt" in body["detail"] and "header" in body["detail"]

    agree = await get(strict, headers={**bearer(token), "x-tenant-id": "acme"})
    assert agree.status_code == 200
    assert agree.json()["source"] == "jwt"  # the first answer is the tenant

    one_source = await get(strict, headers={"x-tenant-id": "globex"})
    assert one_source.json()["id"] == "globex"

    lenient = make_app(resolvers=resolvers)
    first_wins = await get(lenient, headers={**bearer(token), "x-tenant-id": "globex"})
    assert first_wins.status_code == 200
    assert first_wins.json()["id"] == "acme"


async def test_consistency_mode_validates_every_answer(make_app: AppFactory) -> None:
    app = make_app(
        resolvers=[PathResolver("/tenants/{tenant_id}"), HeaderResolver()], require_consistent=True
    )
    response = await get(app, "/tenants/acme/items", headers={"x-tenant-id": "a#b"})
    assert_problem(response, 400)


# ------------------------------------------------------------------ other resolvers


async def test_subdomain(make_app: AppFactory) -> None:
    app = make_app(resolvers=[SubdomainResolver("example.com")])
    cases = {
        "acme.example.com": "acme",
        "ACME.Example.COM:8443": "acme",
        "acme.example.com.": "acme",
    }
    for host, expected in cases.items():
        response = await get(app, headers={"host": host})
        assert response.status_code == 200, (host, response.text)
        assert response.json()["id"] == expected
        assert response.json()["source"] == "subdomain"
    for host in ("example.com", "www.example.com", "a.b.example.com", "acme.evil.com", "[::1]"):
        assert_problem(await get(app, headers={"host": host}), 401)
    assert_problem(await get(app, headers={"host": "a_#.example.com"}), 400)


@pytest.mark.parametrize(
    ("exclude", "tenants", "refused"),
    [
        ("www", {"w", "ww", "api"}, {"www"}),  # one string is one label, not its letters
        (["www", "API"], {"w", "acme"}, {"www", "api"}),
        (None, {"www", "acme"}, set()),  # None: nothing excluded
        ((), {"www"}, set()),
    ],
)
async def test_subdomain_exclude(exclude: Any, tenants: set[str], refused: set[str]) -> None:
    resolver = SubdomainResolver("example.com", exclude=exclude)

    async def resolve(label: str) -> Tenant | None:
        scope = {"type": "http", "headers": [(b"host", f"{label}.example.com".encode())]}
        return await resolver.resolve(scope)

    for label in tenants:
        tenant = await resolve(label)
        assert tenant is not None and tenant.id == label
    for label in refused:
        assert await resolve(label) is None


async def test_path_template(make_app: AppFactory) -> None:
    app = make_app(resolvers=[PathResolver("/tenants/{tenant_id}")])
    response = await get(app, "/tenants/acme/items")
    assert response.status_code == 200, response.text
    assert response.json()["id"] == "acme"
    assert response.json()["source"] == "path"
    assert_problem(await get(app, "/tenants/a%23b/items"), 400)
    assert_problem(await get(app, "/tenants/%C3%A9/items"), 400)
    assert_problem(await get(app, "/whoami"), 401)


async def test_path_template_with_other_placeholders() -> None:
    resolver = PathResolver("/v1/{region}/orgs/{tenant_id}")
    scope = {"type": "http", "path": "/v1/eu/orgs/acme/things", "root_path": "", "headers": []}
    tenant = await resolver.resolve(scope)
    assert tenant is not None and tenant.id == "acme"
    assert await resolver.resolve({**scope, "path": "/v1/eu/orgsx/acme"}) is None
    assert await resolver.resolve({**scope, "path": "/v1/eu/orgs/acmex"}) is not None
    mounted = {**scope, "path": "/api/v1/eu/orgs/acme", "root_path": "/api"}
    assert (await resolver.resolve(mounted)) == Tenant("acme", source="path")
    trailing = PathResolver("/tenants/{tenant_id}/")
    assert (await trailing.resolve({**scope, "path": "/tenants/acme/items"})) == Tenant(
        "acme", source="path"
    )


async def test_custom_resolver_function(make_app: AppFactory) -> None:
    async def from_query(scope: Scope) -> Tenant | None:
        query = scope["query_string"].decode()
        if query.startswith("org="):
            return Tenant(query[4:], plan="team", source="query")
        return None

    app = make_app(resolvers=[from_query])
    response = await get(app, "/whoami?org=initech")
    assert response.json()["id"] == "initech"
    assert response.json()["source"] == "query"
    assert_problem(await get(app), 401)


@pytest.mark.parametrize("kind", ["function", "object", "jwt-subclass"])
async def test_a_resolver_that_raises_anything_is_a_logged_401(
    make_app: AppFactory, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    """No exception from a resolver becomes a 500: the request is not identified."""

    async def broken(scope: Scope) -> Tenant | None:
        raise KeyError("a bug in a resolver")

    class Broken:
        name = "broken"

        async def resolve(self, scope: Scope) -> Tenant | None:
            raise RuntimeError("a bug in a resolver")

    class BrokenJWT(JWTResolver):
        async def verify(self, token: str | bytes) -> tuple[Tenant, float, float | None]:
            raise ZeroDivisionError("a bug in a resolver")

    resolver: Any = {
        "function": broken,
        "object": Broken(),
        "jwt-subclass": BrokenJWT(key=HS_SECRET),
    }[kind]
    app = make_app(resolvers=[resolver])
    with caplog.at_level("ERROR", logger="lift_asgi.tenancy"):
        response = await get(app, headers=bearer(sign(HS_SECRET, "HS256")))
    body = assert_problem(response, 401)
    assert "bug" not in response.text
    assert body["detail"] == "No tenant could be determined for this request."
    (record,) = [r for r in caplog.records if r.name == "lift_asgi.tenancy"]
    assert record.levelname == "ERROR" and record.exc_info is not None
    assert "a bug in a resolver" in str(record.exc_info[1])


# ------------------------------------------------------------------------ websocket


def websocket_scope(headers: list[tuple[bytes, bytes]], path: str = "/ws") -> Scope:
    return {
        "type": "websocket",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "scheme": "ws",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"testserver"), *headers],
        "client": ("127.0.0.1", 1234),
        "server": ("testserver", 80),
        "subprotocols": [],
    }


async def drive_websocket(app: ASGIApp, headers: list[tuple[bytes, bytes]]) -> list[Message]:
    inbox: asyncio.Queue[Message] = asyncio.Queue()
    inbox.put_nowait({"type": "websocket.connect"})
    sent: list[Message] = []

    async def receive() -> Message:
        return await inbox.get()

    async def send(message: Message) -> None:
        sent.append(message)
        if message["type"] == "websocket.close":
            inbox.put_nowait({"type": "websocket.disconnect", "code": 1000})

    await asyncio.wait_for(app(websocket_scope(headers), receive, send), timeout=5)
    return sent


async def test_websocket_refused_with_1008(
    make_app: AppFactory, other_rsa_key: rsa.RSAPrivateKey, rsa_key: rsa.RSAPrivateKey
) -> None:
    app = make_app(resolvers=[JWTResolver(key=rsa_key.public_key()), HeaderResolver()])
    forged = [(b"authorization", f"Bearer {sign(other_rsa_key)}".encode())]
    for headers in ([], forged, [(b"x-tenant-id", b"a#b")]):
        sent = await drive_websocket(app, headers)
        assert [m["type"] for m in sent] == ["websocket.close"], headers
        assert sent[0]["code"] == 1008


async def test_websocket_accepted_with_tenant(
    make_app: AppFactory, rsa_key: rsa.RSAPrivateKey
) -> None:
    app = make_app(resolvers=[JWTResolver(key=rsa_key.public_key())])
    sent = await drive_websocket(app, [(b"authorization", f"Bearer {sign(rsa_key)}".encode())])
    assert [m["type"] for m in sent] == ["websocket.accept", "websocket.send", "websocket.close"]
    payload = json.loads(sent[1]["text"])
    assert payload["id"] == "acme"
    assert payload["context"] == "acme"
    assert payload["state"] == "acme"


# --------------------------------------------------------------- isolation, lifespan


async def test_contextvar_isolation_across_100_concurrent_requests(make_app: AppFactory) -> None:
    app = make_app(resolvers=[HeaderResolver()])
    tenants = [f"tenant-{i:03d}" for i in range(100)]
    async with client(app) as http:
        responses = await asyncio.gather(
            *(http.get("/slow", headers={"x-tenant-id": tenant}) for tenant in tenants)
        )
    for tenant, response in zip(tenants, responses, strict=True):
        assert response.status_code == 200, response.text
        assert response.json() == {"seen": [tenant] * 5, "state": tenant}
    # The handlers really did interleave: otherwise this test could not see a leak.
    trace = app.state.trace
    switches = sum(1 for a, b in itertools.pairwise(trace) if a != b)
    assert switches > 100
    assert current_tenant() is None


async def test_lifespan_and_other_scopes_pass_through() -> None:
    seen: list[Scope] = []

    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope)

    middleware = TenantMiddleware(inner, resolvers=[HeaderResolver()])

    async def receive() -> Message:
        raise AssertionError("the middleware must not read lifespan messages")

    async def send(message: Message) -> None:
        raise AssertionError("the middleware must not answer lifespan messages")

    lifespan = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
    await middleware(lifespan, receive, send)
    assert seen == [lifespan]
    assert "tenant" not in lifespan["state"]


async def test_state_dict_created_when_absent() -> None:
    seen: list[Scope] = []

    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope)
        assert require_tenant().id == "acme"

    middleware = TenantMiddleware(inner, resolvers=[HeaderResolver()])
    scope = {"type": "http", "path": "/", "root_path": "", "headers": [(b"x-tenant-id", b"acme")]}

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    async def send(message: Message) -> None:
        pass

    await middleware(scope, receive, send)
    assert seen[0]["state"]["tenant"] == Tenant("acme", source="header")
    assert tenant_from_scope(scope) == Tenant("acme", source="header")
    assert tenant_from_scope({"type": "http"}) is None


def test_require_tenant_outside_a_request() -> None:
    assert current_tenant() is None
    with pytest.raises(Unauthorized):
        require_tenant()


def test_tenant_claims_are_read_only() -> None:
    source = {"tenant_id": "acme", "roles": ["admin"]}
    tenant = Tenant("acme", claims=source)
    source["tenant_id"] = "changed"
    assert tenant.claims["tenant_id"] == "acme"
    with pytest.raises(TypeError):
        tenant.claims["tenant_id"] = "globex"  # type: ignore[index]
    with pytest.raises(AttributeError):
        tenant.id = "globex"  # type: ignore[misc]
    assert "roles" not in repr(tenant)  # claims stay out of logs
    assert hash(tenant) == hash(Tenant("acme", claims={"other": 1}))


# ---------------------------------------------------------------------------- cache


class CountingJWTResolver(JWTResolver):
    """Counts real verifications (cache misses)."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.verifications = 0

    async def verify(self, token: str | bytes) -> tuple[Tenant, float, float | None]:
        self.verifications += 1
        return await super().verify(token)


async def test_cache_hit_skips_verification(
    make_app: AppFactory, rsa_key: rsa.RSAPrivateKey
) -> None:
    resolver = CountingJWTResolver(key=rsa_key.public_key())
    app = make_app(resolvers=[resolver])
    token = sign(rsa_key)
    for _ in range(3):
        response = await get(app, headers=bearer(token))
        assert response.json()["id"] == "acme"
    assert resolver.verifications == 1
    await get(app, headers=bearer(sign(rsa_key, tenant_id="globex", jti="2")))
    assert resolver.verifications == 2


async def test_cache_disabled_verifies_every_time(
    make_app: AppFactory, rsa_key: rsa.RSAPrivateKey
) -> None:
    resolver = CountingJWTResolver(key=rsa_key.public_key(), cache_size=0)
    app = make_app(resolvers=[resolver])
    token = sign(rsa_key)
    for _ in range(3):
        assert (await get(app, headers=bearer(token))).status_code == 200
    assert resolver.verifications == 3


async def test_cached_entry_not_used_after_exp(
    make_app: AppFactory, rsa_key: rsa.RSAPrivateKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    resolver = CountingJWTResolver(key=rsa_key.public_key())
    app = make_app(resolvers=[resolver])
    exp = int(time.time()) + 60
    token = sign(rsa_key, exp=exp)
    assert (await get(app, headers=bearer(token))).status_code == 200
    assert (await get(app, headers=bearer(token))).status_code == 200
    assert resolver.verifications == 1
    # The cache's clock passes exp: the entry must not answer (PyJWT's real clock still
    # accepts the token, so the request succeeds through a fresh verification).
    monkeypatch.setattr(jwt_resolver, "_wallclock", lambda: exp + 1.0)
    assert (await get(app, headers=bearer(token))).status_code == 200
    assert resolver.verifications == 2


async def test_cached_entry_not_used_before_nbf(
    make_app: AppFactory, rsa_key: rsa.RSAPrivateKey
) -> None:
    resolver = CountingJWTResolver(key=rsa_key.public_key(), leeway=60)
    app = make_app(resolvers=[resolver])
    token = sign(rsa_key, nbf=int(time.time()) + 30)  # accepted only thanks to the leeway
    for _ in range(2):
        assert (await get(app, headers=bearer(token))).status_code == 200
    assert resolver.verifications == 2


async def test_cache_is_bounded_lru(make_app: AppFactory, rsa_key: rsa.RSAPrivateKey) -> None:
    resolver = CountingJWTResolver(key=rsa_key.public_key(), cache_size=2)
    app = make_app(resolvers=[resolver])
    a, b, c = (sign(rsa_key, jti=name) for name in "abc")
    for token in (a, b, a, c):  # c evicts b, the least recently used
        await get(app, headers=bearer(token))
    assert resolver.verifications == 3
    await get(app, headers=bearer(a))
    assert resolver.verifications == 3
    await get(app, headers=bearer(b))
    assert resolver.verifications == 4


async def test_invalid_token_never_cached(
    make_app: AppFactory, rsa_key: rsa.RSAPrivateKey, other_rsa_key: rsa.RSAPrivateKey
) -> None:
    resolver = CountingJWTResolver(key=rsa_key.public_key())
    app = make_app(resolvers=[resolver])
    forged = sign(other_rsa_key)
    for _ in range(2):
        assert_token_refused(await get(app, headers=bearer(forged)))
    assert resolver.verifications == 2


# ----------------------------------------------------------------------------- JWKS


@pytest.fixture
def jwks_server(rsa_key: rsa.RSAPrivateKey) -> Any:
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(rsa_key.public_key()))
    body = json.dumps({"keys": [{**jwk, "kid": "k1", "use": "sig", "alg": "RS256"}]}).encode()
    hits: list[threading.Thread] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(threading.current_thread())
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/.well-known/jwks.json", hits
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


async def test_jwks_url(
    make_app: AppFactory,
    rsa_key: rsa.RSAPrivateKey,
    other_rsa_key: rsa.RSAPrivateKey,
    jwks_server: Any,
) -> None:
    url, hits = jwks_server
    resolver = CountingJWTResolver(jwks_url=url)
    app = make_app(resolvers=[resolver])
    for jti in ("1", "2", "3"):  # three distinct tokens: three verifications
        token = sign(rsa_key, headers={"kid": "k1"}, jti=jti)
        response = await get(app, headers=bearer(token))
        assert response.status_code == 200, response.text
        assert response.json()["id"] == "acme"
    assert resolver.verifications == 3
    assert len(hits) == 1  # the key set is fetched once, then reused
    assert_token_refused(await get(app, headers=bearer(sign(other_rsa_key, headers={"kid": "k1"}))))
    assert_token_refused(await get(app, headers=bearer(sign(rsa_key))))  # no kid
    hs = sign(HS_SECRET, "HS256", headers={"kid": "k1"})
    assert_token_refused(await get(app, headers=bearer(hs)))


async def test_jwks_unreachable_is_503(make_app: AppFactory, rsa_key: rsa.RSAPrivateKey) -> None:
    with ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler) as probe:
        port = probe.server_address[1]  # a port nobody listens on once closed
    app = make_app(resolvers=[JWTResolver(jwks_url=f"http://127.0.0.1:{port}/jwks")])
    response = await get(app, headers=bearer(sign(rsa_key, headers={"kid": "k1"})))
    body = assert_problem(response, 503)
    assert "127.0.0.1" not in body["detail"]
    assert response.headers["retry-after"]


@pytest.mark.parametrize(
    "answer",
    [
        b"<html><body>Sign in to the corporate proxy</body></html>",  # not JSON at all
        b"\xff\xfe\x00garbage",
        b"[]",  # JSON, not an object
        b"null",
        b'{"keys": []}',  # an object without keys
        b'{"keys": [{"kty": "nope"}]}',  # without usable keys
        b"[" * 100_000,  # nested past the parser's recursion limit: it was a 401
    ],
)
async def test_a_jwks_endpoint_answering_no_key_set_is_503(
    make_app: AppFactory, rsa_key: rsa.RSAPrivateKey, answer: bytes
) -> None:
    # the endpoint's fault, not the token's: an HTML 200 raised json.load's ValueError,
    # which PyJWT lets through, and the request was refused as unidentified (401)
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/jwks"
        app = make_app(resolvers=[JWTResolver(jwks_url=url)])
        response = await get(app, headers=bearer(sign(rsa_key, headers={"kid": "k1"})))
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
    body = assert_problem(response, 503)
    assert body["detail"] == "The token signing keys are unavailable."
    assert response.headers["retry-after"] == "5"


async def test_a_kid_the_jwks_does_not_hold_is_401(
    make_app: AppFactory, rsa_key: rsa.RSAPrivateKey, jwks_server: Any
) -> None:
    url, _ = jwks_server
    app = make_app(resolvers=[JWTResolver(jwks_url=url)])
    assert (await get(app, headers=bearer(sign(rsa_key, headers={"kid": "k1"})))).status_code == 200
    assert_token_refused(await get(app, headers=bearer(sign(rsa_key, headers={"kid": "k9"}))))


# -------------------------------------------------------------------------- config


def _bad(option: str, factory: Callable[[], Any], id: str) -> Any:
    return pytest.param(option, factory, id=id)


async def _app(scope: Scope, receive: Receive, send: Send) -> None:
    pass


def _rsa_public() -> Any:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()


def _pem(key: Any) -> bytes:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


CONFIG_ERRORS = [
    _bad("resolvers", lambda: TenantMiddleware(_app), "no resolvers"),
    _bad("resolvers", lambda: TenantMiddleware(_app, resolvers=[]), "empty resolvers"),
    _bad("resolvers", lambda: TenantMiddleware(_app, resolvers=[42]), "not a resolver"),
    _bad("resolvers", lambda: TenantMiddleware(_app, resolvers=[lambda scope: None]), "sync"),
    _bad(
        "tenant_id_pattern",
        lambda: TenantMiddleware(_app, resolvers=[HeaderResolver()], tenant_id_pattern="(["),
        "bad regex",
    ),
    _bad(
        "exempt",
        lambda: TenantMiddleware(_app, resolvers=[HeaderResolver()], exempt=("health",)),
        "relative exempt",
    ),
    _bad(
        "exempt",
        lambda: TenantMiddleware(_app, resolvers=[HeaderResolver()], exempt=("/",)),
        "exempt everything",
    ),
    _bad(
        "default_plan",
        lambda: TenantMiddleware(_app, resolvers=[HeaderResolver()], default_plan=3),
        "default plan",
    ),
    _bad("key", lambda: JWTResolver(), "no key"),
    _bad("key", lambda: JWTResolver(key=HS_SECRET, jwks_url="https://x"), "key and jwks"),
    _bad("key", lambda: JWTResolver(key=b"short-secret"), "short HS256 secret"),
    _bad("key", lambda: JWTResolver(key=b"x" * 40, algorithms=["HS512"]), "short HS512"),
    _bad("algorithms", lambda: JWTResolver(key=HS_SECRET, algorithms=["none"]), "none"),
    _bad("algorithms", lambda: JWTResolver(key=HS_SECRET, algorithms=["HS999"]), "unknown"),
    _bad("algorithms", lambda: JWTResolver(key=HS_SECRET, algorithms="HS256"), "string"),
    _bad("algorithms", lambda: JWTResolver(key=HS_SECRET, algorithms=[]), "empty algs"),
    _bad("algorithms", lambda: JWTResolver(key=HS_SECRET, algorithms=[["HS256"]]), "unhashable"),
    _bad(
        "algorithms",
        lambda: JWTResolver(key=_rsa_public(), algorithms=["RS256", "HS256"]),
        "mixed kinds",
    ),
    _bad(
        "key",
        lambda: JWTResolver(key=_pem(_rsa_public()), algorithms=["HS256"]),
        "public key as HMAC secret",
    ),
    _bad("key", lambda: JWTResolver(key=HS_SECRET, algorithms=["RS256"]), "secret for RS256"),
    _bad(
        "key",
        lambda: JWTResolver(
            key=_rsa_public().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            ),
            algorithms=["HS256"],
        ),
        "DER public key as HMAC secret",
    ),
    _bad(
        "algorithms",
        lambda: JWTResolver(key=ec.generate_private_key(ec.SECP256R1()), algorithms=["ES384"]),
        "wrong curve",
    ),
    _bad(
        "key",
        lambda: JWTResolver(
            key=rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key()
        ),
        "small RSA",
    ),
    _bad("key", lambda: JWTResolver(key=b"-----BEGIN PUBLIC KEY-----\nnope\n"), "bad PEM"),
    _bad("key", lambda: JWTResolver(key=12345), "key type"),
    _bad("algorithms", lambda: JWTResolver(jwks_url="https://x", algorithms=["HS256"]), "jwks HS"),
    _bad("jwks_url", lambda: JWTResolver(jwks_url="file:///etc/passwd"), "jwks scheme"),
    _bad("leeway", lambda: JWTResolver(key=HS_SECRET, leeway=-1), "leeway"),
    *(
        _bad("leeway", lambda value=value: JWTResolver(key=HS_SECRET, leeway=value), id)
        for value, id in [
            (float("nan"), "leeway nan"),  # compared false: expired tokens were accepted
            (float("inf"), "leeway inf"),
            (True, "leeway bool"),
            ("5", "leeway str"),
            (10**400, "leeway past a float"),  # math.isfinite raised OverflowError
        ]
    ),
    *(
        _bad(
            option,
            lambda option=option, value=value: JWTResolver(
                **{"jwks_url": "https://idp.example/jwks", option: value}
            ),
            f"{option}={value!r}",
        )
        for option in ("jwks_lifespan", "jwks_timeout")
        for value in ("5m", "x", -1, 0, float("nan"), float("inf"), True, None)
    ),
    _bad("jwks_url", lambda: JWTResolver(jwks_url=123), "jwks url type"),
    *(
        _bad(
            option,
            lambda option=option, value=value: JWTResolver(key=HS_SECRET, **{option: value}),
            f"{option}={value!r}",
        )
        for option in ("audience", "issuer")
        for value in (123, "", [], [1], ["api", ""], b"api")
    ),
    _bad("required_claims", lambda: JWTResolver(key=HS_SECRET, required_claims=[1]), "req 1"),
    _bad("required_claims", lambda: JWTResolver(key=HS_SECRET, required_claims=[""]), "req ''"),
    _bad("required_claims", lambda: JWTResolver(key=HS_SECRET, required_claims=5), "req 5"),
    *(
        _bad("scheme", lambda value=value: JWTResolver(key=HS_SECRET, scheme=value), id)
        for value, id in [
            ("B\u00ebarer", "non-ascii scheme"),  # was a UnicodeEncodeError
            ("", "empty scheme"),
            ("Bearer token", "two-word scheme"),
            ("Bearer\t", "tab in scheme"),
            (None, "scheme None"),
        ]
    ),
    _bad("cache_size", lambda: JWTResolver(key=HS_SECRET, cache_size=-1), "cache size"),
    _bad("cache_size", lambda: JWTResolver(key=HS_SECRET, cache_size=True), "cache size bool"),
    _bad("name", lambda: JWTResolver(key=HS_SECRET, name=None), "jwt name None"),
    _bad("name", lambda: JWTResolver(key=HS_SECRET, name=""), "jwt name empty"),
    _bad("source", lambda: HeaderResolver(source=None), "header source"),  # type: ignore[arg-type]
    _bad("name", lambda: SubdomainResolver("example.com", name=3), "subdomain name"),  # type: ignore[arg-type]
    _bad("exclude", lambda: SubdomainResolver("example.com", exclude=5), "exclude int"),  # type: ignore[arg-type]
    _bad("exclude", lambda: SubdomainResolver("example.com", exclude=[1]), "exclude [1]"),  # type: ignore[list-item]
    _bad("param", lambda: PathResolver("/t/{}", param=""), "empty param"),
    _bad("param", lambda: PathResolver("/t/{5}", param=5), "param int"),  # type: ignore[arg-type]
    _bad("name", lambda: PathResolver(name=""), "path name"),
    _bad(
        "require_consistent",
        lambda: TenantMiddleware(_app, resolvers=[HeaderResolver()], require_consistent="no"),  # type: ignore[arg-type]
        "require_consistent str",
    ),
    _bad("tenant_claim", lambda: JWTResolver(key=HS_SECRET, tenant_claim=""), "tenant claim"),
    _bad("required_claims", lambda: JWTResolver(key=HS_SECRET, required_claims="exp"), "req"),
    _bad("header", lambda: JWTResolver(key=HS_SECRET, header="bad header"), "jwt header"),
    _bad("name", lambda: HeaderResolver("x tenant"), "header name"),
    _bad("base_domain", lambda: SubdomainResolver(""), "empty domain"),
    _bad("base_domain", lambda: SubdomainResolver("exa mple.com"), "bad domain"),
    _bad("template", lambda: PathResolver("/tenants/{id}"), "no placeholder"),
    _bad("template", lambda: PathResolver("tenants/{tenant_id}"), "relative template"),
    _bad("template", lambda: PathResolver("/t/{tenant_id}/{tenant_id}"), "twice"),
    _bad("template", lambda: PathResolver("/t/{tenant_id}}/x"), "stray brace"),
    _bad("template", lambda: PathResolver("/t/{}/{tenant_id}"), "empty placeholder"),
]


@pytest.mark.parametrize(("option", "factory"), CONFIG_ERRORS)
def test_configuration_errors_name_the_option(option: str, factory: Callable[[], Any]) -> None:
    with pytest.raises(ConfigurationError) as caught:
        factory()
    assert caught.value.option == option
    assert str(caught.value).startswith(f"{option}: ")


def test_algorithms_follow_the_key_by_default(
    rsa_key: rsa.RSAPrivateKey, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    assert JWTResolver(key=HS_SECRET).algorithms == ("HS256",)
    assert JWTResolver(key=rsa_key).algorithms == ("RS256",)  # private key: public half
    assert JWTResolver(key=ec_key.public_key()).algorithms == ("ES256",)
    assert JWTResolver(jwks_url="https://idp.example/jwks").algorithms == ("RS256",)
    assert JWTResolver(key=rsa_key, algorithms=["RS256", "PS256"]).algorithms == (
        "RS256",
        "PS256",
    )


def test_tenancy_does_not_import_fastapi() -> None:
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['fastapi'] = None\n"
        "import lift_asgi.tenancy, lift_asgi.aws\n"
        "assert 'fastapi' not in [m for m in sys.modules if sys.modules[m] is not None]\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


async def test_many_distinct_tenants_each_resolve_to_themselves() -> None:
    """More tenants than the resolvers' memos hold: answers stay right after each reset."""
    seen: list[str] = []

    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(require_tenant().id)

    middleware = TenantMiddleware(inner, resolvers=[HeaderResolver()], default_plan="free")

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    async def send(message: Message) -> None:
        pass

    tenants = [f"t{i}" for i in range(2500)] + ["t0", "t1"]
    for tenant in tenants:
        scope = {"type": "http", "path": "/", "headers": [(b"x-tenant-id", tenant.encode())]}
        await middleware(scope, receive, send)
        assert scope["state"]["tenant"].plan == "free"
    assert seen == tenants


async def test_lift_errors_raised_by_handlers_become_problem_responses() -> None:
    """get_tenant on an exempt path, or any LiftError a handler raises before it
    responds, is answered as problem+json, not as Starlette's plain-text 500."""
    from fastapi import FastAPI

    from lift_asgi.errors import NotFound

    app = FastAPI()
    app.add_middleware(TenantMiddleware, resolvers=[HeaderResolver()], exempt=["/open"])

    @app.get("/open")
    async def open_route(tenant: Annotated[Tenant, Depends(get_tenant)]) -> dict[str, str]:
        return {"tenant": tenant.id}

    @app.get("/missing")
    async def missing() -> None:
        raise NotFound("nothing here")

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        anonymous = await client.get("/open")
        assert anonymous.status_code == 401
        assert anonymous.headers["content-type"] == "application/problem+json"
        assert anonymous.json()["status"] == 401
        gone = await client.get("/missing", headers={"x-tenant-id": "acme"})
        assert gone.status_code == 404
        assert gone.json()["detail"] == "nothing here"


# ---------------------------------------------- misconfiguration is loud at startup

_MISCONFIGURED_APP = """
from starlette.applications import Starlette
from lift_asgi.tenancy import TenantMiddleware

app = Starlette()
app.add_middleware(TenantMiddleware, resolvers=[])  # no resolver: a ConfigurationError
"""


def test_a_misconfigured_add_middleware_stops_uvicorn_with_the_message(tmp_path: Any) -> None:
    """Starlette builds the stack inside the first ASGI call; uvicorn's default
    ``--lifespan auto`` took the error for "lifespan unsupported", started, and answered
    every request with a plain 500. Now startup fails with the message and uvicorn exits."""
    import subprocess
    import sys

    (tmp_path / "badapp.py").write_text(_MISCONFIGURED_APP)
    server = subprocess.run(
        [sys.executable, "-m", "uvicorn", "badapp:app", "--port", "0"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert server.returncode != 0
    assert "ConfigurationError: resolvers: at least one resolver is required" in server.stderr
    assert "Application startup failed" in server.stderr


@pytest.mark.parametrize("kind", ["starlette", "fastapi"])
async def test_a_misconfigured_stack_fails_the_lifespan_and_500s_requests(
    kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    app: Any = FastAPI() if kind == "fastapi" else Starlette()
    app.add_middleware(TenantMiddleware, resolvers=[HeaderResolver(), "not a resolver"])
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "lifespan.startup"}

    async def send(message: Message) -> None:
        sent.append(message)

    await app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, receive, send)
    assert sent[0]["type"] == "lifespan.startup.failed"
    assert "ConfigurationError: resolvers: 'not a resolver' has no resolve" in sent[0]["message"]
    # Without a lifespan (a server run with --lifespan off): a logged 500 problem.
    with caplog.at_level("ERROR", logger="lift_asgi.startup"):
        response = await get(app, headers={"x-tenant-id": "acme"})
    body = assert_problem(response, 500)
    assert "resolve" not in body["detail"]
    assert any("not a resolver" in record.getMessage() for record in caplog.records)


def test_direct_construction_and_eager_builds_still_raise() -> None:
    with pytest.raises(ConfigurationError, match="resolvers"):
        TenantMiddleware(_app, resolvers=[])
    app = Starlette(middleware=[Middleware(TenantMiddleware, resolvers=[])])
    with pytest.raises(ConfigurationError, match="resolvers"):
        app.build_middleware_stack()


def test_the_token_cache_is_sized_for_a_multi_tenant_service() -> None:
    """1,024 was one mid-sized tenant's users; past the cap every request pays a full
    verification. The default holds 16,384 live tokens (~1.5 KB each)."""
    assert JWTResolver(key=HS_SECRET).cache_size == 16384


def test_the_aws_resolvers_live_with_the_others_and_keep_their_old_name() -> None:
    import lift_asgi.aws
    import lift_asgi.tenancy
    import lift_asgi.tenancy.aws

    for name in ("AuthorizerResolver", "LambdaTenantResolver"):
        moved = getattr(lift_asgi.tenancy.aws, name)
        assert getattr(lift_asgi.tenancy, name) is moved
        assert getattr(lift_asgi.aws, name) is moved
