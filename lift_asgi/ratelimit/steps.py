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
from lift_asgi.ratelimit.debt import LocalDebt
from lift_asgi.ratelimit.items import (
    SORT_VALUE,
    Call,
    Steps,
    counter_ended,
    counter_window,
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


class CounterSteps(LocalDebt):
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
        self._configure_debt()

    # -- helpers --------------------------------------------------------------------

    def _key(self, key: str) -> dict[str, Any]:
        item_key: dict[str, Any] = {self._pk: {"S": self.key_prefix + key}}
        if self._sk:
            item_key[self._sk] = {"S": SORT_VALUE}
        return item_key

    def _remember(
        self, key: str, counts: dict[str, int], now: float, reach: int = 1
    ) -> dict[str, int]:
        """Keep what an answer said of ``key``; the counts this process knows now.

        Answers of overlapping calls may arrive in any order, and counters only grow
        within their window: a counter an earlier answer showed higher keeps that value,
        unless the table no longer holds it and it is no longer read (:func:`_ended`)."""
        seen = self._seen
        known = seen.get(key)
        if known:
            merged: dict[str, int] | None = None
            for name, value in known.items():
                if value > counts.get(name, 0):
                    if name not in counts and counter_ended(name, now, reach):
                        continue  # removed from the table, read by no window
                    if merged is None:
                        merged = dict(counts)
                    merged[name] = value
            if merged is not None:
                counts = merged
        if not self._cache_size:
            return counts
        if known is None and len(seen) >= self._cache_size:
            with contextlib.suppress(KeyError, StopIteration, RuntimeError):
                # the oldest; another thread may have been first
                dropped = seen.pop(next(iter(seen)))
                until = counters_end(dropped)
                if until > self._forgot_until:
                    self._forgot_until = until
        seen[key] = counts
        return counts

    def _write(
        self,
        key: str,
        windows: Windows,
        units: int,
        now: float,
        seen: Mapping[str, int],
        ttl_floor: int,
    ) -> Steps[dict[str, int]]:
        """One conditional update of ``units`` on every window (with the debt it
        carries); the counts this process knows once it is applied."""
        flight = self._board(key, windows, units, now)
        unpaid = self._debt.get(key)
        request = self._update(
            key, windows, units, now, seen, flight[3], ttl_floor, dict(unpaid) if unpaid else None
        )
        try:
            answer = yield request
        except BaseException:  # refused, failed, timed out or abandoned: nothing paid
            self._land(key, flight, False)
            raise
        known = self._remember(key, counters(answer.get("Attributes")), now, _reach(windows))
        self._land(key, flight, True)
        return known

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
        owed: Mapping[str, int] | None = None,
        ttl_floor: int = 0,
        unpaid: Mapping[str, int] | None = None,
    ) -> Call:
        """The conditional ``UpdateItem`` adding ``cost`` (and the units ``owed``) to
        every window's counter.

        ``unpaid`` is the key's whole debt: the part of it another update in flight
        carries is not added here, but it is kept out of this update's room, since this
        update may be applied first and the other then refused (it would be counted
        twice when the other lands first: this update is refused while it could have
        passed, never admitted past the limit).

        Counters of other windows stay while any limit may read them (other limit
        strings of the key: a callable limit, a plan change, a rolling deploy): only
        counters no window reads any more are removed (:func:`_ended`), and the TTL
        is never lowered: it covers every live counter this process knows of, and a
        condition refuses an update that would shorten the item's TTL (the retry
        learns the item's counters from the refusal).
        """
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
            owed_now = owed.get(current) if owed else None
            if owed_now:  # units admitted here while the table could not answer
                amount += owed_now
                values[f":n{i}"] = {"N": str(amount)}
                adds.append(f"#c{i} :n{i}")
            else:
                adds.append(f"#c{i} :n")
            # the key's debt another update in flight carries: kept out of the room
            reserved = unpaid.get(current, 0) - (owed_now or 0) if unpaid else 0
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
                owed_before = owed.get(previous) if owed else None
                if owed_before:  # the previous window's local units: written there too
                    values[f":d{i}"] = {"N": str(owed_before)}
                    adds.append(f"#p{i} :d{i}")
                    guess += owed_before
                if unpaid:  # and those another update in flight carries
                    guess += max(0, unpaid.get(previous, 0) - (owed_before or 0))
                base = math.floor(guess * previous_weight(seconds, now)) if guess else 0
            values[f":m{i}"] = {"N": str(window.limit - amount - base - max(0, reserved))}
            conditions.append(f"(attribute_not_exists(#c{i}) OR #c{i} <= :m{i})")
            # Sliding windows read the previous window; one window more covers clock skew.
            ttl = max(ttl, (index + 2) * seconds)
        reach = _reach(windows)
        stale: list[str] = []
        for name in seen:
            if name in live:
                continue
            seconds, index = counter_window(name)
            if (index + 1 + reach) * seconds <= now:
                if len(stale) < _MAX_REMOVALS:
                    stale.append(name)
            elif (index + 2) * seconds > ttl:
                ttl = (index + 2) * seconds  # another limit's live counter, as it set it
        if ttl_floor > ttl:
            ttl = ttl_floor
        values[":t"] = {"N": str(ttl)}
        conditions.append("(attribute_not_exists(#t) OR #t <= :t)")
        if not any(add.endswith(" :n") for add in adds):
            del values[":n"]  # every window adds its own amount (units owed)
        expression = f"ADD {', '.join(adds)} SET #t = :t"
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
        decision = decide(plus(seen, self._debt.get(key)), windows, cost, now)
        if not decision.allowed:
            return decision  # what we saw is a lower bound: refused without a call
        ttl_floor = 0
        for _ in range(_MAX_ATTEMPTS):
            try:
                known = yield from self._write(key, windows, cost, now, seen, ttl_floor)
            except ConditionFailed as exc:
                item = failed_item(exc)
                if item is None:  # the transport dropped the old item: read it
                    item = (yield self._get_item(key)).get("Item")
                seen = counters(item)  # the table's own values, for the next guess
                ttl_floor = int(number(item, self._ttl) or 0)
                known = self._remember(key, seen, now, _reach(windows))
                decision = decide(plus(known, self._debt.get(key)), windows, cost, now)
                if not decision.allowed:
                    return decision
                # a wrong guess of a sliding window's previous count, or of the TTL
                continue
            return decide(known, windows, cost, now, applied=True)
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
        ttl_floor = 0
        for _ in range(_MAX_LEASE_ATTEMPTS):
            counts = plus(seen, self._debt.get(key))
            units = min(want, room(counts, windows, now))
            if units < cost:
                return decide(counts, windows, cost, now), 0, dict(counts)
            try:
                known = yield from self._write(key, windows, units, now, seen, ttl_floor)
            except ConditionFailed as exc:
                item = failed_item(exc)
                if item is None:  # the transport dropped the old item: read it
                    item = (yield self._get_item(key)).get("Item")
                seen = counters(item)
                ttl_floor = int(number(item, self._ttl) or 0)
                self._remember(key, seen, now, _reach(windows))
                # Someone else leased meanwhile: ask for less (it fits more often under
                # contention), at most what is left.
                want = max(cost, want // 2)
                continue
            return None, units, known
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


def _reach(windows: Windows) -> int:
    """How many windows past its own a counter of ``windows``' key is read: 1 when they
    slide (a sliding window weighs its previous window), else 0. A key's limits all
    share their rule's strategy, whichever limit string a request gets."""
    for window in windows:
        if window.sliding:
            return 1
    return 0
