"""Signed cursors: round trip, and every way a cursor can be wrong is a 400."""

from __future__ import annotations

import base64
import json

import pytest

from lift_asgi.dynamo.cursor import CURSOR_SECRET_ENV, CursorSigner, resolve_secret
from lift_asgi.errors import ConfigurationError, InvalidCursor

KEY = {"pk": {"S": "acme#projects"}, "sk": {"S": "p1"}}
BINDING = b"table|acme|query-shape"


@pytest.fixture
def signer() -> CursorSigner:
    return CursorSigner(b"k" * 32)


def test_round_trip(signer: CursorSigner) -> None:
    cursor = signer.encode(KEY, BINDING)
    assert signer.decode(cursor, BINDING) == KEY
    assert "acme#" not in cursor  # opaque, not the raw JSON


def test_other_binding_is_refused(signer: CursorSigner) -> None:
    cursor = signer.encode(KEY, BINDING)
    with pytest.raises(InvalidCursor) as caught:
        signer.decode(cursor, b"table|globex|query-shape")
    assert caught.value.status == 400


def test_other_secret_is_refused(signer: CursorSigner) -> None:
    cursor = CursorSigner(b"x" * 32).encode(KEY, BINDING)
    with pytest.raises(InvalidCursor):
        signer.decode(cursor, BINDING)


def test_tampered_payload_is_refused(signer: CursorSigner) -> None:
    body, _, tag = signer.encode(KEY, BINDING).partition(".")
    forged = {"pk": {"S": "globex#projects"}, "sk": {"S": "p1"}}
    forged_body = base64.urlsafe_b64encode(json.dumps(forged).encode()).rstrip(b"=").decode()
    with pytest.raises(InvalidCursor):
        signer.decode(f"{forged_body}.{tag}", BINDING)
    flipped = tag[:-1] + ("A" if tag[-1] != "A" else "B")
    with pytest.raises(InvalidCursor):
        signer.decode(f"{body}.{flipped}", BINDING)


@pytest.mark.parametrize("cursor", ["", "garbage", "a.b.c", "!!!.???", "x" * 5000, 42, None])
def test_garbage_is_refused(signer: CursorSigner, cursor: object) -> None:
    with pytest.raises(InvalidCursor):
        signer.decode(cursor, BINDING)


def test_signed_but_malformed_payload_is_refused(signer: CursorSigner) -> None:
    for payload in ([1, 2], {}, {"pk": "not-an-attribute-value"}, {"pk": {"M": {}}}):
        cursor = signer.encode(payload, BINDING)  # type: ignore[arg-type]
        with pytest.raises(InvalidCursor):
            signer.decode(cursor, BINDING)


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
