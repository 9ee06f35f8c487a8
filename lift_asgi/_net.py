"""Client addresses behind proxies: :class:`TrustedProxies` parses a ``trusted_proxies``
option and walks ``X-Forwarded-For`` to the right-most hop that is not a trusted proxy.

The rate limiter's ``"ip"`` key and the Lambda handler each take the option, and
:meth:`TrustedProxies.of` gives both the one object for one list (one parse, one verdict
cache). The handler, the edge on Lambda, reads an ALB event's header once into
``scope["client"]`` and marks the scope with the object it used (:data:`FORWARDED_BY`),
so the ``"ip"`` key reads the client from there instead of walking the header again."""

from __future__ import annotations

import ipaddress
import weakref
from collections.abc import Callable, Iterable

from lift_asgi.errors import ConfigurationError

__all__ = ["FORWARDED_BY", "TrustedProxies", "forwarded_client", "host_of"]

_CACHE = 4096

#: The scope key under which the Lambda handler leaves the :class:`TrustedProxies` that
#: turned an ALB event's ``X-Forwarded-For`` into ``scope["client"]``.
FORWARDED_BY = "lift_asgi.forwarded_by"


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


class TrustedProxies:
    """The proxies whose ``X-Forwarded-For`` is believed, as uvicorn's
    ProxyHeadersMiddleware has them.

    ``trusted`` holds addresses and networks (``"10.0.0.0/8"``), as a list or one
    comma-separated string, or ``"*"`` for every peer (only behind a proxy that overwrites
    the header). A hop that is not an address is never trusted: it is reported, never
    skipped past. An IPv4-mapped IPv6 address (what a dual-stack socket reports for an
    IPv4 peer) is judged as its IPv4 address. Verdicts are cached per host (bounded).
    """

    __slots__ = ("__weakref__", "_addresses", "_cache", "_networks", "always", "any_trusted")

    @classmethod
    def of(
        cls, trusted: str | Iterable[str] | TrustedProxies = (), option: str = "trusted_proxies"
    ) -> TrustedProxies:
        """The one object for the proxies ``trusted`` names: two options that name the same
        addresses and networks (in any order or spelling) get the same instance; an
        instance is returned as it is."""
        if isinstance(trusted, TrustedProxies):
            return trusted
        proxies = cls(trusted, option)
        return _SHARED.setdefault(proxies.identity, proxies)

    @property
    def identity(self) -> tuple[bool, frozenset[object], frozenset[object]]:
        """What the proxies trust, comparable: ``"*"``, the addresses, the networks."""
        return (self.always, frozenset(self._addresses), frozenset(self._networks))

    def __init__(self, trusted: str | Iterable[str] = (), option: str = "trusted_proxies") -> None:
        if isinstance(trusted, str):
            trusted = [t.strip() for t in trusted.split(",") if t.strip()]
        self.always = False
        self._addresses: set[ipaddress.IPv4Address | ipaddress.IPv6Address] = set()
        self._networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        try:
            entries = list(trusted)
        except TypeError:
            raise ConfigurationError(option, "a list of addresses or networks") from None
        for entry in entries:
            if not isinstance(entry, str):
                raise ConfigurationError(option, f"{entry!r} is not an address")
            entry = entry.strip()
            if entry == "*":
                self.always = True
                continue
            try:
                if "/" in entry:
                    self._networks.append(ipaddress.ip_network(entry, strict=False))
                else:
                    self._addresses.add(ipaddress.ip_address(entry))
            except ValueError:
                raise ConfigurationError(
                    option, f"{entry!r} is not an IP address or network"
                ) from None
        self.any_trusted = self.always or bool(self._addresses or self._networks)
        self._cache: dict[str, bool] = {}

    def trusts(self, host: str) -> bool:
        """Whether ``host`` (an address as text) is a trusted proxy."""
        if self.always:
            return True
        known = self._cache.get(host)
        if known is None:
            try:
                address = ipaddress.ip_address(host)
            except ValueError:
                known = False
            else:
                if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
                    address = address.ipv4_mapped
                known = address in self._addresses or any(address in n for n in self._networks)
            if len(self._cache) >= _CACHE:
                self._cache.clear()
            self._cache[host] = known
        return known

    def client(self, forwarded: str) -> str | None:
        """The client an ``X-Forwarded-For`` value names (see :func:`forwarded_client`)."""
        return forwarded_client(forwarded, self.trusts)


#: One :class:`TrustedProxies` per configuration, while any owner holds it.
_SHARED: weakref.WeakValueDictionary[
    tuple[bool, frozenset[object], frozenset[object]], TrustedProxies
] = weakref.WeakValueDictionary()
