"""Header names in options, checked once where the option is given."""

from __future__ import annotations

import re
from collections.abc import Iterable

from lift_asgi.errors import ConfigurationError

__all__ = ["header_name", "header_names"]

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
    if isinstance(names, str | bytes):
        raise ConfigurationError(option, f"a list of header names, not one string {names!r}")
    return frozenset(header_name(option, name) for name in names)
