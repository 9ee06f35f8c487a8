"""Opaque, canonical, authenticated pagination cursors bound to a tenant and a query.

A cursor carries DynamoDB's ``LastEvaluatedKey`` encrypted with AES-256-GCM (the
``cryptography`` package, already installed through PyJWT), so it shows nothing of the
stored key layout (no tenant prefix, no key values, no attribute names). The binding
the server recomputes from the request (table, index, tenant and the shape of the
query: partition key, sort-key condition, filter, direction) is the associated data: a
cursor issued to another tenant or for another listing fails authentication like a
forged or edited one, and is a 400 (:class:`~lift_asgi.errors.InvalidCursor`), never
another tenant's page.

Layout: ``base64url(version ‖ nonce(12) ‖ ciphertext ‖ tag(16))`` without padding.
Cursors are canonical: the text must be exactly the strict unpadded base64url encoding
of its bytes (decoded, re-encoded and compared), so no second spelling of a cursor
(padding added, the unused low bits of the last character set) is accepted. The
plaintext is a length-prefixed binary form of the key (no escaping), so a cursor is
bounded: at most :data:`MAX_CURSOR` characters, checked before anything is decoded.

The key is derived (HKDF-SHA256) from the secret, in order: the ``cursor_secret``
option, the ``LIFT_ASGI_CURSOR_SECRET`` environment variable, else a random secret made
once per process. The random default is fine for one process; several uvicorn workers or
Lambda containers must share a secret (set the variable), or a cursor issued by one is
refused by the others.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import secrets
from collections.abc import Mapping
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from lift_asgi.errors import ConfigurationError, InvalidCursor

__all__ = ["CURSOR_SECRET_ENV", "MAX_CURSOR", "CursorSigner", "resolve_secret"]

CURSOR_SECRET_ENV = "LIFT_ASGI_CURSOR_SECRET"
_MIN_SECRET = 16
_VERSION = b"\x02"
_NONCE_BYTES = 12
_TAG_BYTES = 16
_INFO = b"lift-asgi cursor v2 aes-256-gcm"
_PROCESS_SECRET = secrets.token_bytes(32)
_TYPES = frozenset({"S", "N", "B"})
#: A LastEvaluatedKey holds at most the table's and one index's keys (4 attributes):
#: names up to 255 bytes, values up to 2048 bytes (a binary one is 2732 base64 characters).
_MAX_ATTRIBUTES = 4
_MAX_NAME = 255
_MAX_VALUE = 2732
_MAX_PLAINTEXT = _MAX_ATTRIBUTES * (2 + _MAX_NAME + 2 + 1 + 2 + _MAX_VALUE)
_OVERHEAD = len(_VERSION) + _NONCE_BYTES + _TAG_BYTES
#: The longest cursor this module issues or reads, in characters.
MAX_CURSOR = -(-(_MAX_PLAINTEXT + _OVERHEAD) * 4 // 3)
_ALPHABET = re.compile(rb"[A-Za-z0-9_-]+")
_INVALID = "The cursor is not valid for this listing."


def resolve_secret(option: str | bytes | None, *, name: str = "cursor_secret") -> bytes:
    """The cursor secret from the option, the environment, or the per-process default."""
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


def _pack(last_key: Mapping[str, Any]) -> bytes:
    """``{"pk": {"S": "x"}, ...}`` as ``len‖name len‖type len‖value ...`` (sorted)."""
    if not last_key or len(last_key) > _MAX_ATTRIBUTES:
        raise ValueError("a LastEvaluatedKey has 1 to 4 attributes")
    out = bytearray()
    for name in sorted(last_key):
        value = last_key[name]
        if not isinstance(value, Mapping) or len(value) != 1:
            raise ValueError(f"not a key attribute value: {value!r}")
        ((kind, text),) = value.items()
        if kind not in _TYPES or not isinstance(text, str):
            raise ValueError(f"not a key attribute value: {value!r}")
        for part, limit in ((name, _MAX_NAME), (kind, 1), (text, _MAX_VALUE)):
            raw = part.encode()
            if not 0 < len(raw) <= limit:
                raise ValueError("key attribute too long for a cursor")
            out += len(raw).to_bytes(2, "big") + raw
    return bytes(out)


def _unpack(data: bytes) -> dict[str, Any] | None:
    """The key :func:`_pack` made, or ``None`` for anything else."""
    key: dict[str, Any] = {}
    at, end = 0, len(data)
    previous = ""
    while at < end:
        parts: list[str] = []
        for _ in range(3):
            if at + 2 > end:
                return None
            size = int.from_bytes(data[at : at + 2], "big")
            at += 2
            if size == 0 or at + size > end:
                return None
            try:
                parts.append(data[at : at + size].decode())
            except UnicodeDecodeError:
                return None
            at += size
        name, kind, text = parts
        if kind not in _TYPES or name <= previous:  # sorted, so no duplicates either
            return None
        previous = name
        key[name] = {kind: text}
    return key if 0 < len(key) <= _MAX_ATTRIBUTES else None


class CursorSigner:
    """Seals ``LastEvaluatedKey`` values into cursors and opens them back.

    (The name is from the time cursors were only signed; they are encrypted now.)
    """

    __slots__ = ("_aead",)

    def __init__(self, secret: bytes) -> None:
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(secret)
        self._aead = AESGCM(key)

    @staticmethod
    def _associated(binding: bytes) -> bytes:
        return _VERSION + hashlib.sha256(binding).digest()

    def _seal(self, plaintext: bytes, binding: bytes) -> str:
        nonce = secrets.token_bytes(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, plaintext, self._associated(binding))
        return _b64(_VERSION + nonce + sealed)

    def encode(self, last_key: Mapping[str, Any], binding: bytes) -> str:
        """The cursor for ``last_key``, valid only with the same ``binding``."""
        return self._seal(_pack(last_key), binding)

    def decode(self, cursor: object, binding: bytes) -> dict[str, Any]:
        """The ``LastEvaluatedKey`` in ``cursor``; :class:`InvalidCursor` unless it is,
        character for character, a cursor issued here for this ``binding``."""
        if not isinstance(cursor, str) or not 0 < len(cursor) <= MAX_CURSOR:
            raise InvalidCursor(_INVALID)
        text = cursor.encode("ascii", "replace")
        if _ALPHABET.fullmatch(text) is None or len(text) % 4 == 1:
            raise InvalidCursor(_INVALID)
        try:
            raw = base64.urlsafe_b64decode(text + b"=" * (-len(text) % 4))
        except (binascii.Error, ValueError):  # pragma: no cover - the alphabet is checked
            raise InvalidCursor(_INVALID) from None
        if _b64(raw) != cursor or len(raw) <= _OVERHEAD or raw[:1] != _VERSION:
            raise InvalidCursor(_INVALID)
        nonce = raw[1 : 1 + _NONCE_BYTES]
        try:
            plaintext = self._aead.decrypt(
                nonce, raw[1 + _NONCE_BYTES :], self._associated(binding)
            )
        except InvalidTag:
            raise InvalidCursor(_INVALID) from None
        last_key = _unpack(plaintext)
        if last_key is None:
            raise InvalidCursor(_INVALID)
        return last_key
