"""JWTResolver's verified-token cache: memory per entry, and what a miss costs.

    python -m bench.jwt_cache                 # 20,000 tokens, prints a table
    python -m bench.jwt_cache --tokens 65536

Memory: tracemalloc's traced bytes before and after resolving N distinct, typical tokens
(``tenant_id``, ``sub``, ``plan``, ``iat``, ``exp``, ``iss``, ``aud``, ``scope``) through
a cache that holds them all, divided by N. That is what one live entry keeps (digest,
tuple, Tenant, its claims dict and read-only view, the strings), not the token itself.

Cost: a cache hit against a full RS256 verification (a miss), same run, as a ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import time
import tracemalloc
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from lift_asgi.tenancy import JWTResolver
from lift_asgi.tenancy.token_cache import DEFAULT_CACHE_SIZE


def _tokens(key: Any, count: int) -> list[bytes]:
    now = int(time.time())
    return [
        b"Bearer "
        + jwt.encode(
            {
                "tenant_id": f"tenant-{i % 2000:04d}",
                "sub": f"user-{i:08d}@example.com",
                "plan": "pro",
                "iat": now,
                "exp": now + 3600,
                "iss": "https://auth.example.com/",
                "aud": "api",
                "scope": "projects:read projects:write",
            },
            key,
            algorithm="RS256",
        ).encode()
        for i in range(count)
    ]


async def _resolve_all(resolver: JWTResolver, headers: list[bytes]) -> None:
    for value in headers:
        await resolver.resolve({"type": "http", "headers": [(b"authorization", value)]})


def run(tokens: int = 20000, timed: int = 300) -> dict[str, Any]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    headers = _tokens(key, tokens)
    resolver = JWTResolver(
        key=key.public_key(),
        audience="api",
        issuer="https://auth.example.com/",
        cache_size=tokens,
    )
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    asyncio.run(_resolve_all(resolver, headers))
    gc.collect()
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    per_entry = held / tokens

    sample = headers[:timed]
    asyncio.run(_resolve_all(resolver, sample))  # warm: all hits
    start = time.perf_counter()
    for _ in range(10):
        asyncio.run(_resolve_all(resolver, sample))
    hit = (time.perf_counter() - start) / (10 * timed)
    cold = JWTResolver(
        key=key.public_key(), audience="api", issuer="https://auth.example.com/", cache_size=0
    )
    start = time.perf_counter()
    asyncio.run(_resolve_all(cold, sample))
    miss = (time.perf_counter() - start) / timed
    return {
        "tokens": tokens,
        "bytes_per_entry": round(per_entry),
        "default_cache_size": DEFAULT_CACHE_SIZE,
        "default_cap_mb": round(per_entry * DEFAULT_CACHE_SIZE / 1e6, 1),
        "miss_over_hit_ratio": round(miss / hit, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokens", type=int, default=20000)
    args = parser.parse_args()
    result = run(args.tokens)
    width = max(len(name) for name in result)
    for name, value in result.items():
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    main()
