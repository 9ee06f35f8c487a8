"""One OS process leasing from a shared rate-limit table (spawned by test_leases.py and
bench/ratelimit.py): its own event loop, transport and storage, many concurrent requests
on one key until the table refuses them."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from lift_asgi.dynamo.transport import AiodynamoTransport
from lift_asgi.ratelimit import AsyncDynamoDBStorage, Window

T0 = 1_800_000_000.0  # an hour boundary: the shared clock starts here


def work(
    endpoint: str,
    table: str,
    key: str,
    windows: tuple[Window, ...],
    horizon: float,
    concurrency: int,
    base: float,
    results: Any,
) -> None:
    """Put ``(admitted, lease calls, units still held)`` on ``results``. The clock is
    ``T0 + (time.time() - base)``: every process on one timeline, windows aligned."""
    try:
        results.put(asyncio.run(_work(endpoint, table, key, windows, horizon, concurrency, base)))
    except BaseException as exc:  # the test fails at once, with the cause
        results.put((-1, 0, repr(exc)))
        raise


async def _work(
    endpoint: str,
    table: str,
    key: str,
    windows: tuple[Window, ...],
    horizon: float,
    concurrency: int,
    base: float,
) -> tuple[int, int, int | str]:
    transport = AiodynamoTransport.static(endpoint)
    storage = AsyncDynamoDBStorage(table=table, transport=transport, lease_horizon=horizon)
    admitted = 0

    async def client() -> None:
        nonlocal admitted
        while True:
            decision = await storage.acquire(key, windows, 1, T0 + time.time() - base)
            if not decision.allowed:
                return
            admitted += 1
            await asyncio.sleep(0)

    try:
        await asyncio.gather(*(client() for _ in range(concurrency)))
    finally:
        await transport.close()
    return admitted, transport.calls, storage.leases.held(key)
