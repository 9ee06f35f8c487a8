"""The tenant stage's per-request path for a cached bearer token, and what it skips.

JWTResolver checks the scheme only when a token is not in its cache, and keys the cache
by a BLAKE2b digest; TenantMiddleware has a short path for one resolver and
first-answer-wins (an exempt request leaves it for the general one). Each test holds a
behaviour those shortcuts must keep.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

import jwt
import pytest
from starlette.types import Message, Receive, Scope, Send

from lift_asgi.errors import Conflict
from lift_asgi.stages import SCOPE_KEY
from lift_asgi.tenancy import HeaderResolver, JWTResolver, Tenant, TenantMiddleware
from lift_asgi.tenancy.current import current_tenant

SECRET = "test-only-hs256-secret-0123456789abcdef"


def token(tenant_id: str = "acme", **claims: Any) -> str:
    now = int(time.time())
    payload = {"tenant_id": tenant_id, "sub": "alice", "iat": now, "exp": now + 600, **claims}
    return jwt.encode(payload, SECRET, algorithm="HS256")


def http_scope(authorization: bytes | None = None, path: str = "/projects") -> Scope:
    headers = [(b"host", b"api.example.com"), (b"accept", b"*/*")]
    if authorization is not None:
        headers.append((b"authorization", authorization))
    return {"type": "http", "method": "GET", "path": path, "root_path": "", "headers": headers}


class Seen:
    """A trivial app recording the tenant wherever the middleware exposes it."""

    def __init__(self) -> None:
        self.tenants: list[tuple[Any, Any, Any]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        ctx = scope[SCOPE_KEY]
        self.tenants.append((scope["state"]["tenant"], ctx.tenant, current_tenant()))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


async def call(app: Any, scope: Scope) -> list[Message]:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


async def test_the_cache_is_keyed_by_a_blake2b_digest_and_holds_no_token() -> None:
    resolver = JWTResolver(key=SECRET)
    credentials = f"Bearer {token()}".encode()
    tenant = await resolver.resolve(http_scope(credentials))
    assert tenant is not None and tenant.id == "acme"
    assert resolver._entries is not None
    (key,) = resolver._entries
    assert key == hashlib.blake2b(credentials).digest()
    assert len(key) == 64  # 512 bits: 256-bit collision resistance
    assert token().split(".")[2].encode() not in key and credentials not in key
    assert await resolver.resolve(http_scope(credentials)) is tenant  # the hit


async def test_a_hit_answers_without_the_scheme_check_only_for_the_same_bytes() -> None:
    """The scheme is checked on a miss only: a hit is on bytes that passed it."""
    resolver = JWTResolver(key=SECRET)
    raw = token().encode()
    bearer = await resolver.resolve(http_scope(b"Bearer " + raw))
    assert bearer is not None
    # Another scheme with the same token misses the cache and is not this source's.
    assert await resolver.resolve(http_scope(b"Basic " + raw)) is None
    assert await resolver.resolve(http_scope(raw)) is None
    # The scheme is case-insensitive: its own entry, the same tenant.
    lower = await resolver.resolve(http_scope(b"bearer " + raw))
    assert lower is not None and lower.id == "acme" and lower is not bearer
    assert resolver._entries is not None and len(resolver._entries) == 2
    assert await resolver.resolve(http_scope(None)) is None


async def test_without_a_cache_the_scheme_is_still_checked() -> None:
    resolver = JWTResolver(key=SECRET, cache_size=0)
    raw = token().encode()
    found = await resolver.resolve(http_scope(b"Bearer " + raw))
    assert found is not None and found.id == "acme"
    assert await resolver.resolve(http_scope(b"Basic " + raw)) is None


async def test_the_first_authorization_header_counts() -> None:
    resolver = JWTResolver(key=SECRET)
    scope = http_scope(f"Bearer {token('acme')}".encode())
    scope["headers"].append((b"authorization", f"Bearer {token('globex')}".encode()))
    for _ in range(2):  # the miss, then the hit
        found = await resolver.resolve(scope)
        assert found is not None and found.id == "acme"


def _middlewares(app: Any, **options: Any) -> dict[str, TenantMiddleware]:
    """The same configuration on the short path and on the general one (with no short
    path set, __call__ sends every request to _handle)."""
    short = TenantMiddleware(app, **options)
    general = TenantMiddleware(app, **options)
    general._one = None
    assert short._one is not None
    return {"short": short, "general": general}


@pytest.mark.parametrize("path", ["short", "general"])
async def test_both_paths_expose_and_reset_the_tenant(path: str) -> None:
    seen = Seen()
    middleware = _middlewares(seen, resolvers=[JWTResolver(key=SECRET)], default_plan="free")
    middleware = {"short": middleware["short"], "general": middleware["general"]}[path]
    scope = http_scope(f"Bearer {token()}".encode())
    for _ in range(2):  # verified, then cached and already accepted
        sent = await call(middleware, dict(scope))
        assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
        assert sent[0]["status"] == 200
    first, second = seen.tenants
    assert first[0] is first[1] is first[2] and first[0] is second[0]
    assert first[0].plan == "free"  # default_plan applied once, the result remembered
    assert current_tenant() is None  # reset after the request


@pytest.mark.parametrize("path", ["short", "general"])
@pytest.mark.parametrize(
    ("authorization", "status"),
    [(None, 401), (b"Bearer not-a-token", 401), (b"Bearer " + b"x" * 10, 401)],
)
async def test_both_paths_refuse_alike(path: str, authorization: bytes | None, status: int) -> None:
    seen = Seen()
    middleware = _middlewares(seen, resolvers=[JWTResolver(key=SECRET)])[path]
    sent = await call(middleware, http_scope(authorization))
    assert sent[0]["status"] == status
    assert dict(sent[0]["headers"])[b"content-type"] == b"application/problem+json"
    assert seen.tenants == []


@pytest.mark.parametrize("path", ["short", "general"])
async def test_a_fresh_tenant_object_is_validated_whatever_came_before(path: str) -> None:
    """The accepted-tenant memo is keyed by id(): an entry holds its tenant, so no other
    object can have that id while it is remembered. Fresh objects are each validated."""
    ids = iter(["acme", "bad#id", "globex", "tab\tid"])
    checked: list[str] = []

    async def fresh(scope: Scope) -> Tenant:
        return Tenant(next(ids), source="fresh")

    def valid(tenant_id: str) -> bool:
        checked.append(tenant_id)
        return True

    seen = Seen()
    middleware = _middlewares(seen, resolvers=[fresh], tenant_id_pattern=valid)[path]
    statuses = [(await call(middleware, http_scope()))[0]["status"] for _ in range(4)]
    assert statuses == [200, 400, 200, 400]
    assert checked == ["acme", "globex"]  # the floor refused the others before the rule


@pytest.mark.parametrize("path", ["short", "general"])
async def test_a_resolver_that_raises_is_a_401_on_both_paths(path: str) -> None:
    async def broken(scope: Scope) -> Tenant:
        raise RuntimeError("boom")

    middleware = _middlewares(Seen(), resolvers=[broken])[path]
    sent = await call(middleware, http_scope())
    assert sent[0]["status"] == 401


def test_the_short_path_is_only_for_its_configuration() -> None:
    jwt_resolver, header = JWTResolver(key=SECRET), HeaderResolver()
    assert TenantMiddleware(Seen(), resolvers=[jwt_resolver])._one is not None
    assert TenantMiddleware(Seen(), resolvers=[jwt_resolver, header])._one is None
    assert TenantMiddleware(Seen(), resolvers=[header], require_consistent=True)._one is None
    # exempt paths keep it: the short path sends only an exempt request to _handle
    assert TenantMiddleware(Seen(), resolvers=[header], exempt=["/health"])._one is not None


@pytest.mark.parametrize(
    ("root_path", "path", "exempt"),
    [
        ("", "/health", True),
        ("", "/health/db", True),
        ("", "/healthz", False),
        ("", "/projects", False),
        ("", "/", False),
        ("/v1", "/v1/health", True),
        ("/v1", "/v1/healthz", False),
        ("/v1", "/v1/projects", False),
        ("/v1", "/health", True),  # a path outside its root_path is taken as it is
    ],
)
@pytest.mark.parametrize("with_token", [True, False])
async def test_exempt_paths_on_the_short_path_as_on_the_general_one(
    root_path: str, path: str, exempt: bool, with_token: bool
) -> None:
    """With exempt paths the short path still serves: an exempt request (segment
    boundaries, relative to root_path) gets no tenant and no 401, any other is
    resolved, exactly as _handle does it."""
    answers = []
    for name, middleware in _middlewares(
        Seen(), resolvers=[JWTResolver(key=SECRET)], exempt=["/health"]
    ).items():
        scope = http_scope(f"Bearer {token()}".encode() if with_token else None, path)
        scope["root_path"] = root_path
        app = middleware.app
        assert isinstance(app, Seen)
        before = len(app.tenants)  # both middlewares wrap the same app
        sent = await call(middleware, scope)
        seen = app.tenants[before:]
        tenants = [(t.id if t else None, c.id if c else None) for t, c, _ in seen]
        answers.append((sent[0]["status"], tenants, scope[SCOPE_KEY].stages))
        assert name in ("short", "general")
    assert answers[0] == answers[1]
    status, tenants, _ = answers[0]
    if exempt:
        assert (status, tenants) == (200, [(None, None)])
    elif with_token:
        assert (status, tenants) == (200, [("acme", "acme")])
    else:
        assert status == 401 and tenants == []


async def test_websocket_and_lifespan_take_the_general_path() -> None:
    calls: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        calls.append(scope["type"])

    middleware = TenantMiddleware(app, resolvers=[JWTResolver(key=SECRET)])
    assert middleware._one is not None
    await call(middleware, {"type": "lifespan"})
    scope = http_scope(f"Bearer {token()}".encode())
    await call(middleware, {**scope, "type": "websocket"})
    assert calls == ["lifespan", "websocket"]


@pytest.mark.parametrize(
    ("status", "rewritten"), [(299, False), (300, True), (308, True), (399, True), (400, False)]
)
async def test_the_send_wrapper_rewrites_redirects_only(status: int, rewritten: bool) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        location = (b"location", b"http://api.example.com/next")
        await send({"type": "http.response.start", "status": status, "headers": [location]})
        for chunk in (b"a", b"b"):
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    middleware = TenantMiddleware(app, resolvers=[JWTResolver(key=SECRET)])
    sent = await call(middleware, {**http_scope(f"Bearer {token()}".encode()), "scheme": "http"})
    location = dict(sent[0]["headers"])[b"location"]
    assert location == (b"/next" if rewritten else b"http://api.example.com/next")
    assert [m.get("body") for m in sent[1:]] == [b"a", b"b", b""]


async def test_a_lift_error_after_the_start_propagates() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        raise Conflict("too late")

    middleware = TenantMiddleware(app, resolvers=[JWTResolver(key=SECRET)])
    with pytest.raises(Conflict):
        await call(middleware, http_scope(f"Bearer {token()}".encode()))
    assert current_tenant() is None


async def test_the_middleware_asks_cached_tenant_first_and_resolve_on_a_miss() -> None:
    """One resolver with ``cached_tenant``: a hit skips ``resolve`` (no coroutine), a
    ``None`` falls through to it, and either answer is validated alike."""
    calls: list[str] = []

    class Remembering:
        name = "remembering"

        def __init__(self) -> None:
            self.memory: dict[bytes, Tenant] = {}

        def cached_tenant(self, scope: Scope) -> Tenant | None:
            calls.append("cached")
            return self.memory.get(dict(scope["headers"]).get(b"x-tenant", b""))

        async def resolve(self, scope: Scope) -> Tenant | None:
            calls.append("resolve")
            raw = dict(scope["headers"]).get(b"x-tenant")
            if raw is None:
                return None
            tenant = self.memory[raw] = Tenant(id=raw.decode(), source=self.name)
            return tenant

    seen = Seen()
    resolver = Remembering()
    app = TenantMiddleware(seen, resolvers=[resolver])
    scope = http_scope()
    scope["headers"].append((b"x-tenant", b"acme"))
    first = await call(app, dict(scope, headers=list(scope["headers"])))
    second = await call(app, dict(scope, headers=list(scope["headers"])))
    assert calls == ["cached", "resolve", "cached"]
    assert first[0]["status"] == second[0]["status"] == 200
    assert seen.tenants[0][1] is seen.tenants[1][1]
    assert seen.tenants[1][1].id == "acme"

    bad = http_scope()
    bad["headers"].append((b"x-tenant", b"a#b"))  # malformed: refused from memory too
    resolver.memory[b"a#b"] = Tenant(id="a#b", source="remembering")
    refused = await call(app, bad)
    assert refused[0]["status"] == 400
    assert calls[-1] == "cached"  # answered from memory, still validated


def test_an_async_cached_tenant_is_refused_where_it_is_configured() -> None:
    from lift_asgi.errors import ConfigurationError

    class Wrong:
        name = "wrong"

        async def cached_tenant(self, scope: Scope) -> Tenant | None:
            return None

        async def resolve(self, scope: Scope) -> Tenant | None:
            return None

    with pytest.raises(ConfigurationError, match=r"resolvers.*cached_tenant"):
        TenantMiddleware(Seen(), resolvers=[Wrong()])


async def test_jwt_cached_tenant_answers_only_live_cached_tokens() -> None:
    resolver = JWTResolver(key=SECRET)
    credentials = f"Bearer {token()}".encode()
    scope = http_scope(credentials)
    assert resolver.cached_tenant(scope) is None  # not verified yet
    tenant = await resolver.resolve(scope)
    assert resolver.cached_tenant(scope) is tenant
    assert resolver.cached_tenant(http_scope()) is None  # no header
    assert JWTResolver(key=SECRET, cache_size=0).cached_tenant(scope) is None
    # an entry past its exp is dropped, and resolve then refuses the token
    assert resolver._entries is not None
    (key,) = resolver._entries
    resolver._entries[key] = (0.0, time.time() - 1, tenant)
    assert resolver.cached_tenant(scope) is None
    assert not resolver._entries


async def test_a_subclass_that_overrides_resolve_sees_every_request() -> None:
    """Its own check (a revocation list here) runs on cache hits too: the short path asks
    cached_tenant only of the class whose resolve it would otherwise await."""

    class Revoking(JWTResolver):
        async def resolve(self, scope: Scope) -> Tenant | None:
            tenant = await super().resolve(scope)
            if tenant is not None and tenant.id == "banned":
                raise Conflict("revoked")
            return tenant

    middleware = TenantMiddleware(Seen(), resolvers=[Revoking(key=SECRET)])
    assert middleware._one is not None and middleware._cached is None
    for _ in range(2):  # the miss, then what would be a cache hit
        sent = await call(middleware, http_scope(f"Bearer {token('banned')}".encode()))
        assert sent[0]["status"] == 409
    plain = TenantMiddleware(Seen(), resolvers=[JWTResolver(key=SECRET)])
    assert plain._cached is not None
