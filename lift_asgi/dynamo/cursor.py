"""Opaque, signed pagination cursors bound to a tenant and a query.

A cursor carries DynamoDB's ``LastEvaluatedKey`` (base64url JSON) and an HMAC-SHA256
tag (128 bits) over it *and* over a binding the server recomputes from the request:
table, index, tenant and the shape of the query (partition key, sort-key condition,
filter, direction). A cursor that was forged, edited, issued to another tenant or for
another listing fails the tag check and is a 400 (:class:`~lift_asgi.errors.InvalidCursor`),
never another tenant's page.

The secret, in order: the ``cursor_secret`` option, the ``LIFT_ASGI_CURSOR_SECRET``
environment variable, else a random secret made once per process. The random default is
fine for one process; several uvicorn workers or Lambda containers must share a secret
(set the variable), or a cursor issued by one is refused by the others.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Mapping
from typing import Any

from lift_asgi.errors import ConfigurationError, InvalidCursor

__all__ = ["CURSOR_SECRET_ENV", "CursorSigner", "resolve_secret"]

CURSOR_SECRET_ENV = "LIFT_ASGI_CURSOR_SECRET"
_MIN_SECRET = 16
_MAX_CURSOR = 4096
_TAG_BYTES = 16
_CONTEXT = b"lift-asgi-cursor-v1\x00"
_PROCESS_SECRET = secrets.token_bytes(32)
_TYPES = frozenset({"S", "N", "B"})


def resolve_secret(option: str | bytes | None, *, name: str = "cursor_secret") -> bytes:
    """The signing key from the option, the environment, or the per-process default."""
    if option is None:
        option = os.environ.get(CURSOR_SECRET_ENV) or None
        name = CURSOR_SECRET_ENV if option is not None else name
    if option is None:
        return _PROCESS_SECRET
    secret = option.encode() if isinstance(option, str) else option
    if not isinstance(secret, bytes) or len(secret) < _MIN_SECRET:
        raise ConfigurationError(name, f"must be at least {_MIN_SECRET} bytes")
    return secret


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class CursorSigner:
    """Signs ``LastEvaluatedKey`` values into cursors and checks them back."""

    __slots__ = ("_key",)

    def __init__(self, secret: bytes) -> None:
        self._key = secret

    def _tag(self, binding: bytes, payload: bytes) -> bytes:
        mac = hmac.new(self._key, _CONTEXT, hashlib.sha256)
        mac.update(hashlib.sha256(binding).digest())
        mac.update(payload)
        return mac.digest()[:_TAG_BYTES]

    def encode(self, last_key: Mapping[str, Any], binding: bytes) -> str:
        payload = json.dumps(last_key, separators=(",", ":"), sort_keys=True).encode()
        return f"{_b64(payload)}.{_b64(self._tag(binding, payload))}"

    def decode(self, cursor: object, binding: bytes) -> dict[str, Any]:
        """The ``LastEvaluatedKey`` in ``cursor``; :class:`InvalidCursor` unless it was
        signed here for this ``binding``."""
        if not isinstance(cursor, str) or not 0 < len(cursor) <= _MAX_CURSOR:
            raise InvalidCursor("The cursor is not valid for this listing.")
        body, _, tag = cursor.partition(".")
        try:
            payload = _unb64(body)
            given = _unb64(tag)
        except (binascii.Error, ValueError):
            raise InvalidCursor("The cursor is not valid for this listing.") from None
        if not hmac.compare_digest(given, self._tag(binding, payload)):
            raise InvalidCursor("The cursor is not valid for this listing.")
        try:
            last_key = json.loads(payload)
        except ValueError:
            raise InvalidCursor("The cursor is not valid for this listing.") from None
        if (
            not isinstance(last_key, dict)
            or not last_key
            or not all(
                isinstance(value, dict) and len(value) == 1 and next(iter(value)) in _TYPES
                for value in last_key.values()
            )
        ):
            raise InvalidCursor("The cursor is not valid for this listing.")
        return last_key
