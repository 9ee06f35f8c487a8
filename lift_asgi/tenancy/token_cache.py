"""The verified-token cache of :class:`~lift_asgi.tenancy.JWTResolver`.

A hit costs a BLAKE2b of the ``Authorization`` value and a dict lookup; a miss is a full
signature verification, ~47x a hit for RS256 in the resolver alone (~13x per request
through a whole app). So the cache must hold every token live at once in a busy
process, or every request past the cap pays full price, and the old default of 1,024
was one mid-sized tenant's users. :data:`DEFAULT_CACHE_SIZE` is 16,384 live tokens (e.g.
1,000 tenants with 16 active users each, per process); an entry holds the digest, the
``Tenant`` and its claims, ~1.5 KB for a token with 8 typical claims (measured by
``python -m bench.jwt_cache``), so ~24 MB at the cap, which only that many distinct
unexpired tokens reach. Raise ``cache_size`` for more live tokens per process. Entries
leave when found past ``exp``, and the least recently used first when full.

The key is the BLAKE2b digest (all 64 bytes) of the ``Authorization`` value, so the cache
never holds a bearer token itself: no token can be recovered from a key, and with 512
bits no two values anyone can find share one (256-bit collision resistance), so a key
stands for its token as a security cache key must. Why BLAKE2b, measured in machine
instructions per call on a ~200-byte value (callgrind): hashlib's SHA-256 goes through
OpenSSL's EVP interface, whose per-call setup dominates (~11k); BLAKE2b is Python's own
implementation (~5k, two compressions); a shorter ``digest_size=`` costs a keyword parse
(~0.9k) to save 32 bytes per entry; a keyed BLAKE2b (a per-process secret, the stdlib's
HMAC-free MAC) costs a third compression (~8k, ~7k from a copied keyed state) and would
guard nothing more, since keys never leave the process.
"""

from __future__ import annotations

from collections import OrderedDict

from lift_asgi.tenancy.tenant import Tenant

__all__ = ["DEFAULT_CACHE_SIZE", "TokenCache"]

DEFAULT_CACHE_SIZE = 16384


class TokenCache:
    """Verified tokens by BLAKE2b of the credentials: LRU-bounded, used only in [nbf, exp).

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
