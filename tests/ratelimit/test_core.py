"""The window arithmetic every backend shares: pure functions of counts and time."""

from __future__ import annotations

import math

import pytest

from lift_asgi.ratelimit.core import Window, counter_name, decide

from .conftest import T0

MINUTE = 60


def counts_at(now: float, seconds: int, current: int, previous: int = 0) -> dict[str, int]:
    index = int(now // seconds)
    counts = {counter_name(seconds, index): current}
    if previous:
        counts[counter_name(seconds, index - 1)] = previous
    return counts


def test_fixed_window_admits_up_to_the_limit_then_waits_for_the_next_window() -> None:
    window = (Window(10, MINUTE),)
    now = T0 + 15
    assert decide(counts_at(now, MINUTE, 9), window, 1, now).allowed
    refused = decide(counts_at(now, MINUTE, 10), window, 1, now)
    assert not refused.allowed
    assert refused.remaining == 0
    assert refused.retry_after == pytest.approx(45)
    assert refused.reset == pytest.approx(T0 + 60)
    assert refused.blocked_until == pytest.approx(T0 + 60)
    # Across the boundary the old counter is simply another window's: ignored.
    later = T0 + 61
    fresh = decide(counts_at(now, MINUTE, 10), window, 1, later)
    assert fresh.allowed and fresh.remaining == 9


def test_a_refused_cost_is_not_counted_and_leaves_room_for_smaller_ones() -> None:
    window = (Window(10, MINUTE),)
    big = decide(counts_at(T0, MINUTE, 8), window, 3, T0)
    assert not big.allowed and big.remaining == 2
    assert big.blocked_until == 0  # a cost of 1 still passes: not blocked
    assert decide(counts_at(T0, MINUTE, 8), window, 2, T0).allowed


def test_sliding_window_weights_the_previous_window() -> None:
    window = (Window(10, MINUTE, sliding=True),)
    # 10 hits in the previous window; 15 s into this one 3/4 of them still count.
    now = T0 + 15
    counts = counts_at(now, MINUTE, 0, previous=10)
    assert decide(counts, window, 1, now).remaining == 10 - 7 - 1
    assert decide(counts_at(now, MINUTE, 2, previous=10), window, 1, now).allowed
    refused = decide(counts_at(now, MINUTE, 3, previous=10), window, 1, now)
    assert not refused.allowed
    # floor(10 * f) + 3 + 1 <= 10 once 10 * f < 7, i.e. f < 0.7: 18 s into the window.
    assert refused.retry_after == pytest.approx(3)
    assert refused.blocked_until == pytest.approx(T0 + 18)


def test_sliding_window_full_current_window_waits_into_the_next() -> None:
    window = (Window(10, MINUTE, sliding=True),)
    now = T0 + 30
    refused = decide(counts_at(now, MINUTE, 10), window, 1, now)
    assert not refused.allowed
    # Next window: floor(10 * f) + 1 <= 10 once f < 1: just after it starts.
    assert refused.retry_after == pytest.approx(30)
    blocked = decide(counts_at(now, MINUTE, 10, previous=0), window, 5, now)
    # A cost of 5 needs floor(10 * f) <= 5, f < 0.6: 24 s into the next window.
    assert blocked.retry_after == pytest.approx(30 + 24)


def test_multi_window_needs_every_window_and_reports_the_longest_wait() -> None:
    windows = (Window(2, 1), Window(3, MINUTE))
    now = T0 + 10.5
    counts = {counter_name(1, int(now)): 2, counter_name(MINUTE, int(now // MINUTE)): 2}
    refused = decide(counts, windows, 1, now)
    assert not refused.allowed and refused.index == 0
    assert refused.retry_after == pytest.approx(0.5)
    counts = {counter_name(1, int(now)): 0, counter_name(MINUTE, int(now // MINUTE)): 3}
    refused = decide(counts, windows, 1, now)
    assert not refused.allowed and refused.index == 1
    assert refused.retry_after == pytest.approx(49.5)
    counts = {counter_name(1, int(now)): 1, counter_name(MINUTE, int(now // MINUTE)): 1}
    admitted = decide(counts, windows, 1, now)
    assert admitted.allowed
    assert (admitted.index, admitted.remaining) == (0, 0)  # the tightest window


def test_applied_counts_are_only_reported() -> None:
    window = (Window(5, MINUTE),)
    decision = decide(counts_at(T0, MINUTE, 5), window, 1, T0, applied=True)
    assert decision.allowed and decision.remaining == 0
    assert decision.blocked_until == pytest.approx(T0 + 60)


def test_a_cost_above_the_limit_is_refused_for_one_window() -> None:
    decision = decide({}, (Window(2, MINUTE),), 3, T0)
    assert not decision.allowed
    assert math.isfinite(decision.retry_after) and decision.retry_after == pytest.approx(60)
