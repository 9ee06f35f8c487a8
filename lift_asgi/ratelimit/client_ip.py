"""The ``"ip"`` key: the client address, ``X-Forwarded-For`` believed only from trusted
proxies (:class:`~lift_asgi._net.TrustedProxies`, the one object the Lambda handler
holds too when both options name the same proxies).

``scope["client"]``; ``X-Forwarded-For`` only when the peer is a trusted proxy; under
Mangum the source IP API Gateway saw, or for an ALB the right-most untrusted hop: the
client :class:`~lift_asgi.aws.LambdaHandler` already read from the header, when it ran
(walked again only if this key's own list trusts that client, which it does only when
its list is wider than the handler's). IPv6
addresses are grouped by ``ipv6_prefix`` (/64) so one host cannot rotate through its
subnet; no address at all shares the key ``unknown``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from typing import Any

from starlette.types import Scope

from lift_asgi._net import FORWARDED_BY, TrustedProxies
from lift_asgi.errors import ConfigurationError
from lift_asgi.ratelimit.rules import KeyFunc

__all__ = ["UNKNOWN_CLIENT", "ClientIP", "direct_ip"]

#: The ``"ip"`` key of a request with no client address: one shared budget, so a server
#: that hides addresses (a Unix socket without a trusted proxy) limits, visibly.
UNKNOWN_CLIENT = "unknown"
_CACHE = 4096


class ClientIP:
    """The client address, trusting ``X-Forwarded-For`` only from ``trusted`` proxies.

    Like uvicorn's ProxyHeadersMiddleware: when the peer is trusted, the header's hops are
    read right to left and the first one that is not a trusted proxy is the client (the
    left-most if all are). ``trusted`` holds addresses and networks (``"10.0.0.0/8"``), or
    ``"*"`` for every peer (only behind a proxy that overwrites the header).
    """

    def __init__(
        self, trusted: str | Iterable[str] | TrustedProxies = (), ipv6_prefix: int = 64
    ) -> None:
        self.proxies = TrustedProxies.of(trusted)
        if (
            not isinstance(ipv6_prefix, int)
            or isinstance(ipv6_prefix, bool)
            or not 1 <= ipv6_prefix <= 128
        ):
            raise ConfigurationError("ipv6_prefix", "must be an integer from 1 to 128")
        self.ipv6_prefix = ipv6_prefix
        self.always = self.proxies.always
        self.any_trusted = self.proxies.any_trusted
        self.trusts = self.proxies.trusts
        self._v6: dict[str, str] = {}

    def group(self, host: str) -> str:
        """The key for an address: IPv4 as is; an IPv4-mapped IPv6 address (``::ffff:a.b.c.d``,
        what a dual-stack socket reports for IPv4 peers) as its IPv4 address; other IPv6
        addresses grouped by ``ipv6_prefix``."""
        if ":" not in host:
            return host
        grouped = self._v6.get(host)
        if grouped is None:
            try:
                address = ipaddress.IPv6Address(host)
            except ValueError:
                grouped = host
            else:
                mapped = address.ipv4_mapped
                if mapped is not None:
                    grouped = str(mapped)
                elif self.ipv6_prefix == 128:
                    grouped = str(address)
                else:
                    grouped = str(
                        ipaddress.IPv6Network(f"{address}/{self.ipv6_prefix}", strict=False)
                    )
            if len(self._v6) >= _CACHE:
                self._v6.clear()
            self._v6[host] = grouped
        return grouped

    def __call__(self, scope: Scope) -> str | None:
        event = scope.get("aws.event")
        if event is not None:
            host = self._from_event(event, scope)
        else:
            client = scope.get("client")
            host = client[0] if client else None
            # No peer address (a Unix socket) is trusted only under "*", as in uvicorn.
            if self.any_trusted and (self.always if host is None else self.trusts(host)):
                values = [
                    bytes(v).decode("latin-1")
                    for k, v in scope["headers"]
                    if k == b"x-forwarded-for"
                ]
                if values:
                    host = self.proxies.client(",".join(values)) or host
        return self.group(host) if host else UNKNOWN_CLIENT

    def _from_event(self, event: Any, scope: Scope) -> str | None:
        context = (event.get("requestContext") or {}) if isinstance(event, Mapping) else {}
        http = context.get("http")
        if isinstance(http, Mapping) and http.get("sourceIp"):  # HTTP API (v2), function URL
            return str(http["sourceIp"])
        identity = context.get("identity")
        if isinstance(identity, Mapping) and identity.get("sourceIp"):  # REST API (v1)
            return str(identity["sourceIp"])
        if "elb" in context:
            # The ALB appends the address it saw: the right-most hop not a trusted proxy.
            by = scope.get(FORWARDED_BY)
            if by is not None:  # lift_asgi.aws.LambdaHandler read it into scope["client"]
                client = scope.get("client")
                host = str(client[0]) if client and client[0] else None
                if by is self.proxies or host is None or not self.trusts(host):
                    return host
            forwarded = _event_header(event, "x-forwarded-for")
            return self.proxies.client(forwarded) if forwarded else None
        client = scope.get("client")  # Lambda@Edge and others: Mangum's own reading
        return str(client[0]) if client and client[0] else None


def _event_header(event: Mapping[str, Any], name: str) -> str | None:
    multi = event.get("multiValueHeaders")
    if isinstance(multi, Mapping):
        for key, values in multi.items():
            if key.lower() == name and values:
                return ",".join(str(v) for v in values)
    headers = event.get("headers")
    if isinstance(headers, Mapping):
        for key, value in headers.items():
            if key.lower() == name and value:
                return str(value)
    return None


def direct_ip(client_ip: ClientIP) -> KeyFunc:
    """The ``"ip"`` key when no proxy is trusted: the peer address, without detours."""
    group = client_ip.group

    def ip(scope: Scope) -> str | None:
        if "aws.event" in scope:
            return client_ip(scope)
        client = scope.get("client")
        if not client or not client[0]:
            return UNKNOWN_CLIENT
        host: str = client[0]
        return group(host) if ":" in host else host

    return ip
