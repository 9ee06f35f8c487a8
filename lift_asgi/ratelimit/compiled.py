"""A :class:`~lift_asgi.ratelimit.rules.Rule` compiled once: matchers, key function,
limit sets, cost and failure policy, ready for the request path."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping

from starlette.types import Scope

from lift_asgi._headers import method_names
from lift_asgi._paths import compile_prefixes, under
from lift_asgi._routes import template_of
from lift_asgi.errors import ConfigurationError
from lift_asgi.ratelimit.client_ip import ClientIP
from lift_asgi.ratelimit.keys import compile_key, uses_tenant
from lift_asgi.ratelimit.limit_sets import PlanLimits
from lift_asgi.ratelimit.report import Outcomes
from lift_asgi.ratelimit.rules import (
    ON_FAILURE,
    STRATEGIES,
    KeyFunc,
    Rule,
    removed_fail_open,
)

__all__ = ["CompiledRule"]


logger = logging.getLogger("lift_asgi.ratelimit")


class CompiledRule:
    __slots__ = (
        "cost",
        "cost_fn",
        "everywhere",
        "key",
        "key_prefix",
        "limits",
        "methods",
        "name",
        "needs_tenant",
        "on_failure",
        "outcomes",
        "prefixes",
        "static",
        "templates",
    )

    def __init__(
        self,
        rule: Rule,
        *,
        name: str,
        strategy: str,
        on_failure: str,
        client_ip: ClientIP,
        api_key_header: bytes,
        route: KeyFunc,
    ) -> None:
        self.name = name
        self.key_prefix = name + "#"
        self.outcomes = Outcomes(name)
        if strategy not in STRATEGIES:
            raise ConfigurationError(
                "strategy",
                f"{strategy!r} is not supported; use one of {', '.join(STRATEGIES)}",
            )
        self.limits = PlanLimits(rule.limit, strategy, name)
        self.static = self.limits.static  # no call per request for a fixed limit
        self.key = compile_key(
            rule.key, client_ip=client_ip, api_key_header=api_key_header, route=route
        )
        self.methods: frozenset[str] | None = (
            None if rule.methods is None else method_names("methods", rule.methods)
        )
        if rule.routes is None:
            self.templates: frozenset[str] | None = None
        else:
            if isinstance(rule.routes, str | bytes) or not isinstance(rule.routes, Iterable):
                raise ConfigurationError("routes", "a list of route templates")
            self.templates = frozenset(template_of("routes", t) for t in rule.routes)
        self.prefixes = compile_prefixes("path_prefix", rule.path_prefix)
        self.cost_fn: Callable[[Scope], int] | None
        if callable(rule.cost):
            self.cost, self.cost_fn = 1, rule.cost
        elif isinstance(rule.cost, int) and not isinstance(rule.cost, bool) and rule.cost >= 1:
            self.cost, self.cost_fn = rule.cost, None
        else:
            raise ConfigurationError("cost", "an integer >= 1 or a callable (scope) -> int")
        for limit_set in self.limits.all_static:
            smallest = min(w.limit for w in limit_set.windows)
            if self.cost > smallest > 0:  # (a limit of 0 refuses everything on purpose)
                raise ConfigurationError(
                    "cost", f"{self.cost} is above the limit {limit_set.text!r}: never admitted"
                )
        if rule.fail_open is not None:
            raise removed_fail_open()
        if on_failure not in ON_FAILURE:
            raise ConfigurationError("on_failure", f"one of {', '.join(map(repr, ON_FAILURE))}")
        self.on_failure: str = ON_FAILURE[ON_FAILURE.index(on_failure)]  # compared with `is`
        # What makes this rule need a tenant stage outside: its key, or limits by plan.
        self.needs_tenant: str | None = None
        if uses_tenant(rule.key):
            self.needs_tenant = "key"
        elif isinstance(rule.limit, Mapping):
            self.needs_tenant = "limit"
        self.everywhere = self.methods is None and self.templates is None and not self.prefixes

    def cost_of(self, scope: Scope) -> int | None:
        """The callable ``cost``'s units for this request; ``None`` (logged) when it
        returned no int: a float or a str would be counted by the store, then fail."""
        assert self.cost_fn is not None
        cost = self.cost_fn(scope)
        if type(cost) is int:
            return cost
        logger.error(
            "cost: rule %r's cost function returned %r (%s), not an int; the request is "
            "answered with a 500 and nothing is counted",
            self.name,
            cost,
            type(cost).__name__,
        )
        return None

    def applies(self, method: str, path: str, route: KeyFunc, scope: Scope) -> bool:
        if self.methods is not None and method not in self.methods:
            return False
        templates = self.templates
        if templates is None and not self.prefixes:
            return True
        if self.prefixes and under(path, self.prefixes):
            return True
        return templates is not None and route(scope) in templates
