"""The :class:`Tenant` value, where a request's tenant is found, and what a resolver is.

:class:`~lift_asgi.tenancy.TenantMiddleware` sets the tenant of each request in two
places, for three kinds of reader: ``scope["state"]["tenant"]`` (``request.state.tenant``
and the FastAPI dependency :func:`get_tenant`) and the stage contract
(``scope["lift_asgi"].tenant``), which the other stages read in the scope and
:func:`~lift_asgi.tenancy.current_tenant` (code far from the request, in
:mod:`lift_asgi.tenancy.current`) through the request's ContextVar.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Protocol, TypeAlias

from starlette.requests import HTTPConnection
from starlette.types import Scope

from lift_asgi.errors import Unauthorized

__all__ = [
    "DEFAULT_TENANT_ID_PATTERN",
    "EMPTY_CLAIMS",
    "ResolveFunc",
    "Resolver",
    "Tenant",
    "as_text",
    "get_tenant",
    "tenant_from_scope",
]

#: Letters, digits, ``_ . -``; starts with a letter or digit; 1 to 64 characters.
DEFAULT_TENANT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"

#: The claims of a source that has none (header, path, subdomain): shared, read-only.
EMPTY_CLAIMS: Mapping[str, Any] = MappingProxyType({})


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
    claims: Mapping[str, Any] = field(default_factory=lambda: EMPTY_CLAIMS, repr=False, hash=False)
    source: str = "custom"

    def __post_init__(self) -> None:
        if type(self.claims) is not MappingProxyType:
            object.__setattr__(self, "claims", MappingProxyType(dict(self.claims)))


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
    exempt path); register :func:`lift_asgi.exception_handlers.problem_exception_handler` for
    :class:`~lift_asgi.errors.LiftError` so that becomes a 401 problem response.
    """
    tenant = tenant_from_scope(request.scope)
    if tenant is None:
        raise Unauthorized("This request has no tenant.")
    return tenant


class Resolver(Protocol):
    """What :class:`TenantMiddleware` asks. ``name`` becomes :attr:`Tenant.source`."""

    name: str

    async def resolve(self, scope: Scope) -> Tenant | None:
        """The tenant this source names, ``None`` when the source is absent.

        Raise a :class:`~lift_asgi.errors.LiftError` when the source is present but not
        acceptable. The returned id is validated by the middleware, not here.

        A resolver may also define a plain (not async) ``cached_tenant(scope)`` that
        answers from memory: the tenant, or ``None`` to have ``resolve`` asked. When
        it is the only resolver, the middleware asks that first, so a hit costs no
        coroutine (:class:`JWTResolver` does this for its verified-token cache).
        """
        ...


ResolveFunc: TypeAlias = Callable[[Scope], Awaitable[Tenant | None]]


def as_text(value: Any) -> str | None:
    """A claim value as a string: strings as they are, integers spelled out, else None."""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None
