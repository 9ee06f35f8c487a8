"""Cursors: round trip; opaque; canonical (any other text is a 400); bound to a binding."""

from __future__ import annotations

import base64
import string

import pytest

from lift_asgi.dynamo.cursor import (
    CURSOR_SECRET_ENV,
    MAX_CURSOR,
    CursorSigner,
    _pack,
    resolve_secret,
)
from lift_asgi.errors import ConfigurationError, InvalidCursor

KEY = {"pk": {"S": "acme#projects"}, "sk": {"S": "p1"}}
BINDING = b"table|acme|query-shape"
ALPHABET = string.ascii_letters + string.digits + "-_"


@pytest.fixture
def signer() -> CursorSigner:
    return CursorSigner(b"k" * 32)


def _raw(cursor: str) -> bytes:
    return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))


def _text(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def test_round_trip(signer: CursorSigner) -> None:
    cursor = signer.encode(KEY, BINDING)
    assert signer.decode(cursor, BINDING) == KEY
    assert set(cursor) <= set(ALPHABET)  # strict base64url, no padding, no separator


def test_cursor_is_opaque(signer: CursorSigner) -> None:
    """Neither the text nor its decoded bytes show the tenant, the keys or the layout."""
    stored = {"pk": {"S": "acme-corp#projects"}, "sk": {"S": "project#2026"}}
    cursor = signer.encode(stored, BINDING)
    raw = _raw(cursor)
    for secret in (b"acme-corp", b"projects", b"project#2026", b'{"pk"', b"acme-corp#"):
        assert secret not in raw  # (random 4+-byte collisions: ~1e-7)
    assert "acme" not in cursor
    assert signer.encode(KEY, BINDING) != cursor  # a fresh nonce each time


def test_every_bit_flip_is_refused(signer: CursorSigner) -> None:
    raw = _raw(signer.encode(KEY, BINDING))
    for bit in range(len(raw) * 8):
        flipped = bytearray(raw)
        flipped[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(InvalidCursor):
            signer.decode(_text(bytes(flipped)), BINDING)


def test_every_character_change_is_refused(signer: CursorSigner) -> None:
    """Each position, every other character of the alphabet: including the edits that
    only touch the unused low bits of the last character (same bytes, other text)."""
    cursor = signer.encode(KEY, BINDING)
    for position, original in enumerate(cursor):
        for replacement in ALPHABET:
            if replacement == original:
                continue
            edited = cursor[:position] + replacement + cursor[position + 1 :]
            with pytest.raises(InvalidCursor):
                signer.decode(edited, BINDING)


def test_other_spellings_of_the_same_bytes_are_refused(signer: CursorSigner) -> None:
    cursor = signer.encode(KEY, BINDING)
    middle = len(cursor) // 2
    for edited in (
        cursor + "=",
        cursor + "==",
        cursor + "===",
        cursor[:middle] + "=" + cursor[middle:],
        cursor + "A",
        cursor[:-1],
        "A" + cursor,
        " " + cursor,
        cursor + "\n",
        cursor.replace("-", "+").replace("_", "/"),
        base64.urlsafe_b64encode(_raw(cursor)).decode(),  # padded
    ):
        if edited == cursor:
            continue
        with pytest.raises(InvalidCursor):
            signer.decode(edited, BINDING)


def test_other_binding_is_refused(signer: CursorSigner) -> None:
    cursor = signer.encode(KEY, BINDING)
    with pytest.raises(InvalidCursor) as caught:
        signer.decode(cursor, b"table|globex|query-shape")
    assert caught.value.status == 400


def test_other_secret_is_refused(signer: CursorSigner) -> None:
    cursor = CursorSigner(b"x" * 32).encode(KEY, BINDING)
    with pytest.raises(InvalidCursor):
        signer.decode(cursor, BINDING)


@pytest.mark.parametrize(
    "cursor", ["", "garbage", "a.b.c", "!!!.???", "x" * 5000, "A" * (MAX_CURSOR + 1), 42, None]
)
def test_garbage_is_refused(signer: CursorSigner, cursor: object) -> None:
    with pytest.raises(InvalidCursor):
        signer.decode(cursor, BINDING)


def test_authentic_but_malformed_plaintext_is_refused(signer: CursorSigner) -> None:
    good = _pack(KEY)
    for plaintext in (b"", b"\x00", good[:-1], good + b"\x00", good + good, b"\xff" * 40):
        with pytest.raises(InvalidCursor):
            signer.decode(signer._seal(plaintext, BINDING), BINDING)


@pytest.mark.parametrize(
    "key",
    [{}, {"pk": "not-an-attribute-value"}, {"pk": {"M": {}}}, {"pk": {"S": ""}}, [1, 2]],
)
def test_what_is_not_a_key_is_not_encoded(signer: CursorSigner, key: object) -> None:
    with pytest.raises((ValueError, AttributeError, TypeError)):
        signer.encode(key, BINDING)  # type: ignore[arg-type]


def test_the_largest_key_fits_the_bound(signer: CursorSigner) -> None:
    largest = {
        "p" * 255: {"S": "é" * 1024},
        "q" * 255: {"B": base64.b64encode(b"\xff" * 2048).decode()},
        "r" * 255: {"S": "x" * 2048},
        "s" * 255: {"N": "9" * 38},
    }
    cursor = signer.encode(largest, BINDING)
    assert len(cursor) <= MAX_CURSOR
    assert signer.decode(cursor, BINDING) == largest


def test_secret_resolution(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CURSOR_SECRET_ENV, raising=False)
    default = resolve_secret(None)
    assert default == resolve_secret(None)  # one per process
    assert len(default) == 32
    monkeypatch.setenv(CURSOR_SECRET_ENV, "from-the-environment-0123456789")
    assert resolve_secret(None) == b"from-the-environment-0123456789"
    assert resolve_secret("an-explicit-secret-wins-always") == b"an-explicit-secret-wins-always"
    with pytest.raises(ConfigurationError) as caught:
        resolve_secret("short")
    assert caught.value.option == "cursor_secret"
    monkeypatch.setenv(CURSOR_SECRET_ENV, "short")
    with pytest.raises(ConfigurationError) as caught:
        resolve_secret(None)
    assert caught.value.option == CURSOR_SECRET_ENV
