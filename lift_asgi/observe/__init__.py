"""Observability: request ids, log records, DynamoDB cost per request, OpenTelemetry.

::

    app.add_middleware(RequestObserver)      # added last: the outermost stage

- :class:`RequestObserver` (:mod:`.middleware`): the request id (``X-Request-ID`` in and
  out, on every response), one structured request record per request, the request's
  DynamoDB cost, and, with ``otel=True``, spans and metrics.
- :func:`current_request_id`, :func:`current_ids` (:mod:`.ids`); :func:`current_cost`
  (:mod:`.cost`): what a handler reads.
- :class:`RequestContextFilter`, :class:`JsonFormatter`, :func:`log_handler`,
  :func:`configure_logging` (:mod:`.logs`): ``request_id`` and ``tenant`` on every
  record, one JSON object a line.

Names are imported on first use: the transports import :mod:`.cost` on every process
start, and OpenTelemetry is imported only when ``otel=True`` asks for it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lift_asgi.observe.cost import OperationCost, RequestCost, current_cost
    from lift_asgi.observe.ids import RequestIds, current_ids, current_request_id
    from lift_asgi.observe.logs import (
        JsonFormatter,
        RequestContextFilter,
        configure_logging,
        log_handler,
    )
    from lift_asgi.observe.middleware import RequestObserver

__all__ = [
    "JsonFormatter",
    "OperationCost",
    "RequestContextFilter",
    "RequestCost",
    "RequestIds",
    "RequestObserver",
    "configure_logging",
    "current_cost",
    "current_ids",
    "current_request_id",
    "log_handler",
]

_WHERE = {
    "OperationCost": "cost",
    "RequestCost": "cost",
    "current_cost": "cost",
    "RequestIds": "ids",
    "current_ids": "ids",
    "current_request_id": "ids",
    "JsonFormatter": "logs",
    "RequestContextFilter": "logs",
    "log_handler": "logs",
    "configure_logging": "logs",
    "RequestObserver": "middleware",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
