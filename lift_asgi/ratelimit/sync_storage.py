"""``dynamodb://``: the synchronous ``limits`` storage on boto3, for slowapi and sync code.

Same items as :class:`~lift_asgi.ratelimit.storage.AsyncDynamoDBStorage`, so both can
share a table; botocore's failures are mapped by the suite's one mapping
(:mod:`lift_asgi.dynamo.botocore_errors`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any, TypeVar, cast

from limits.storage import SlidingWindowCounterSupport, Storage

from lift_asgi.dynamo.botocore_errors import from_botocore, method_name
from lift_asgi.errors import ConditionFailed, ConfigurationError, LiftError
from lift_asgi.ratelimit.core import Window
from lift_asgi.ratelimit.items import Steps
from lift_asgi.ratelimit.items import options as merge_options
from lift_asgi.ratelimit.steps import CounterSteps

__all__ = ["DynamoDBStorage"]

T = TypeVar("T")


class DynamoDBStorage(CounterSteps, Storage, SlidingWindowCounterSupport):
    """``dynamodb://TABLE``: the synchronous twin on boto3, for slowapi and sync code.

    Same items as :class:`AsyncDynamoDBStorage`, so both can share a table. boto3 retries
    are off (one attempt, ``timeout`` seconds to connect and to read): a rate limiter
    should answer fast or fail.
    """

    STORAGE_SCHEME = ["dynamodb"]  # noqa: RUF012 (limits' own declaration)

    def __init__(
        self,
        uri: str | None = None,
        wrap_exceptions: bool = False,
        *,
        client: Any = None,
        table: str | None = None,
        endpoint_url: str | None = None,
        region: str | None = None,
        key_prefix: str | None = None,
        pk: str | None = None,
        sk: str | None = None,
        ttl: str | None = None,
        timeout: float = 2.0,
        clock: Callable[[], float] = time.time,
        cache_size: int = 10_000,
        **options: Any,
    ) -> None:
        if options:
            name = next(iter(options))
            raise ConfigurationError(name, "unknown option of the dynamodb storage")
        merged = merge_options(
            uri,
            "dynamodb",
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
        if client is None:
            import boto3  # type: ignore[import-untyped]
            from botocore.config import Config

            client = boto3.client(
                "dynamodb",
                endpoint_url=merged.get("endpoint_url")
                or os.environ.get("AWS_ENDPOINT_URL_DYNAMODB")
                or None,
                region_name=merged.get("region")
                or os.environ.get("AWS_REGION")
                or os.environ.get("AWS_DEFAULT_REGION")
                or "us-east-1",
                config=Config(
                    retries={"total_max_attempts": 1, "mode": "standard"},
                    connect_timeout=timeout,
                    read_timeout=timeout,
                ),
            )
        self.client = client
        self.calls = 0
        self._methods: dict[str, Callable[..., dict[str, Any]]] = {}
        super().__init__(uri, wrap_exceptions=wrap_exceptions)

    @property
    def base_exceptions(self) -> type[Exception] | tuple[type[Exception], ...]:
        return LiftError

    def _request(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        method = self._methods.get(action)
        if method is None:
            method = self._methods[action] = getattr(self.client, method_name(action))
        self.calls += 1
        try:
            return method(**payload)
        except Exception as exc:  # botocore's, mapped as for Aioboto3Transport
            mapped = from_botocore(exc)
            if mapped is None:
                raise
            raise mapped from exc

    def _run(self, steps: Steps[T]) -> T:
        try:
            call = next(steps)
            while True:
                try:
                    answer = self._request(*call)
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

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        return self._run(self._incr_steps(key, expiry, amount))

    def get(self, key: str) -> int:
        return self._run(self._fixed_steps(key))[0]

    def get_expiry(self, key: str) -> float:
        return self._run(self._fixed_steps(key))[1]

    def check(self) -> bool:
        try:
            self._request("DescribeTable", {"TableName": self.table})
        except LiftError:
            return False
        return True

    def reset(self) -> int | None:
        return self._run(self._reset_steps())

    def clear(self, key: str) -> None:
        self._run(self._clear_steps(key))

    def acquire_sliding_window_entry(
        self, key: str, limit: int, expiry: int, amount: int = 1
    ) -> bool:
        if amount > limit:
            return False
        window = (Window(limit, expiry, sliding=True),)
        return self._run(self._acquire_steps(key, window, amount, self.clock())).allowed

    def get_sliding_window(self, key: str, expiry: int) -> tuple[int, float, int, float]:
        return self._run(self._sliding_steps(key, expiry))

    def clear_sliding_window(self, key: str, expiry: int) -> None:
        self.clear(key)
