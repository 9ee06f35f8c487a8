"""Who is asking: :class:`TenantMiddleware`, the :class:`Tenant` value and its resolvers.

A resolver is any object with ``name`` and ``async resolve(scope) -> Tenant | None``
(see :class:`Resolver`), or a plain async function of the scope. It returns ``None``
when its source is absent from the request, and raises a :class:`~lift_asgi.errors.LiftError`
when its source is present but unacceptable (a forged token is a 401, not "no answer");
anything else it raises is a logged 401 too.

The package, one concern per module:

- :mod:`~lift_asgi.tenancy.tenant`: the value, its readers in the scope
  (:func:`tenant_from_scope`, :func:`get_tenant`), the resolver protocol;
- :mod:`~lift_asgi.tenancy.current`: :func:`current_tenant` and :func:`require_tenant`,
  which read the request context that :data:`lift_asgi.stages.context_var` (the suite's
  one request ContextVar) holds;
- :mod:`~lift_asgi.tenancy.resolvers`: header, subdomain and path resolvers;
- :mod:`~lift_asgi.tenancy.memo`: what the resolvers share (header lookup, header and
  resolver names, the per-resolver memo);
- :mod:`~lift_asgi.tenancy.jwt_resolver`, :mod:`~lift_asgi.tenancy.jwt_keys`,
  :mod:`~lift_asgi.tenancy.token_cache`: verified JWTs, their keys, the verified-token cache;
- :mod:`~lift_asgi.tenancy.aws`: the API Gateway authorizer and Lambda tenant-isolation resolvers;
- :mod:`~lift_asgi.tenancy.middleware`: :class:`TenantMiddleware`.

PyJWT and ``cryptography`` are imported when :class:`JWTResolver` is first used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from lift_asgi.tenancy.current import current_tenant, require_tenant
from lift_asgi.tenancy.middleware import TenantMiddleware
from lift_asgi.tenancy.resolvers import HeaderResolver, PathResolver, SubdomainResolver
from lift_asgi.tenancy.tenant import (
    DEFAULT_TENANT_ID_PATTERN,
    ResolveFunc,
    Resolver,
    Tenant,
    get_tenant,
    tenant_from_scope,
)

if TYPE_CHECKING:
    from lift_asgi.tenancy.aws import AuthorizerResolver, LambdaTenantResolver
    from lift_asgi.tenancy.jwt_resolver import JWTResolver

__all__ = [
    "DEFAULT_TENANT_ID_PATTERN",
    "AuthorizerResolver",
    "HeaderResolver",
    "JWTResolver",
    "LambdaTenantResolver",
    "PathResolver",
    "ResolveFunc",
    "Resolver",
    "SubdomainResolver",
    "Tenant",
    "TenantMiddleware",
    "current_tenant",
    "get_tenant",
    "require_tenant",
    "tenant_from_scope",
]

_LAZY = {
    "JWTResolver": "lift_asgi.tenancy.jwt_resolver",
    "AuthorizerResolver": "lift_asgi.tenancy.aws",
    "LambdaTenantResolver": "lift_asgi.tenancy.aws",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
