"""The README's option tables state defaults; these tests hold the code to them.

Each case finds the default where the README states it (the exact text a reader sees)
and compares it with the default a user gets: the constructor's own default, read from
its signature, or the value an object built with no options holds. A change on either
side alone fails here, naming the option.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from lift_asgi.dynamo import DynamoTable, RetryPolicy
from lift_asgi.idempotency import IdempotencyMiddleware
from lift_asgi.ratelimit import MemoryBackend, RateLimitMiddleware
from lift_asgi.ratelimit import storage as lease_storage
from lift_asgi.tenancy import JWTResolver
from lift_asgi.tenancy.token_cache import DEFAULT_CACHE_SIZE

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def _default(function: Callable[..., Any], name: str) -> Any:
    # a class's own __init__: the stages' metaclass wraps the call itself
    target = function.__init__ if isinstance(function, type) else function
    default = inspect.signature(target).parameters[name].default
    assert default is not inspect.Parameter.empty, f"{name} has no default"
    return default


def _stated(pattern: str) -> str:
    """The README's text for ``pattern``'s one group (it must be stated once or more)."""
    found = re.findall(pattern, README)
    assert found, f"the README no longer states {pattern!r}"
    assert len(set(found)) == 1, f"the README states {pattern!r} differently: {found}"
    return str(found[0])


CASES: list[tuple[str, Callable[..., Any], str, str, Callable[[str], Any]]] = [
    # (option, where the default lives, parameter, README pattern, README text -> value)
    ("jwks_lifespan", JWTResolver, "jwks_lifespan", r"`jwks_lifespan=(\d+)` s", float),
    ("jwks_timeout", JWTResolver, "jwks_timeout", r"`jwks_timeout=(\d+)` s", float),
    ("leeway", JWTResolver, "leeway", r"`leeway=(\d+)` s", float),
    ("cache_size", JWTResolver, "cache_size", r"`cache_size=(\d+)` verified tokens", int),
    ("uow timeout", DynamoTable, "timeout", r"\| `timeout` \| `([\d.]+)` s \| per DynamoDB", float),
    ("bulk_concurrency", DynamoTable, "bulk_concurrency", r"\| `bulk_concurrency` \| `(\d+)`", int),
    (
        "limiter timeout",
        RateLimitMiddleware,
        "timeout",
        r"\| `timeout` \| `([\d.]+)` \| seconds",
        float,
    ),
    (
        "unavailable_retry_after",
        RateLimitMiddleware,
        "unavailable_retry_after",
        r"\| `unavailable_retry_after` \| `(\d+)`",
        int,
    ),
    (
        "warn_interval",
        RateLimitMiddleware,
        "warn_interval",
        r"\| `warn_interval` \| `(\d+)`",
        float,
    ),
    (
        "blocked_cache_size",
        RateLimitMiddleware,
        "blocked_cache_size",
        r"\| `blocked_cache_size` \| `(\d+)`",
        int,
    ),
    ("max_keys", MemoryBackend, "max_keys", r"`MemoryBackend\(max_keys=([\d_]+)\)`", int),
    ("retention", IdempotencyMiddleware, "retention", r"\| `retention` \| `(\d+)` s", float),
    (
        "in_progress_expiry",
        IdempotencyMiddleware,
        "in_progress_expiry",
        r"\| `in_progress_expiry` \| `(\d+)` s",
        float,
    ),
    (
        "max_request_bytes",
        IdempotencyMiddleware,
        "max_request_bytes",
        r"\| `max_request_bytes` \| (\d+) MiB",
        lambda text: int(text) * 1024 * 1024,
    ),
    (
        "max_response_bytes",
        IdempotencyMiddleware,
        "max_response_bytes",
        r"\| `max_response_bytes` \| (\d+) KiB",
        lambda text: int(text) * 1024,
    ),
]


@pytest.mark.parametrize(
    ("where", "parameter", "pattern", "convert"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_each_stated_default_is_the_default(
    where: Callable[..., Any], parameter: str, pattern: str, convert: Callable[[str], Any]
) -> None:
    assert _default(where, parameter) == convert(_stated(pattern))


def test_the_jwt_cache_default_is_the_token_cache_default() -> None:
    resolver = JWTResolver(key="defaults-test-secret-0123456789abcdef", algorithms=["HS256"])
    assert resolver.cache_size == DEFAULT_CACHE_SIZE == _default(JWTResolver, "cache_size")


def test_the_retry_policy_is_the_stated_one() -> None:
    stated = _stated(r"`RetryPolicy\((attempts=[^)]*)\)`")
    fields = dict(part.split("=") for part in stated.split(", "))
    policy = RetryPolicy()
    assert {name: float(value) for name, value in fields.items()} == {
        "attempts": policy.attempts,
        "base_delay": policy.base_delay,
        "max_delay": policy.max_delay,
        "deadline": policy.deadline,
    }
    assert _default(DynamoTable, "retry") in (None, policy)


def test_a_throttled_lease_backs_off_as_stated() -> None:
    first, most = re.search(
        r"backs off for that\s+key only \((\d+) ms, doubling to (\d+) s\)", README
    ).groups()  # type: ignore[union-attr]
    assert int(first) / 1000 == lease_storage._BACKOFF_FIRST
    assert float(most) == lease_storage._BACKOFF_MAX
