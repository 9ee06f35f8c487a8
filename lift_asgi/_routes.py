"""Route templates: which template of the app's own router a path matches, for the rate
limiter (the ``"route"`` key and ``routes=`` matching) and the observer's request
records. A leaf beside ``_paths.py``: either stage imports it without the other."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from starlette.routing import compile_path
from starlette.types import Scope

from lift_asgi._paths import route_path
from lift_asgi.errors import ConfigurationError

__all__ = ["RouteTable", "template_of"]


# Text outside braces has none; inside, a name and an optional convertor.
_BRACES = re.compile(r"(?:[^{}]|\{[A-Za-z_][A-Za-z0-9_]*(?::[A-Za-z_][A-Za-z0-9_]*)?\})*")


def template_of(option: str, template: Any) -> str:
    if not isinstance(template, str) or not template.startswith("/"):
        raise ConfigurationError(option, f"{template!r} must be a path starting with '/'")
    if not _BRACES.fullmatch(template):
        raise ConfigurationError(
            option, f"{template!r}: a parameter is written {{name}} or {{name:convertor}}"
        )
    try:
        return compile_path(template)[1]
    except (AssertionError, ValueError) as exc:  # Starlette's own refusal (a bad convertor)
        raise ConfigurationError(option, f"{template!r}: {exc}") from None


class RouteTable:
    """Which route template a path matches, from the app's own router: compiled once
    (on the first request), then cached per path (at most ``cache_size`` paths)."""

    def __init__(self, app: Any, router: Any = None, cache_size: int = 4096) -> None:
        if router is not None and _routes_of(router) is None:
            raise ConfigurationError("router", f"{router!r} is not a Starlette app or router")
        self._app = app
        self._router = router
        self._table: list[tuple[re.Pattern[str], str]] | None = None
        self._cache: dict[str, str] = {}
        self._cache_size = cache_size

    def _compile(self, scope: Scope) -> list[tuple[re.Pattern[str], str]]:
        # The router the middleware wraps (through other middlewares), which also works
        # for an app mounted under another; then the app Starlette put in the scope.
        routes = _routes_of(self._router) if self._router is not None else None
        node = self._app
        while routes is None and node is not None:
            routes = _routes_of(node)
            node = getattr(node, "app", None)
        if routes is None:
            routes = _routes_of(scope.get("app"))
        table: list[tuple[re.Pattern[str], str]] = []
        _flatten(routes or [], "", table)
        return table

    def __call__(self, scope: Scope) -> str:
        path: str = route_path(scope) if scope.get("root_path") else scope["path"]
        template = self._cache.get(path)
        if template is not None:
            return template
        table = self._table
        if table is None:
            table = self._table = self._compile(scope)
        template = "*"
        for regex, fmt in table:
            if regex.match(path):
                template = fmt
                break
        if len(self._cache) >= self._cache_size:
            self._cache.clear()
        self._cache[path] = template
        return template


def _routes_of(node: Any) -> list[Any] | None:
    if node is None:
        return None
    router = getattr(node, "router", None)
    routes = getattr(router, "routes", None) if router is not None else None
    if routes is None and not callable(getattr(node, "routes", None)):
        routes = getattr(node, "routes", None)
    return list(routes) if isinstance(routes, Iterable) and not isinstance(routes, str) else None


def _flatten(routes: Iterable[Any], prefix: str, table: list[tuple[re.Pattern[str], str]]) -> None:
    for route in routes:
        path = getattr(route, "path", None)
        if not isinstance(path, str):
            continue  # Host routes and the like: not matched on the path
        if hasattr(route, "endpoint"):  # Route, APIRoute, WebSocketRoute
            regex, fmt, _ = compile_path(prefix + path)
            table.append((regex, fmt))
            continue
        children = getattr(route, "routes", None)
        if children:  # a Mount of a router: its routes, under its path
            _flatten(children, prefix + path, table)
        else:  # a Mount of another app (static files, ...): one template for all of it
            regex, _, _ = compile_path(prefix + path + "/{path:path}")
            table.append((regex, prefix + path or "/"))
