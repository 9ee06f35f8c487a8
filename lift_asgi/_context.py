"""The ContextVar behind ``current_tenant()`` (``current_uow()``'s lives with its owner,
:mod:`lift_asgi.dynamo.middleware`).

Middlewares set them for the duration of one request and reset them in ``finally``;
nothing else writes them.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lift_asgi.tenancy import Tenant

tenant_var: ContextVar[Tenant | None] = ContextVar("lift_asgi.tenant", default=None)
