"""Rules: what is limited, per what key, by how much, and what happens when the store
fails. Plain data and the names every other rate-limit module shares (a leaf module).

A :class:`Rule` is compiled once by :class:`~lift_asgi.ratelimit.RateLimitMiddleware`
(:class:`~lift_asgi.ratelimit.compiled.CompiledRule`): matchers, a key function
(:mod:`~lift_asgi.ratelimit.keys`) and limit sets with their header bytes ready
(:mod:`~lift_asgi.ratelimit.limit_sets`).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeAlias

from starlette.types import Scope

from lift_asgi.errors import ConfigurationError

__all__ = [
    "LOCAL",
    "ON_FAILURE",
    "OPEN",
    "REFUSE",
    "STRATEGIES",
    "CostSpec",
    "KeyFunc",
    "KeySpec",
    "LimitSpec",
    "Rule",
    "bounded_key",
    "removed_fail_open",
    "rule_name",
]

KeyFunc: TypeAlias = Callable[[Scope], "str | None"]
KeySpec: TypeAlias = "str | KeyFunc | Sequence[str | KeyFunc]"
LimitSpec: TypeAlias = "str | Mapping[str, str] | Callable[[Scope], str | None]"
CostSpec: TypeAlias = "int | Callable[[Scope], int]"

STRATEGIES = ("fixed-window", "sliding-window-counter")
#: Failure policies (``on_failure``): what a rule does when its store cannot answer.
LOCAL: Final = "local"
REFUSE: Final = "refuse"
OPEN: Final = "open"
ON_FAILURE: Final = (LOCAL, REFUSE, OPEN)
_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_MAX_KEY = 512


@dataclass(frozen=True)
class Rule:
    """One limit. ``None`` options take the middleware's value.

    - ``limit``: see the module docs (string, plan mapping, or callable).
    - ``key`` (``"ip"``): see the module docs.
    - ``name``: names the counters (``{name}#{key}``) and the ``RateLimit-Policy``; by
      default ``"default"`` for the first rule, ``rule{n}`` for the others. Renaming a
      rule starts its counters afresh.
    - ``methods``: only these HTTP methods (all when ``None``).
    - ``routes``: only these Starlette route templates (``"/projects/{id}"``, convertors
      optional); ``path_prefix``: only paths under these prefixes (segment boundaries).
      Given both, either matches; given neither, every path.
    - ``cost`` (1): units per request, or a callable ``(scope) -> int`` (0 skips the rule).
    - ``strategy``: ``"fixed-window"`` or ``"sliding-window-counter"``.
    - ``on_failure``: ``"local"``, ``"refuse"`` or ``"open"``, when the store fails or is
      slow (see :class:`~lift_asgi.ratelimit.RateLimitMiddleware`).
    - ``fail_open``: removed; giving it raises a ConfigurationError naming ``on_failure``.
    """

    limit: LimitSpec
    key: KeySpec = "ip"
    name: str | None = None
    methods: Iterable[str] | None = None
    routes: Iterable[str] | None = None
    path_prefix: str | Iterable[str] | None = None
    cost: CostSpec = 1
    strategy: str | None = None
    on_failure: str | None = None
    fail_open: Any = None


def removed_fail_open() -> ConfigurationError:
    return ConfigurationError(
        "fail_open",
        "was removed (True let every request through uncounted while the store failed); "
        "use on_failure='local' (the default: count in this process with the same limits), "
        "'refuse' (503 with Retry-After) or 'open' (admit uncounted)",
    )


def rule_name(option: str, name: Any) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ConfigurationError(option, f"{name!r}: 1-64 letters, digits, '_', '.', '-'")
    return name


def bounded_key(key: str) -> str:
    """Keys past 512 characters are hashed: DynamoDB keys are bounded, headers are not."""
    if len(key) <= _MAX_KEY:
        return key
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()
