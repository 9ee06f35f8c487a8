"""Talking to a local DynamoDB endpoint without an SDK: unsigned requests, free ports.

Both engines accept any signature, so a JSON POST with a dummy ``Authorization`` header is
all the manager and the table helpers need; no AWS SDK is imported for it.
"""

from __future__ import annotations

import json
import socket
import urllib.request
from typing import Any

__all__ = ["LocalDynamoDBError", "dynamodb_request", "free_port", "port_in_use"]

_FAKE_AUTH = (
    "AWS4-HMAC-SHA256 Credential=lift/20250101/{region}/dynamodb/aws4_request, "
    "SignedHeaders=host;x-amz-target, Signature=00"
)


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
    """Send one unsigned DynamoDB JSON request (for local engines only).

    Raises :class:`urllib.error.HTTPError` for an error answer (its body is DynamoDB's
    JSON error).
    """
    request = urllib.request.Request(
        endpoint,
        data=json.dumps(payload).encode(),
        method="POST",
        headers={
            "Content-Type": "application/x-amz-json-1.0",
            "X-Amz-Target": f"DynamoDB_20120810.{action}",
            "Authorization": _FAKE_AUTH.format(region=region),
        },
    )
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
