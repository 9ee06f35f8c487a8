"""The rate-limit item layout, shared by the async and the sync storages.

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
  nothing, so no window ever holds more than its limit, whatever the concurrency. A key's
  limit may differ by request (a callable limit, a plan change, a rolling deploy), so the
  item may hold other limits' counters: an update removes only counters no window reads
  any more, and never lowers the TTL (it covers every live counter it knows of, and a
  condition refuses an update that would shorten the item's TTL).

This module holds what both storages agree on: the item's key, how counters are read
back from an item (or from a failed condition's old item), and the URI options.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Generator, Mapping
from typing import Any, TypeVar

from lift_asgi.errors import ConfigurationError
from lift_asgi.ratelimit.core import COUNTER_NAME

__all__ = [
    "SORT_VALUE",
    "URI_OPTIONS",
    "Call",
    "Steps",
    "counter_ended",
    "counter_window",
    "counters",
    "counters_end",
    "failed_item",
    "number",
    "options",
    "plus",
]

T = TypeVar("T")
#: One DynamoDB call: ``(action, payload)``.
Call = tuple[str, dict[str, Any]]
#: A decision written once as a generator of calls (see :mod:`~lift_asgi.ratelimit.steps`).
Steps = Generator[Call, dict[str, Any], T]

SORT_VALUE = "rl"
URI_OPTIONS = frozenset(
    {
        "endpoint_url",
        "region",
        "region_name",
        "key_prefix",
        "pk",
        "sk",
        "ttl",
        "lease_horizon",
        "lease_max",
    }
)


def failed_item(exc: BaseException) -> dict[str, Any] | None:
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


def counters(item: Mapping[str, Any] | None) -> dict[str, int]:
    counts: dict[str, int] = {}
    if item:
        for name, value in item.items():
            if type(value) is dict and "N" in value and COUNTER_NAME.fullmatch(name):
                counts[name] = int(value["N"])
    return counts


def plus(seen: Mapping[str, int] | None, debt: Mapping[str, int] | None) -> Mapping[str, int]:
    """Counts the table reported plus units admitted here that it has not been told of."""
    if not debt:
        return seen or {}
    counts = dict(seen or {})
    for name, units in debt.items():
        counts[name] = counts.get(name, 0) + units
    return counts


def counter_window(name: str) -> tuple[int, int]:
    """``(seconds, index)`` of a counter named ``{seconds}s{index}`` (as :func:`counters`
    keeps them): its window is ``[index * seconds, (index + 1) * seconds)``."""
    seconds, _, index = name.partition("s")
    return int(seconds), int(index)


def counter_ended(name: str, now: float, reach: int) -> bool:
    """Whether the counter ``name`` is read by no window at ``now``: its window ended
    ``reach`` windows ago or more (1 when the key's windows slide: a sliding window
    weighs its previous window)."""
    seconds, index = counter_window(name)
    return (index + 1 + reach) * seconds <= now


def counters_end(counts: Mapping[str, int]) -> float:
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


def number(item: Mapping[str, Any] | None, name: str) -> float | None:
    value = item.get(name) if item else None
    if isinstance(value, dict) and "N" in value:
        return float(value["N"])
    return None


def options(uri: str | None, scheme: str, given: dict[str, Any]) -> dict[str, Any]:
    """Merge the URI's table and query options under the keyword arguments."""
    merged: dict[str, Any] = {}
    if uri:
        parts = urllib.parse.urlsplit(uri)
        if parts.scheme != scheme:
            raise ConfigurationError("uri", f"expected a {scheme}:// URI, not {uri!r}")
        table = urllib.parse.unquote(parts.netloc or parts.path.lstrip("/"))
        if table:
            merged["table"] = table
        for name, values in urllib.parse.parse_qs(parts.query, keep_blank_values=True).items():
            if name not in URI_OPTIONS:
                raise ConfigurationError(
                    name, f"unknown {scheme}:// option; known: {', '.join(sorted(URI_OPTIONS))}"
                )
            merged["region" if name == "region_name" else name] = values[-1]
    merged.update({k: v for k, v in given.items() if v is not None})
    table_name = merged.get("table")
    if not isinstance(table_name, str) or not table_name:
        raise ConfigurationError(
            "table", f"name the DynamoDB table: {scheme}://TABLE?endpoint_url=...&region=..."
        )
    return merged
