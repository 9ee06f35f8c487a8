"""Leased budgets: a process takes several units of a key's windows in one conditional
write and spends them locally, never admitting more than the limits.

Units are counted in DynamoDB when leased (the lease is one ``UpdateItem`` that adds
``n`` to every window's counter only if ``n`` fits under each limit, the sliding
window's weighted previous count included), so the table's counts never exceed the
limits however many processes lease; a process then admits from what it holds without a
call. What a process holds when it stops, or when a window ends, is lost (the window
under-admits by it), never double-spent.

How many units to lease (:meth:`LeaseBook.size`):

- a key seen for the first time, or one whose local rate is low, or one back after a
  pause longer than ``8 * horizon`` (twice what a lease spans), leases exactly the
  request's cost: one call per request, as without leases;
- a key with a sustained local rate (an EWMA over its last leases, measured over at least
  two intervals) leases what that rate spends in ``horizon`` seconds, and at least what
  it spends on 40 requests (1/40 call per request) when that takes at most
  ``4 * horizon`` seconds; at most ``max_units``, and never more than the rate spends
  before the shortest window ends; a burst (its last two intervals within
  ``horizon / 10``) starts slow: at most twice what this process has used of the key since its calls
  came quickly;
- never more than this process's share of what is left in the window, and never more
  than half of it. The share is what it spent between its lease calls over what the
  key's counter grew by meanwhile (every process's leases), an EWMA starting at 1/2;
  what is left is the room its last call saw. Among ``n`` equal processes a lease takes
  about ``1/n`` of what is left; alone, half of it: so leases shrink to one request's
  cost as the window runs out, and a process that is alone now cannot hold the last of
  the budget when another (a new Lambda container) arrives. Others may have leased
  since that call, so near exhaustion a process may still hold a lease while another
  refuses: the units are spent, not lost, unless the holder stops (within the bound
  below).

So a lease spans at most ``4 * horizon`` seconds of its process's rate, and the units
one process can strand per key (it stops, or its Lambda container is frozen) are at most
``min(max_units, max(rate * horizon, 40 * cost), rate * 4 * horizon)``. With
``horizon=0.5`` and unit costs: 2 s of the rate below 20 requests/s (20 units at 10/s),
40 units from 20 to 80/s, ``rate * horizon`` above, ``max_units`` (100) from 200/s; and
none below ``1 / (2 * horizon)`` requests/s, where every lease is the one request's cost
(a key requested a few times a minute leases one unit at a time). ``rate`` is the
process's measured rate, an EWMA that a burst raises; a burst within ``horizon / 10``
strands at most twice what it used (three requests 2 ms apart lease 1, 1, then 4), but
one spread over longer (say three requests over 60 ms, 50/s) may take a lease by its
rate, up to the bound, and strand it if the process then stops. That is the bound a
frozen container adds to a window's under-admission; the table never counts more than the limit.

``X-RateLimit-Remaining`` under a lease is ``limit - count + held``: the window's count as
this process's last DynamoDB call saw it (which includes every unit leased by anyone
until then), plus the units this process still holds. It never promises more than existed
at that call; other processes may have taken some since.
"""

from __future__ import annotations

import math
from typing import Any

from lift_asgi.errors import ConfigurationError
from lift_asgi.ratelimit.core import Decision, Windows, counter_name, decide, previous_weight

__all__ = ["Lease", "LeaseBook", "room"]

_SMOOTHING = 0.5  # weight of the newest rate in the EWMA
_SHARE = 2  # until measured, a lease takes at most 1/_SHARE of what is left in the window
_HALF = 1 / _SHARE  # ... and never more, even alone: near exhaustion leases shrink to one unit
_SUSTAINED = 2  # intervals a rate must be seen over before a lease of more than one request
_SPAN = 0.1  # intervals within this share of the horizon (50 ms at 0.5 s) are a burst
_FLOOR = 40  # requests a sustained rate's lease aims to cover: 1/40 call per request, half the
# 0.05 target, the other half left for the warm-up and each window's last call
_STRETCH = 4  # ... when the rate spends them within this many horizons
_PAUSE = 2 * _STRETCH  # horizons without a lease call after which a key is cold again


def room(counts: dict[str, int] | Any, windows: Windows, now: float) -> int:
    """Units every window of ``windows`` still has at ``now`` given ``counts``."""
    left = math.inf
    for window in windows:
        seconds = window.seconds
        index = int(now // seconds)
        used = counts.get(counter_name(seconds, index), 0)
        if window.sliding:
            previous = counts.get(counter_name(seconds, index - 1), 0)
            if previous:
                used += math.floor(previous * previous_weight(seconds, now))
        left = min(left, window.limit - used)
    return max(0, int(left)) if left != math.inf else 0


class Lease:
    """What this process holds of one key: ``held`` units, valid from ``start`` until
    ``until`` (the latest window start and the earliest window end of the windows it was
    taken in), and the counts the lease call returned (``counts``)."""

    __slots__ = (
        "before",
        "counts",
        "held",
        "observed",
        "rate",
        "share",
        "size",
        "start",
        "taken_at",
        "until",
        "used",
        "windows",
    )

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.held = 0
        self.rate = 0.0  # units per second, EWMA over leases
        self.observed = 0  # how many intervals the rate was measured over
        self.share = 1 / _SHARE  # this process's share of the key's spend, EWMA
        self.size = 0
        self.start = 0.0
        self.taken_at = -math.inf
        self.before = -math.inf  # when the lease before this one was taken
        self.until = 0.0
        self.used = 0  # units this process leased of the key since its calls came quickly
        self.windows: Windows = ()


class LeaseBook:
    """The leases of one storage, per key (at most ``cache_size`` keys; a lease dropped
    from a full book strands its units, never over-admits)."""

    def __init__(self, horizon: float, max_units: int, cache_size: int) -> None:
        if (
            not isinstance(horizon, int | float)
            or isinstance(horizon, bool)
            or not math.isfinite(horizon)
            or horizon < 0
        ):
            raise ConfigurationError(
                "lease_horizon", "a finite number of seconds >= 0 (0: no leases)"
            )
        if not isinstance(max_units, int) or isinstance(max_units, bool) or max_units < 1:
            raise ConfigurationError("lease_max", "an integer >= 1")
        self.horizon = float(horizon)
        self.max_units = max_units
        self._cache_size = max(1, cache_size)
        self._leases: dict[str, Lease] = {}
        self.stranded = 0  # units dropped unspent (window ended, lease replaced or evicted)

    def spend(self, key: str, windows: Windows, cost: int, now: float) -> Decision | None:
        """Admit ``cost`` from the key's lease, or ``None`` when it holds too little."""
        lease = self._leases.get(key)
        if lease is None or lease.held < cost:
            return None
        if not (lease.start <= now < lease.until) or lease.windows != windows:
            self.stranded += lease.held
            lease.held = 0
            return None
        lease.held -= cost
        return _decision(lease, windows, cost, now)

    def size(self, key: str, windows: Windows, cost: int, now: float, counts: Any) -> int:
        """How many units to ask for (see the module docs)."""
        lease = self._leases.get(key)
        if lease is None or self.horizon <= 0:
            return cost
        elapsed = now - lease.taken_at
        spent = lease.size - lease.held
        rate = (math.inf if spent else lease.rate) if elapsed <= 0 else spent / elapsed
        if elapsed > _PAUSE * self.horizon:
            # a pause twice as long as any lease spans: the key is cold again, its old rate
            # stale; it is seen over two intervals again before it leases more
            lease.rate = rate
            lease.observed = 0
            return cost
        if lease.rate:
            rate = _SMOOTHING * rate + (1 - _SMOOTHING) * lease.rate
        lease.rate = rate if math.isfinite(rate) else max(lease.rate, spent / 1e-3)
        lease.observed += 1
        if lease.observed < _SUSTAINED:
            return cost  # one quick pair of requests is not a sustained rate
        until = min(((int(now // w.seconds) + 1) * w.seconds for w in windows), default=now)
        span = self.horizon
        floor = _FLOOR * cost
        if 0 < lease.rate * span < floor:
            # A lease of a few units makes a call every few requests: stretch it, to
            # _FLOOR requests, when the rate spends them within _STRETCH horizons.
            span = min(_STRETCH * span, floor / lease.rate)
        want = lease.rate * min(span, until - now)
        # Not projected past the last call's view (what the others spent since): the
        # smaller leases that gives near exhaustion cost more calls than they spare.
        left = room(counts, windows, now)
        units = min(int(want), self.max_units, math.ceil(left * min(lease.share, _HALF)))
        if now - lease.before < self.horizon * _SPAN:
            # A burst (its last two intervals within horizon / 10): the rate it shows may
            # stop at once (a page's parallel calls, then a frozen container), so it
            # starts slow: at most twice what this process has used of the key.
            units = min(units, 2 * lease.used)
        return units if units >= 2 * cost else cost

    def granted(
        self, key: str, windows: Windows, cost: int, units: int, now: float, counts: dict[str, int]
    ) -> Decision:
        """Record a lease of ``units`` (``cost`` of them spent now); the decision."""
        leases = self._leases
        lease = leases.get(key)
        if lease is None:
            if len(leases) >= self._cache_size:
                dropped = leases.pop(next(iter(leases)))
                self.stranded += dropped.held
            lease = leases[key] = Lease()
        else:
            _measure_share(lease, windows, units, now, counts)
            if lease.held:
                self.stranded += lease.held  # an earlier window's units
        lease.counts = counts
        lease.held = units - cost
        lease.size = units
        if now - lease.taken_at >= self.horizon * _SPAN:
            lease.used = 0  # a pause: a burst after it starts slow from nothing again
        lease.used += units
        lease.before = lease.taken_at
        lease.taken_at = now
        lease.windows = windows
        lease.start = max(int(now // w.seconds) * w.seconds for w in windows)
        lease.until = min((int(now // w.seconds) + 1) * w.seconds for w in windows)
        return _decision(lease, windows, cost, now)

    def held(self, key: str) -> int:
        lease = self._leases.get(key)
        return lease.held if lease is not None else 0

    def forget(self, key: str) -> None:
        self._leases.pop(key, None)


def _measure_share(
    lease: Lease, windows: Windows, units: int, now: float, counts: dict[str, int]
) -> None:
    """Update ``lease.share``: what this process spent since its previous lease call,
    over what the key's counter grew by meanwhile (its own spending and every other
    process's leases), read on the longest window (the one that rolls over least)."""
    if not lease.size or lease.windows != windows:
        return
    seconds = max(w.seconds for w in windows)
    name = counter_name(seconds, int(now // seconds))
    before = lease.counts.get(name)
    if before is None:
        return  # a new window since the last call: nothing to compare
    mine = lease.size - lease.held
    others = max(0, counts.get(name, 0) - before - units)
    if mine + others:
        lease.share = _SMOOTHING * mine / (mine + others) + (1 - _SMOOTHING) * lease.share


def _decision(lease: Lease, windows: Windows, cost: int, now: float) -> Decision:
    """The admitted decision: the lease call's counts, minus what is still held."""
    counts = lease.counts
    held = lease.held
    if held:
        counts = dict(counts)
        for window in windows:
            name = counter_name(window.seconds, int(now // window.seconds))
            counts[name] = counts.get(name, 0) - held
    return decide(counts, windows, cost, now, applied=True)
