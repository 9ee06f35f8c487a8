"""ClientRequestToken for moto, as DynamoDB keeps it.

DynamoDB remembers a TransactWriteItems token for 10 minutes after the first request
that used it completed: the same token with the same request answers that first
success again without applying anything; the same token with any other parameter is an
``IdempotentParameterMismatchException`` (HTTP 400). moto ignores the token, so a
transaction whose answer was lost and that a client retries is applied twice (or fails
its own conditions). :class:`TokenRegistry` is the memory; the moto front consults it
under its one-request-at-a-time lock, so two requests with one token never race.

Only successes are remembered (a cancelled or refused transaction wrote nothing, and
its retry is evaluated anew), which is also what ministack does.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["WINDOW_SECONDS", "Remembered", "TokenRegistry", "mismatch_body"]

#: How long DynamoDB keeps a ClientRequestToken.
WINDOW_SECONDS = 600.0


@dataclass(frozen=True, slots=True)
class Remembered:
    """A first successful answer: what the request was, and what it got."""

    fingerprint: str
    status: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    at: float


def fingerprint(payload: dict[str, Any]) -> str:
    """The request without its token, canonically: "the same request" means equal JSON."""
    rest = {k: v for k, v in payload.items() if k != "ClientRequestToken"}
    return json.dumps(rest, sort_keys=True, separators=(",", ":"))


def mismatch_body() -> bytes:
    return json.dumps(
        {
            "__type": "com.amazonaws.dynamodb.v20120810#IdempotentParameterMismatchException",
            "message": "The request uses the same client token as a previous, but "
            "non-identical request.",
        }
    ).encode()


class TokenRegistry:
    """Tokens seen in the last :data:`WINDOW_SECONDS`, oldest first (not thread-safe:
    the caller holds the server's lock)."""

    def __init__(
        self, window: float = WINDOW_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.window = window
        self._clock = clock
        self._seen: OrderedDict[str, Remembered] = OrderedDict()

    def _expire(self) -> None:
        horizon = self._clock() - self.window
        while self._seen:
            token, first = next(iter(self._seen.items()))
            if first.at > horizon:
                return
            del self._seen[token]

    def lookup(self, token: str) -> Remembered | None:
        self._expire()
        return self._seen.get(token)

    def remember(
        self,
        token: str,
        print_: str,
        status: str,
        headers: list[tuple[str, str]],
        body: bytes,
    ) -> None:
        self._seen[token] = Remembered(print_, status, tuple(headers), body, self._clock())
        self._seen.move_to_end(token)
