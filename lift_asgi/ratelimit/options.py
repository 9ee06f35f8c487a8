"""The rate limiter's options, checked and compiled once, where they were written.

:class:`~lift_asgi.ratelimit.RateLimitMiddleware` calls these from its ``__init__``, in
the order the options used to be checked there, so a mistake raises the same
:class:`~lift_asgi.errors.ConfigurationError`, naming the same option. What they return
is all the request path reads: the rules (:class:`CompiledRule`) and the need of a tenant
stage outside (:class:`~lift_asgi.stages.Need`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from starlette.types import Scope

from lift_asgi._headers import header_name
from lift_asgi._routes import RouteTable
from lift_asgi.errors import ConfigurationError
from lift_asgi.ratelimit.client_ip import ClientIP
from lift_asgi.ratelimit.compiled import CompiledRule
from lift_asgi.ratelimit.rules import (
    ON_FAILURE,
    KeySpec,
    LimitSpec,
    Rule,
    removed_fail_open,
    rule_name,
)
from lift_asgi.stages import RATE_LIMIT, TENANT, Need

__all__ = ["check_options", "compile_rules", "rules_from", "tenant_need"]

logger = logging.getLogger("lift_asgi.ratelimit")


def _seconds(value: Any) -> bool:
    """Whether ``value`` is a finite number (not a bool): NaN compares false with
    everything, so ``timeout=nan`` would never time out; an int too large for a float is
    no number of seconds either (``math.isfinite`` raises ``OverflowError`` on it)."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def _whole(value: Any, least: int) -> bool:
    """Whether ``value`` is an int (not a bool) of at least ``least``."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= least


def rules_from(
    rules: Sequence[Rule] | None,
    limit: LimitSpec | None,
    *,
    key: KeySpec,
    methods: Iterable[str] | None,
    routes: Iterable[str] | None,
    path_prefix: str | Iterable[str] | None,
    cost: int | Callable[[Scope], int],
) -> tuple[Sequence[Rule], bool]:
    """The rules to compile: ``rules`` as given, or the one rule ``limit=`` and its
    options describe; and whether ``rules`` was given (it names the option a need of
    the tenant stage is reported under)."""
    if rules is not None and limit is not None:
        raise ConfigurationError("rules", "give either rules=[...] or limit=..., not both")
    if rules is None:
        if limit is None:
            raise ConfigurationError("limit", "a limit such as '100/minute' (or rules=[...])")
        one = Rule(
            limit,
            key=key,
            name="default",
            methods=methods,
            routes=routes,
            path_prefix=path_prefix,
            cost=cost,
        )
        return [one], False
    if isinstance(rules, Rule) or not isinstance(rules, Sequence) or not rules:
        raise ConfigurationError("rules", "a non-empty list of Rule")
    return rules, True


def check_options(
    *,
    fail_open: Any,
    on_failure: str,
    timeout: float,
    unavailable_retry_after: int,
    warn_interval: float,
    blocked_cache_size: int,
    clock: Callable[[], float],
    api_key_header: str,
) -> None:
    """Refuse a scalar option that could only fail later (``timeout=nan`` never times
    out, ``clock=None`` fails on the first request)."""
    if fail_open is not None:
        raise removed_fail_open()
    if on_failure not in ON_FAILURE:
        raise ConfigurationError("on_failure", f"one of {', '.join(map(repr, ON_FAILURE))}")
    if not _seconds(timeout) or timeout <= 0:
        raise ConfigurationError("timeout", "a finite number of seconds > 0")
    if not _whole(unavailable_retry_after, 1):
        raise ConfigurationError("unavailable_retry_after", "an integer number of seconds >= 1")
    if not _seconds(warn_interval) or warn_interval < 0:
        raise ConfigurationError("warn_interval", "a finite number of seconds >= 0")
    if not _whole(blocked_cache_size, 0):
        raise ConfigurationError("blocked_cache_size", "an integer >= 0 (0 disables)")
    if not callable(clock):
        raise ConfigurationError("clock", "a callable returning epoch seconds")
    header_name("api_key_header", api_key_header)


def compile_rules(
    rules: Sequence[Rule],
    *,
    strategy: str,
    on_failure: str,
    client_ip: ClientIP,
    api_key_header: str,
    route: RouteTable,
) -> tuple[CompiledRule, ...]:
    """Each rule compiled once, named (``default``, then ``rule1``, ...; two of one name
    are refused), with the limiter's ``strategy`` and ``on_failure`` where it has none."""
    compiled: list[CompiledRule] = []
    seen: set[str] = set()
    header = api_key_header.lower().encode("latin-1")
    for position, rule in enumerate(rules):
        if not isinstance(rule, Rule):
            raise ConfigurationError("rules", f"{rule!r} is not a Rule")
        default_name = "default" if position == 0 else f"rule{position}"
        name = rule_name("name", default_name if rule.name is None else rule.name)
        if name in seen:
            raise ConfigurationError("name", f"two rules are named {name!r}")
        seen.add(name)
        compiled.append(
            CompiledRule(
                rule,
                name=name,
                strategy=rule.strategy or strategy,
                on_failure=on_failure if rule.on_failure is None else rule.on_failure,
                client_ip=client_ip,
                api_key_header=header,
                route=route,
            )
        )
    return tuple(compiled)


def tenant_need(rules: Sequence[CompiledRule], rules_given: bool) -> Need | None:
    """The limiter's need of a tenant stage outside: a rule keyed by tenant or user
    (option ``key``) or limited by the tenant's plan (``limit``); ``None`` without one."""
    option = next((r.needs_tenant for r in rules if r.needs_tenant), None)
    if option is None:
        return None
    if option == "limit":
        what, other = "limits by the tenant's plan", "a limits string such as '100/minute'"
    else:
        what, other = "is keyed by tenant or user", "another key such as 'ip' or 'api_key'"
    return Need(
        RATE_LIMIT,
        TENANT,
        option,
        log=logger,
        install_option=f"{RATE_LIMIT}.{'rules' if rules_given else option}",
        install_message=f"the rate limiter {what}, which needs the tenant stage: "
        f"configure tenant={{...}} (or give {other})",
    )
