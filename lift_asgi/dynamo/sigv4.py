"""AWS Signature Version 4 for DynamoDB's JSON protocol, with what changes rarely cached.

Every DynamoDB call is signed, so this is on the hot path. What aiodynamo's
``signed_dynamo_request`` recomputes on every call changes far less often:

- the signing key (four chained HMACs of the secret, date, region and service) changes
  once a day, or when the credentials rotate: it is cached per (date, key id, secret);
- the request time is formatted once per second, not five times per call;
- the endpoint URL, host and the signed header names are fixed per signer.

Per call remain what must be: one SHA-256 of the body, one of the canonical request and
one HMAC over the string to sign. The signature is the same as aiodynamo's (the tests
check it against aiodynamo's signer for the same instant).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable

from aiodynamo.credentials import Key
from yarl import URL

__all__ = ["SigV4Signer"]

_ALGORITHM = "AWS4-HMAC-SHA256"
_CONTENT_TYPE = "application/x-amz-json-1.0"
_TARGET_PREFIX = "DynamoDB_20120810."
_SIGNED_HEADERS = "content-type;host;x-amz-date;x-amz-target"
_sha256 = hashlib.sha256
_hmac_new = hmac.new


def _hmac(key: bytes, message: str) -> bytes:
    return _hmac_new(key, message.encode(), _sha256).digest()


class SigV4Signer:
    """Signs DynamoDB requests for one endpoint and region."""

    __slots__ = (
        "_amz_date",
        "_clock",
        "_date",
        "_host",
        "_key_cache",
        "_second",
        "region",
        "service",
        "url",
    )

    def __init__(
        self,
        region: str,
        endpoint: URL | None = None,
        *,
        service: str = "dynamodb",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.region = region
        self.service = service
        endpoint = endpoint or URL.build(
            scheme="https", host=f"{service}.{region}.amazonaws.com", path="/"
        )
        self.url = str(endpoint)
        host = endpoint.host or ""
        # The Host header aiohttp sends: the port only when it is not the default.
        if endpoint.explicit_port is not None and not endpoint.is_default_port():
            host = f"{host}:{endpoint.explicit_port}"
        self._host = host
        self._clock = clock
        self._second = -1
        self._amz_date = ""
        self._date = ""
        # (date, key id, secret) -> (signing key, "Credential=" value)
        self._key_cache: tuple[tuple[str, str, str], bytes, str] | None = None

    def _now(self) -> tuple[str, str]:
        second = int(self._clock())
        if second != self._second:
            self._amz_date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(second))
            self._date = self._amz_date[:8]
            self._second = second
        return self._amz_date, self._date

    def _signing_key(self, key: Key, date: str) -> tuple[bytes, str]:
        cached = self._key_cache
        identity = (date, key.id, key.secret)
        if cached is not None and cached[0] == identity:
            return cached[1], cached[2]
        signing = _hmac(
            _hmac(_hmac(_hmac(("AWS4" + key.secret).encode(), date), self.region), self.service),
            "aws4_request",
        )
        credential = f"{key.id}/{date}/{self.region}/{self.service}/aws4_request"
        self._key_cache = (identity, signing, credential)
        return signing, credential

    def headers(self, key: Key, action: str, body: bytes) -> dict[str, str]:
        """The headers that sign ``body`` as DynamoDB ``action`` with ``key``, now."""
        amz_date, date = self._now()
        signing, credential = self._signing_key(key, date)
        target = _TARGET_PREFIX + action
        canonical = (
            f"POST\n/\n\ncontent-type:{_CONTENT_TYPE}\nhost:{self._host}\n"
            f"x-amz-date:{amz_date}\nx-amz-target:{target}\n\n{_SIGNED_HEADERS}\n"
            f"{_sha256(body).hexdigest()}"
        )
        to_sign = (
            f"{_ALGORITHM}\n{amz_date}\n{date}/{self.region}/{self.service}/aws4_request\n"
            f"{_sha256(canonical.encode()).hexdigest()}"
        )
        signature = _hmac_new(signing, to_sign.encode(), _sha256).hexdigest()
        headers = {
            "Content-Type": _CONTENT_TYPE,
            "X-Amz-Date": amz_date,
            "X-Amz-Target": target,
            "Authorization": (
                f"{_ALGORITHM} Credential={credential}, "
                f"SignedHeaders={_SIGNED_HEADERS}, Signature={signature}"
            ),
        }
        if key.token:
            headers["X-Amz-Security-Token"] = key.token
        return headers
