"""One OS process leasing from a shared rate-limit table (spawned by test_leases.py): its
own event loop, transport and storage, many concurrent requests on one key until the
table refuses them (:func:`work`), or requests paced at a rate (:func:`paced`)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
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
    _report(results, _work(endpoint, table, key, windows, horizon, concurrency, base))


def _report(results: Any, outcome: Coroutine[Any, Any, Any]) -> None:
    """Run ``outcome`` and put what it returns on ``results``; a failure puts
    ``(-1, 0, repr(exc))`` first, so the test fails at once, with the cause."""
    try:
        results.put(asyncio.run(outcome))
    except BaseException as exc:
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


def paced(
    endpoint: str,
    table: str,
    key: str,
    windows: tuple[Window, ...],
    horizon: float,
    rate: float,
    count: int,
    base: float,
    results: Any,
) -> None:
    """``count`` requests at ``rate``/s from ``base`` on (each its own task, as a server
    runs them), whatever the answers; puts what :func:`work` puts."""
    _report(results, _paced(endpoint, table, key, windows, horizon, rate, count, base))


async def _paced(
    endpoint: str,
    table: str,
    key: str,
    windows: tuple[Window, ...],
    horizon: float,
    rate: float,
    count: int,
    base: float,
) -> tuple[int, int, int | str]:
    transport = AiodynamoTransport.static(endpoint)
    storage = AsyncDynamoDBStorage(table=table, transport=transport, lease_horizon=horizon)
    admitted = 0

    async def one() -> None:
        nonlocal admitted
        # awaited first: `admitted += (await ...)` reads admitted before the await, and
        # concurrent tasks would overwrite each other's counts
        decision = await storage.acquire(key, windows, 1, T0 + time.time() - base)
        admitted += decision.allowed

    await asyncio.sleep(max(0.0, base - time.time()))
    tasks = []
    try:
        for n in range(count):
            delay = base + n / rate - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one()))
        await asyncio.gather(*tasks)
    finally:
        await transport.close()
    return admitted, transport.calls, storage.leases.held(key)
