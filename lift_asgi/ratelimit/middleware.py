"""RateLimitMiddleware: pure ASGI rate limiting, counted in DynamoDB (or memory).

Per HTTP request: every matching rule (in order) resolves its key and limit, then asks
the backend once; the first refusal answers 429 and stops. A key known to be blocked is
refused from an in-process cache without asking the backend until the moment it could
pass again. Admitted responses get the headers of the tightest window, added to
``http.response.start`` once (by the tenant stage's send wrapper when it runs outside and
offers ``context.response_headers``, else by the limiter's own); the body streams through
untouched.

When the backend fails or is slower than ``timeout``, the rule's failure policy
(``on_failure``) decides, and no policy but the one named ``"open"`` ever admits more than
the limit in this process:

- ``"local"`` (default): count in this process, with the same limits, on top of what the
  backend last reported for the key (``acquire_local``); units admitted so are written to
  the store with the key's next successful call. A backend that cannot do this (no
  ``acquire_local``, or it forgot the key) refuses instead.
- ``"refuse"``: 503 problem+json with ``Retry-After``.
- ``"open"``: admit, uncounted, without headers.

Stage contract (:mod:`lift_asgi.stages`): the tenant comes from ``context(scope).tenant``;
a rule keyed by ``"tenant"`` or ``"user"`` (or limited by plan) with no tenant stage
outside fails the lifespan startup, or, when the server runs no lifespan, answers every
limited request a logged 500 naming the option.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from lift_asgi._chain import Chained
from lift_asgi._paths import compile_prefixes, route_path, under
from lift_asgi._routes import RouteTable
from lift_asgi._startup import LoudStartup
from lift_asgi.errors import ConfigurationError, LiftError, TooManyRequests, send_problem
from lift_asgi.ratelimit.backends import Backend, backend_from
from lift_asgi.ratelimit.blocked import BlockedKeys
from lift_asgi.ratelimit.client_ip import ClientIP
from lift_asgi.ratelimit.compiled import CompiledRule
from lift_asgi.ratelimit.core import Decision
from lift_asgi.ratelimit.failures import StoreFailures
from lift_asgi.ratelimit.limit_sets import LimitSet
from lift_asgi.ratelimit.options import check_options, compile_rules, rules_from, tenant_need
from lift_asgi.ratelimit.report import RateLimitStats
from lift_asgi.ratelimit.rules import LOCAL, KeySpec, LimitSpec, Rule, bounded_key
from lift_asgi.send_wrapper import adding_headers
from lift_asgi.stages import RATE_LIMIT, SCOPE_KEY, Need, RequestContext, enter

__all__ = ["RateLimitMiddleware"]

#: the fast path's memo of stored keys: entries before it is cleared, longest key kept
_KEY_MEMO_SIZE = 4096
_KEY_MEMO_MAX_LEN = 256

logger = logging.getLogger("lift_asgi.ratelimit")


def _no_acquire(key: str, windows: Any, cost: int, now: float) -> Decision:
    raise AssertionError("no path for the common configuration")  # never called


class RateLimitMiddleware(Chained, metaclass=LoudStartup):
    """Limit HTTP requests per tenant, user, client address, API key or route.

    One rule in short (``limit=``, with ``key``, ``methods``, ``routes``, ``path_prefix``,
    ``cost``), or several (``rules=[Rule(...), ...]``; every matching rule applies, each
    one backend call). Options, checked once here (mistakes raise
    :class:`~lift_asgi.errors.ConfigurationError` naming the option):

    - ``storage`` (``"memory://"``): ``"async+dynamodb://TABLE?endpoint_url=...&region=..."``
      in production, an :class:`~lift_asgi.ratelimit.AsyncDynamoDBStorage`, any async
      ``limits`` storage, or ``"memory://"`` (this process only).
    - ``strategy`` (``"fixed-window"``) or ``"sliding-window-counter"``; rules may override.
    - ``exempt`` (``()``): path prefixes never limited, matched on segment boundaries.
    - ``trusted_proxies`` (``()``): addresses/networks whose ``X-Forwarded-For`` is
      believed for the ``"ip"`` key (``"*"``: any peer); ``ipv6_prefix`` (64) groups IPv6
      clients by network.
    - ``api_key_header`` (``"X-API-Key"``): read by the ``"api_key"`` key, kept hashed.
    - ``on_failure`` (``"local"``): what happens when the backend fails or takes longer
      than ``timeout`` (1.0 s, finite); see the module docs. ``"local"`` counts in this process
      (``stats.degraded``), ``"refuse"`` answers 503 with ``Retry-After:
      unavailable_retry_after`` (5 s; ``stats.unavailable``), ``"open"`` admits uncounted
      (``stats.uncounted``). Each failure logs a warning at most every ``warn_interval``
      (60 s). Rules may override it. (``fail_open`` is gone: it is a ConfigurationError.)
    - ``headers`` (True): ``X-RateLimit-Limit/-Remaining/-Reset`` and the IETF draft's
      ``RateLimit-Policy``/``RateLimit`` (draft-ietf-httpapi-ratelimit-headers-09) on every
      admitted response and every 429; a failing store's 503 (``on_failure="refuse"``)
      too, as a refusal (remaining 0, reset at ``Retry-After``: the count was unread).
    - ``blocked_cache_size`` (10 000): keys remembered as blocked; 0 disables.
    - ``clock`` (``time.time``): the epoch clock; tests move it instead of sleeping.
    - ``router``: where route templates come from (default: ``scope["app"]``, else the
      wrapped app's router, found on the first request).
    """

    __slots__ = (
        "_acquire_now",
        "_blocked",
        "_blocked_keys",
        "_checked",
        "_clock",
        "_exempt",
        "_failures",
        "_fast",
        "_fast_acquire",
        "_fast_keys",
        "_fast_seconds",
        "_fast_set",
        "_fast_windows",
        "_headers",
        "_io",
        "_need_path",
        "_one",
        "_route",
        "_spend",
        "_timeout",
        "backend",
        "need",
        "rules",
        "stats",
    )

    def __init__(
        self,
        app: ASGIApp,
        *,
        limit: LimitSpec | None = None,
        key: KeySpec = "ip",
        methods: Iterable[str] | None = None,
        routes: Iterable[str] | None = None,
        path_prefix: str | Iterable[str] | None = None,
        cost: int | Callable[[Scope], int] = 1,
        rules: Sequence[Rule] | None = None,
        storage: Any = "memory://",
        strategy: str = "fixed-window",
        exempt: str | Iterable[str] = (),
        trusted_proxies: str | Iterable[str] = (),
        ipv6_prefix: int = 64,
        api_key_header: str = "x-api-key",
        on_failure: str = LOCAL,
        fail_open: Any = None,
        timeout: float = 1.0,
        unavailable_retry_after: int = 5,
        warn_interval: float = 60.0,
        headers: bool = True,
        blocked_cache_size: int = 10_000,
        clock: Callable[[], float] = time.time,
        router: Any = None,
    ) -> None:
        self.app = app
        rules, rules_given = rules_from(
            rules,
            limit,
            key=key,
            methods=methods,
            routes=routes,
            path_prefix=path_prefix,
            cost=cost,
        )
        check_options(
            fail_open=fail_open,
            on_failure=on_failure,
            timeout=timeout,
            unavailable_retry_after=unavailable_retry_after,
            warn_interval=warn_interval,
            blocked_cache_size=blocked_cache_size,
            clock=clock,
            api_key_header=api_key_header,
        )

        self.backend: Backend = backend_from(storage)
        self._io = bool(getattr(self.backend, "io", True))
        # A backend that never waits may offer a plain function: no coroutine per request.
        self._acquire_now: Callable[[str, Any, int, float], Decision] | None = (
            None if self._io else getattr(self.backend, "acquire_now", None)
        )
        # Units this process leased (lease_horizon > 0), spent without a coroutine or timeout.
        leases = getattr(self.backend, "leases", None) if self._io else None
        self._spend: Callable[[str, Any, int, float], Decision | None] | None = (
            leases.spend
            if leases is not None and getattr(self.backend, "_leasing", False)
            else None
        )
        self._exempt = compile_prefixes("exempt", exempt)
        self._route = RouteTable(app, router)
        self.rules: tuple[CompiledRule, ...] = compile_rules(
            rules,
            strategy=strategy,
            on_failure=on_failure,
            client_ip=ClientIP(trusted_proxies, ipv6_prefix),
            api_key_header=api_key_header,
            route=self._route,
        )
        # checked at lifespan startup, else on the first limited requests until it passes
        self.need: Need | None = tenant_need(self.rules, rules_given)
        self._checked = self.need is None
        self._need_path = bool(self._exempt) or any(rule.prefixes for rule in self.rules)
        self._fast_path(self.rules)
        self._timeout = float(timeout)
        if not isinstance(headers, bool):
            raise ConfigurationError("headers", "True or False")
        self._headers = headers
        self._clock = clock
        self.stats = RateLimitStats()
        self._blocked_keys = BlockedKeys(blocked_cache_size, self.stats)
        self._blocked = self._blocked_keys.entries  # tested inline on every request
        # when the store fails: counting in this process needs the backend's acquire_local
        self._failures = StoreFailures(
            self.stats,
            getattr(self.backend, "acquire_local", None),
            timeout=self._timeout,
            retry_after=unavailable_retry_after,
            warn_interval=float(warn_interval),
            headers=headers,
        )

    # -- the request path -------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        rule = self._one
        if rule is None or scope["type"] != "http":
            await self._limit(scope, receive, send)
            return
        # The common configuration (one rule that applies everywhere, a fixed limit and
        # cost, a backend that answers without I/O, the tenant stage checked): _limit's
        # steps for it, without its loop, matching, limit and cost calls or timeout,
        # none of which can change its decision.
        ctx: RequestContext | None = scope.get(SCOPE_KEY)
        if ctx is None:
            ctx = enter(scope, RATE_LIMIT)
        else:
            ctx.stages.append(RATE_LIMIT)  # enter's own step for an existing context
        # as _limit's exempt check; a path that starts with no prefix (most) is decided
        # by two C calls, without building the route path
        exempt = self._exempt
        if (
            exempt
            and (scope.get("root_path") or scope["path"].startswith(exempt))
            and under(route_path(scope), exempt)
        ):
            await self._next(scope, receive, send)
            return
        now = self._clock()
        key = rule.key(scope)
        if key is None:
            await self._next(scope, receive, send)
            return
        # the stored key of a hot key from a memo: no new string to build and hash
        full_key = self._fast_keys.get(key)
        if full_key is None:
            full_key = self._stored_key(rule, key)
        limit_set = self._fast_set
        if self._blocked:
            refusal = self._blocked_keys.refusal(full_key, limit_set, now)
            if refusal is not None:
                ctx.rate_limit = rule.outcomes.blocked
                await self._refuse(send, limit_set, refusal, now)
                return
        reported = rule.outcomes.admitted
        taken: int | Decision
        try:
            taken = self._fast_acquire(full_key, self._fast_windows, rule.cost, now)
        except Exception as exc:  # the store failed
            failed = await self._failures.handle(
                ctx, send, rule, exc, full_key, limit_set, rule.cost, now
            )
            if failed is True:
                await self._next(scope, receive, send)  # admitted uncounted (on_failure="open")
                return
            if failed is False:
                return
            taken = failed
            reported = rule.outcomes.degraded
        if isinstance(taken, int):
            # a plain admission (units left: not blocked) is the count left, no Decision
            # made (the memory backend's take_fixed); its window's end is the reset
            index, remaining = 0, taken
            seconds = self._fast_seconds
            reset = (now // seconds + 1) * seconds
        else:
            if taken.blocked_until > now and self._blocked_keys.size:
                self._blocked_keys.block(full_key, limit_set, taken)
            if not taken.allowed:
                self.stats.refused += 1
                ctx.rate_limit = rule.outcomes.refused
                await self._refuse(send, limit_set, taken, now)
                return
            index, remaining, reset = taken.index, taken.remaining, taken.reset
        self.stats.admitted += 1
        ctx.rate_limit = reported
        if not self._headers:
            await self._next(scope, receive, send)
            return
        extra = limit_set.headers_of(index, remaining, reset, now)
        offered = ctx.response_headers
        if offered is None:
            send = adding_headers(send, extra)
        elif offered:  # as in _limit: the outer stage's send wrapper adds them
            offered[:0] = extra
        else:
            offered += extra
        await self._next(scope, receive, send)

    async def _limit(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Every scope, every configuration (:meth:`__call__` has the common one's path)."""
        scope_type = scope["type"]
        if scope_type != "http":
            if scope_type == "lifespan":
                await self._lifespan(scope, receive, send)
            else:
                await self._next(scope, receive, send)
            return
        ctx: RequestContext | None = scope.get(SCOPE_KEY)
        if ctx is None:
            ctx = enter(scope, RATE_LIMIT)
        else:
            ctx.stages.append(RATE_LIMIT)  # enter's step for an existing context, uncalled
        path = ""
        if self._need_path:
            path = route_path(scope)
            if self._exempt and under(path, self._exempt):
                await self._next(scope, receive, send)
                return
        if not self._checked and not await self._check(scope, send):
            return
        now = self._clock()
        blocked_keys = self._blocked
        report_set: LimitSet | None = None
        report: Decision | None = None
        report_rule: CompiledRule | None = None
        degraded = False
        for rule in self.rules:
            if not rule.everywhere and not rule.applies(scope["method"], path, self._route, scope):
                continue
            key = rule.key(scope)
            if key is None:
                continue
            limit_set = rule.static or rule.limits(scope)
            if limit_set is None:
                continue
            cost = rule.cost if rule.cost_fn is None else rule.cost_of(scope)
            if cost is None:  # the cost function's answer was no int (logged): none counted
                await send_problem(send, LiftError())
                return
            if cost < 1:
                continue
            full_key = rule.key_prefix + key
            if len(full_key) > 512:
                full_key = bounded_key(full_key)
            if blocked_keys:
                refusal = self._blocked_keys.refusal(full_key, limit_set, now)
                if refusal is not None:
                    ctx.rate_limit = rule.outcomes.blocked
                    await self._refuse(send, limit_set, refusal, now)
                    return
            try:
                if self._acquire_now is not None:
                    decision = self._acquire_now(full_key, limit_set.windows, cost, now)
                elif self._spend is not None and (
                    leased := self._spend(full_key, limit_set.windows, cost, now)
                ):
                    decision = leased  # from units this process holds: no call, no coroutine
                elif self._io:
                    async with asyncio.timeout(self._timeout):
                        decision = await self.backend.acquire(
                            full_key, limit_set.windows, cost, now
                        )
                else:
                    decision = await self.backend.acquire(full_key, limit_set.windows, cost, now)
            except Exception as exc:  # the store failed, or was too slow
                failed = await self._failures.handle(
                    ctx, send, rule, exc, full_key, limit_set, cost, now
                )
                if failed is True:
                    continue  # admitted uncounted (on_failure="open")
                if failed is False:
                    return
                decision = failed
                degraded = True
            if decision.blocked_until > now and self._blocked_keys.size:
                # Refused, or this hit took the last unit: ask nobody until it can pass.
                self._blocked_keys.block(full_key, limit_set, decision)
            if not decision.allowed:
                self.stats.refused += 1
                ctx.rate_limit = rule.outcomes.refused
                await self._refuse(send, limit_set, decision, now)
                return
            if report is None or decision.remaining < report.remaining:
                report, report_set, report_rule = decision, limit_set, rule
        if report is None or report_set is None or report_rule is None:
            await self._next(scope, receive, send)
            return
        self.stats.admitted += 1
        outcomes = report_rule.outcomes
        ctx.rate_limit = outcomes.degraded if degraded else outcomes.admitted
        if not self._headers:
            await self._next(scope, receive, send)
            return
        extra = report_set.headers_of(report.index, report.remaining, report.reset, now)
        # An outer stage (the tenant stage) that wraps send anyway offers a list it adds to
        # the start: then no wrapper of ours (a closure and a call per message). Ours go
        # before what stages outside this one put there (another limiter), as our wrapper,
        # inside theirs, would have added them first; `+=` when the list is empty, which a
        # slice assignment costs ~400 instructions more than.
        offered = ctx.response_headers
        if offered is None:
            send = adding_headers(send, extra)
        elif offered:
            offered[:0] = extra
        else:
            offered += extra
        await self._next(scope, receive, send)

    def _fast_path(self, compiled: Sequence[CompiledRule]) -> None:
        """Whether :meth:`__call__`'s path for the common configuration serves this one
        (``_fast``, the rule; ``_one`` once the tenant stage was checked), and with what."""
        rule = compiled[0]
        static = rule.static
        self._fast: CompiledRule | None = None
        self._fast_set: LimitSet = static or LimitSet("", (), "")
        self._fast_keys: dict[str, str] = {}  # key -> stored key (see __call__)
        self._fast_windows: Any = None
        self._fast_acquire: Callable[[str, Any, int, float], int | Decision] = _no_acquire
        self._fast_seconds = 1  # the window of a backend's take_fixed
        if (
            len(compiled) == 1
            and rule.everywhere
            and static is not None
            and rule.cost_fn is None
            and self._acquire_now is not None  # (everywhere: the rule has no paths)
        ):
            self._fast = rule
            windows = static.windows
            fixed = getattr(self.backend, "take_fixed", None)
            if fixed is not None and len(windows) == 1 and not windows[0].sliding:
                # the backend's own entry for one fixed window (its acquire_now's first
                # step), which answers a plain admission with the count left
                self._fast_acquire, self._fast_windows = fixed, windows[0]
                self._fast_seconds = windows[0].seconds
            else:
                self._fast_acquire, self._fast_windows = self._acquire_now, windows
        self._one = self._fast if self._checked else None

    # -- helpers ------------------------------------------------------------------------

    def _stored_key(self, rule: CompiledRule, key: str) -> str:
        """The fast path's stored key for ``key``, remembered in a small memo (cleared
        when full; a key too long to be a hot one is not kept, so junk cannot fill it)."""
        full_key = rule.key_prefix + key
        if len(full_key) > 512:
            full_key = bounded_key(full_key)
        memo = self._fast_keys
        if len(key) <= _KEY_MEMO_MAX_LEN:
            if len(memo) >= _KEY_MEMO_SIZE:
                memo.clear()
            memo[key] = full_key
        return full_key

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        enter(scope, RATE_LIMIT)
        need = self.need
        if need is not None:
            if not await need.startup(scope, receive, send):
                return
            self._checked = True
            self._one = self._fast
        await self._next(scope, receive, send)

    async def _check(self, scope: Scope, send: Send) -> bool:
        """Without a lifespan: is the tenant stage outside? If not, a logged 500."""
        need = self.need
        if need is not None and not await need.request(scope, send):
            return False
        self._checked = True
        self._one = self._fast
        return True

    async def _refuse(
        self, send: Send, limit_set: LimitSet, decision: Decision, now: float
    ) -> None:
        retry_after = max(1, math.ceil(decision.retry_after))
        headers = limit_set.headers(decision, now) if self._headers else []
        await send_problem(
            send,
            TooManyRequests(
                f"Rate limit exceeded; retry in {retry_after} seconds.", retry_after=retry_after
            ),
            headers=headers,
        )

    def blocked_keys(self) -> int:
        """How many keys the in-process cache holds as blocked (for metrics)."""
        return len(self._blocked_keys)
