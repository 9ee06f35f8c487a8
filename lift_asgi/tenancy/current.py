"""Where code far from the scope finds the request's tenant: the request context, which
the suite's one ContextVar (:data:`lift_asgi.stages.context_var`) holds while a request is
handled and resets when it ends.

Apart from :mod:`lift_asgi.tenancy.tenant` so that the value module imports no stage
contract, and the contract can name :class:`~lift_asgi.tenancy.tenant.Tenant` as the type
of its ``tenant`` field.
"""

from __future__ import annotations

from lift_asgi.errors import Unauthorized
from lift_asgi.stages import current_context as _current_context
from lift_asgi.tenancy.tenant import Tenant

__all__ = ["current_tenant", "require_tenant"]


def current_tenant() -> Tenant | None:
    """The tenant of the request being handled, or ``None`` (exempt path, no request)."""
    ctx = _current_context()
    return ctx.tenant if ctx is not None else None


def require_tenant() -> Tenant:
    """The tenant of the request being handled; :class:`Unauthorized` when there is none."""
    ctx = _current_context()
    tenant = ctx.tenant if ctx is not None else None
    if tenant is None:
        raise Unauthorized("This request has no tenant.")
    return tenant
