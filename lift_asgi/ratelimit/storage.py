"""DynamoDB storages for the ``limits`` library, and the rate-limit table.

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

Items
-----
One item per rate-limit key: ``pk = key_prefix + key``, ``sk = "rl"``, and a TTL
attribute after which DynamoDB may delete it. Reads never trust the TTL deletion (it runs
late): they ignore what has expired themselves.

- ``limits``' fixed window (``incr``/``get``/``get_expiry``) keeps ``n`` (the count) and
  ``x`` (the epoch the window ends; it starts at the first hit, as in ``limits``' other
  storages). A hit is one ``ADD`` conditioned on ``x > now``; the first hit of a window
  costs one more call (``SET`` conditioned on the window having ended).
- Epoch-aligned windows (the sliding window counter, and :meth:`AsyncDynamoDBStorage.acquire`
  that :class:`~lift_asgi.ratelimit.RateLimitMiddleware` uses) keep one counter per
  window, named ``{seconds}s{index}`` (see :mod:`lift_asgi.ratelimit.core`). A hit is one
  ``UpdateItem``: ``ADD`` to every window's counter, conditioned on every window having
  room, ``ReturnValues=ALL_NEW`` for the headers and
  ``ReturnValuesOnConditionCheckFailure=ALL_OLD`` for the refusal. A refused hit changes
  nothing, so no window ever holds more than its limit, whatever the concurrency.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
import urllib.parse
from collections.abc import Callable, Generator, Mapping
from typing import Any, TypeVar, cast

from limits.aio.storage import SlidingWindowCounterSupport as AsyncSlidingWindowCounterSupport
from limits.aio.storage import Storage as AsyncStorage
from limits.storage import SlidingWindowCounterSupport, Storage

from lift_asgi.dynamo.tables import TableSpec, create_table
from lift_asgi.dynamo.transport import DynamoTransport, error_from_code, shared_transport
from lift_asgi.errors import (
    ConditionFailed,
    ConfigurationError,
    DynamoDBUnavailable,
    LiftError,
)
from lift_asgi.ratelimit.core import (
    COUNTER_NAME,
    Decision,
    Window,
    Windows,
    counter_name,
    decide,
    previous_weight,
)

__all__ = [
    "AsyncDynamoDBStorage",
    "DynamoDBStorage",
    "create_rate_limit_table",
    "rate_limit_table_spec",
]

T = TypeVar("T")
Call = tuple[str, dict[str, Any]]
Steps = Generator[Call, dict[str, Any], T]

_SORT_VALUE = "rl"
_MAX_ATTEMPTS = 4
_MAX_REMOVALS = 16
_URI_OPTIONS = frozenset({"endpoint_url", "region", "region_name", "key_prefix", "pk", "sk", "ttl"})


def rate_limit_table_spec(
    name: str, *, pk: str = "pk", sk: str | None = "sk", ttl: str = "ttl"
) -> TableSpec:
    """The rate-limit table: string ``pk`` (+ ``sk``), TTL on ``ttl``, no index.

    The suite's standard table (``TableSpec.standard``) fits too: it has the same keys.
    """
    return TableSpec(name=name, pk=pk, sk=sk, gsis=(), ttl_attribute=ttl)


async def create_rate_limit_table(
    transport: DynamoTransport,
    name: str,
    *,
    pk: str = "pk",
    sk: str | None = "sk",
    ttl: str = "ttl",
) -> bool:
    """Create the rate-limit table (on demand, TTL enabled) unless it exists.

    Returns True when this call created it; safe to run at every start.
    """
    return await create_table(transport, rate_limit_table_spec(name, pk=pk, sk=sk, ttl=ttl))


def _failed_item(exc: BaseException) -> dict[str, Any] | None:
    """The item a ``ReturnValuesOnConditionCheckFailure=ALL_OLD`` failure carried, if the
    transport kept it (``exc.item``, or the botocore error it was mapped from)."""
    item = getattr(exc, "item", None)
    if isinstance(item, dict):
        return item
    response = getattr(exc.__cause__, "response", None)
    if isinstance(response, Mapping):
        item = response.get("Item")
        if isinstance(item, dict):
            return item
    return None


def _counters(item: Mapping[str, Any] | None) -> dict[str, int]:
    counts: dict[str, int] = {}
    if item:
        for name, value in item.items():
            if type(value) is dict and "N" in value and COUNTER_NAME.fullmatch(name):
                counts[name] = int(value["N"])
    return counts


def _plus(seen: Mapping[str, int] | None, debt: Mapping[str, int] | None) -> Mapping[str, int]:
    """Counts the table reported plus units admitted here that it has not been told of."""
    if not debt:
        return seen or {}
    counts = dict(seen or {})
    for name, units in debt.items():
        counts[name] = counts.get(name, 0) + units
    return counts


def _ends(counts: Mapping[str, int]) -> float:
    """When counters named ``{seconds}s{index}`` stop mattering: the end of the window
    after the latest (a sliding window still reads its previous window)."""
    ends = 0.0
    for name in counts:
        seconds, _, index = name.partition("s")
        try:
            end = (int(index) + 2) * int(seconds)
        except ValueError:
            continue
        if end > ends:
            ends = end
    return ends


def _number(item: Mapping[str, Any] | None, name: str) -> float | None:
    value = item.get(name) if item else None
    if isinstance(value, dict) and "N" in value:
        return float(value["N"])
    return None


def _options(uri: str | None, scheme: str, given: dict[str, Any]) -> dict[str, Any]:
    """Merge the URI's table and query options under the keyword arguments."""
    options: dict[str, Any] = {}
    if uri:
        parts = urllib.parse.urlsplit(uri)
        if parts.scheme != scheme:
            raise ConfigurationError("uri", f"expected a {scheme}:// URI, not {uri!r}")
        table = urllib.parse.unquote(parts.netloc or parts.path.lstrip("/"))
        if table:
            options["table"] = table
        for name, values in urllib.parse.parse_qs(parts.query, keep_blank_values=True).items():
            if name not in _URI_OPTIONS:
                raise ConfigurationError(
                    name, f"unknown {scheme}:// option; known: {', '.join(sorted(_URI_OPTIONS))}"
                )
            options["region" if name == "region_name" else name] = values[-1]
    options.update({k: v for k, v in given.items() if v is not None})
    table_name = options.get("table")
    if not isinstance(table_name, str) or not table_name:
        raise ConfigurationError(
            "table", f"name the DynamoDB table: {scheme}://TABLE?endpoint_url=...&region=..."
        )
    return options


class _DynamoDBCounters:
    """Requests and decisions for both storages, written once as generators of calls.

    A ``*_steps`` generator yields ``(action, payload)`` and receives the answer; a
    :class:`ConditionFailed` is thrown back into it. The async and sync storages only
    differ in how they send a call (:meth:`AsyncDynamoDBStorage._run`,
    :meth:`DynamoDBStorage._run`).
    """

    table: str
    key_prefix: str
    clock: Callable[[], float]

    def _configure(
        self,
        options: Mapping[str, Any],
        clock: Callable[[], float],
        cache_size: int,
    ) -> None:
        self.table = str(options["table"])
        self.key_prefix = str(options.get("key_prefix", "rl#"))
        self._pk = str(options.get("pk", "pk")) or "pk"
        sk = options.get("sk", "sk")
        self._sk = str(sk) if sk else None
        self._ttl = str(options.get("ttl", "ttl")) or "ttl"
        if not isinstance(cache_size, int) or cache_size < 0:
            raise ConfigurationError("cache_size", "must be an integer >= 0")
        self.clock = clock
        self._cache_size = cache_size
        # Last counter values seen per key: lower bounds of the truth, used to guess the
        # sliding window's previous count and to remove counters of past windows. Losing
        # them costs calls, never correctness; but while the table cannot answer they are
        # what this process already admitted (acquire_local), so ``_forgot_until`` keeps
        # the latest window end of an entry dropped from a full cache.
        self._seen: dict[str, dict[str, int]] = {}
        self._forgot_until = 0.0 if cache_size else math.inf
        # Units admitted in this process while the table could not answer, per key and
        # counter, added to the key's next write (see acquire_local).
        self._debt: dict[str, dict[str, int]] = {}
        self._debt_swept = -math.inf

    # -- helpers --------------------------------------------------------------------

    def _key(self, key: str) -> dict[str, Any]:
        item_key: dict[str, Any] = {self._pk: {"S": self.key_prefix + key}}
        if self._sk:
            item_key[self._sk] = {"S": _SORT_VALUE}
        return item_key

    def _remember(self, key: str, counts: dict[str, int]) -> None:
        if not self._cache_size:
            return
        seen = self._seen
        if key not in seen and len(seen) >= self._cache_size:
            with contextlib.suppress(KeyError, StopIteration, RuntimeError):
                # the oldest; another thread may have been first
                dropped = seen.pop(next(iter(seen)))
                ends = _ends(dropped)
                if ends > self._forgot_until:
                    self._forgot_until = ends
        seen[key] = counts

    # -- while the table cannot answer ----------------------------------------------

    def acquire_local(self, key: str, windows: Windows, cost: int, now: float) -> Decision | None:
        """Decide in this process, for when the table cannot answer.

        The counts are what the table last said for ``key`` (which include everything
        this process admitted through it) plus the units admitted here since; admitted
        units are added to that debt, and the next successful write for ``key`` adds
        the debt to the table in the same conditional update. So this process never
        admits more than a window's limit, whatever the table does. ``None`` (the
        middleware refuses with 503) when this process no longer knows what it admitted
        for ``key`` (its entry left a full cache while its window was open), or when
        ``cache_size`` debts are held already.
        """
        seen = self._seen.get(key)
        if seen is None and now < self._forgot_until:
            return None
        debt = self._debt.get(key)
        counts = _plus(seen, debt)
        decision = decide(counts, windows, cost, now)
        if decision.allowed:
            if debt is None:
                if len(self._debt) >= max(self._cache_size, 1) and not self._sweep_debts(now):
                    return None
                debt = self._debt[key] = {}
            for window in windows:
                name = counter_name(window.seconds, int(now // window.seconds))
                debt[name] = debt.get(name, 0) + cost
        return decision

    def _sweep_debts(self, now: float) -> bool:
        """Drop debts whose windows have all ended (at most once a second); True when
        there is room for another."""
        if now - self._debt_swept >= 1.0:
            self._debt_swept = now
            for key in [k for k, debt in self._debt.items() if _ends(debt) <= now]:
                del self._debt[key]
        return len(self._debt) < max(self._cache_size, 1)

    def forget(self, key: str) -> None:
        """Drop what this process remembers about ``key`` (after clearing it)."""
        self._seen.pop(key, None)
        self._debt.pop(key, None)

    def _get_item(self, key: str) -> Call:
        return "GetItem", {"TableName": self.table, "Key": self._key(key), "ConsistentRead": True}

    def _update(
        self,
        key: str,
        windows: Windows,
        cost: int,
        now: float,
        seen: Mapping[str, int],
        debt: Mapping[str, int] | None = None,
    ) -> Call:
        names: dict[str, str] = {"#t": self._ttl}
        values: dict[str, Any] = {":n": {"N": str(cost)}}
        adds: list[str] = []
        conditions: list[str] = []
        live: set[str] = set()
        ttl = 0
        for i, window in enumerate(windows):
            seconds = window.seconds
            index = int(now // seconds)
            current = counter_name(seconds, index)
            live.add(current)
            names[f"#c{i}"] = current
            amount = cost
            owed = debt.get(current) if debt else None
            if owed:  # units admitted here while the table could not answer
                amount += owed
                values[f":n{i}"] = {"N": str(amount)}
                adds.append(f"#c{i} :n{i}")
            else:
                adds.append(f"#c{i} :n")
            base = 0
            if window.sliding:
                previous = counter_name(seconds, index - 1)
                live.add(previous)
                names[f"#p{i}"] = previous
                guess = seen.get(previous, 0)
                if guess:
                    values[f":p{i}"] = {"N": str(guess)}
                    conditions.append(f"#p{i} = :p{i}")
                else:
                    conditions.append(f"attribute_not_exists(#p{i})")
                owed_before = debt.get(previous) if debt else None
                if owed_before:  # the previous window's local units: written there too
                    values[f":d{i}"] = {"N": str(owed_before)}
                    adds.append(f"#p{i} :d{i}")
                    guess += owed_before
                base = math.floor(guess * previous_weight(seconds, now)) if guess else 0
            values[f":m{i}"] = {"N": str(window.limit - amount - base)}
            conditions.append(f"(attribute_not_exists(#c{i}) OR #c{i} <= :m{i})")
            # Sliding windows read the previous window; one window more covers clock skew.
            ttl = max(ttl, (index + 2) * seconds)
        values[":t"] = {"N": str(ttl)}
        if not any(add.endswith(" :n") for add in adds):
            del values[":n"]  # every window adds its own amount (units owed)
        expression = f"ADD {', '.join(adds)} SET #t = :t"
        stale = [name for name in seen if name not in live][:_MAX_REMOVALS]
        if stale:
            removals = []
            for j, name in enumerate(stale):
                names[f"#x{j}"] = name
                removals.append(f"#x{j}")
            expression += f" REMOVE {', '.join(removals)}"
        return "UpdateItem", {
            "TableName": self.table,
            "Key": self._key(key),
            "UpdateExpression": expression,
            "ConditionExpression": " AND ".join(conditions),
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
            "ReturnValues": "ALL_NEW",
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }

    # -- epoch-aligned windows (middleware, sliding window counter) -----------------

    def _acquire_steps(self, key: str, windows: Windows, cost: int, now: float) -> Steps[Decision]:
        seen = self._seen.get(key) or {}
        debt = self._debt.get(key)
        decision = decide(_plus(seen, debt), windows, cost, now)
        if not decision.allowed:
            return decision  # what we saw is a lower bound: refused without a call
        for _ in range(_MAX_ATTEMPTS):
            try:
                answer = yield self._update(key, windows, cost, now, seen, debt)
            except ConditionFailed as exc:
                item = _failed_item(exc)
                if item is not None:
                    seen = _counters(item)
                elif len(windows) == 1 and not windows[0].sliding and cost == 1 and not debt:
                    # The only possible cause: the window's counter is at its limit.
                    window = windows[0]
                    name = counter_name(window.seconds, int(now // window.seconds))
                    seen = dict(seen)
                    seen[name] = max(seen.get(name, 0), window.limit)
                else:  # the transport dropped the old item: read it
                    seen = _counters((yield self._get_item(key)).get("Item"))
                self._remember(key, seen)
                decision = decide(_plus(seen, debt), windows, cost, now)
                if not decision.allowed:
                    return decision
                continue  # a wrong guess of a sliding window's previous count
            if debt is not None:
                self._debt.pop(key, None)  # written with this update
            seen = _counters(answer.get("Attributes"))
            self._remember(key, seen)
            return decide(seen, windows, cost, now, applied=True)
        raise DynamoDBUnavailable("The rate limit state kept changing.", aws_code="Contention")

    def _sliding_steps(self, key: str, expiry: int) -> Steps[tuple[int, float, int, float]]:
        now = self.clock()
        counts = _counters((yield self._get_item(key)).get("Item"))
        index = int(now // expiry)
        previous = counts.get(counter_name(expiry, index - 1), 0)
        current = counts.get(counter_name(expiry, index), 0)
        left = (index + 1) * expiry - now
        return previous, (left if previous else 0.0), current, left + expiry

    # -- limits' fixed window: first hit starts it ----------------------------------

    def _incr_steps(self, key: str, expiry: int, amount: int) -> Steps[int]:
        now = self.clock()
        names = {"#n": "n", "#x": "x"}
        item_key = self._key(key)
        for _ in range(_MAX_ATTEMPTS):
            try:
                answer = yield (
                    "UpdateItem",
                    {
                        "TableName": self.table,
                        "Key": item_key,
                        "UpdateExpression": "ADD #n :a",
                        "ConditionExpression": "#x > :now",
                        "ExpressionAttributeNames": names,
                        "ExpressionAttributeValues": {
                            ":a": {"N": str(amount)},
                            ":now": {"N": repr(now)},
                        },
                        "ReturnValues": "UPDATED_NEW",
                    },
                )
                return int(answer["Attributes"]["n"]["N"])
            except ConditionFailed:
                pass  # no live window: start one
            ends = now + expiry
            try:
                yield (
                    "UpdateItem",
                    {
                        "TableName": self.table,
                        "Key": item_key,
                        "UpdateExpression": "SET #n = :a, #x = :x, #t = :t",
                        "ConditionExpression": "attribute_not_exists(#x) OR #x <= :now",
                        "ExpressionAttributeNames": {**names, "#t": self._ttl},
                        "ExpressionAttributeValues": {
                            ":a": {"N": str(amount)},
                            ":x": {"N": repr(ends)},
                            ":t": {"N": str(math.ceil(ends))},
                            ":now": {"N": repr(now)},
                        },
                    },
                )
                return amount
            except ConditionFailed:
                continue  # someone else started it: add to theirs
        raise DynamoDBUnavailable("The rate limit state kept changing.", aws_code="Contention")

    def _fixed_steps(self, key: str) -> Steps[tuple[int, float]]:
        """(count, window end) of a live ``incr`` window; (0, now) when there is none."""
        now = self.clock()
        item = (yield self._get_item(key)).get("Item")
        ends = _number(item, "x")
        if ends is None or ends <= now:  # expired items linger until TTL deletion runs
            return 0, now
        count = _number(item, "n")
        return int(count or 0), ends

    def _clear_steps(self, key: str) -> Steps[None]:
        self.forget(key)
        yield "DeleteItem", {"TableName": self.table, "Key": self._key(key)}

    def _reset_steps(self) -> Steps[int]:
        removed = 0
        start: dict[str, Any] | None = None
        while True:
            payload: dict[str, Any] = {
                "TableName": self.table,
                "FilterExpression": "begins_with(#pk, :prefix)",
                "ExpressionAttributeNames": {"#pk": self._pk},
                "ExpressionAttributeValues": {":prefix": {"S": self.key_prefix}},
            }
            if start:
                payload["ExclusiveStartKey"] = start
            page = yield "Scan", payload
            for item in page.get("Items", []):
                keys = {self._pk: item[self._pk]}
                if self._sk:
                    keys[self._sk] = item[self._sk]
                yield "DeleteItem", {"TableName": self.table, "Key": keys}
                removed += 1
            start = page.get("LastEvaluatedKey")
            if not start:
                break
        self._seen.clear()
        return removed


class AsyncDynamoDBStorage(_DynamoDBCounters, AsyncStorage, AsyncSlidingWindowCounterSupport):
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
        merged = _options(
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


class DynamoDBStorage(_DynamoDBCounters, Storage, SlidingWindowCounterSupport):
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
        merged = _options(
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
        from botocore.exceptions import BotoCoreError, ClientError

        method = self._methods.get(action)
        if method is None:
            snake = "".join(f"_{c.lower()}" if c.isupper() else c for c in action).lstrip("_")
            method = self._methods[action] = getattr(self.client, snake)
        self.calls += 1
        try:
            return method(**payload)
        except ClientError as exc:
            response = cast(dict[str, Any], exc.response)
            error = response.get("Error", {})
            status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 400))
            mapped = error_from_code(
                str(error.get("Code", "")), str(error.get("Message", "")), status, response
            )
            raise mapped from exc
        except BotoCoreError as exc:  # connection refused, timeouts, ...
            raise DynamoDBUnavailable(aws_code=type(exc).__name__) from exc

    def _run(self, steps: Steps[T]) -> T:
        try:
            call = next(steps)
            while True:
                try:
                    answer = self._request(*call)
                except ConditionFailed as exc:
                    call = steps.throw(exc)
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
