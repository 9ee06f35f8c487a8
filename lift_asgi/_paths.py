"""Path helpers shared by the middlewares: prefix lists compiled once, matched on
segment boundaries, relative to the app's ``root_path``."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from starlette.types import Scope

from lift_asgi.errors import ConfigurationError

__all__ = ["compile_prefixes", "route_path", "under"]


def compile_prefixes(option: str, prefixes: Any) -> tuple[str, ...]:
    """Validate path prefixes given as ``option`` (one string or several); ``/`` alone
    is refused since it would cover every path."""
    if prefixes is None:
        return ()
    if isinstance(prefixes, str):
        prefixes = (prefixes,)
    elif not isinstance(prefixes, Iterable):
        raise ConfigurationError(option, f"a path or a list of paths, not {prefixes!r}")
    compiled = []
    for prefix in prefixes:
        if not isinstance(prefix, str) or not prefix.startswith("/"):
            raise ConfigurationError(option, f"{prefix!r} must be a path starting with '/'")
        stripped = prefix.rstrip("/")
        if not stripped:
            raise ConfigurationError(option, "'/' would cover every path")
        compiled.append(stripped)
    return tuple(compiled)


def under(path: str, prefixes: tuple[str, ...]) -> bool:
    """Whether ``path`` is one of ``prefixes`` or below one (``/health`` covers
    ``/health/db``, not ``/healthz``)."""
    if not path.startswith(prefixes):
        return False
    for prefix in prefixes:
        if path.startswith(prefix) and (len(path) == len(prefix) or path[len(prefix)] == "/"):
            return True
    return False


def route_path(scope: Scope) -> str:
    """``scope["path"]`` without the ``root_path`` the app is mounted under."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root):
        rest = path[len(root) :]
        if not rest or rest[0] == "/":
            return rest or "/"
    return path
