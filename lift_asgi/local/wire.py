"""Talking to a DynamoDB endpoint without an SDK: one signed JSON request, free ports.

Both local engines accept any signature, but the table helpers of the pytest plugin also
serve a suite pointed at real DynamoDB or Alternator, so requests are signed (lift-asgi's
own SigV4) with the credentials in the environment, dummy ones when there are none.
"""

from __future__ import annotations

import json
import os
import socket
import urllib.request
from typing import Any

from aiodynamo.credentials import Key
from yarl import URL

from lift_asgi.dynamo.sigv4 import SigV4Signer

__all__ = ["LocalDynamoDBError", "dynamodb_request", "free_port", "port_in_use"]


class LocalDynamoDBError(RuntimeError):
    """The local server could not be started (port in use, engine missing, crashed)."""


def dynamodb_request(
    endpoint: str,
    action: str,
    payload: dict[str, Any],
    *,
    region: str = "us-east-1",
    timeout: float = 5.0,
) -> dict[str, Any]:
    """Send one DynamoDB JSON request, signed with ``AWS_ACCESS_KEY_ID`` /
    ``AWS_SECRET_ACCESS_KEY`` / ``AWS_SESSION_TOKEN`` (dummy credentials if unset).

    Raises :class:`urllib.error.HTTPError` for an error answer (its body is DynamoDB's
    JSON error).
    """
    body = json.dumps(payload).encode()
    key = Key(
        os.environ.get("AWS_ACCESS_KEY_ID") or "testing",
        os.environ.get("AWS_SECRET_ACCESS_KEY") or "testing",
        os.environ.get("AWS_SESSION_TOKEN") or None,
    )
    url = URL(endpoint)
    if not url.path:
        url = url.with_path("/")
    headers = SigV4Signer(region, url).headers(key, action, body)
    request = urllib.request.Request(str(url), data=body, method="POST", headers=headers)
    with urllib.request.urlopen(request, timeout=timeout) as response:
        result: dict[str, Any] = json.loads(response.read() or b"{}")
        return result


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return True
    return False


def free_port(host: str = "127.0.0.1") -> int:
    """A port free right now, for an engine that cannot pick its own (``port=0``)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port
