"""lift_asgi: pure ASGI middlewares for multi-tenant Starlette/FastAPI services on AWS.

The request path, installed in one call (:func:`install`)::

    observe -> tenant -> rate limit -> idempotency -> unit of work -> app

The names a service needs are here; everything else lives in its submodule
(:mod:`lift_asgi.errors`, :mod:`lift_asgi.tenancy`, :mod:`lift_asgi.ratelimit`,
:mod:`lift_asgi.dynamo`, :mod:`lift_asgi.idempotency`, :mod:`lift_asgi.observe`,
:mod:`lift_asgi.aws`, :mod:`lift_asgi.local`, :mod:`lift_asgi.testing`).

Names are imported on first use (PEP 562): ``import lift_asgi`` loads none of aiohttp,
aiodynamo, PyJWT, limits or Mangum, so a process pays only for the stages it builds
(a Lambda cold start, a CLI, a test collecting).
"""

# No other module-level names: the top level holds __all__ and nothing else public.
import importlib as _importlib
import typing as _typing

if _typing.TYPE_CHECKING:
    from lift_asgi.aws import handler
    from lift_asgi.dynamo import SK, Attr, UnitOfWork, UnitOfWorkMiddleware, current_uow, get_uow
    from lift_asgi.errors import LiftError
    from lift_asgi.exception_handlers import PROBLEM_HANDLERS
    from lift_asgi.idempotency import IdempotencyMiddleware
    from lift_asgi.installer import install
    from lift_asgi.observe import RequestObserver
    from lift_asgi.ratelimit import RateLimitMiddleware
    from lift_asgi.tenancy import (
        HeaderResolver,
        JWTResolver,
        PathResolver,
        SubdomainResolver,
        Tenant,
        TenantMiddleware,
        current_tenant,
        get_tenant,
    )

from lift_asgi._version import __version__

__all__ = [
    "PROBLEM_HANDLERS",
    "SK",
    "Attr",
    "HeaderResolver",
    "IdempotencyMiddleware",
    "JWTResolver",
    "LiftError",
    "PathResolver",
    "RateLimitMiddleware",
    "RequestObserver",
    "SubdomainResolver",
    "Tenant",
    "TenantMiddleware",
    "UnitOfWork",
    "UnitOfWorkMiddleware",
    "__version__",
    "current_tenant",
    "current_uow",
    "get_tenant",
    "get_uow",
    "handler",
    "install",
]

# name -> the module that defines it (imported on first access of the name)
_WHERE = {
    "install": "lift_asgi.installer",
    "RequestObserver": "lift_asgi.observe",
    "TenantMiddleware": "lift_asgi.tenancy",
    "Tenant": "lift_asgi.tenancy",
    "JWTResolver": "lift_asgi.tenancy",
    "HeaderResolver": "lift_asgi.tenancy",
    "PathResolver": "lift_asgi.tenancy",
    "SubdomainResolver": "lift_asgi.tenancy",
    "get_tenant": "lift_asgi.tenancy",
    "current_tenant": "lift_asgi.tenancy",
    "RateLimitMiddleware": "lift_asgi.ratelimit",
    "IdempotencyMiddleware": "lift_asgi.idempotency",
    "UnitOfWorkMiddleware": "lift_asgi.dynamo",
    "UnitOfWork": "lift_asgi.dynamo",
    "Attr": "lift_asgi.dynamo",
    "SK": "lift_asgi.dynamo",
    "get_uow": "lift_asgi.dynamo",
    "current_uow": "lift_asgi.dynamo",
    "LiftError": "lift_asgi.errors",
    "PROBLEM_HANDLERS": "lift_asgi.exception_handlers",
    "handler": "lift_asgi.aws",
}


if not _typing.TYPE_CHECKING:  # for mypy the imports above define the names; a typo errs

    def __getattr__(name: str) -> object:
        module = _WHERE.get(name)
        if module is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        value = getattr(_importlib.import_module(module), name)
        globals()[name] = value  # later lookups skip this function
        return value
