"""The tenant from a verified JWT: :class:`JWTResolver`.

Keys and allow-lists are checked by :mod:`lift_asgi.tenancy.jwt_keys`; verified tokens
are kept by :mod:`lift_asgi.tenancy.token_cache`.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from hashlib import blake2b
from types import MappingProxyType
from typing import Any

import anyio.to_thread
import jwt
from starlette.types import Scope

from lift_asgi.errors import ConfigurationError, InvalidTenant, ServiceUnavailable, Unauthorized
from lift_asgi.tenancy.jwt_keys import (
    ALGORITHM_KEY_KIND,
    HMAC,
    PublicKey,
    check_algorithms,
    check_key,
    default_algorithms,
    load_public_key,
)
from lift_asgi.tenancy.memo import header_name, source_name
from lift_asgi.tenancy.tenant import Tenant, as_text
from lift_asgi.tenancy.token_cache import DEFAULT_CACHE_SIZE, TokenCache

__all__ = ["JWTResolver", "numeric_date"]

logger = logging.getLogger("lift_asgi.tenancy")

# The wall clock the token cache compares ``exp``/``nbf`` against (a module global so a
# test can move it; PyJWT keeps using the real clock).
_wallclock = time.time

#: 9999-12-31T23:59:59Z: beyond it a NumericDate is no date a clock can reach.
_MAX_NUMERIC_DATE = 253402300799


def numeric_date(payload: Mapping[str, Any], claim: str) -> float | None:
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


#: The cache key of an ``Authorization`` value: why BLAKE2b is in
#: :mod:`~lift_asgi.tenancy.token_cache`.
_digest = blake2b

_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def _seconds(option: str, value: Any, *, above_zero: bool) -> float:
    """``value`` as a finite number of seconds (> 0, or >= 0); else a
    :class:`ConfigurationError` on ``option`` (a bool, a string, NaN or infinity too)."""
    bound = "> 0" if above_zero else ">= 0"
    try:
        seconds = float(value) if isinstance(value, int | float) else math.nan
    except OverflowError:  # an int past what a float holds
        seconds = math.inf
    if (
        isinstance(value, bool)
        or not math.isfinite(seconds)
        or seconds < 0
        or (above_zero and seconds == 0)
    ):
        raise ConfigurationError(
            option, f"must be a finite number of seconds {bound}, not {value!r}"
        )
    return seconds


def _names(option: str, value: Any) -> str | tuple[str, ...] | None:
    """An ``audience``/``issuer``: ``None``, one non-empty string, or several (kept as a
    tuple: PyJWT tests membership on every token, and a generator would be spent after
    the first)."""
    if value is None:
        return None
    if isinstance(value, str):
        if value:
            return value
    elif isinstance(value, Iterable):
        names = tuple(value)
        if names and all(isinstance(name, str) and name for name in names):
            return names
    raise ConfigurationError(
        option, f"must be a non-empty string or a non-empty list of them, not {value!r}"
    )


def _claim_names(value: Any) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise ConfigurationError("required_claims", "must be a list of claim names")
    names = tuple(value)
    if not all(isinstance(name, str) and name for name in names):
        raise ConfigurationError(
            "required_claims", f"claim names are non-empty strings, not {names!r}"
        )
    return names


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

    Verified tokens are cached (``cache_size`` entries, default 16,384 of ~1.5 KB each,
    see :mod:`~lift_asgi.tenancy.token_cache`; LRU, keyed by the BLAKE2b digest of the
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
        cache_size: int = DEFAULT_CACHE_SIZE,
        header: str = "authorization",
        scheme: str = "Bearer",
        jwks_lifespan: float = 300.0,
        jwks_timeout: float = 5.0,
        name: str = "jwt",
    ) -> None:
        if (key is None) == (jwks_url is None):
            raise ConfigurationError("key", "give exactly one of key= or jwks_url=")
        self._key: PublicKey | bytes | None = None
        self._jwks: jwt.PyJWKClient | None = None
        self._jwks_keys: dict[str, tuple[jwt.PyJWK, float]] = {}
        self._jwks_lifespan = _seconds("jwks_lifespan", jwks_lifespan, above_zero=True)
        jwks_timeout = _seconds("jwks_timeout", jwks_timeout, above_zero=True)
        if jwks_url is not None:
            if not isinstance(jwks_url, str) or not jwks_url:
                raise ConfigurationError("jwks_url", "must be an http(s) URL")
            names = check_algorithms(["RS256"] if algorithms is None else algorithms)
            if ALGORITHM_KEY_KIND[names[0]] == HMAC:
                raise ConfigurationError(
                    "algorithms", "HS* algorithms need a shared secret, not a JWKS URL"
                )
            try:
                self._jwks = jwt.PyJWKClient(
                    jwks_url, lifespan=self._jwks_lifespan, timeout=jwks_timeout
                )
            except jwt.PyJWTError as exc:
                raise ConfigurationError("jwks_url", str(exc)) from exc
        else:
            public = load_public_key(key)
            names = check_algorithms(
                default_algorithms(public) if algorithms is None else algorithms
            )
            check_key(public, names)
            self._key = public
        self.algorithms: tuple[str, ...] = tuple(names)

        for option, claim in (("tenant_claim", tenant_claim), ("user_claim", user_claim)):
            if claim is not None and (not isinstance(claim, str) or not claim):
                raise ConfigurationError(option, "must be a non-empty claim name")
        if plan_claim is not None and (not isinstance(plan_claim, str) or not plan_claim):
            raise ConfigurationError("plan_claim", "must be a non-empty claim name or None")
        # NaN compares false with everything: "leeway < 0" let it through, and PyJWT's
        # "now > exp + leeway" was then never true, so expired tokens were accepted.
        leeway = _seconds("leeway", leeway, above_zero=False)
        if isinstance(cache_size, bool) or not isinstance(cache_size, int) or cache_size < 0:
            raise ConfigurationError("cache_size", "must be an integer >= 0 (0 disables)")
        if not isinstance(scheme, str) or not _TOKEN.fullmatch(scheme):
            # an auth-scheme is an HTTP token (RFC 9110 section 11.1): ASCII, one word
            raise ConfigurationError("scheme", f"{scheme!r} must be one word, such as 'Bearer'")

        self.tenant_claim = tenant_claim
        self.user_claim = user_claim
        self.plan_claim = plan_claim
        self.leeway = leeway
        self.audience: str | tuple[str, ...] | None = _names("audience", audience)
        self.issuer: str | tuple[str, ...] | None = _names("issuer", issuer)
        self.required_claims: tuple[str, ...] = _claim_names(required_claims)
        self.name = source_name("name", name)
        self._header = header_name("header", header)
        self._prefix = scheme.encode("ascii") + b" "
        self._prefix_lower = self._prefix.lower()
        self._prefix_len = len(self._prefix)
        self._jwt = jwt.PyJWT(
            {"require": list(self.required_claims), "enforce_minimum_key_length": True}
        )
        self._cache = TokenCache(cache_size) if cache_size else None
        self._entries = self._cache.entries if self._cache is not None else None

    @property
    def cache_size(self) -> int:
        return self._cache.maxsize if self._cache is not None else 0

    def cached_tenant(self, scope: Scope) -> Tenant | None:
        """The tenant of this request's token if the cache holds it, answered without
        awaiting; ``None`` when it does not (no header, no cache, a miss, expired), for
        :meth:`resolve` to decide. :class:`~lift_asgi.TenantMiddleware` asks this first,
        so a hit costs no coroutine."""
        entries = self._entries
        if entries is None:
            return None
        # The scheme is not checked: only credentials that passed it were cached. (The
        # header scan stays a loop: a dict of the reversed list, built in C, cost ~2k
        # instructions more.)
        name = self._header
        for key, credentials in scope["headers"]:  # noqa: B007 - used after break
            if key == name:
                break
        else:
            return None
        # Keyed by a digest so the cache never holds a bearer token itself.
        digest = _digest(credentials).digest()
        entry = entries.get(digest)
        if entry is None:
            return None
        not_before, expires, tenant = entry
        now = _wallclock()
        if not_before <= now < expires:
            try:  # noqa: SIM105 - cheaper than contextlib.suppress on the hot path
                entries.move_to_end(digest)
            except KeyError:  # evicted by another thread meanwhile
                pass
            return tenant
        if now >= expires:
            entries.pop(digest, None)
        return None

    async def resolve(self, scope: Scope) -> Tenant | None:
        tenant = self.cached_tenant(scope)
        if tenant is not None:
            return tenant
        name = self._header
        for key, credentials in scope["headers"]:  # noqa: B007 - used after break
            if key == name:
                break
        else:
            return None
        digest = _digest(credentials).digest() if self._entries is not None else None
        return await self._verify_credentials(credentials, digest)

    async def _verify_credentials(self, credentials: bytes, digest: bytes | None) -> Tenant | None:
        """The tenant of ``credentials`` not found in the cache (``digest`` is their key
        there, ``None`` without a cache); ``None`` for another scheme."""
        if not credentials.startswith(self._prefix) and (
            # The scheme is case-insensitive (RFC 9110 section 11.1).
            credentials[: self._prefix_len].lower() != self._prefix_lower
        ):
            return None  # another scheme (Basic, ...): not this source
        tenant, not_before, expires = await self.verify(self._token(credentials))
        if digest is not None and expires is not None:
            assert self._cache is not None
            self._cache.put(digest, not_before, expires, tenant)
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
        tenant_id = as_text(raw_tenant)
        if tenant_id is None:
            raise InvalidTenant("The tenant id is malformed.")
        expires = numeric_date(payload, "exp")
        not_before = numeric_date(payload, "nbf")
        numeric_date(payload, "iat")
        user = as_text(payload.get(self.user_claim)) if self.user_claim else None
        plan = as_text(payload.get(self.plan_claim)) if self.plan_claim else None
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
        except (jwt.PyJWKClientConnectionError, ValueError, RecursionError) as exc:
            # unreachable, or a 200 that is not JSON (an HTML error or login page):
            # json.load's ValueError, which PyJWT lets through, or JSON nested past the
            # parser's recursion limit (its RecursionError)
            raise self._keys_unavailable(exc) from None
        except jwt.PyJWTError as exc:
            cache = self._jwks.jwk_set_cache
            if cache is not None and cache.get() is None:
                # no key set to look the kid up in: the endpoint's answer was not one
                # (a JSON array, a set without usable keys), which no token can fix
                raise self._keys_unavailable(exc) from None
            logger.debug("bearer token rejected: %s: %s", type(exc).__name__, exc)
            raise Unauthorized("The bearer token is invalid or expired.") from None
        self._jwks_keys[kid] = (signing_key, time.monotonic() + self._jwks_lifespan)
        return signing_key

    def _keys_unavailable(self, exc: Exception) -> ServiceUnavailable:
        assert self._jwks is not None
        logger.warning(
            "JWKS %s gave no usable key set: %s: %s", self._jwks.uri, type(exc).__name__, exc
        )
        return ServiceUnavailable("The token signing keys are unavailable.", retry_after=5)
