"""What a process owes the rate-limit table: the units it admitted while the table could
not answer (``on_failure="local"``), and the updates it has in flight.

:class:`LocalDebt` is the part of :class:`~lift_asgi.ratelimit.steps.CounterSteps` that
decides alone (:meth:`LocalDebt.acquire_local`) and keeps the books so that this process
never admits more than a window's limit whatever the table does: a unit admitted here is
owed until an update that carried it succeeds; an update carries only what no other
update in flight carries (:meth:`LocalDebt._board`), and pays exactly that when it lands
(:meth:`LocalDebt._land`).
"""

from __future__ import annotations

import contextlib
import math

from lift_asgi.ratelimit.core import Decision, Windows, counter_name, decide
from lift_asgi.ratelimit.items import counter_ended, counters_end, plus

__all__ = ["Flight", "LocalDebt"]

#: One conditional update in flight: (windows, units it adds to each, now, the units it
#: carries of the key's debt per counter name, or None).
Flight = tuple[Windows, int, float, "dict[str, int] | None"]


class LocalDebt:
    """Units owed to the table and updates in flight, per key (a mixin of the storages'
    :class:`~lift_asgi.ratelimit.steps.CounterSteps`, which owns ``_seen``)."""

    _seen: dict[str, dict[str, int]]
    _forgot_until: float
    _cache_size: int

    def _configure_debt(self) -> None:
        # Units admitted in this process while the table could not answer, per key and
        # counter, added to the key's next write (see acquire_local) and kept until a
        # write that carried them succeeds.
        self._debt: dict[str, dict[str, int]] = {}
        self._debt_swept = -math.inf
        # Updates sent and not answered yet, per key: what they may admit counts when
        # this process decides alone, and the debt one carries is not carried twice.
        self._flying: dict[str, list[Flight]] = {}

    def _board(self, key: str, windows: Windows, units: int, now: float) -> Flight:
        """Record an update about to be sent, with the part of the key's debt it carries
        (what no other update in flight carries already)."""
        flights = self._flying.get(key)
        debt = self._debt.get(key)
        owed: dict[str, int] | None = None
        if debt:
            carried: dict[str, int] = {}
            for other in flights or ():
                for name, units_carried in (other[3] or {}).items():
                    carried[name] = carried.get(name, 0) + units_carried
            owed = {}
            for window in windows:
                seconds = window.seconds
                index = int(now // seconds)
                names = [counter_name(seconds, index)]
                if window.sliding:
                    names.append(counter_name(seconds, index - 1))
                for name in names:
                    left = debt.get(name, 0) - carried.get(name, 0)
                    if left > 0:
                        owed[name] = left
        flight: Flight = (windows, units, now, owed or None)
        if flights is None:
            self._flying[key] = [flight]
        else:
            flights.append(flight)
        return flight

    def _land(self, key: str, flight: Flight, written: bool) -> None:
        """The update of ``flight`` was answered (or failed): when ``written``, the debt
        it carried is paid, exactly those units; units counted here since stay owed."""
        flights = self._flying.get(key)
        if flights is not None:
            with contextlib.suppress(ValueError):
                flights.remove(flight)
            if not flights:
                self._flying.pop(key, None)
        owed = flight[3]
        if written and owed:
            debt = self._debt.get(key)
            if debt is not None:
                now = flight[2]
                for name, units in owed.items():
                    left = debt.get(name, 0) - units
                    if left > 0:
                        debt[name] = left
                    else:
                        debt.pop(name, None)
                for name in [name for name in debt if counter_ended(name, now, 1)]:
                    del debt[name]  # an ended window's units: no window reads them
                if not debt:
                    self._debt.pop(key, None)

    def acquire_local(self, key: str, windows: Windows, cost: int, now: float) -> Decision | None:
        """Decide in this process, for when the table cannot answer.

        The counts are what the table last said for ``key`` (which include everything
        this process admitted through it), plus the units admitted here since, plus
        what the updates still in flight for ``key`` would add; admitted units are added
        to that debt, and the next successful write for ``key`` adds the debt to the
        table in the same conditional update (units admitted here while that write was
        in flight stay owed, for the write after it). So this process never
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
        flights = self._flying.get(key)
        if flights:  # updates in flight may still be admitted: count them as if they were
            counts = dict(counts)
            for flight_windows, units, flight_now, _ in flights:
                for window in flight_windows:
                    name = counter_name(window.seconds, int(flight_now // window.seconds))
                    counts[name] = counts.get(name, 0) + units
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
