"""Client addresses from ``X-Forwarded-For``, shared by the rate limiter's ``"ip"`` key
and the Lambda handler's ALB client: the right-most hop that is not a trusted proxy."""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["forwarded_client", "host_of"]


def host_of(value: str) -> str:
    """A forwarded hop without its port (``1.2.3.4:80``, ``[::1]:80``)."""
    value = value.strip()
    if value.startswith("["):
        end = value.find("]")
        return value[1:end] if end > 0 else value
    if value.count(":") == 1:
        return value.partition(":")[0]
    return value


def forwarded_client(forwarded: str, trusts: Callable[[str], bool]) -> str | None:
    """The right-most hop of an ``X-Forwarded-For`` value that ``trusts`` refuses (each
    trusted proxy appended the peer it saw, so everything left of the first untrusted
    hop may be made up); the left-most when every hop is trusted; None when empty."""
    hops = [host_of(h) for h in forwarded.split(",") if h.strip()]
    for hop in reversed(hops):
        if not trusts(hop):
            return hop
    return hops[0] if hops else None
