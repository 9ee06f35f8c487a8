"""TenantMiddleware: ask the resolvers who the tenant is, validate it, expose it.

The middleware asks its resolvers, in the order given, who the tenant of a request is.
The first answer wins (or, with ``require_consistent=True``, every source that answers
must agree). The tenant id is validated before anything else sees it, then exposed in
``scope["state"]["tenant"]`` (``request.state.tenant``) and in the stage contract
(``scope["lift_asgi"].tenant``), which ``current_tenant()`` reads through the request's
ContextVar for the duration of the request (see :mod:`lift_asgi.tenancy.tenant`).
"""

from __future__ import annotations

import inspect
import logging
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from lift_asgi._chain import Chained
from lift_asgi._paths import compile_prefixes, route_path, under
from lift_asgi._startup import LoudStartup
from lift_asgi.errors import (
    ConfigurationError,
    InvalidTenant,
    LiftError,
    TenantMismatch,
    Unauthorized,
    send_problem,
)
from lift_asgi.send_wrapper import call_with_problems, response_tracker
from lift_asgi.stages import SCOPE_KEY, TENANT, RequestContext, context_var, enter
from lift_asgi.tenancy.memo import remember
from lift_asgi.tenancy.tenant import (
    DEFAULT_TENANT_ID_PATTERN,
    ResolveFunc,
    Resolver,
    Tenant,
)

__all__ = ["TenantMiddleware"]

_new = object.__new__
logger = logging.getLogger("lift_asgi.tenancy")

# The request context's ContextVar, its methods bound once: looked up on the ContextVar on
# every request, set and reset cost ~1k machine instructions more (callgrind, CPython 3.11).
_get_context, _set_context, _reset_context = context_var.get, context_var.set, context_var.reset


def _compile_validator(option: Any) -> Callable[[str], object]:
    if option == DEFAULT_TENANT_ID_PATTERN:
        return re.compile(option).fullmatch  # implies the floor below
    if isinstance(option, str):
        try:
            check: Callable[[str], object] = re.compile(option).fullmatch
        except re.error as exc:
            raise ConfigurationError("tenant_id_pattern", f"invalid regex: {exc}") from exc
    elif isinstance(option, re.Pattern):
        check = option.fullmatch
    elif callable(option):
        check = option
    else:
        raise ConfigurationError(
            "tenant_id_pattern", "must be a regex (str or compiled) or a callable"
        )

    def validate(tenant_id: str) -> bool:
        # A custom rule may widen the default, but never lets through what would break
        # a "{tenant}#{key}" partition key or a log line.
        return (
            0 < len(tenant_id) <= 256
            and "#" not in tenant_id
            and tenant_id.isprintable()
            and bool(check(tenant_id))
        )

    return validate


def _compile_resolvers(resolvers: Any) -> tuple[tuple[ResolveFunc, str], ...]:
    if resolvers is None or isinstance(resolvers, str) or not isinstance(resolvers, Iterable):
        raise ConfigurationError("resolvers", "must be a list of resolvers")
    compiled = []
    for resolver in resolvers:
        method = getattr(resolver, "resolve", None)
        if callable(method):
            name = str(getattr(resolver, "name", type(resolver).__name__))
        elif callable(resolver):
            method, name = resolver, str(getattr(resolver, "__name__", "custom"))
        else:
            raise ConfigurationError(
                "resolvers", f"{resolver!r} has no resolve(scope) method and is not callable"
            )
        # An object with an async __call__ counts too (the attribute, not callable()).
        call = type(method).__call__ if not inspect.isroutine(method) else None
        if not (inspect.iscoroutinefunction(method) or inspect.iscoroutinefunction(call)):
            raise ConfigurationError("resolvers", f"{name}: resolve(scope) must be async")
        compiled.append((method, name))
    if not compiled:
        raise ConfigurationError("resolvers", "at least one resolver is required")
    return tuple(compiled)


class TenantMiddleware(Chained, metaclass=LoudStartup):
    """Resolve the tenant of every HTTP and WebSocket request; refuse those without one.

    Options (all checked here, once; mistakes raise :class:`ConfigurationError`):

    - ``resolvers``: tried in order; the first answer wins.
    - ``require_consistent`` (``False``): ask every resolver; two answers that name
      different tenants are a 403 (:class:`~lift_asgi.errors.TenantMismatch`).
    - ``tenant_id_pattern`` (:data:`DEFAULT_TENANT_ID_PATTERN`): a regex the whole id
      must match, or a callable ``(tenant_id) -> bool``. A custom rule can widen the
      default, but ids that are empty, longer than 256 characters, contain ``#`` or
      non-printable characters are refused regardless. A malformed id is a 400.
    - ``exempt`` (``()``): path prefixes, matched on segment boundaries (``"/health"``
      covers ``/health`` and ``/health/db``, not ``/healthz``), that pass through with
      ``request.state.tenant = None``.
    - ``default_plan`` (``None``): the plan of a tenant whose source names none.

    No answer is a 401. HTTP failures are ``application/problem+json``; a refused
    WebSocket is closed with code 1008 after its ``websocket.connect``.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        resolvers: Sequence[Resolver | ResolveFunc] = (),
        require_consistent: bool = False,
        tenant_id_pattern: str | re.Pattern[str] | Callable[[str], bool] = (
            DEFAULT_TENANT_ID_PATTERN
        ),
        exempt: Iterable[str] = (),
        default_plan: str | None = None,
    ) -> None:
        self.app = app
        self._resolvers = _compile_resolvers(resolvers)
        self._resolve_funcs = tuple(resolve for resolve, _ in self._resolvers)
        if not isinstance(require_consistent, bool):  # bool("no") is True
            raise ConfigurationError("require_consistent", "True or False")
        self._require_consistent = require_consistent
        self._valid = _compile_validator(tenant_id_pattern)
        self._exempt = compile_prefixes("exempt", exempt)
        if default_plan is not None and not isinstance(default_plan, str):
            raise ConfigurationError("default_plan", "must be a string or None")
        self._default_plan = default_plan
        # id(resolver's tenant) -> (that tenant, the accepted one): resolvers hand out the
        # same object for a hot token or header, so it is validated once, not per request.
        # Holding the first element keeps its id from being reused while remembered, so
        # an entry found under id(tenant) is that tenant's: no identity check is needed.
        self._accepted: dict[int, tuple[Tenant, Tenant]] = {}
        # The common configuration (one resolver, first answer wins) has a short path in
        # __call__ (an exempt path leaves it for the general one); any other runs the
        # general one, _handle.
        self._one: ResolveFunc | None = None
        # its resolver's answer from memory, when it has one (see Resolver.resolve)
        self._cached: Callable[[Scope], Tenant | None] | None = None
        if len(self._resolve_funcs) == 1 and not require_consistent:
            self._one = self._resolve_funcs[0]
            cached = _cached_lookup(self._one)
            if cached is not None and (not callable(cached) or inspect.iscoroutinefunction(cached)):
                raise ConfigurationError(
                    "resolvers", "cached_tenant(scope) must be a plain (not async) method"
                )
            self._cached = cached

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        resolve = self._one
        if resolve is None or scope["type"] != "http":
            await self._handle(scope, receive, send)
            return
        # A path that does not start with a prefix cannot be under one: two C calls
        # decide most requests; the rest, and any app under a root_path, are checked
        # exactly, and an exempt one is _handle's (it skips the tenant there).
        exempt = self._exempt
        if (
            exempt
            and (scope.get("root_path") or scope["path"].startswith(exempt))
            and under(route_path(scope), exempt)
        ):
            await self._handle(scope, receive, send)
            return
        # HTTP with one resolver, first answer wins, a path not exempt: _handle's steps
        # without the scope-type branches, the exempt check and the resolver loop,
        # none of which could change the outcome here.
        ctx: RequestContext | None = scope.get(SCOPE_KEY)
        if ctx is None:  # enter(scope, TENANT) without its call (~450 instructions)
            ctx = scope[SCOPE_KEY] = _new(RequestContext)
            ctx.stages = [TENANT]
            ctx.idempotency = None  # as enter() sets it
            exposed = False  # a new context: no outer stage can have exposed it
        else:  # enter's step for an existing context, uncalled
            ctx.stages.append(TENANT)
            exposed = _get_context() is ctx  # by an outer stage (the observer)
        state = scope.get("state")
        if state is None:
            state = scope["state"] = {}
        cached = self._cached
        try:
            found = cached(scope) if cached is not None else None
            if found is None:
                found = await resolve(scope)
            if found is None:
                raise Unauthorized("No tenant could be determined for this request.")
            accepted = self._accepted.get(id(found))
            tenant = accepted[1] if accepted is not None else self._accept(found)
        except LiftError as error:
            logger.debug("tenant refused (%s): %s", error.status, error.detail)
            await send_problem(send, error)
            return
        except Exception:
            logger.exception("a tenant resolver raised; the request is refused with a 401")
            await send_problem(send, _UNIDENTIFIED)
            return
        state["tenant"] = ctx.tenant = tenant
        # the rate limiter inside puts its headers here, for tracking_send to add
        headers: list[tuple[bytes, bytes]] = []
        ctx.response_headers = headers
        # call_with_problems inlined (one coroutine frame fewer on every request)
        tracker = response_tracker(scope, send, headers)
        reset = None if exposed else _set_context(ctx)  # exposed: nothing to set
        try:
            await self._next(scope, receive, tracker.send)
        except LiftError as error:
            if tracker.started:
                raise
            await send_problem(send, error)
        finally:
            if reset is not None:
                _reset_context(reset)

    async def _handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The request path for every configuration and scope type."""
        scope_type = scope["type"]
        if scope_type != "http" and scope_type != "websocket":
            if scope_type == "lifespan":
                enter(scope, TENANT)
            await self._next(scope, receive, send)
            return
        ctx = enter(scope, TENANT)
        state = scope.get("state")
        if state is None:
            state = scope["state"] = {}
        exempt = self._exempt
        if exempt:
            path = route_path(scope) if scope.get("root_path") else scope["path"]
            if under(path, exempt):
                state["tenant"] = None
                if scope_type == "http":
                    headers: list[tuple[bytes, bytes]] = []
                    ctx.response_headers = headers
                    await call_with_problems(self._next, scope, receive, send, headers)
                else:
                    await self._next(scope, receive, send)
                return
        try:
            if self._require_consistent:
                tenant = await self._resolve_consistent(scope)
            else:
                for resolve in self._resolve_funcs:  # inlined: this runs on every request
                    found = await resolve(scope)
                    if found is not None:
                        break
                else:
                    raise Unauthorized("No tenant could be determined for this request.")
                accepted = self._accepted.get(id(found))
                tenant = accepted[1] if accepted is not None else self._accept(found)
        except LiftError as error:
            logger.debug("tenant refused (%s): %s", error.status, error.detail)
            await self._refuse(scope_type, receive, send, error)
            return
        except Exception:
            # A resolver's bug (or a library's surprise) must not become a 500 that
            # says "this input breaks the server": whoever sent it is not identified.
            logger.exception("a tenant resolver raised; the request is refused with a 401")
            await self._refuse(scope_type, receive, send, _UNIDENTIFIED)
            return
        state["tenant"] = ctx.tenant = tenant
        reset = _set_context(ctx) if _get_context() is not ctx else None
        try:
            if scope_type == "http":
                headers = []
                ctx.response_headers = headers
                await call_with_problems(self._next, scope, receive, send, headers)
            else:
                await self._next(scope, receive, send)
        finally:
            if reset is not None:
                _reset_context(reset)

    @staticmethod
    async def _refuse(scope_type: str, receive: Receive, send: Send, error: LiftError) -> None:
        if scope_type == "http":
            await send_problem(send, error)
        else:
            await _refuse_websocket(receive, send, error)

    def _accept(self, found: Tenant) -> Tenant:
        if not self._valid(found.id):
            raise InvalidTenant("The tenant id is malformed.")
        tenant = found
        if found.plan is None and self._default_plan is not None:
            tenant = replace(found, plan=self._default_plan)
        remember(self._accepted, id(found), (found, tenant))
        return tenant

    async def _resolve_consistent(self, scope: Scope) -> Tenant:
        first: Tenant | None = None
        for resolve, name in self._resolvers:
            tenant = await resolve(scope)
            if tenant is None:
                continue
            tenant = self._accept(tenant)
            if first is None:
                first = tenant
            elif tenant.id != first.id:
                logger.debug("tenant sources %s and %s disagree", first.source, name)
                raise TenantMismatch(
                    f"The tenant sources '{first.source}' and '{tenant.source}' disagree."
                )
        if first is None:
            raise Unauthorized("No tenant could be determined for this request.")
        return first


_UNIDENTIFIED = Unauthorized("No tenant could be determined for this request.")


async def _refuse_websocket(receive: Receive, send: Send, error: LiftError) -> None:
    message = await receive()
    if message["type"] == "websocket.connect":
        await send({"type": "websocket.close", "code": 1008, "reason": error.title})


def _cached_lookup(resolve: ResolveFunc) -> Any:
    """The resolver's ``cached_tenant``, if the class whose ``resolve`` runs defines it.

    A subclass that overrides ``resolve`` (a revocation check, extra claims) and not
    ``cached_tenant`` must see every request: its parent's cache answer would skip it.
    """
    owner = getattr(resolve, "__self__", None)
    if owner is None:
        return None
    home = next((k for k in type(owner).__mro__ if "resolve" in vars(k)), None)
    if home is None or "cached_tenant" not in vars(home):
        return None
    return getattr(owner, "cached_tenant", None)
