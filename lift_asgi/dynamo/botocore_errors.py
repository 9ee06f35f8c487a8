"""botocore's view of DynamoDB (method names, exceptions) mapped to the suite's.

Shared by :class:`~lift_asgi.dynamo.transport.Aioboto3Transport` (async, aiobotocore)
and the synchronous ``dynamodb://`` rate-limit storage (boto3), so both name methods
and map failures the same way. botocore is imported only when an exception has to be
classified, so importing this module costs nothing for aiodynamo-only users.

- :func:`method_name`: ``"TransactWriteItems"`` → ``"transact_write_items"`` (cached).
- :func:`from_botocore`: a ``ClientError`` through :func:`error_from_code`; connection
  failures and timeouts → :class:`~lift_asgi.errors.DynamoDBUnavailable`; missing
  credentials → a 500 that says so; anything that is not botocore's → ``None``
  (re-raise it).
"""

from __future__ import annotations

import asyncio
import functools
import re
from collections.abc import Mapping

from lift_asgi.dynamo.error_codes import error_from_code
from lift_asgi.errors import DynamoDBError, DynamoDBUnavailable, DynamoDBUnreachable, LiftError

__all__ = ["error_code", "from_botocore", "method_name"]

_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")
#: Failures to connect, by class name (botocore is imported only when needed): the
#: request was never sent. ConnectTimeoutError is botocore's connect-phase timeout.
_CONNECT_FAILURES = frozenset(
    {
        "EndpointConnectionError",
        "ConnectTimeoutError",
        "ClientConnectorError",
        "ClientConnectorDNSError",
        "ClientConnectorCertificateError",
        "ClientConnectorSSLError",
    }
)


@functools.lru_cache(maxsize=128)
def method_name(action: str) -> str:
    """The botocore client method of a DynamoDB action (``GetItem`` → ``get_item``)."""
    return _CAMEL.sub("_", action).lower()


def error_code(exc: BaseException) -> str | None:
    """The service error code of a botocore ``ClientError`` (``None`` for others)."""
    response = getattr(exc, "response", None)
    if not isinstance(response, Mapping):
        return None
    return str((response.get("Error") or {}).get("Code", ""))


def from_botocore(exc: BaseException) -> LiftError | None:
    """The suite's error for a botocore/aiobotocore failure, or ``None`` if ``exc`` is
    not one (the caller re-raises it)."""
    response = getattr(exc, "response", None)
    if isinstance(response, Mapping):  # ClientError: DynamoDB answered with an error
        error = response.get("Error") or {}
        status = int((response.get("ResponseMetadata") or {}).get("HTTPStatusCode", 400))
        return error_from_code(
            str(error.get("Code", "")), str(error.get("Message", "")), status, response
        )
    name = type(exc).__name__
    if name in _CONNECT_FAILURES:  # botocore's, or aiohttp's let through unwrapped
        return DynamoDBUnreachable(aws_code=name)
    if (
        isinstance(exc, asyncio.TimeoutError | OSError)
        or "Connect" in name
        or "Timeout" in name
        or "Disconnect" in name
    ):  # aiohttp's errors when aiobotocore lets them through unwrapped
        return DynamoDBUnavailable(aws_code=name)
    try:
        from botocore import exceptions
    except ImportError:  # pragma: no cover - botocore is what raised it
        return None
    if isinstance(exc, exceptions.NoCredentialsError | exceptions.PartialCredentialsError):
        return DynamoDBError("No AWS credentials were found.", aws_code="NoCredentials")
    if isinstance(exc, exceptions.BotoCoreError):
        # Connection refused, timeouts, a dropped connection, a failed credential
        # refresh: DynamoDB did not answer.
        return DynamoDBUnavailable(aws_code=type(exc).__name__)
    return None
