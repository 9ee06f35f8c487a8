"""The debt a process ran up while the table failed (``on_failure="local"``) stays out of
every update's room until it is written, also while another update carries it: requests
that pass the slow update carrying the debt must not take the units it still owes."""

from __future__ import annotations

import asyncio

import pytest

from lift_asgi.dynamo.tables import TableSpec
from lift_asgi.dynamo.transport import AiodynamoTransport
from lift_asgi.errors import LiftError
from lift_asgi.ratelimit.core import Window
from lift_asgi.ratelimit.storage import AsyncDynamoDBStorage
from lift_asgi.testing import FaultProxy

from .conftest import T0

pytestmark = pytest.mark.dynamodb

LIMIT = 10
WINDOWS = (Window(LIMIT, 3600),)
NOW = T0 + 10  # well inside one hour's window


async def test_updates_passing_the_one_that_carries_the_debt_leave_its_units_alone(
    dynamodb_rate_limit_table: TableSpec, dynamodb_fault_proxy: FaultProxy
) -> None:
    transport = AiodynamoTransport.static(dynamodb_fault_proxy.endpoint)
    storage = AsyncDynamoDBStorage(table=dynamodb_rate_limit_table.name, transport=transport)
    try:
        admitted = [(await storage.acquire("k", WINDOWS, 1, NOW)).allowed for _ in range(5)]
        dynamodb_fault_proxy.fail(times=None, operation="UpdateItem")
        for _ in range(3):  # the table fails: counted here, as on_failure="local" does
            with pytest.raises(LiftError):
                await storage.acquire("k", WINDOWS, 1, NOW)
            decision = storage.acquire_local("k", WINDOWS, 1, NOW)
            admitted.append(decision is not None and decision.allowed)
        assert admitted == [True] * 8  # 5 in the table, 3 owed
        dynamodb_fault_proxy.reset()
        dynamodb_fault_proxy.delay(0.5, operation="UpdateItem", times=1)  # the carrier

        async def one() -> bool:
            return (await storage.acquire("k", WINDOWS, 1, NOW)).allowed

        carrier = asyncio.create_task(one())
        await asyncio.sleep(0.05)  # it boards first, with the 3 owed units
        passing = [asyncio.create_task(one()) for _ in range(3)]
        results = [await carrier] + [await task for task in passing]
    finally:
        await transport.close()
    assert sum(admitted) + sum(results) <= LIMIT
    assert sum(results) >= 1  # the room there was (2 units) is not all refused
