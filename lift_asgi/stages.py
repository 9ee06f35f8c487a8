"""The one contract between the suite's stages, carried in the ASGI scope.

The request path is ``tenant -> rate limit -> idempotency -> unit of work -> app``. Each
stage is a plain ASGI middleware usable alone; when several are stacked they learn of
each other only through the :class:`RequestContext` stored under ``scope["lift_asgi"]``:

- every stage calls :func:`enter` on the scopes it handles (``http``, ``websocket`` and
  ``lifespan``), so an inner stage can see which stages ran outside it;
- the tenant stage puts the resolved :class:`~lift_asgi.tenancy.Tenant` in
  ``context.tenant``; the unit of work puts its handle in ``context.uow``;
- a stage that needs another outside it (a limiter keyed by tenant, a unit of work
  scoped to the tenant) holds a :class:`Need`, its public ``need`` attribute, and
  checks it once at lifespan startup, and on each request until it passes when the
  server sends no lifespan, so a wrong order is a loud
  :class:`~lift_asgi.errors.ConfigurationError`, not a silent no-op;
  :func:`lift_asgi.install` reads the same ``need`` to refuse the configuration before
  anything serves.

Nothing else in the scope is read across stages (``request.state.tenant`` and
``request.state.uow`` are kept for handlers, not for the stages).

Code far from the scope (``current_tenant()``, ``current_uow()``, the observer's
``current_ids()`` and ``current_cost()``, the log filter) reads the same context through
one ContextVar, :data:`context_var`: the first stage on a request's path that exposes
something there (tenant, unit of work, observer) sets it to the request's context, unless
an outer stage did, and resets it when it returns. One ContextVar per request, not one
per stage: a set and reset costs ~2,250 machine instructions. Lifespan scopes never set it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Protocol

from starlette.types import Receive, Scope, Send

from lift_asgi.errors import ConfigurationError, LiftError, send_problem

if TYPE_CHECKING:
    from lift_asgi.tenancy.tenant import Tenant

__all__ = [
    "IDEMPOTENCY",
    "OBSERVE",
    "RATE_LIMIT",
    "SCOPE_KEY",
    "TENANT",
    "UNIT_OF_WORK",
    "IdempotentRequest",
    "Need",
    "RequestContext",
    "context",
    "context_var",
    "current_context",
    "enter",
    "fail_startup",
    "missing",
]

SCOPE_KEY: Final = "lift_asgi"

OBSERVE: Final = "observe"
TENANT: Final = "tenant"
RATE_LIMIT: Final = "rate_limit"
IDEMPOTENCY: Final = "idempotency"
UNIT_OF_WORK: Final = "unit_of_work"

_NAMES: Final = {
    OBSERVE: "RequestObserver",
    TENANT: "TenantMiddleware",
    RATE_LIMIT: "RateLimitMiddleware",
    IDEMPOTENCY: "IdempotencyMiddleware",
    UNIT_OF_WORK: "UnitOfWorkMiddleware",
}


@dataclass(eq=False, init=False)
class RequestContext:
    """What the suite's stages know of one request (or of the lifespan).

    Created once per request by the outermost stage (:func:`enter`), so it is cheap to
    make: every field but ``stages`` is a class-level default that a stage shadows when it
    sets it, and :func:`enter` skips ``__init__`` (a Python ``__init__`` called from the
    class costs more than the rest of ``enter``) and sets ``stages`` and ``idempotency``.
    """

    stages: list[str]
    """The stages this scope passed through, outermost first."""
    tenant: Tenant | None = None
    """The tenant the tenant stage resolved; ``None`` on an exempt path or without one."""
    uow: Any = None
    """The request's :class:`~lift_asgi.dynamo.UnitOfWork`, once the unit of work ran
    (typed ``Any`` here: the data layer's modules read this one through the cost hook;
    it is typed where it is read, :func:`~lift_asgi.dynamo.current_uow`)."""
    request_id: str | None = None
    """The request id the observing stage accepted or generated."""
    rate_limit: Mapping[str, str] | None = None
    """The rate-limit stage's decision (for request records and spans):
    ``{"outcome": ..., "rule": ...}`` (see :func:`lift_asgi.ratelimit.report.outcome`)."""
    commit: str | None = None
    """The unit of work's commit outcome: ``"none"``, ``"committed"``, ``"discarded"``,
    ``"conflict"``, ``"failed"``."""
    cost: Any = None
    """The request's DynamoDB cost accounting (calls, capacity, latency), when observed: a
    :class:`lift_asgi.observe.cost.RequestCost` (typed ``Any`` here since that module reads
    this one; it is typed where it is read, :func:`~lift_asgi.observe.cost.current_cost`)."""
    ids: Any = None
    """The observing stage's :class:`~lift_asgi.observe.RequestIds` of the request, with
    ``None`` for their ``context`` (``current_ids()`` adds it): ids holding the context
    that holds them would make a reference cycle, and every request's context would be
    left to the garbage collector (~2,000 instructions per request) instead of freed."""
    idempotency: IdempotentRequest | None = None
    """The idempotency stage's handle on a request carrying a key; the unit of work claims,
    completes and releases it (see :class:`IdempotentRequest`)."""
    response_headers: list[tuple[bytes, bytes]] | None = None
    """Headers an inner stage asks an outer one to add to the response's start: a stage
    that wraps ``send`` anyway (the tenant stage) offers a list here before calling the
    app and adds its contents to the ``http.response.start`` it passes on; an inner stage
    with headers (the rate limiter) extends it instead of wrapping ``send`` itself.
    ``None`` when no outer stage offers one."""
    _extra: dict[str, Any] | None = None

    def __init__(self, stages: list[str] | None = None) -> None:
        self.stages = [] if stages is None else stages

    @property
    def extra(self) -> dict[str, Any]:
        """Room for other stages (made on first use: most requests need none)."""
        extra = self._extra
        if extra is None:
            extra = self._extra = {}
        return extra

    @extra.setter
    def extra(self, value: dict[str, Any]) -> None:
        self._extra = value


class IdempotentRequest(Protocol):
    """What the unit of work does for the idempotency stage outside it.

    The idempotency stage validates the key and fingerprints the request; the unit of
    work, which holds the tenant scope and the transaction, claims the key before the
    app runs, adds the record's completion to its own commit, and releases the claim
    when the response is not to be remembered.
    """

    max_response_bytes: int
    """The largest response body the record keeps (the unit of work buffers up to it)."""

    async def claim(self, uow: Any, send: Send) -> bool:
        """Claim the key; ``False`` when an answer (replay, 409, 422) was sent instead."""

    def complete(
        self, uow: Any, status: int, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> None:
        """Buffer the record's completion in ``uow`` (raises a LiftError when it cannot)."""

    def keep_alive(self, uow: Any) -> Callable[[], None]:
        """Start renewing the claim while the app runs, so a request slower than the
        claim's expiry keeps it; returns the function that stops the renewals."""

    async def release(self, uow: Any) -> None:
        """Give the claim up (a 5xx, a failed commit, an exception): a retry executes."""

    async def recover(self, uow: Any, error: Exception) -> Exception | None:
        """After the commit carrying the record failed: ``None`` when the record shows it
        landed after all (its answer was lost), so the held response stands; otherwise
        the claim is released and the error to answer with is returned."""


def context(scope: Scope) -> RequestContext:
    """The scope's :class:`RequestContext`, created on first use."""
    ctx: RequestContext | None = scope.get(SCOPE_KEY)
    if ctx is None:
        ctx = scope[SCOPE_KEY] = RequestContext()
    return ctx


context_var: ContextVar[RequestContext | None] = ContextVar("lift_asgi.request", default=None)
"""The context of the request being handled, ``None`` outside one (and in a lifespan).

Set by the outermost stage that exposes something through it (see the module's docs)
and reset when that stage returns; a task a handler spawns keeps its copy."""

#: The context of the request being handled, ``None`` outside one.
current_context = context_var.get

_new = object.__new__


def enter(scope: Scope, stage: str) -> RequestContext:
    """Record that ``stage`` handles ``scope``; returns the scope's context.

    A stage on the per-request path may append its name itself when
    ``scope[SCOPE_KEY]`` is already there (a call costs more than the append); making
    the context is left to this function.
    """
    ctx: RequestContext | None = scope.get(SCOPE_KEY)
    if ctx is not None:
        ctx.stages.append(stage)
        return ctx
    # RequestContext([stage]) without its __init__ frame: the other fields are defaults,
    # but idempotency, which the unit of work reads on every request, is set (an instance
    # attribute reads faster than a class default)
    ctx = scope[SCOPE_KEY] = _new(RequestContext)
    ctx.stages = [stage]
    ctx.idempotency = None
    return ctx


def missing(scope: Scope, needed: str, *, by: str, option: str) -> ConfigurationError | None:
    """The error to raise when stage ``needed`` did not run outside stage ``by``.

    ``option`` names what made ``by`` need it (``key``, ``tenant_from``...), so the
    message points at the line the user wrote.
    """
    ctx: RequestContext | None = scope.get(SCOPE_KEY)
    if ctx is not None and needed in ctx.stages:
        return None
    return ConfigurationError(
        option,
        f"{_NAMES.get(by, by)} needs {_NAMES.get(needed, needed)} outside it "
        f"(installed before it, so it runs first); install the stages with "
        f"lift_asgi.install(...) or add {_NAMES.get(needed, needed)} after it",
    )


async def fail_startup(receive: Receive, send: Send, error: Exception) -> None:
    """Answer the lifespan's startup with ``lifespan.startup.failed`` and ``error``'s text.

    uvicorn (``--lifespan auto`` included) then prints the message and exits, and the
    Lambda handler raises it, instead of serving every request a 500.
    """
    message = await receive()
    if message["type"] == "lifespan.startup":
        text = f"{type(error).__name__}: {error}"
        await send({"type": "lifespan.startup.failed", "message": text})


class Need:
    """Stage ``by``'s need of stage ``needed`` outside it, and the one place it is checked.

    ``option`` names what made ``by`` need it (``key``, ``limit``, ``tenant_from``...), so
    every message points at the line the user wrote. ``met`` turns true at the first
    check that passes (the stage's lifespan startup, else its first request) and stays
    true. :func:`lift_asgi.install`, which knows every stage it builds, refuses a stage
    whose need is not configured at all with :meth:`install_error`: ``install_option``
    and ``install_message``, in the stage's own words.
    """

    __slots__ = ("by", "install_message", "install_option", "log", "met", "needed", "option")

    def __init__(
        self,
        by: str,
        needed: str,
        option: str,
        *,
        log: logging.Logger,
        install_option: str,
        install_message: str,
    ) -> None:
        self.by, self.needed, self.option, self.log = by, needed, option, log
        self.install_option, self.install_message = install_option, install_message
        self.met = False

    def install_error(self) -> ConfigurationError:
        """The installer's refusal when ``needed`` is not configured at all."""
        return ConfigurationError(self.install_option, self.install_message)

    async def startup(self, scope: Scope, receive: Receive, send: Send) -> bool:
        """At lifespan startup: whether the need is met; if not, the startup is failed
        (``lifespan.startup.failed`` with the message) and the caller returns."""
        error = missing(scope, self.needed, by=self.by, option=self.option)
        if error is None:
            self.met = True
            return True
        self.log.error("%s", error)
        await fail_startup(receive, send, error)
        return False

    async def request(self, scope: Scope, send: Send) -> bool:
        """On a request when no lifespan checked: whether the need is met; if not, the
        request is answered with a 500 problem naming the option (the operator's mistake,
        not the client's, so deliberately not a 4xx) and the caller returns."""
        error = missing(scope, self.needed, by=self.by, option=self.option)
        if error is None:
            self.met = True
            return True
        self.log.error("refusing %s: %s", scope.get("path"), error)
        await send_problem(
            send, LiftError(f"The server is misconfigured: {error}", option=self.option)
        )
        return False
