"""Requests and decisions of both DynamoDB storages, written once as generators of calls.

A ``*_steps`` generator yields ``(action, payload)`` and receives the answer; a
:class:`~lift_asgi.errors.ConditionFailed` is thrown back into it. The async storage
(:mod:`~lift_asgi.ratelimit.storage`) and the sync one
(:mod:`~lift_asgi.ratelimit.sync_storage`) only differ in how they send a call.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Mapping
from typing import Any

from lift_asgi.errors import ConditionFailed, ConfigurationError, DynamoDBUnavailable
from lift_asgi.ratelimit.core import Decision, Windows, counter_name, decide, previous_weight
from lift_asgi.ratelimit.items import (
    SORT_VALUE,
    Call,
    Steps,
    counters,
    counters_end,
    failed_item,
    number,
    plus,
)
from lift_asgi.ratelimit.leases import room

__all__ = ["CounterSteps"]

_MAX_ATTEMPTS = 4
_MAX_REMOVALS = 16
_MAX_LEASE_ATTEMPTS = 8


class CounterSteps:
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
            item_key[self._sk] = {"S": SORT_VALUE}
        return item_key

    def _remember(self, key: str, counts: dict[str, int]) -> None:
        if not self._cache_size:
            return
        seen = self._seen
        if key not in seen and len(seen) >= self._cache_size:
            with contextlib.suppress(KeyError, StopIteration, RuntimeError):
                # the oldest; another thread may have been first
                dropped = seen.pop(next(iter(seen)))
                until = counters_end(dropped)
                if until > self._forgot_until:
                    self._forgot_until = until
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
        counts = plus(seen, debt)
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
            for key in [k for k, debt in self._debt.items() if counters_end(debt) <= now]:
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
        decision = decide(plus(seen, debt), windows, cost, now)
        if not decision.allowed:
            return decision  # what we saw is a lower bound: refused without a call
        for _ in range(_MAX_ATTEMPTS):
            try:
                answer = yield self._update(key, windows, cost, now, seen, debt)
            except ConditionFailed as exc:
                item = failed_item(exc)
                if item is not None:
                    seen = counters(item)
                elif len(windows) == 1 and not windows[0].sliding and cost == 1 and not debt:
                    # The only possible cause: the window's counter is at its limit.
                    window = windows[0]
                    name = counter_name(window.seconds, int(now // window.seconds))
                    seen = dict(seen)
                    seen[name] = max(seen.get(name, 0), window.limit)
                else:  # the transport dropped the old item: read it
                    seen = counters((yield self._get_item(key)).get("Item"))
                self._remember(key, seen)
                decision = decide(plus(seen, debt), windows, cost, now)
                if not decision.allowed:
                    return decision
                continue  # a wrong guess of a sliding window's previous count
            if debt is not None:
                self._debt.pop(key, None)  # written with this update
            seen = counters(answer.get("Attributes"))
            self._remember(key, seen)
            return decide(seen, windows, cost, now, applied=True)
        raise DynamoDBUnavailable("The rate limit state kept changing.", aws_code="Contention")

    def _lease_steps(
        self, key: str, windows: Windows, cost: int, want: int, now: float
    ) -> Steps[tuple[Decision | None, int, dict[str, int]]]:
        """Lease up to ``want`` units (at least ``cost``) of every window in one
        conditional ``UpdateItem``; when the full batch does not fit, what is left.

        Returns ``(refusal, 0, counts)`` when not even ``cost`` fits, else ``(None, units
        leased, counts after the lease)``.
        """
        seen = self._seen.get(key) or {}
        debt = self._debt.get(key)
        for _ in range(_MAX_LEASE_ATTEMPTS):
            counts = plus(seen, debt)
            units = min(want, room(counts, windows, now))
            if units < cost:
                return decide(counts, windows, cost, now), 0, dict(counts)
            try:
                answer = yield self._update(key, windows, units, now, seen, debt)
            except ConditionFailed as exc:
                item = failed_item(exc)
                if item is None:  # the transport dropped the old item: read it
                    item = (yield self._get_item(key)).get("Item")
                seen = counters(item)
                self._remember(key, seen)
                # Someone else leased meanwhile: ask for less (it fits more often under
                # contention), at most what is left.
                want = max(cost, want // 2)
                continue
            if debt is not None:
                self._debt.pop(key, None)  # written with this update
            seen = counters(answer.get("Attributes"))
            self._remember(key, seen)
            return None, units, seen
        raise DynamoDBUnavailable("The rate limit state kept changing.", aws_code="Contention")

    def _sliding_steps(self, key: str, expiry: int) -> Steps[tuple[int, float, int, float]]:
        now = self.clock()
        counts = counters((yield self._get_item(key)).get("Item"))
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
        ends = number(item, "x")
        if ends is None or ends <= now:  # expired items linger until TTL deletion runs
            return 0, now
        count = number(item, "n")
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
