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
client), ``clock`` and ``cache_size``. The async storage also takes ``lease_horizon``
(seconds; 0, the default, leases nothing) and ``lease_max`` (100): leased budgets, see
:mod:`lift_asgi.ratelimit.leases`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, TypeVar, cast

from limits.aio.storage import SlidingWindowCounterSupport as AsyncSlidingWindowCounterSupport
from limits.aio.storage import Storage as AsyncStorage

from lift_asgi.dynamo.protocol import DynamoTransport
from lift_asgi.errors import ConditionFailed, ConfigurationError, DynamoDBThrottled, LiftError
from lift_asgi.ratelimit.core import Decision, Window, Windows, decide
from lift_asgi.ratelimit.items import Steps, plus
from lift_asgi.ratelimit.items import options as merge_options
from lift_asgi.ratelimit.leases import LeaseBook
from lift_asgi.ratelimit.steps import CounterSteps

__all__ = ["AsyncDynamoDBStorage"]

T = TypeVar("T")

_BACKOFF_FIRST = 0.05  # seconds a throttled key waits before its next lease call
_BACKOFF_MAX = 2.0
_BACKOFF_KEYS = 4096


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
        lease_horizon: float | str | None = None,
        lease_max: int | str | None = None,
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
                "lease_horizon": lease_horizon,
                "lease_max": lease_max,
            },
        )
        self._configure(merged, clock, cache_size)
        horizon = merged.get("lease_horizon", 0.0)
        most = merged.get("lease_max", 100)
        if isinstance(horizon, str):  # from the URI
            try:
                horizon = float(horizon)
            except ValueError:
                raise ConfigurationError("lease_horizon", "a number of seconds") from None
        if isinstance(most, str):
            try:
                most = int(most)
            except ValueError:
                raise ConfigurationError("lease_max", "an integer >= 1") from None
        self.leases = LeaseBook(horizon, most, cache_size)
        self._leasing = horizon > 0
        self._inflight: dict[str, asyncio.Future[None]] = {}
        self._backoff: dict[str, tuple[float, float, DynamoDBThrottled]] = {}
        if transport is None:
            # imported here: the schemes register (this module is imported) without
            # loading aiohttp and aiodynamo, which only a storage that calls needs
            from lift_asgi.dynamo.transport import shared_transport

            transport = shared_transport(
                merged.get("endpoint_url") or None, merged.get("region") or None
            )
        self.transport: DynamoTransport = transport
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
                except BaseException:
                    # closed now, not when the traceback lets go of it: an update in
                    # flight stops counting before the failure policy decides
                    steps.close()
                    raise
                else:
                    call = steps.send(answer)
        except StopIteration as stop:
            return cast(T, stop.value)

    async def acquire(self, key: str, windows: Windows, cost: int, now: float) -> Decision:
        """Admit or refuse ``cost`` units on every window of ``key`` at ``now``: one
        ``UpdateItem`` (a sliding window whose previous count this process has not seen
        yet may take one more); with leases (``lease_horizon`` > 0), from the units this
        process holds when it holds enough, else one lease call."""
        if not self._leasing:
            return await self._run(self._acquire_steps(key, windows, cost, now))
        book = self.leases
        while True:
            decision = book.spend(key, windows, cost, now)
            if decision is not None:
                return decision
            waiting = self._inflight.get(key)
            if waiting is None:
                break
            # One lease call per key at a time: wait for it, then spend from its lease.
            await asyncio.shield(waiting)
            decision = book.spend(key, windows, cost, now)
            if decision is not None:
                # first: a lease that took the window's last units holds them while
                # the counts it saw say "full"; refusing on those would strand them
                return decision
            known = plus(self._seen.get(key), self._debt.get(key))
            refusal = decide(known, windows, cost, now)
            if not refusal.allowed:
                return refusal  # what was seen is a lower bound: refused without a call
        backoff = self._backoff.get(key)
        if backoff is not None and now < backoff[0]:
            # throttled lately: this key waits, the others do not
            raise DynamoDBThrottled(
                "The rate limit table throttled this key; backing off.",
                aws_code=backoff[2].aws_code,
                retry_after=backoff[0] - now,
            )
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._inflight[key] = done
        try:
            known = plus(self._seen.get(key), self._debt.get(key))
            want = book.size(key, windows, cost, now, known)
            try:
                refused, units, counts = await self._run(
                    self._lease_steps(key, windows, cost, want, now)
                )
            except DynamoDBThrottled as exc:
                delay = min(_BACKOFF_MAX, 2 * backoff[1]) if backoff else _BACKOFF_FIRST
                self._backoff[key] = (now + delay, delay, exc)
                if len(self._backoff) > _BACKOFF_KEYS:
                    del self._backoff[next(iter(self._backoff))]
                raise
            if backoff is not None:
                del self._backoff[key]
            if refused is not None:
                return refused
            return book.granted(key, windows, cost, units, now, counts)
        finally:
            del self._inflight[key]
            done.set_result(None)

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

    def forget(self, key: str) -> None:
        """Drop what this process remembers and holds of ``key`` (after clearing it)."""
        super().forget(key)
        self.leases.forget(key)

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
