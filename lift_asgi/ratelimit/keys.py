"""Key functions (``key=``): which counter a request counts against.

A key is a built-in name, a callable ``(scope) -> str | None``, or a tuple of those (a
composite; every part must answer). ``None`` means "this rule does not apply to this
request" (no tenant on an exempt path, no API key header, ...).

================  ============================================================================
``"tenant"``      the tenant id (``context(scope).tenant``, set by TenantMiddleware outside)
``"user"``        ``tenant id:user`` of that tenant (users of two tenants never share a key)
``"ip"``          the client address (:class:`~lift_asgi.ratelimit.client_ip.ClientIP`)
``"api_key"``     SHA-256 of the ``api_key_header`` (``X-API-Key``); never the key itself
``"route"``       the matched route template (``/projects/{id}``); ``*`` when none matched
``"method"``      the HTTP method
``"global"``      one key for everyone
================  ============================================================================
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from starlette.types import Scope

from lift_asgi.errors import ConfigurationError
from lift_asgi.ratelimit.client_ip import ClientIP, direct_ip
from lift_asgi.ratelimit.rules import KeyFunc
from lift_asgi.stages import SCOPE_KEY

__all__ = ["TENANT_KEYS", "api_key_digest", "compile_key", "tenant_of", "uses_tenant"]

#: The built-in keys that read the tenant (a tenant stage must run outside the limiter).
TENANT_KEYS = frozenset({"tenant", "user"})


def tenant_of(scope: Scope) -> Any:
    """The tenant the tenant stage put in the scope's context, if any."""
    ctx = scope.get(SCOPE_KEY)
    return ctx.tenant if ctx is not None else None


def _tenant_key(scope: Scope) -> str | None:
    # tenant_of and getattr(tenant, "id", None) in one step (this runs on every request):
    # no context, no tenant or a tenant without an id all end in an AttributeError.
    try:
        tenant_id = scope.get(SCOPE_KEY).tenant.id  # type: ignore[union-attr]
    except AttributeError:
        return None
    return tenant_id if isinstance(tenant_id, str) and tenant_id else None


def _user_key(scope: Scope) -> str | None:
    tenant = tenant_of(scope)
    if tenant is None:
        return None
    user = getattr(tenant, "user", None)
    if not isinstance(user, str) or not user:
        return None
    return f"{tenant.id}:{user}"


def _method_key(scope: Scope) -> str | None:
    method: str = scope["method"]
    return method


def _global_key(scope: Scope) -> str | None:
    return "*"


def api_key_digest(raw: bytes) -> str:
    """The only form of an API key the rate limiter keeps: its SHA-256, in hex."""
    return hashlib.sha256(raw).hexdigest()


def _api_key(header: bytes) -> KeyFunc:
    def key(scope: Scope) -> str | None:
        for name, value in scope["headers"]:
            if name == header:
                value = bytes(value).strip()
                return api_key_digest(value) if value else None
        return None

    return key


def _escape(part: str) -> str:
    """A composite key's part with ``%`` and ``|`` escaped (``%25``, ``%7C``): two
    different tuples of parts never join to the same key."""
    return part.replace("%", "%25").replace("|", "%7C")


def _join(funcs: tuple[KeyFunc, ...]) -> KeyFunc:
    if len(funcs) == 2:  # the usual composite, without the loop
        first_func, second_func = funcs

        def pair(scope: Scope) -> str | None:
            first = first_func(scope)
            if first is None:
                return None
            second = second_func(scope)
            if second is None:
                return None
            if "|" in first or "%" in first:
                first = _escape(first)
            if "|" in second or "%" in second:
                second = _escape(second)
            return first + "|" + second

        return pair

    def key(scope: Scope) -> str | None:
        parts = []
        for func in funcs:
            part = func(scope)
            if part is None:
                return None
            parts.append(_escape(part) if "|" in part or "%" in part else part)
        return "|".join(parts)

    return key


def compile_key(
    spec: Any, *, client_ip: ClientIP, api_key_header: bytes, route: KeyFunc
) -> KeyFunc:
    builtins: dict[str, KeyFunc] = {
        "tenant": _tenant_key,
        "user": _user_key,
        "ip": client_ip if client_ip.any_trusted else direct_ip(client_ip),
        "api_key": _api_key(api_key_header),
        "route": route,
        "method": _method_key,
        "global": _global_key,
    }

    def one(part: Any) -> KeyFunc:
        if isinstance(part, str):
            func = builtins.get(part)
            if func is None:
                raise ConfigurationError(
                    "key", f"unknown key {part!r}; known: {', '.join(sorted(builtins))}"
                )
            return func
        if callable(part):
            return part  # type: ignore[no-any-return]
        raise ConfigurationError("key", f"{part!r} is neither a key name nor a callable")

    if isinstance(spec, str) or callable(spec):
        return one(spec)
    if isinstance(spec, Sequence) and spec:
        funcs = tuple(one(part) for part in spec)
        return funcs[0] if len(funcs) == 1 else _join(funcs)
    raise ConfigurationError("key", "a key name, a callable, or a sequence of them")


def uses_tenant(spec: Any) -> bool:
    """Whether a key spec reads the tenant (``"tenant"``, ``"user"``, also in a composite)."""
    if isinstance(spec, str):
        return spec in TENANT_KEYS
    if isinstance(spec, Sequence):
        return any(isinstance(part, str) and part in TENANT_KEYS for part in spec)
    return False
