"""Limits (``limit=``): parsed once into :class:`LimitSet` s, header bytes precomputed.

A limit is a ``limits`` string (``"100/minute"``, ``"10/second;100/minute"``: every window
must pass), a mapping of plan to limit string (the tenant's ``plan``; the ``"default"``
entry, a limit string or the name of another plan, covers a missing or unknown plan), or
a callable ``(scope) -> str | None``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from math import ceil
from typing import Any

from limits import parse_many
from starlette.types import Scope

from lift_asgi.errors import ConfigurationError
from lift_asgi.ratelimit.core import Decision, Window, Windows
from lift_asgi.ratelimit.keys import tenant_of

__all__ = ["LimitSet", "PlanLimits", "parse_limit"]


_DIGITS_MAX = 4096
_DIGITS = tuple(b"%d" % n for n in range(_DIGITS_MAX))
_DIGITS_T = tuple(b";t=" + digits for digits in _DIGITS)  # RateLimit's last part


def _seconds(value: int) -> bytes:
    return b";t=%d" % (value if value > 0 else 0)


class LimitSet:
    """One parsed limit string for one rule, with its header bytes precomputed."""

    __slots__ = (
        "last_reset",
        "limit_bytes",
        "limit_headers",
        "policy",
        "policy_header",
        "policy_names",
        "rate_prefixes",
        "text",
        "windows",
    )

    def __init__(self, text: str, windows: Windows, policy_name: str) -> None:
        self.text = text
        self.windows = windows
        if len(windows) == 1:
            names = [policy_name]
        else:
            names = [f"{policy_name}-{w.seconds}s" for w in windows]
        self.policy_names: tuple[bytes, ...] = tuple(f'"{n}"'.encode() for n in names)
        self.limit_bytes: tuple[bytes, ...] = tuple(str(w.limit).encode() for w in windows)
        self.policy: bytes = b", ".join(
            b"%s;q=%d;w=%d" % (name, w.limit, w.seconds)
            for name, w in zip(self.policy_names, windows, strict=True)
        )
        # Whole header pairs, built once and shared by every response.
        self.limit_headers = tuple((b"x-ratelimit-limit", value) for value in self.limit_bytes)
        self.policy_header = (b"ratelimit-policy", self.policy)
        # Per window, the RateLimit value up to its remaining count: b'"name";r='.
        self.rate_prefixes: tuple[bytes, ...] = tuple(name + b";r=" for name in self.policy_names)
        # The last X-RateLimit-Reset pair, with its epoch: one tuple, so threads never see
        # one epoch with another's bytes. Most responses of a window share it.
        self.last_reset: tuple[int, tuple[bytes, bytes]] = (0, (b"x-ratelimit-reset", b"0"))

    def headers(self, decision: Decision, now: float) -> tuple[tuple[bytes, bytes], ...]:
        """The five headers of ``decision`` (its window's): ``X-RateLimit-Limit``,
        ``-Remaining``, ``-Reset``, ``RateLimit-Policy`` and ``RateLimit``."""
        return self.headers_of(decision.index, decision.remaining, decision.reset, now)

    def headers_of(
        self, index: int, remaining: int, reset_at: float, now: float
    ) -> tuple[tuple[bytes, bytes], ...]:
        """:meth:`headers` from a decision's fields (window ``index``, ``remaining``
        units, its reset epoch ``reset_at``), for a caller that made no Decision.
        Formatting an int is the dear part (about 1,000 instructions), so small counts
        come from a table and the reset epoch is formatted once per window: most
        responses format at most one number (a remaining count of 4,096 or more)."""
        value = _DIGITS[remaining] if 0 <= remaining < _DIGITS_MAX else b"%d" % remaining
        reset = ceil(reset_at)
        last = self.last_reset
        if last[0] != reset:
            last = self.last_reset = (reset, (b"x-ratelimit-reset", b"%d" % reset))
        reset_in = reset - int(now)
        return (
            self.limit_headers[index],
            (b"x-ratelimit-remaining", value),
            last[1],
            self.policy_header,
            (
                b"ratelimit",
                self.rate_prefixes[index]
                + value
                + (_DIGITS_T[reset_in] if 0 <= reset_in < _DIGITS_MAX else _seconds(reset_in)),
            ),
        )


#: A count DynamoDB can store: numbers hold 38 significant digits.
_MAX_COUNT = 10**38

_ZERO_WINDOW = re.compile(r"(?:/|\bper)\s*0+\s*(?:second|minute|hour|day|month|year)", re.I)


def parse_limit(text: Any, strategy: str, policy_name: str, option: str = "limit") -> LimitSet:
    if not isinstance(text, str):
        raise ConfigurationError(
            option, f"a limit must be a string like '100/minute', not {text!r}"
        )
    try:
        items = parse_many(text)
    except ValueError as exc:
        raise ConfigurationError(option, f"cannot parse {text!r}: {exc}") from None
    if _ZERO_WINDOW.search(text):
        # limits reads "10 per 0 second" as one second; a window of nothing is a typo
        raise ConfigurationError(option, f"{text!r} has a window of 0")
    sliding = strategy == "sliding-window-counter"
    by_seconds: dict[int, Window] = {}
    for item in items:
        if item.amount >= _MAX_COUNT:
            # every count DynamoDB stores would fail (a ValidationException per call):
            # under "local" a limiter counting in process forever, under "refuse" a 503
            raise ConfigurationError(
                option, f"{text!r} counts past the 38 digits a DynamoDB number holds"
            )
        seconds = item.get_expiry()
        known = by_seconds.get(seconds)
        if known is None or item.amount < known.limit:  # the same window twice: the smaller
            by_seconds[seconds] = Window(item.amount, seconds, sliding)
    windows = tuple(sorted(by_seconds.values(), key=lambda w: w.seconds))
    return LimitSet(text, windows, policy_name)


class PlanLimits:
    """``(scope) -> LimitSet | None`` for one rule."""

    def __init__(self, spec: Any, strategy: str, name: str) -> None:
        self._strategy = strategy
        self._name = name
        self.static: LimitSet | None = None
        self._plans: dict[str, LimitSet] = {}
        self._default: LimitSet | None = None
        self._fn: Callable[[Scope], str | None] | None = None
        self._parsed: dict[str, LimitSet] = {}
        if isinstance(spec, str):
            self.static = parse_limit(spec, strategy, name)
        elif isinstance(spec, Mapping):
            if "default" not in spec:
                raise ConfigurationError(
                    "limit",
                    "a plan mapping needs a 'default' entry (a limit string or a plan name) "
                    "for tenants whose plan is missing or unknown",
                )
            for plan, text in spec.items():
                if plan != "default":
                    self._plans[str(plan)] = parse_limit(text, strategy, name)
            default = spec["default"]
            if isinstance(default, str) and default in self._plans:
                self._default = self._plans[default]
            else:
                self._default = parse_limit(default, strategy, name)
        elif callable(spec):
            self._fn = spec
        else:
            raise ConfigurationError(
                "limit", "a limit string, a mapping of plan to limit string, or a callable"
            )

    @property
    def all_static(self) -> tuple[LimitSet, ...]:
        if self.static is not None:
            return (self.static,)
        sets = list(self._plans.values())
        if self._default is not None:
            sets.append(self._default)
        return tuple(sets)

    def __call__(self, scope: Scope) -> LimitSet | None:
        if self.static is not None:
            return self.static
        if self._fn is None:
            tenant = tenant_of(scope)
            plan = getattr(tenant, "plan", None) if tenant is not None else None
            if plan is not None:
                found = self._plans.get(plan)
                if found is not None:
                    return found
            return self._default
        text = self._fn(scope)
        if text is None:
            return None
        parsed = self._parsed.get(text)
        if parsed is None:
            if len(self._parsed) >= 256:
                self._parsed.clear()
            parsed = self._parsed[text] = parse_limit(text, self._strategy, self._name)
        return parsed
