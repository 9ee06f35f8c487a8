"""The ContextVars behind ``current_tenant()`` and ``current_uow()``, in one place.

Middlewares set them for the duration of one request and reset them in ``finally``;
nothing else writes them.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lift_asgi.dynamo.uow import UnitOfWork
    from lift_asgi.tenancy import Tenant

tenant_var: ContextVar[Tenant | None] = ContextVar("lift_asgi.tenant", default=None)
uow_var: ContextVar[UnitOfWork | None] = ContextVar("lift_asgi.uow", default=None)
