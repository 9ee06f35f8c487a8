"""Standard-library logging: request id and tenant on every record, JSON lines.

::

    logging.basicConfig(level=logging.INFO, handlers=[log_handler(json=True)])

:class:`RequestContextFilter` goes on a *handler* (a filter on a logger sees only what is
logged to that logger itself, not its children's records): it gives every record the
handler writes a ``request_id`` and a ``tenant`` (``None`` outside a request), the
handler's own ``log.info(...)`` lines and the suite's warnings alike.

:class:`JsonFormatter` writes one JSON object per line: ``time``, ``level``, ``logger``,
``message``, ``request_id``, ``tenant``, then, on the request record of
:class:`~lift_asgi.observe.RequestObserver`, its fields (``method``, ``route``,
``status``, ``duration_ms``, ``dynamodb``...), and ``exception`` when there is one.

Why a formatter of our own rather than python-json-logger: the record's fields are ours
and few, the formatter must write *only* those (an ``extra=`` a library logs could
otherwise carry a header or a body into the line), and twenty lines of ``json.dumps``
keep a dependency out of every Lambda package.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import IO, Any, Final

from lift_asgi._json import strict_encoder
from lift_asgi.observe.ids import current_ids

__all__ = [
    "RECORD_ATTRIBUTE",
    "JsonFormatter",
    "RequestContextFilter",
    "configure_logging",
    "log_handler",
]

#: The attribute of the request record's :class:`logging.LogRecord` holding its fields.
RECORD_ATTRIBUTE: Final = "lift_request"


class RequestContextFilter(logging.Filter):
    """Put ``request_id`` and ``tenant`` (the tenant id) on every record; never drops one.

    A record that already has them (the request record sets its own) keeps them.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            ids = current_ids()
            record.request_id = ids.request_id if ids is not None else None
            record.tenant = ids.tenant if ids is not None else None
        elif not hasattr(record, "tenant"):
            record.tenant = None
        return True


# One encoder, built once (json.dumps with options builds a new one per call). Strict
# (lift_asgi._json): a NaN in a record's fields was written as NaN, which no JSON parser
# must accept, a tuple key made the record a logging error, and an unpaired surrogate in
# the message failed the stream's UTF-8 write.
_encode = strict_encoder(ensure_ascii=False, default=str)


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (see the module's docstring)."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": _utc(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None),
            "tenant": getattr(record, "tenant", None),
        }
        fields = getattr(record, RECORD_ATTRIBUTE, None)
        if isinstance(fields, dict):
            line.update(fields)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        return _encode(line)


_last_second: tuple[int, str] = (0, "1970-01-01T00:00:00")


def _utc(created: float) -> str:
    """ISO 8601 in UTC with milliseconds; the formatted second is reused within it."""
    global _last_second
    seconds = int(created)
    last = _last_second  # one tuple: threads never see one second with another's text
    if last[0] != seconds:
        last = _last_second = (seconds, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)))
    return f"{last[1]}.{int((created - seconds) * 1000):03d}Z"


def log_handler(*, json: bool = True, stream: IO[str] | None = None) -> logging.Handler:
    """A stream handler (standard error by default) with :class:`RequestContextFilter`
    and :class:`JsonFormatter` (``json=False``: a text line ending with the ids)."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.addFilter(RequestContextFilter())
    handler.setFormatter(
        JsonFormatter()
        if json
        else logging.Formatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s "
            "[request_id=%(request_id)s tenant=%(tenant)s]"
        )
    )
    return handler


def configure_logging(
    *,
    json: bool = True,
    level: int = logging.INFO,
    stream: IO[str] | None = None,
    access_log: bool = False,
) -> logging.Handler:
    """Every record of the process through one :func:`log_handler` on the root logger.

    Replaces the root logger's handlers (Lambda's runtime installs its own), and makes
    uvicorn's loggers propagate to it instead of writing their own text lines, so every
    line on standard error is JSON. uvicorn's access log is switched off unless
    ``access_log``: the request record says all it says, and more. Call it when the app
    module is imported (uvicorn has configured its loggers by then). Returns the handler.
    """
    handler = log_handler(json=json, stream=stream)
    logging.basicConfig(level=level, handlers=[handler], force=True)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    logging.getLogger("uvicorn.access").disabled = not access_log
    return handler
