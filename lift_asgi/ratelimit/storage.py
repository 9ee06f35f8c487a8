"""``async+dynamodb://``: the async ``limits`` storage on DynamoDB that the middleware uses.

Importing this module registers two URI schemes with ``limits``::

    from limits.storage import storage_from_string
    import lift_asgi.ratelimit  # registers the schemes

    storage_from_string("async+dynamodb://rate-limits?endpoint_url=http://127.0.0.1:8000")
    storage_from_string("dynamodb://rate-limits?region=eu-west-1")  # sync, boto3 (slowapi)

Query options: ``endpoint_url`` (default ``AWS_ENDPOINT_URL_DYNAMODB``, then AWS),
``region`` (default ``AWS_REGION``), ``key_prefix`` (``rl#``), and the table's attribute
names ``pk`` (``pk``), ``sk`` (``sk``; empty for a table without a sort key) and ``ttl``
(``ttl``). The same options are keyword arguments, together with ``transport`` (async:
any :class:`~lift_asgi.dynamo.transport.DynamoTransport`, default the process-wide
:func:`~lift_asgi.dynamo.transport.shared_transport`), ``client`` (sync: a boto3 DynamoDB
client), ``clock`` and ``cache_size``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar, cast

from limits.aio.storage import SlidingWindowCounterSupport as AsyncSlidingWindowCounterSupport
from limits.aio.storage import Storage as AsyncStorage

from lift_asgi.dynamo.transport import DynamoTransport, shared_transport
from lift_asgi.errors import ConditionFailed, ConfigurationError, LiftError
from lift_asgi.ratelimit.core import Decision, Window, Windows
from lift_asgi.ratelimit.items import Steps
from lift_asgi.ratelimit.items import options as merge_options
from lift_asgi.ratelimit.steps import CounterSteps

__all__ = ["AsyncDynamoDBStorage"]

T = TypeVar("T")


class AsyncDynamoDBStorage(CounterSteps, AsyncStorage, AsyncSlidingWindowCounterSupport):
    """``async+dynamodb://TABLE``: a ``limits`` async storage on DynamoDB.

    Works with ``limits.aio.strategies.FixedWindowRateLimiter`` and
    ``SlidingWindowCounterRateLimiter``; :class:`~lift_asgi.ratelimit.RateLimitMiddleware`
    uses :meth:`acquire`, which decides and returns the headers' numbers in one call.
    Every call goes through one :class:`~lift_asgi.dynamo.transport.DynamoTransport`.
    """

    STORAGE_SCHEME = ["async+dynamodb"]  # noqa: RUF012 (limits' own declaration)
    io = True

    def __init__(
        self,
        uri: str | None = None,
        wrap_exceptions: bool = False,
        *,
        transport: DynamoTransport | None = None,
        table: str | None = None,
        endpoint_url: str | None = None,
        region: str | None = None,
        key_prefix: str | None = None,
        pk: str | None = None,
        sk: str | None = None,
        ttl: str | None = None,
        clock: Callable[[], float] = time.time,
        cache_size: int = 10_000,
        **options: Any,
    ) -> None:
        if options:
            name = next(iter(options))
            raise ConfigurationError(name, "unknown option of the async+dynamodb storage")
        merged = merge_options(
            uri,
            "async+dynamodb",
            {
                "table": table,
                "endpoint_url": endpoint_url,
                "region": region,
                "key_prefix": key_prefix,
                "pk": pk,
                "sk": sk,
                "ttl": ttl,
            },
        )
        self._configure(merged, clock, cache_size)
        self.transport: DynamoTransport = transport or shared_transport(
            merged.get("endpoint_url") or None, merged.get("region") or None
        )
        super().__init__(uri, wrap_exceptions=wrap_exceptions)

    @property
    def base_exceptions(self) -> type[Exception] | tuple[type[Exception], ...]:
        return LiftError

    async def _run(self, steps: Steps[T]) -> T:
        request = self.transport.request
        try:
            call = next(steps)
            while True:
                try:
                    answer = await request(*call)
                except ConditionFailed as exc:
                    call = steps.throw(exc)
                else:
                    call = steps.send(answer)
        except StopIteration as stop:
            return cast(T, stop.value)

    async def acquire(self, key: str, windows: Windows, cost: int, now: float) -> Decision:
        """Admit or refuse ``cost`` units on every window of ``key`` at ``now``: one
        ``UpdateItem`` (a sliding window whose previous count this process has not seen
        yet may take one more)."""
        return await self._run(self._acquire_steps(key, windows, cost, now))

    async def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        return await self._run(self._incr_steps(key, expiry, amount))

    async def get(self, key: str) -> int:
        return (await self._run(self._fixed_steps(key)))[0]

    async def get_expiry(self, key: str) -> float:
        return (await self._run(self._fixed_steps(key)))[1]

    async def check(self) -> bool:
        try:
            await self.transport.request("DescribeTable", {"TableName": self.table})
        except LiftError:
            return False
        return True

    async def reset(self) -> int | None:
        return await self._run(self._reset_steps())

    async def clear(self, key: str) -> None:
        await self._run(self._clear_steps(key))

    async def acquire_sliding_window_entry(
        self, key: str, limit: int, expiry: int, amount: int = 1
    ) -> bool:
        if amount > limit:
            return False
        window = (Window(limit, expiry, sliding=True),)
        return (await self.acquire(key, window, amount, self.clock())).allowed

    async def get_sliding_window(self, key: str, expiry: int) -> tuple[int, float, int, float]:
        return await self._run(self._sliding_steps(key, expiry))

    async def clear_sliding_window(self, key: str, expiry: int) -> None:
        await self.clear(key)
