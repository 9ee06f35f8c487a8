"""Small helpers the resolvers share: header lookup, header and resolver names, the
per-resolver memo."""

from __future__ import annotations

from typing import Any

from starlette.types import Scope

from lift_asgi._headers import header_name
from lift_asgi.errors import ConfigurationError

__all__ = ["MEMO_SIZE", "first_header", "header_name", "remember", "source_name"]

#: Entries in one resolver's memo before it is cleared.
MEMO_SIZE = 1024
_MEMO_KEY_MAX = 300


def first_header(scope: Scope, name: bytes) -> bytes | None:
    """The first value of header ``name`` (lower-case bytes), or ``None``."""
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


def source_name(option: str, name: Any) -> str:
    """A resolver's ``name`` (what :attr:`Tenant.source` and the logs show): a non-empty
    string; else a :class:`ConfigurationError` on ``option``."""
    if not isinstance(name, str) or not name:
        raise ConfigurationError(option, f"must be a non-empty string, not {name!r}")
    return name


def remember(memo: dict[Any, Any], key: Any, value: Any) -> Any:
    """Remember ``value`` under ``key`` in a small per-resolver memo (cleared when full).

    Tenants are immutable, so a resolver hands out the same object for the same input
    instead of building one per request; the memo only saves work, never decides. Long
    keys (never a valid tenant id) are not kept, so junk input cannot fill memory.
    """
    if isinstance(key, bytes | str) and len(key) > _MEMO_KEY_MAX:
        return value
    if len(memo) >= MEMO_SIZE:
        memo.clear()
    memo[key] = value
    return value
