"""HTTP tokens in options (header names, method names), checked once where the option
is given: a name that is no token would never match a request, and the option would
silently do nothing."""

from __future__ import annotations

import re
from collections.abc import Iterable

from lift_asgi.errors import ConfigurationError

__all__ = ["header_name", "header_names", "method_names"]

_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # RFC 9110 section 5.6.2


def header_name(option: str, name: object) -> bytes:
    """``name`` as the lower-case bytes ASGI uses; a :class:`ConfigurationError` on
    ``option`` unless it is an HTTP token (a name with a space or a non-ASCII letter would
    never match a request's header, and the option would silently do nothing)."""
    if not isinstance(name, str) or not _TOKEN.fullmatch(name):
        raise ConfigurationError(option, f"{name!r} is not a valid HTTP header name")
    return name.lower().encode("ascii")


def header_names(option: str, names: Iterable[str]) -> frozenset[bytes]:
    """A list of header names (not one string, whose letters would each be a name)."""
    if isinstance(names, str | bytes) or not isinstance(names, Iterable):
        raise ConfigurationError(option, f"a list of header names, not {names!r}")
    return frozenset(header_name(option, name) for name in names)


def method_names(option: str, methods: Iterable[str]) -> frozenset[str]:
    """A non-empty list of HTTP method names (RFC 9110 section 9.1), upper-cased; one
    string (``"POST"``, whose letters would each be a method) or bytes is refused."""
    if isinstance(methods, str | bytes) or not isinstance(methods, Iterable):
        raise ConfigurationError(option, f"a list of methods such as ['POST'], not {methods!r}")
    names = set()
    for method in methods:
        if not isinstance(method, str) or not _TOKEN.fullmatch(method):
            raise ConfigurationError(option, f"{method!r} is not an HTTP method such as 'POST'")
        names.add(method.upper())
    if not names:
        raise ConfigurationError(option, "an empty list would match nothing")
    return frozenset(names)
