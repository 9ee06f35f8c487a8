"""Request ids: accepted from the client when safe, else made here; the Lambda ids kept.

The id is what an operator pastes into a log search, so a client's value is accepted
only when it cannot break a log line or a header: 1 to 128 characters from
``[A-Za-z0-9._:-]``. Anything else (too long, spaces, quotes, newlines, non-ASCII) is
replaced, never cleaned up: a cleaned value would look like the client's and not be it.

Under AWS Lambda (Mangum puts the invocation's context in ``scope["aws.context"]``) the
invocation's ``aws_request_id`` and the X-Ray ``X-Amzn-Trace-Id`` are kept beside it,
so a request record can be joined with Lambda's own ``START RequestId: ...`` lines and
with X-Ray. When the client sent no usable id, the invocation's id is the request id.
"""

from __future__ import annotations

import functools
import itertools
import operator
import os
import re
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Final, NamedTuple

from starlette.types import Scope

from lift_asgi.stages import current_context

if TYPE_CHECKING:
    from lift_asgi.stages import RequestContext

__all__ = [
    "MAX_REQUEST_ID",
    "RequestIds",
    "current_ids",
    "current_request_id",
    "make_ids",
    "new_request_id",
    "valid_request_id",
    "with_context",
]

MAX_REQUEST_ID: Final = 128
_SAFE: Final = re.compile(r"[A-Za-z0-9._:-]{1,128}")
# X-Ray: "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
_TRACE: Final = re.compile(r"[A-Za-z0-9=;:._-]{1,256}")


class RequestIds(NamedTuple):
    """The ids of the request being handled (and, for the log filter, its tenant).

    Made once per observed request, so it is a named tuple: the observer builds it with
    ``tuple.__new__`` in C (:data:`make_ids`), no constructor run in Python. It carries
    what :func:`~lift_asgi.observe.current_cost` needs to open the request's DynamoDB
    accounting on its first call, not before.
    """

    request_id: str
    """Echoed as ``X-Request-ID`` and put on every log record."""
    lambda_request_id: str | None = None
    """The Lambda invocation's ``aws_request_id`` (``None`` outside Lambda)."""
    trace_id: str | None = None
    """``X-Amzn-Trace-Id`` from the request or the Lambda environment, when present."""
    context: RequestContext | None = None
    """The request's stage contract, where the tenant stage puts the tenant."""
    count_cost: bool = False
    """Whether the request's DynamoDB calls are counted (``context.cost``)."""
    telemetry: Any = None
    """The OpenTelemetry integration the calls report to, when it is on."""

    def __repr__(self) -> str:
        return (
            f"RequestIds(request_id={self.request_id!r}, "
            f"lambda_request_id={self.lambda_request_id!r}, trace_id={self.trace_id!r})"
        )

    @property
    def tenant(self) -> str | None:
        """The id of the tenant the tenant stage resolved, once it has."""
        tenant = self.context.tenant if self.context is not None else None
        return tenant.id if tenant is not None else None


#: ``make_ids(RequestIds, (request_id, lambda_request_id, trace_id, context, count_cost,
#: telemetry))``: a :class:`RequestIds` from all six fields, in C (what ``_make`` does).
make_ids: Final[Callable[[type[RequestIds], tuple[Any, ...]], RequestIds]] = tuple.__new__


def valid_request_id(value: str) -> bool:
    """Whether a client's value is accepted as the request id as it is."""
    return _SAFE.fullmatch(value) is not None


def _formatted(prefix: str, start: int) -> Iterator[str]:
    """``prefix`` then a 64-bit counter from ``start`` in 16 hex digits, wrapping at
    2**64: one ``next()`` in C per id, one concatenation.

    The ids come in blocks of 256: a block's first 30 characters (the prefix and the
    counter's upper 14 digits) are formatted once, and each id adds its last two digits
    from a table. Formatting every id printf-style made a number and ran the formatter
    per request (~3,500 machine instructions; ~800 now). All of it runs in C, blocks
    included: no Python frame, so no thread can be switched to mid-``next()``.
    """
    # printf-style: str.format would parse its template again on every block
    template = prefix.replace("%", "%%") + "%014x"
    highs = itertools.chain(
        range(start >> 8, _WRAP >> 8),
        itertools.chain.from_iterable(itertools.repeat(range(_WRAP >> 8))),
    )
    # block n: map(operator.add, repeat(template % n), _LOW_DIGITS)
    blocks = map(
        functools.partial(map, operator.add),
        map(itertools.repeat, map(template.__mod__, highs)),
        itertools.repeat(_LOW_DIGITS),
    )
    first = itertools.islice(next(blocks), start & 0xFF, None)  # the start's own block
    return itertools.chain(first, itertools.chain.from_iterable(blocks))


def _seed() -> None:
    global generated
    generated = _formatted(os.urandom(8).hex(), int.from_bytes(os.urandom(4), "big"))


_WRAP: Final = 1 << 64
_LOW_DIGITS: Final = tuple(f"{low:02x}" for low in range(256))
#: The ids :func:`new_request_id` hands out. The observer calls ``next()`` on it itself
#: (no Python frame per id), through this module: a fork replaces it.
generated: Iterator[str] = iter(())
_seed()
os.register_at_fork(after_in_child=_seed)  # a forked worker must not repeat its parent's ids


def new_request_id() -> str:
    """32 hex digits: 64 random bits drawn once per process (again after a fork), then a
    64-bit counter. Unique like a UUID4 without a system call per request; an id is
    not a secret, so it need not be unpredictable."""
    return next(generated)


def with_context(ids: RequestIds, context: RequestContext) -> RequestIds:
    """``ids`` with ``context`` in their ``context`` field (made in C)."""
    return make_ids(RequestIds, (ids[0], ids[1], ids[2], context, ids[4], ids[5]))


def current_ids() -> RequestIds | None:
    """The ids of the request being handled, ``None`` outside one (or when no
    :class:`~lift_asgi.observe.RequestObserver` observes it).

    The observer keeps them in the request's context (``context(scope).ids``, without
    that context: see :attr:`~lift_asgi.stages.RequestContext.ids`), which the suite's one
    ContextVar (:data:`lift_asgi.stages.context_var`) holds for the request; they are
    returned with it."""
    ctx = current_context()
    if ctx is None:
        return None
    ids: RequestIds | None = ctx.ids
    return with_context(ids, ctx) if ids is not None else None


def current_request_id() -> str | None:
    """The request id of the request being handled, ``None`` outside one."""
    ids = current_ids()
    return ids.request_id if ids is not None else None


def lambda_ids(scope: Scope, header_trace: bytes | None) -> tuple[str | None, str | None]:
    """The invocation's ``aws_request_id`` and the trace id, validated; ``(None, None)``
    outside Lambda and without an ``X-Amzn-Trace-Id`` header."""
    invocation: str | None = None
    aws_context: Any = scope.get("aws.context")
    if aws_context is not None:
        found = getattr(aws_context, "aws_request_id", None)
        if isinstance(found, str) and valid_request_id(found):
            invocation = found
    trace: str | None = None
    if header_trace is not None:
        trace = header_trace.decode("latin-1")
    elif aws_context is not None:
        trace = os.environ.get("_X_AMZN_TRACE_ID")  # set by the Lambda runtime per invocation
    if trace is not None and _TRACE.fullmatch(trace) is None:
        trace = None
    return invocation, trace
