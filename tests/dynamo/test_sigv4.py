"""The cached SigV4 signer signs exactly as aiodynamo's signer does, and re-derives its
key when the day or the credentials change."""

from __future__ import annotations

import datetime
import json
from typing import Any

import pytest
from aiodynamo import sign
from aiodynamo.credentials import Key
from yarl import URL

import lift_asgi.dynamo.sigv4 as module
from lift_asgi.dynamo.sigv4 import SigV4Signer

PAYLOAD = {"TableName": "t", "Key": {"pk": {"S": "acme#p"}, "sk": {"S": "é"}}}
BODY = json.dumps(PAYLOAD, separators=(",", ":")).encode()


def _aiodynamo(monkeypatch: pytest.MonkeyPatch, when: float, key: Key, url: URL | None) -> Any:
    instant = sign.Instant(datetime.datetime.fromtimestamp(when, datetime.UTC))
    monkeypatch.setattr(sign.Instant, "now", classmethod(lambda cls: instant))
    return sign.signed_dynamo_request(
        key=key, payload=PAYLOAD, action="GetItem", region="eu-west-1", endpoint=url
    )


@pytest.mark.parametrize("token", [None, "session-token"])
@pytest.mark.parametrize("url", [None, URL("https://dynamodb.eu-west-1.amazonaws.com/")])
def test_same_signature_as_aiodynamo(
    monkeypatch: pytest.MonkeyPatch, token: str | None, url: URL | None
) -> None:
    now = [1_767_225_600.25]
    signer = SigV4Signer("eu-west-1", url, clock=lambda: now[0])
    key = Key("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG", token)
    for when in (1_767_225_600.25, 1_767_225_601.9, 1_767_311_999.0, 1_767_312_000.5):
        now[0] = when
        expected = _aiodynamo(monkeypatch, when, key, url)
        assert signer.headers(key, "GetItem", BODY) == expected.headers
        assert expected.body == BODY
        assert signer.url == str(expected.url)
    rotated = Key("AKIDOTHER", "another-secret", token)
    assert (
        signer.headers(rotated, "GetItem", BODY)
        == _aiodynamo(monkeypatch, now[0], rotated, url).headers
    )


def test_signing_key_derived_once_a_day(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1_767_225_600.0]
    signer = SigV4Signer("eu-west-1", clock=lambda: now[0])
    key = Key("id", "secret")
    calls = {"hmac": 0}
    original = module._hmac

    def counting(k: bytes, message: str) -> bytes:
        calls["hmac"] += 1
        return original(k, message)

    monkeypatch.setattr(module, "_hmac", counting)
    for second in range(100):
        now[0] = 1_767_225_600.0 + second
        signer.headers(key, "GetItem", BODY)
    assert calls["hmac"] == 4  # one derivation for the day
    now[0] += 86_400
    signer.headers(key, "GetItem", BODY)
    assert calls["hmac"] == 8
    signer.headers(Key("id", "rotated"), "GetItem", BODY)
    assert calls["hmac"] == 12


def test_host_header_keeps_a_non_default_port() -> None:
    signer = SigV4Signer("us-east-1", URL("http://127.0.0.1:8000"))
    assert signer.url == "http://127.0.0.1:8000"
    assert signer._host == "127.0.0.1:8000"
    assert SigV4Signer("us-east-1", URL("https://example.com:443/"))._host == "example.com"
