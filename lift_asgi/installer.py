"""``lift_asgi.install(app, ...)``: the request path as one call, built where it is written.

::

    lift_asgi.install(
        app,
        tenant={"resolvers": [JWTResolver(key=SECRET, algorithms=["HS256"])]},
        rate_limit={"key": "tenant", "limit": "100/minute", "storage": "async+dynamodb://rl"},
        idempotency={},                    # optional stages: only when given
        unit_of_work={"table": "app-data"},
        exempt=["/health", "/docs"],       # one list, given to every stage that skips paths
    )

builds ``observe -> tenant -> rate limit -> idempotency -> unit of work -> app``: each
dict holds the keyword options of that stage's middleware, passed through unchanged
(their docstrings are the reference), ``True`` means "with its defaults", ``None`` or
``False`` leaves the stage out. Every middleware is constructed here, so a wrong option
raises its :class:`~lift_asgi.errors.ConfigurationError` on the line that called
``install``, before any server starts; stages that need another (a unit of work needs
the tenant, idempotency the unit of work, a limiter keyed by tenant or user or limited
by plan the tenant) are checked here too.

Where the stack goes:

- a Starlette or FastAPI app is changed in place and returned: the built stack is
  registered as the innermost of its user middlewares (inside ``ServerErrorMiddleware``
  and inside every middleware the app has or gets, CORS or GZip, whatever the order of
  the calls; outside the app's exception handlers and router), and the app object stays
  what FastAPI, uvicorn and :func:`lift_asgi.aws.handler` expect. Starlette assembles
  its stack on the first request (or when the Lambda handler is made); then the
  innermost stage is pointed at the rest of it, at no per-request cost.
- any other ASGI app is wrapped, and the outermost stage is returned: use that.

Each stage stays a plain middleware usable alone; ``install`` only spares the order,
the shared exempt list and the checks.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, TypeVar, overload

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Receive, Scope, Send

from lift_asgi._paths import compile_prefixes
from lift_asgi.errors import ConfigurationError
from lift_asgi.stages import IDEMPOTENCY, OBSERVE, RATE_LIMIT, TENANT, UNIT_OF_WORK, Need

__all__ = ["STAGE_ORDER", "install"]

StageOptions = Mapping[str, Any] | bool | None
"""A stage's keyword options; ``True``: the stage with its defaults; ``None``/``False``:
not installed."""

_App = TypeVar("_App", bound=Starlette)


@dataclass(frozen=True, slots=True)
class _Stage:
    name: str
    module: str
    cls: str


STAGE_ORDER: Final = (
    _Stage(OBSERVE, "lift_asgi.observe", "RequestObserver"),
    _Stage(TENANT, "lift_asgi.tenancy", "TenantMiddleware"),
    _Stage(RATE_LIMIT, "lift_asgi.ratelimit", "RateLimitMiddleware"),
    _Stage(IDEMPOTENCY, "lift_asgi.idempotency", "IdempotencyMiddleware"),
    _Stage(UNIT_OF_WORK, "lift_asgi.dynamo", "UnitOfWorkMiddleware"),
)
"""The request path, outermost first."""


class _Inner:
    """Where the innermost stage sends requests until Starlette has built the rest of
    its stack (then, when that stage keeps its app in ``.app``, it is re-pointed and
    this object is only a fallback)."""

    __slots__ = ("app",)

    def __init__(self) -> None:
        self.app: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        app = self.app
        if app is None:  # pragma: no cover - Starlette always builds before calling
            raise RuntimeError("lift_asgi.install: the app's stack was not built yet")
        await app(scope, receive, send)


def _placed(app: ASGIApp, *, outer: ASGIApp, inner: _Inner, innermost: Any) -> ASGIApp:
    """The user-middleware factory Starlette calls when it builds its stack: the stack
    ``install`` already built, its innermost stage now pointed at ``app``."""
    inner.app = app
    if getattr(innermost, "app", None) is inner:
        innermost.app = app
    return outer


def _options(stage: _Stage, given: StageOptions) -> dict[str, Any] | None:
    if given is None or given is False:
        return None
    if given is True:
        return {}
    if not isinstance(given, Mapping):
        raise ConfigurationError(
            stage.name,
            f"the keyword options of {stage.cls} as a dict (True: its defaults; None: "
            f"not installed), not {type(given).__name__}",
        )
    for key in given:
        if not isinstance(key, str):
            raise ConfigurationError(stage.name, f"option names are strings, not {key!r}")
        if key == "app":
            raise ConfigurationError(f"{stage.name}.app", "install() passes the app itself")
    return dict(given)


def _middleware_class(stage: _Stage) -> Any:
    try:
        module = importlib.import_module(stage.module)
    except ImportError as error:
        raise ConfigurationError(
            stage.name, f"{stage.module} cannot be imported here ({error})"
        ) from error
    return getattr(module, stage.cls)


def _parameters(cls: Any) -> Mapping[str, inspect.Parameter]:
    """The options ``cls.__init__`` takes (read from ``__init__``: a metaclass's
    ``__call__`` would hide them behind ``*args, **kwargs``)."""
    return inspect.signature(cls.__init__).parameters


def _build(stage: _Stage, cls: Any, app: ASGIApp, options: dict[str, Any]) -> Any:
    """``cls(app, **options)``; a mistake is re-raised naming ``stage.option``."""
    parameters = _parameters(cls)
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        known = sorted(name for name in parameters if name not in ("self", "app"))
        for key in options:
            if key not in parameters or key == "self":
                raise ConfigurationError(
                    f"{stage.name}.{key}",
                    f"is not an option of {stage.cls} ({', '.join(known)})",
                )
    try:
        return cls(app, **options)
    except ConfigurationError as error:
        prefix = f"{error.option}: "
        text = str(error)
        message = text[len(prefix) :] if text.startswith(prefix) else text
        raise ConfigurationError(f"{stage.name}.{error.option}", message) from error


def _check_needs(configured: dict[str, dict[str, Any]]) -> None:
    """What the stages would refuse at lifespan startup, refused here already (the
    stages' needs of a stage outside them are checked as each is built, from its
    ``need``)."""
    uow = configured.get(UNIT_OF_WORK)
    if uow is not None and TENANT not in configured and uow.get("tenant_from") is None:
        # before anything is built, as the stage's own need would say it (stages.Need)
        raise ConfigurationError(
            "tenant",
            "the unit of work is scoped to the tenant: configure tenant={...} "
            "(or unit_of_work={'tenant_from': ...})",
        )
    if IDEMPOTENCY in configured and UNIT_OF_WORK not in configured:
        raise ConfigurationError(
            "unit_of_work",
            "idempotency records commit with the unit of work: configure unit_of_work={...}",
        )


@overload
def install(
    app: _App,
    *,
    observe: StageOptions = None,
    tenant: StageOptions = None,
    rate_limit: StageOptions = None,
    idempotency: StageOptions = None,
    unit_of_work: StageOptions = None,
    exempt: str | Iterable[str] = (),
) -> _App: ...


@overload
def install(
    app: ASGIApp,
    *,
    observe: StageOptions = None,
    tenant: StageOptions = None,
    rate_limit: StageOptions = None,
    idempotency: StageOptions = None,
    unit_of_work: StageOptions = None,
    exempt: str | Iterable[str] = (),
) -> ASGIApp: ...


def install(
    app: ASGIApp,
    *,
    observe: StageOptions = None,
    tenant: StageOptions = None,
    rate_limit: StageOptions = None,
    idempotency: StageOptions = None,
    unit_of_work: StageOptions = None,
    exempt: str | Iterable[str] = (),
) -> ASGIApp:
    """Install the suite's stages on ``app`` in their order, built now.

    ``exempt``: path prefixes (segment boundaries, ``/health`` covers ``/health/db``)
    every stage that skips paths skips: no tenant is resolved there and nothing is
    rate limited. A stage's own ``exempt`` option, if given, adds paths for that stage
    only. Returns ``app`` itself for a Starlette/FastAPI app (changed in place), else
    the wrapped app to serve.
    """
    given = {
        OBSERVE: observe,
        TENANT: tenant,
        RATE_LIMIT: rate_limit,
        IDEMPOTENCY: idempotency,
        UNIT_OF_WORK: unit_of_work,
    }
    shared = compile_prefixes("exempt", exempt)
    configured: dict[str, dict[str, Any]] = {}
    for stage in STAGE_ORDER:
        options = _options(stage, given[stage.name])
        if options is not None:
            configured[stage.name] = options
    if not configured:
        raise ConfigurationError("install", "configure at least one stage (tenant={...}, ...)")
    _check_needs(configured)

    starlette = isinstance(app, Starlette)
    if starlette:
        assert isinstance(app, Starlette)
        if app.middleware_stack is not None:
            raise ConfigurationError("app", "install the stages before the app serves requests")
        if any(getattr(m, "cls", None) is _placed for m in app.user_middleware):
            raise ConfigurationError("app", "lift_asgi.install was already called on this app")

    inner = _Inner()
    below: ASGIApp = inner if starlette else app
    innermost: Any = None
    for stage in reversed(STAGE_ORDER):  # innermost first
        options = configured.get(stage.name)
        if options is None:
            continue
        cls = _middleware_class(stage)
        if shared and "exempt" in _parameters(cls):
            own = compile_prefixes(f"{stage.name}.exempt", options.get("exempt", ()))
            options["exempt"] = shared + tuple(p for p in own if p not in shared)
        below = _build(stage, cls, below, options)
        # a need of a stage outside it (stages.Need) that nothing configured would meet
        # would fail at lifespan startup (or 500 every request where no lifespan runs)
        need = getattr(below, "need", None)
        if isinstance(need, Need) and need.needed not in configured:
            raise need.install_error()
        if innermost is None:
            innermost = below
    if not starlette:
        return below
    assert isinstance(app, Starlette)
    # Innermost of the app's own middlewares, whenever they are added: CORS, GZip,
    # TrustedHost... wrap the suite, so a CORS preflight needs no tenant and a 401 still
    # gets CORS headers. (``add_middleware`` would put it outermost of those added so far.)
    app.user_middleware.append(Middleware(_placed, outer=below, inner=inner, innermost=innermost))
    return app
