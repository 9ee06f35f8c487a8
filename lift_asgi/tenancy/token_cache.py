"""The verified-token cache of :class:`~lift_asgi.tenancy.JWTResolver`.

A hit costs a SHA-256 of the ``Authorization`` value and a dict lookup; a miss is a full
signature verification, ~47x a hit for RS256 in the resolver alone (~13x per request
through a whole app). So the cache must hold every token live at once in a busy
process, or every request past the cap pays full price, and the old default of 1,024
was one mid-sized tenant's users. :data:`DEFAULT_CACHE_SIZE` is 16,384 live tokens (e.g.
1,000 tenants with 16 active users each, per process); an entry holds the digest, the
``Tenant`` and its claims, ~1.5 KB for a token with 8 typical claims (measured by
``python -m bench.jwt_cache``), so ~24 MB at the cap, which only that many distinct
unexpired tokens reach. Raise ``cache_size`` for more live tokens per process. Entries
leave when found past ``exp``, and the least recently used first when full.
"""

from __future__ import annotations

from collections import OrderedDict

from lift_asgi.tenancy.tenant import Tenant

__all__ = ["DEFAULT_CACHE_SIZE", "TokenCache"]

DEFAULT_CACHE_SIZE = 16384


class TokenCache:
    """Verified tokens by sha256 of the credentials: LRU-bounded, used only in [nbf, exp).

    ``entries`` maps digest -> (nbf, exp, tenant); ``JWTResolver.resolve`` reads it
    inline (this runs on every request), :meth:`put` writes it.
    """

    __slots__ = ("entries", "maxsize")

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self.entries: OrderedDict[bytes, tuple[float, float, Tenant]] = OrderedDict()

    def put(self, digest: bytes, not_before: float, expires: float, tenant: Tenant) -> None:
        entries = self.entries
        entries[digest] = (not_before, expires, tenant)
        entries.move_to_end(digest)
        while len(entries) > self.maxsize:
            try:
                entries.popitem(last=False)
            except KeyError:  # pragma: no cover - emptied by another thread
                break
