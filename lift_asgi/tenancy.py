"""Who is asking: :class:`TenantMiddleware`, the :class:`Tenant` value and its resolvers.

The middleware asks its resolvers, in the order given, who the tenant of a request is.
The first answer wins (or, with ``require_consistent=True``, every source that answers
must agree). The tenant id is validated before anything else sees it, then exposed in
``scope["state"]["tenant"]`` (``request.state.tenant``), through :func:`current_tenant`
for the duration of the request, and as the FastAPI dependency :func:`get_tenant`.

A resolver is any object with ``name`` and ``async resolve(scope) -> Tenant | None``
(see :class:`Resolver`), or a plain async function of the scope. It returns ``None``
when its source is absent from the request, and raises a :class:`~lift_asgi.errors.LiftError`
when its source is present but unacceptable (a forged token is a 401, not "no answer").
The Lambda-specific resolvers live in :mod:`lift_asgi.aws`.
"""

from __future__ import annotations

import inspect
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from hashlib import sha256 as _sha256
from types import MappingProxyType
from typing import Any, Protocol, TypeAlias

import anyio.to_thread
import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Receive, Scope, Send

from lift_asgi._context import tenant_var
from lift_asgi._paths import compile_prefixes, route_path, under
from lift_asgi._startup import LoudStartup
from lift_asgi.errors import (
    ConfigurationError,
    InvalidTenant,
    LiftError,
    ServiceUnavailable,
    TenantMismatch,
    Unauthorized,
    call_with_problems,
    send_problem,
)
from lift_asgi.stages import TENANT, enter

__all__ = [
    "DEFAULT_TENANT_ID_PATTERN",
    "HeaderResolver",
    "JWTResolver",
    "PathResolver",
    "Resolver",
    "SubdomainResolver",
    "Tenant",
    "TenantMiddleware",
    "current_tenant",
    "get_tenant",
    "require_tenant",
    "tenant_from_scope",
]

logger = logging.getLogger("lift_asgi.tenancy")

#: Letters, digits, ``_ . -``; starts with a letter or digit; 1 to 64 characters.
DEFAULT_TENANT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"

_EMPTY_CLAIMS: Mapping[str, Any] = MappingProxyType({})

# The wall clock the token cache compares ``exp``/``nbf`` against (a module global so a
# test can move it; PyJWT keeps using the real clock).
_wallclock = time.time


# --------------------------------------------------------------------------- the value


@dataclass(frozen=True, slots=True)
class Tenant:
    """The tenant of the current request.

    ``claims`` holds the raw claims of the source (token payload, authorizer context) as a
    read-only mapping; it is empty for sources without claims (header, path, subdomain).
    ``source`` names the resolver that answered.
    """

    id: str
    user: str | None = None
    plan: str | None = None
    claims: Mapping[str, Any] = field(default_factory=lambda: _EMPTY_CLAIMS, repr=False, hash=False)
    source: str = "custom"

    def __post_init__(self) -> None:
        if type(self.claims) is not MappingProxyType:
            object.__setattr__(self, "claims", MappingProxyType(dict(self.claims)))


def current_tenant() -> Tenant | None:
    """The tenant of the request being handled, or ``None`` (exempt path, no request)."""
    return tenant_var.get()


def require_tenant() -> Tenant:
    """The tenant of the request being handled; :class:`Unauthorized` when there is none."""
    tenant = tenant_var.get()
    if tenant is None:
        raise Unauthorized("This request has no tenant.")
    return tenant


def tenant_from_scope(scope: Scope) -> Tenant | None:
    """The tenant :class:`TenantMiddleware` stored in ``scope["state"]``, if any."""
    state = scope.get("state")
    if not state:
        return None
    tenant: Tenant | None = state.get("tenant")
    return tenant


def get_tenant(request: HTTPConnection) -> Tenant:
    """FastAPI dependency: ``tenant: Annotated[Tenant, Depends(get_tenant)]``.

    Works for HTTP and WebSocket routes (FastAPI injects the connection). Raises
    :class:`Unauthorized` on a route the middleware let through without a tenant (an
    exempt path); register :func:`lift_asgi.errors.problem_exception_handler` for
    :class:`~lift_asgi.errors.LiftError` so that becomes a 401 problem response.
    """
    tenant = tenant_from_scope(request.scope)
    if tenant is None:
        raise Unauthorized("This request has no tenant.")
    return tenant


# ------------------------------------------------------------------------ the protocol


class Resolver(Protocol):
    """What :class:`TenantMiddleware` asks. ``name`` becomes :attr:`Tenant.source`."""

    name: str

    async def resolve(self, scope: Scope) -> Tenant | None:
        """The tenant this source names, ``None`` when the source is absent.

        Raise a :class:`~lift_asgi.errors.LiftError` when the source is present but not
        acceptable. The returned id is validated by the middleware, not here.
        """
        ...


ResolveFunc: TypeAlias = Callable[[Scope], Awaitable[Tenant | None]]


def _as_text(value: Any) -> str | None:
    """A claim value as a string: strings as they are, integers spelled out, else None."""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


_MEMO_SIZE = 1024
_MEMO_KEY_MAX = 300
_MISSING: Any = object()


def _memo_put(memo: dict[Any, Any], key: Any, value: Any) -> Any:
    """Remember ``value`` under ``key`` in a small per-resolver memo (cleared when full).

    Tenants are immutable, so a resolver hands out the same object for the same input
    instead of building one per request; the memo only saves work, never decides. Long
    keys (never a valid tenant id) are not kept, so junk input cannot fill memory.
    """
    if isinstance(key, bytes | str) and len(key) > _MEMO_KEY_MAX:
        return value
    if len(memo) >= _MEMO_SIZE:
        memo.clear()
    memo[key] = value
    return value


def _header_name(option: str, name: str) -> bytes:
    if not isinstance(name, str) or not re.fullmatch(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", name):
        raise ConfigurationError(option, f"{name!r} is not a valid HTTP header name")
    return name.lower().encode("ascii")


# ------------------------------------------------------------------- simple resolvers


class HeaderResolver:
    """The tenant id from a request header (default ``X-Tenant-Id``).

    Any client can set a header. Trust this resolver only behind a gateway that strips
    the header from client requests and sets it itself; otherwise put a verified source
    (JWT, authorizer) first, or use it with ``require_consistent=True``.
    """

    def __init__(self, name: str = "x-tenant-id", *, source: str = "header") -> None:
        self.header = _header_name("name", name)
        self.name = source
        self._memo: dict[bytes, Tenant] = {}

    async def resolve(self, scope: Scope) -> Tenant | None:
        header = self.header
        for key, value in scope["headers"]:
            if key == header:
                tenant = self._memo.get(value)
                if tenant is None:
                    tenant = Tenant(value.decode("latin-1"), None, None, _EMPTY_CLAIMS, self.name)
                    _memo_put(self._memo, bytes(value), tenant)
                return tenant
        return None


class SubdomainResolver:
    """The tenant id from the first label of the ``Host`` header under ``base_domain``.

    ``acme.example.com`` gives ``acme`` with ``base_domain="example.com"``; the bare base
    domain, hosts outside it, deeper names (``a.b.example.com``) and labels in
    ``exclude`` (default ``www``) give no answer. Host names are case-insensitive, so the
    id is lower-cased.
    """

    def __init__(
        self,
        base_domain: str,
        *,
        exclude: Iterable[str] = ("www",),
        name: str = "subdomain",
    ) -> None:
        domain = base_domain.strip().strip(".").lower() if isinstance(base_domain, str) else ""
        if not domain or not re.fullmatch(r"[a-z0-9-]+(\.[a-z0-9-]+)*", domain):
            raise ConfigurationError("base_domain", f"{base_domain!r} is not a domain name")
        self._suffix = "." + domain
        self._exclude = frozenset(label.lower() for label in exclude)
        self.name = name
        self._memo: dict[bytes, Tenant | None] = {}

    async def resolve(self, scope: Scope) -> Tenant | None:
        raw = _header(scope, b"host")
        if raw is None:
            return None
        tenant: Tenant | None = self._memo.get(raw, _MISSING)
        if tenant is _MISSING:
            tenant = _memo_put(self._memo, raw, self._parse(raw))
        return tenant

    def _parse(self, raw: bytes) -> Tenant | None:
        if raw.startswith(b"["):  # an IPv6 literal is never a tenant's host name
            return None
        host = raw.partition(b":")[0].decode("latin-1").lower().rstrip(".")
        suffix = self._suffix
        if not host.endswith(suffix):
            return None
        label = host[: -len(suffix)]
        if not label or "." in label or label in self._exclude:
            return None
        return Tenant(label, None, None, _EMPTY_CLAIMS, self.name)


class PathResolver:
    """The tenant id from a path template such as ``"/tenants/{tenant_id}"``.

    The template matches a prefix of the path on a segment boundary, so
    ``/tenants/acme/items`` gives ``acme``. Other ``{name}`` placeholders match any one
    segment. The path is taken without the app's ``root_path``.
    """

    def __init__(
        self,
        template: str = "/tenants/{tenant_id}",
        *,
        param: str = "tenant_id",
        name: str = "path",
    ) -> None:
        if not isinstance(template, str) or not template.startswith("/"):
            raise ConfigurationError("template", f"{template!r} must start with '/'")
        placeholders = re.findall(r"{([^{}]*)}", template)
        if placeholders.count(param) != 1:
            raise ConfigurationError(
                "template", f"{template!r} must contain {{{param}}} exactly once"
            )
        if not all(placeholder.isidentifier() for placeholder in placeholders) or re.search(
            r"[{}]", re.sub(r"{[^{}]*}", "", template)
        ):
            raise ConfigurationError("template", f"{template!r} has a malformed placeholder")
        pattern = ["^"]
        # A trailing "/" would demand a second one before the rest of the path.
        for literal, placeholder in re.findall(r"([^{}]*)(?:{([^{}]*)})?", template.rstrip("/")):
            pattern.append(re.escape(literal))
            if placeholder == param:
                pattern.append("(?P<tenant>[^/]*)")
            elif placeholder:
                pattern.append("[^/]+")
        pattern.append("(?:/|$)")
        self._regex = re.compile("".join(pattern))
        self.template = template
        self.name = name
        self._memo: dict[str, Tenant] = {}

    async def resolve(self, scope: Scope) -> Tenant | None:
        match = self._regex.match(route_path(scope))
        if match is None:
            return None
        tenant_id = match.group("tenant")
        tenant = self._memo.get(tenant_id)
        if tenant is None:
            tenant = Tenant(tenant_id, None, None, _EMPTY_CLAIMS, self.name)
            _memo_put(self._memo, tenant_id, tenant)
        return tenant


# ------------------------------------------------------------------------------- JWT

# Each algorithm PyJWT verifies, by the kind of key it needs. An allow-list holds one
# kind only, and the key must be of that kind: that is what makes algorithm confusion
# (an HS256 token "signed" with the RSA public key as its secret) impossible.
_HMAC = "shared secret"
_RSA = "RSA public key"
_EC = "EC public key"
_OKP = "Ed25519/Ed448 public key"
_ALGORITHM_KEY_KIND = {
    "HS256": _HMAC,
    "HS384": _HMAC,
    "HS512": _HMAC,
    "RS256": _RSA,
    "RS384": _RSA,
    "RS512": _RSA,
    "PS256": _RSA,
    "PS384": _RSA,
    "PS512": _RSA,
    "ES256": _EC,
    "ES256K": _EC,
    "ES384": _EC,
    "ES512": _EC,
    "ES521": _EC,
    "EdDSA": _OKP,
}
_HMAC_MIN_BYTES = {"HS256": 32, "HS384": 48, "HS512": 64}
_EC_CURVE_ALGORITHM = {
    "secp256r1": "ES256",
    "secp256k1": "ES256K",
    "secp384r1": "ES384",
    "secp521r1": "ES512",
}
_EC_ALGORITHM_CURVE = {
    "ES256": "secp256r1",
    "ES256K": "secp256k1",
    "ES384": "secp384r1",
    "ES512": "secp521r1",
    "ES521": "secp521r1",
}
_RSA_MIN_BITS = 2048

_PublicKey: TypeAlias = (
    rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | ed448.Ed448PublicKey
)


def _load_public_key(key: Any) -> _PublicKey | bytes:
    """A verification key: a public key object, or the bytes of a shared secret."""
    if isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        return key.public_key()
    if isinstance(key, ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey):
        return key.public_key()
    if isinstance(
        key,
        rsa.RSAPublicKey
        | ec.EllipticCurvePublicKey
        | ed25519.Ed25519PublicKey
        | ed448.Ed448PublicKey,
    ):
        return key
    if isinstance(key, str):
        key = key.encode()
    if not isinstance(key, bytes):
        raise ConfigurationError("key", f"unsupported key type {type(key).__name__}")
    text = key.strip()
    try:
        if text.startswith(b"-----BEGIN CERTIFICATE"):
            loaded: Any = x509.load_pem_x509_certificate(text).public_key()
        elif text.startswith(b"-----BEGIN") and b"PRIVATE KEY" in text.split(b"\n", 1)[0]:
            loaded = serialization.load_pem_private_key(text, password=None).public_key()
        elif text.startswith(b"-----BEGIN"):
            loaded = serialization.load_pem_public_key(text)
        elif text.startswith((b"ssh-", b"ecdsa-sha2-")):
            loaded = serialization.load_ssh_public_key(text)
        else:
            return key  # a shared secret
    except (ValueError, TypeError) as exc:
        raise ConfigurationError("key", "the PEM/SSH key could not be loaded") from exc
    if not isinstance(
        loaded,
        rsa.RSAPublicKey
        | ec.EllipticCurvePublicKey
        | ed25519.Ed25519PublicKey
        | ed448.Ed448PublicKey,
    ):
        raise ConfigurationError("key", f"unsupported key type {type(loaded).__name__}")
    return loaded


def _key_kind(key: _PublicKey | bytes) -> str:
    if isinstance(key, bytes):
        return _HMAC
    if isinstance(key, rsa.RSAPublicKey):
        return _RSA
    if isinstance(key, ec.EllipticCurvePublicKey):
        return _EC
    return _OKP


def _default_algorithms(key: _PublicKey | bytes) -> list[str]:
    if isinstance(key, bytes):
        return ["HS256"]
    if isinstance(key, rsa.RSAPublicKey):
        return ["RS256"]
    if isinstance(key, ec.EllipticCurvePublicKey):
        algorithm = _EC_CURVE_ALGORITHM.get(key.curve.name)
        if algorithm is None:
            raise ConfigurationError("key", f"unsupported EC curve {key.curve.name}")
        return [algorithm]
    return ["EdDSA"]


def _check_algorithms(algorithms: Any) -> list[str]:
    if isinstance(algorithms, str) or not isinstance(algorithms, Iterable):
        raise ConfigurationError("algorithms", "must be a list of algorithm names")
    names = list(algorithms)
    if not names:
        raise ConfigurationError("algorithms", "must name at least one algorithm")
    for name in names:
        if isinstance(name, str) and name.lower() == "none":
            raise ConfigurationError("algorithms", "'none' (unsigned tokens) is never allowed")
        if name not in _ALGORITHM_KEY_KIND:
            raise ConfigurationError(
                "algorithms",
                f"unknown algorithm {name!r}; choose from {sorted(_ALGORITHM_KEY_KIND)}",
            )
    kinds = {_ALGORITHM_KEY_KIND[name] for name in names}
    if len(kinds) > 1:
        raise ConfigurationError(
            "algorithms",
            "mixes algorithms that need different kinds of key "
            f"({', '.join(sorted(kinds))}); one resolver verifies one kind",
        )
    return names


#: 9999-12-31T23:59:59Z: beyond it a NumericDate is no date a clock can reach.
_MAX_NUMERIC_DATE = 253402300799


def _numeric_date(payload: Mapping[str, Any], claim: str) -> float | None:
    """``payload[claim]`` as seconds, ``None`` when absent; a 401 unless it is a
    NumericDate: a JSON number (RFC 7519 section 2; PyJWT also takes ``"1767225600"``),
    finite, at most 9999-12-31 either side of 1970 (``1`` and 400 zeros overflowed a
    float: a 500)."""
    value = payload.get(claim)
    if value is None:
        return None
    if type(value) not in (int, float) or not -_MAX_NUMERIC_DATE <= value <= _MAX_NUMERIC_DATE:
        logger.debug("bearer token rejected: %r is not a NumericDate", claim)
        raise Unauthorized("The bearer token is invalid or expired.")
    return float(value)


class _TokenCache:
    """Verified tokens by sha256 of the credentials: LRU-bounded, used only in [nbf, exp).

    ``entries`` maps digest -> (nbf, exp, tenant); :meth:`JWTResolver.resolve` reads it
    inline (this runs on every request), :meth:`put` writes it.
    """

    __slots__ = ("entries", "maxsize")

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self.entries: OrderedDict[bytes, tuple[float, float, Tenant]] = OrderedDict()

    def put(self, digest: bytes, not_before: float, expires: float, tenant: Tenant) -> None:
        entries = self.entries
        entries[digest] = (not_before, expires, tenant)
        entries.move_to_end(digest)
        while len(entries) > self.maxsize:
            try:
                entries.popitem(last=False)
            except KeyError:  # pragma: no cover - emptied by another thread
                break


class JWTResolver:
    """The tenant from a verified JWT claim in ``Authorization: Bearer <token>``.

    Give either ``key`` (an HS* shared secret as str/bytes, or an RSA/EC/Ed25519 public
    key as PEM, SSH or a ``cryptography`` key object; a private key is reduced to its
    public half) or ``jwks_url`` (fetched through PyJWT's ``PyJWKClient`` in a worker
    thread and cached for ``jwks_lifespan`` seconds).

    ``algorithms`` is the allow-list and must hold algorithms of one key kind, matching
    the key; by default it follows the key (HS256 for a secret, RS256 for RSA, ES256/384/
    512 by curve, EdDSA) or RS256 for a JWKS. The token header never widens it; ``none``
    is refused. ``exp`` and ``nbf`` are honoured with ``leeway`` seconds;
    ``required_claims`` must be present (default ``("exp",)``); tokens that carry ``aud``
    are refused unless ``audience`` is set. A token without the tenant claim is a 401.

    Verified tokens are cached (``cache_size`` entries, LRU, keyed by the sha256 of the
    ``Authorization`` value so no token is kept, never used after ``exp`` or before
    ``nbf``; tokens without ``exp`` are not cached); ``cache_size=0`` turns it off.

    ``verify(token)`` checks a token without the cache (for tokens that arrive another
    way, such as in a WebSocket message).
    """

    def __init__(
        self,
        *,
        key: Any = None,
        algorithms: Sequence[str] | None = None,
        jwks_url: str | None = None,
        tenant_claim: str = "tenant_id",
        user_claim: str | None = "sub",
        plan_claim: str | None = "plan",
        leeway: float = 5.0,
        audience: str | Iterable[str] | None = None,
        issuer: str | Sequence[str] | None = None,
        required_claims: Iterable[str] = ("exp",),
        cache_size: int = 1024,
        header: str = "authorization",
        scheme: str = "Bearer",
        jwks_lifespan: float = 300.0,
        jwks_timeout: float = 5.0,
        name: str = "jwt",
    ) -> None:
        if (key is None) == (jwks_url is None):
            raise ConfigurationError("key", "give exactly one of key= or jwks_url=")
        self._key: _PublicKey | bytes | None = None
        self._jwks: jwt.PyJWKClient | None = None
        self._jwks_keys: dict[str, tuple[jwt.PyJWK, float]] = {}
        self._jwks_lifespan = float(jwks_lifespan)
        if jwks_url is not None:
            names = _check_algorithms(["RS256"] if algorithms is None else algorithms)
            if _ALGORITHM_KEY_KIND[names[0]] == _HMAC:
                raise ConfigurationError(
                    "algorithms", "HS* algorithms need a shared secret, not a JWKS URL"
                )
            if self._jwks_lifespan <= 0:
                raise ConfigurationError("jwks_lifespan", "must be greater than 0")
            try:
                self._jwks = jwt.PyJWKClient(
                    jwks_url, lifespan=self._jwks_lifespan, timeout=jwks_timeout
                )
            except jwt.PyJWTError as exc:
                raise ConfigurationError("jwks_url", str(exc)) from exc
        else:
            public = _load_public_key(key)
            names = _check_algorithms(
                _default_algorithms(public) if algorithms is None else algorithms
            )
            self._check_key(public, names)
            self._key = public
        self.algorithms: tuple[str, ...] = tuple(names)

        for option, claim in (("tenant_claim", tenant_claim), ("user_claim", user_claim)):
            if claim is not None and (not isinstance(claim, str) or not claim):
                raise ConfigurationError(option, "must be a non-empty claim name")
        if plan_claim is not None and (not isinstance(plan_claim, str) or not plan_claim):
            raise ConfigurationError("plan_claim", "must be a non-empty claim name or None")
        if not isinstance(leeway, int | float) or leeway < 0:
            raise ConfigurationError("leeway", "must be a number of seconds >= 0")
        if isinstance(required_claims, str):
            raise ConfigurationError("required_claims", "must be a list of claim names")
        if not isinstance(cache_size, int) or cache_size < 0:
            raise ConfigurationError("cache_size", "must be an integer >= 0 (0 disables)")
        if not isinstance(scheme, str) or not scheme or " " in scheme:
            raise ConfigurationError("scheme", "must be one word, such as 'Bearer'")

        self.tenant_claim = tenant_claim
        self.user_claim = user_claim
        self.plan_claim = plan_claim
        self.leeway = float(leeway)
        self.audience = audience
        self.issuer = issuer
        self.required_claims = tuple(required_claims)
        self.name = name
        self._header = _header_name("header", header)
        self._prefix = scheme.encode("ascii") + b" "
        self._prefix_lower = self._prefix.lower()
        self._prefix_len = len(self._prefix)
        self._jwt = jwt.PyJWT(
            {"require": list(self.required_claims), "enforce_minimum_key_length": True}
        )
        self._cache = _TokenCache(cache_size) if cache_size else None

    @staticmethod
    def _check_key(key: _PublicKey | bytes, algorithms: list[str]) -> None:
        kind = _key_kind(key)
        needed = _ALGORITHM_KEY_KIND[algorithms[0]]
        if kind != needed:
            raise ConfigurationError(
                "key", f"algorithms {algorithms} need a {needed}, but the key is a {kind}"
            )
        if isinstance(key, bytes):
            try:  # PyJWT refuses PEM/SSH/DER key material as an HMAC secret: say so now
                jwt.algorithms.HMACAlgorithm(jwt.algorithms.HMACAlgorithm.SHA256).prepare_key(key)
            except jwt.InvalidKeyError as exc:
                raise ConfigurationError("key", str(exc)) from exc
            shortest = max(_HMAC_MIN_BYTES[name] for name in algorithms)
            if len(key) < shortest:
                raise ConfigurationError(
                    "key",
                    f"an HMAC secret for {'/'.join(algorithms)} must be at least "
                    f"{shortest} bytes (RFC 7518 section 3.2); this one is {len(key)}",
                )
        elif isinstance(key, rsa.RSAPublicKey):
            if key.key_size < _RSA_MIN_BITS:
                raise ConfigurationError(
                    "key", f"RSA keys must be at least {_RSA_MIN_BITS} bits, not {key.key_size}"
                )
        elif isinstance(key, ec.EllipticCurvePublicKey):
            for name in algorithms:
                if _EC_ALGORITHM_CURVE[name] != key.curve.name:
                    raise ConfigurationError(
                        "algorithms", f"{name} does not use the key's curve {key.curve.name}"
                    )

    @property
    def cache_size(self) -> int:
        return self._cache.maxsize if self._cache is not None else 0

    async def resolve(self, scope: Scope) -> Tenant | None:
        # This runs on every request: the header scan and cache lookup are inlined.
        name = self._header
        for key, credentials in scope["headers"]:  # noqa: B007 - used after break
            if key == name:
                break
        else:
            return None
        if not credentials.startswith(self._prefix) and (
            # The scheme is case-insensitive (RFC 9110 section 11.1).
            credentials[: self._prefix_len].lower() != self._prefix_lower
        ):
            return None  # another scheme (Basic, ...): not this source
        cache = self._cache
        if cache is None:
            return (await self.verify(self._token(credentials)))[0]
        # The cache is keyed by a digest so it never holds a bearer token itself.
        digest = _sha256(credentials).digest()
        entry = cache.entries.get(digest)
        if entry is not None:
            now = _wallclock()
            if entry[0] <= now < entry[1]:
                try:  # noqa: SIM105 - cheaper than contextlib.suppress on the hot path
                    cache.entries.move_to_end(digest)
                except KeyError:  # evicted by another thread meanwhile
                    pass
                return entry[2]
            if now >= entry[1]:
                cache.entries.pop(digest, None)
        tenant, not_before, expires = await self.verify(self._token(credentials))
        if expires is not None:
            cache.put(digest, not_before, expires, tenant)
        return tenant

    def _token(self, credentials: bytes) -> bytes:
        token = credentials[self._prefix_len :].strip()
        if not token:
            raise Unauthorized("The bearer token is empty.")
        return token

    async def verify(self, token: str | bytes) -> tuple[Tenant, float, float | None]:
        """Verify ``token`` (no cache): ``(tenant, nbf or 0, exp or None)``.

        Raises :class:`Unauthorized` with a generic detail when the token is not
        acceptable; the reason is logged at debug level.
        """
        key: Any = self._key
        if self._jwks is not None:
            key = await self._signing_key(token)
        try:
            payload: dict[str, Any] = self._jwt.decode(
                token,
                key,
                algorithms=self.algorithms,
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
            )
        except (jwt.PyJWTError, ValueError, TypeError, ArithmeticError) as exc:
            # ArithmeticError: PyJWT's int() of an exp of 1e400 (JSON gives inf).
            logger.debug("bearer token rejected: %s: %s", type(exc).__name__, exc)
            raise Unauthorized("The bearer token is invalid or expired.") from None

        raw_tenant = payload.get(self.tenant_claim)
        if raw_tenant is None:
            logger.debug("bearer token has no %r claim", self.tenant_claim)
            raise Unauthorized("The bearer token names no tenant.")
        tenant_id = _as_text(raw_tenant)
        if tenant_id is None:
            raise InvalidTenant("The tenant id is malformed.")
        expires = _numeric_date(payload, "exp")
        not_before = _numeric_date(payload, "nbf")
        _numeric_date(payload, "iat")
        user = _as_text(payload.get(self.user_claim)) if self.user_claim else None
        plan = _as_text(payload.get(self.plan_claim)) if self.plan_claim else None
        tenant = Tenant(tenant_id, user, plan, MappingProxyType(payload), self.name)
        return tenant, not_before or 0.0, expires

    async def _signing_key(self, token: str | bytes) -> jwt.PyJWK:
        assert self._jwks is not None
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.PyJWTError as exc:
            logger.debug("bearer token rejected: %s: %s", type(exc).__name__, exc)
            raise Unauthorized("The bearer token is invalid or expired.") from None
        if not isinstance(kid, str):
            logger.debug("bearer token rejected: no 'kid' header to pick a JWKS key")
            raise Unauthorized("The bearer token is invalid or expired.")
        known = self._jwks_keys.get(kid)
        if known is not None and known[1] > time.monotonic():
            return known[0]
        try:
            # PyJWKClient uses blocking urllib: keep it off the event loop.
            signing_key = await anyio.to_thread.run_sync(self._jwks.get_signing_key, kid)
        except jwt.PyJWKClientConnectionError as exc:
            logger.warning("JWKS %s could not be fetched: %s", self._jwks.uri, exc)
            raise ServiceUnavailable(
                "The token signing keys are unavailable.", retry_after=5
            ) from None
        except jwt.PyJWTError as exc:
            logger.debug("bearer token rejected: %s: %s", type(exc).__name__, exc)
            raise Unauthorized("The bearer token is invalid or expired.") from None
        self._jwks_keys[kid] = (signing_key, time.monotonic() + self._jwks_lifespan)
        return signing_key


# ------------------------------------------------------------------------ middleware


def _compile_validator(option: Any) -> Callable[[str], object]:
    if option == DEFAULT_TENANT_ID_PATTERN:
        return re.compile(option).fullmatch  # implies the floor below
    if isinstance(option, str):
        try:
            check: Callable[[str], object] = re.compile(option).fullmatch
        except re.error as exc:
            raise ConfigurationError("tenant_id_pattern", f"invalid regex: {exc}") from exc
    elif isinstance(option, re.Pattern):
        check = option.fullmatch
    elif callable(option):
        check = option
    else:
        raise ConfigurationError(
            "tenant_id_pattern", "must be a regex (str or compiled) or a callable"
        )

    def validate(tenant_id: str) -> bool:
        # A custom rule may widen the default, but never lets through what would break
        # a "{tenant}#{key}" partition key or a log line.
        return (
            0 < len(tenant_id) <= 256
            and "#" not in tenant_id
            and tenant_id.isprintable()
            and bool(check(tenant_id))
        )

    return validate


def _compile_resolvers(resolvers: Any) -> tuple[tuple[ResolveFunc, str], ...]:
    if resolvers is None or isinstance(resolvers, str) or not isinstance(resolvers, Iterable):
        raise ConfigurationError("resolvers", "must be a list of resolvers")
    compiled = []
    for resolver in resolvers:
        method = getattr(resolver, "resolve", None)
        if callable(method):
            name = str(getattr(resolver, "name", type(resolver).__name__))
        elif callable(resolver):
            method, name = resolver, str(getattr(resolver, "__name__", "custom"))
        else:
            raise ConfigurationError(
                "resolvers", f"{resolver!r} has no resolve(scope) method and is not callable"
            )
        # An object with an async __call__ counts too (the attribute, not callable()).
        call = type(method).__call__ if not inspect.isroutine(method) else None
        if not (inspect.iscoroutinefunction(method) or inspect.iscoroutinefunction(call)):
            raise ConfigurationError("resolvers", f"{name}: resolve(scope) must be async")
        compiled.append((method, name))
    if not compiled:
        raise ConfigurationError("resolvers", "at least one resolver is required")
    return tuple(compiled)


class TenantMiddleware(metaclass=LoudStartup):
    """Resolve the tenant of every HTTP and WebSocket request; refuse those without one.

    Options (all checked here, once; mistakes raise :class:`ConfigurationError`):

    - ``resolvers``: tried in order; the first answer wins.
    - ``require_consistent`` (``False``): ask every resolver; two answers that name
      different tenants are a 403 (:class:`~lift_asgi.errors.TenantMismatch`).
    - ``tenant_id_pattern`` (:data:`DEFAULT_TENANT_ID_PATTERN`): a regex the whole id
      must match, or a callable ``(tenant_id) -> bool``. A custom rule can widen the
      default, but ids that are empty, longer than 256 characters, contain ``#`` or
      non-printable characters are refused regardless. A malformed id is a 400.
    - ``exempt`` (``()``): path prefixes, matched on segment boundaries (``"/health"``
      covers ``/health`` and ``/health/db``, not ``/healthz``), that pass through with
      ``request.state.tenant = None``.
    - ``default_plan`` (``None``): the plan of a tenant whose source names none.

    No answer is a 401. HTTP failures are ``application/problem+json``; a refused
    WebSocket is closed with code 1008 after its ``websocket.connect``.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        resolvers: Sequence[Resolver | ResolveFunc] = (),
        require_consistent: bool = False,
        tenant_id_pattern: str | re.Pattern[str] | Callable[[str], bool] = (
            DEFAULT_TENANT_ID_PATTERN
        ),
        exempt: Iterable[str] = (),
        default_plan: str | None = None,
    ) -> None:
        self.app = app
        self._resolvers = _compile_resolvers(resolvers)
        self._resolve_funcs = tuple(resolve for resolve, _ in self._resolvers)
        self._require_consistent = bool(require_consistent)
        self._valid = _compile_validator(tenant_id_pattern)
        self._exempt = compile_prefixes("exempt", exempt)
        if default_plan is not None and not isinstance(default_plan, str):
            raise ConfigurationError("default_plan", "must be a string or None")
        self._default_plan = default_plan
        # id(resolver's tenant) -> (that tenant, the accepted one): resolvers hand out the
        # same object for a hot token or header, so it is validated once, not per request.
        # Holding the first element keeps its id from being reused while remembered.
        self._accepted: dict[int, tuple[Tenant, Tenant]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope_type = scope["type"]
        if scope_type != "http" and scope_type != "websocket":
            if scope_type == "lifespan":
                enter(scope, TENANT)
            await self.app(scope, receive, send)
            return
        ctx = enter(scope, TENANT)
        state = scope.get("state")
        if state is None:
            state = scope["state"] = {}
        exempt = self._exempt
        if exempt:
            path = route_path(scope) if scope.get("root_path") else scope["path"]
            if under(path, exempt):
                state["tenant"] = None
                if scope_type == "http":
                    await call_with_problems(self.app, scope, receive, send)
                else:
                    await self.app(scope, receive, send)
                return
        try:
            if self._require_consistent:
                tenant = await self._resolve_consistent(scope)
            else:
                for resolve in self._resolve_funcs:  # inlined: this runs on every request
                    found = await resolve(scope)
                    if found is not None:
                        break
                else:
                    raise Unauthorized("No tenant could be determined for this request.")
                accepted = self._accepted.get(id(found))
                tenant = accepted[1] if accepted and accepted[0] is found else self._accept(found)
        except LiftError as error:
            logger.debug("tenant refused (%s): %s", error.status, error.detail)
            await self._refuse(scope_type, receive, send, error)
            return
        except Exception:
            # A resolver's bug (or a library's surprise) must not become a 500 that
            # says "this input breaks the server": whoever sent it is not identified.
            logger.exception("a tenant resolver raised; the request is refused with a 401")
            await self._refuse(scope_type, receive, send, _UNIDENTIFIED)
            return
        state["tenant"] = ctx.tenant = tenant
        reset = tenant_var.set(tenant)
        try:
            if scope_type == "http":
                await call_with_problems(self.app, scope, receive, send)
            else:
                await self.app(scope, receive, send)
        finally:
            tenant_var.reset(reset)

    @staticmethod
    async def _refuse(scope_type: str, receive: Receive, send: Send, error: LiftError) -> None:
        if scope_type == "http":
            await send_problem(send, error)
        else:
            await _refuse_websocket(receive, send, error)

    def _accept(self, found: Tenant) -> Tenant:
        if not self._valid(found.id):
            raise InvalidTenant("The tenant id is malformed.")
        tenant = found
        if found.plan is None and self._default_plan is not None:
            tenant = replace(found, plan=self._default_plan)
        _memo_put(self._accepted, id(found), (found, tenant))
        return tenant

    async def _resolve_consistent(self, scope: Scope) -> Tenant:
        first: Tenant | None = None
        for resolve, name in self._resolvers:
            tenant = await resolve(scope)
            if tenant is None:
                continue
            tenant = self._accept(tenant)
            if first is None:
                first = tenant
            elif tenant.id != first.id:
                logger.debug("tenant sources %s and %s disagree", first.source, name)
                raise TenantMismatch(
                    f"The tenant sources '{first.source}' and '{tenant.source}' disagree."
                )
        if first is None:
            raise Unauthorized("No tenant could be determined for this request.")
        return first


_UNIDENTIFIED = Unauthorized("No tenant could be determined for this request.")


async def _refuse_websocket(receive: Receive, send: Send, error: LiftError) -> None:
    message = await receive()
    if message["type"] == "websocket.connect":
        await send({"type": "websocket.close", "code": 1008, "reason": error.title})
