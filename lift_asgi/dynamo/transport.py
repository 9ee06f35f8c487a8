"""The one small protocol every DynamoDB call of the suite goes through.

A transport sends one DynamoDB JSON-protocol request (``action`` plus the low-level,
typed payload, e.g. ``{"Key": {"pk": {"S": "x"}}}``) and returns the decoded answer, or
raises one of the errors in :mod:`lift_asgi.errors`:

- :class:`~lift_asgi.errors.ConditionFailed` (409) for a false ConditionExpression,
- :class:`~lift_asgi.errors.TransactionCancelled` (409) with one reason per item,
- :class:`~lift_asgi.errors.DynamoDBThrottled` / :class:`~lift_asgi.errors.DynamoDBUnavailable`
  (503) for throttling, 5xx, timeouts and dropped connections: retryable,
- :class:`~lift_asgi.errors.TableNotFound` for a missing table,
- :class:`~lift_asgi.errors.DynamoDBError` (500) for anything else.

Transports never retry: callers own the retry policy (and the ClientRequestToken that
makes a retried transaction safe). Two implementations:

- :class:`AiodynamoTransport`: the hot path. aiodynamo's signing and credential chain
  on one long-lived aiohttp session, opened lazily on first use in the running loop.
- :class:`Aioboto3Transport`: wraps an aioboto3/aiobotocore DynamoDB client you already hold.

Both count the calls they send (``transport.calls``), which is how tests and
benchmarks count DynamoDB calls per request.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import re
from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

import aiohttp
from aiodynamo.credentials import Credentials, Key, StaticCredentials
from aiodynamo.sign import signed_dynamo_request
from yarl import URL

from lift_asgi.errors import (
    ConditionFailed,
    DynamoDBError,
    DynamoDBThrottled,
    DynamoDBUnavailable,
    DynamoDBWriteConflict,
    LiftError,
    TableNotFound,
    TransactionCancelled,
)

__all__ = [
    "Aioboto3Transport",
    "AiodynamoTransport",
    "DynamoTransport",
    "error_from_code",
    "shared_transport",
]

log = logging.getLogger("lift_asgi.dynamo")

_THROTTLE_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "Throttling",
        "TooManyRequestsException",
    }
)
# Not applied because the item is in a transaction still running: safe to retry.
_CONFLICT_CODES = frozenset(
    {
        "TransactionConflictException",
        "ReplicatedWriteConflictException",
        "TransactionInProgressException",
    }
)
_UNAVAILABLE_CODES = frozenset(
    {"InternalServerError", "ServiceUnavailable", "InternalFailure", "ServiceUnavailableException"}
)


@runtime_checkable
class DynamoTransport(Protocol):
    calls: int

    async def request(self, action: str, payload: Mapping[str, Any]) -> dict[str, Any]: ...

    async def close(self) -> None: ...


def error_from_code(
    code: str, message: str, status: int = 400, body: Mapping[str, Any] | None = None
) -> LiftError:
    """Map a DynamoDB error code (``__type`` suffix) to the suite's error type."""
    if code == "ConditionalCheckFailedException":
        failed = ConditionFailed("A condition on the item was not met.", aws_code=code)
        # With ReturnValuesOnConditionCheckFailure=ALL_OLD the answer carries the item
        # as it stood: callers read it here (never in the problem body) and save a read.
        item = (body or {}).get("Item")
        failed.item = item if isinstance(item, dict) else None
        return failed
    if code == "TransactionCanceledException":
        raw = (body or {}).get("CancellationReasons") or []
        reasons: list[str | None] = [
            None if r.get("Code") in (None, "None") else str(r.get("Code")) for r in raw
        ]
        if not reasons:  # botocore puts them only in the message
            reasons = [
                None if c == "None" else c
                for c in re.findall(r"(\w+)(?:,|\])", message.partition("[")[2])
            ]
        return TransactionCancelled("The transaction was cancelled.", reasons=reasons)
    if code in _THROTTLE_CODES:
        return DynamoDBThrottled(aws_code=code)
    if code in _CONFLICT_CODES:
        return DynamoDBWriteConflict(aws_code=code)
    if code in _UNAVAILABLE_CODES or status >= 500:
        return DynamoDBUnavailable(aws_code=code or str(status))
    if code == "ResourceNotFoundException":
        return TableNotFound("The DynamoDB table does not exist (or is not ACTIVE).", aws_code=code)
    return DynamoDBError("The database rejected the request.", aws_code=code)


def _region() -> str:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


class AiodynamoTransport:
    """aiodynamo's signer and credentials on one long-lived aiohttp session.

    ``endpoint`` defaults to ``AWS_ENDPOINT_URL_DYNAMODB`` (then AWS's regional
    endpoint); ``region`` to ``AWS_REGION``/``AWS_DEFAULT_REGION``; credentials to
    aiodynamo's chain (environment, container, instance metadata). ``timeout`` bounds
    each call; a call past it raises :class:`DynamoDBUnavailable`.
    """

    def __init__(
        self,
        endpoint: str | None = None,
        region: str | None = None,
        *,
        credentials: Credentials | None = None,
        timeout: float = 5.0,
        max_connections: int = 64,
    ) -> None:
        endpoint = endpoint or os.environ.get("AWS_ENDPOINT_URL_DYNAMODB")
        self.endpoint = URL(endpoint) if endpoint else None
        self.region = region or _region()
        self.credentials = credentials or Credentials.auto()
        self.timeout = timeout
        self.max_connections = max_connections
        self.calls = 0
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def static(
        cls, endpoint: str, key_id: str = "testing", secret: str = "testing", **kwargs: Any
    ) -> AiodynamoTransport:
        """A transport with fixed credentials (local servers, tests)."""
        return cls(endpoint, credentials=StaticCredentials(Key(key_id, secret)), **kwargs)

    def _http(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is None or self._loop is not loop or self._session.closed:
            # A session belongs to one event loop; a new loop (a test, a new Lambda
            # runtime loop) gets a new session instead of a broken one.
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.max_connections, ttl_dns_cache=300),
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                skip_auto_headers=("User-Agent",),
            )
            self._loop = loop
        return self._session

    async def request(self, action: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        session = self._http()
        key = await self.credentials.get_key(_AiodynamoHttp(session))
        if key is None:
            raise DynamoDBError("No AWS credentials were found.", aws_code="NoCredentials")
        signed = signed_dynamo_request(
            key=key, payload=payload, action=action, region=self.region, endpoint=self.endpoint
        )
        self.calls += 1
        try:
            async with session.post(
                str(signed.url), headers=signed.headers, data=signed.body
            ) as response:
                status = response.status
                body = await response.read()
        except TimeoutError as exc:
            log.warning("DynamoDB %s timed out after %.1fs", action, self.timeout)
            raise DynamoDBUnavailable(aws_code="Timeout") from exc
        except aiohttp.ClientError as exc:
            log.warning("DynamoDB %s failed: %r", action, exc)
            raise DynamoDBUnavailable(aws_code="ConnectionError") from exc
        if status == 200:
            result: dict[str, Any] = json.loads(body)
            return result
        try:
            data = json.loads(body)
            code = str(data.get("__type", "")).rpartition("#")[2]
            message = str(data.get("message") or data.get("Message") or "")
        except ValueError:
            data, code, message = {}, "", body[:200].decode(errors="replace")
        if code == "ExpiredTokenException":
            self.credentials.invalidate()
        error = error_from_code(code, message, status, data)
        log.log(
            logging.DEBUG
            if isinstance(error, ConditionFailed | TransactionCancelled)
            else logging.WARNING,
            "DynamoDB %s -> %s %s: %s",
            action,
            status,
            code,
            message,
        )
        raise error

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None


class _AiodynamoHttp:
    """aiodynamo's HTTP protocol on our session (used only by its credential chain)."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session

    async def __call__(self, request: Any) -> Any:
        from aiodynamo.http.types import RequestFailed, Response

        try:
            async with self.session.request(
                request.method, request.url, headers=request.headers, data=request.body
            ) as response:
                return Response(response.status, await response.read())
        except aiohttp.ClientError as exc:
            raise RequestFailed(exc) from exc


def _snake(action: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", action).lower()


def _binary_to_bytes(value: Any) -> Any:
    """The JSON protocol's base64 ``B``/``BS`` values as the bytes botocore expects."""
    if isinstance(value, dict):
        if len(value) == 1:
            tag, raw = next(iter(value.items()))
            if tag == "B" and isinstance(raw, str):
                return {"B": base64.b64decode(raw)}
            if tag == "BS" and isinstance(raw, list) and all(isinstance(r, str) for r in raw):
                return {"BS": [base64.b64decode(r) for r in raw]}
        return {key: _binary_to_bytes(member) for key, member in value.items()}
    if isinstance(value, list):
        return [_binary_to_bytes(member) for member in value]
    return value


def _bytes_to_binary(value: Any) -> Any:
    """botocore's ``bytes`` back into the JSON protocol's base64 text."""
    if isinstance(value, dict):
        return {key: _bytes_to_binary(member) for key, member in value.items()}
    if isinstance(value, list):
        return [_bytes_to_binary(member) for member in value]
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode()
    return value


class Aioboto3Transport:
    """Adapt an aioboto3/aiobotocore DynamoDB *client* (``session.client("dynamodb")``).

    The client stays yours: :meth:`close` does not close it. Payloads and answers keep
    the JSON protocol's shape: binary values are base64 text on both sides, converted to
    and from the bytes botocore works with. botocore's own retries (its ``retries``
    config) stack with the unit of work's; give the client ``max_attempts=1`` to leave
    retrying to the unit of work.
    """

    def __init__(self, client: Any) -> None:
        self.client = client
        self.calls = 0
        self._methods: dict[str, Any] = {}

    async def request(self, action: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        method = self._methods.get(action)
        if method is None:
            method = self._methods[action] = getattr(self.client, _snake(action))
        self.calls += 1
        try:
            result: dict[str, Any] = await method(**_binary_to_bytes(payload))
        except Exception as exc:
            response = getattr(exc, "response", None)
            if not isinstance(response, Mapping):
                if (
                    isinstance(exc, asyncio.TimeoutError | OSError)
                    or "Connect" in type(exc).__name__
                    or "Timeout" in type(exc).__name__
                ):
                    raise DynamoDBUnavailable(aws_code=type(exc).__name__) from exc
                raise
            error = response.get("Error", {})
            status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 400))
            mapped = error_from_code(
                str(error.get("Code", "")), str(error.get("Message", "")), status, response
            )
            log.debug("DynamoDB %s -> %s", action, error.get("Code"))
            raise mapped from exc
        result.pop("ResponseMetadata", None)
        converted: dict[str, Any] = _bytes_to_binary(result)
        return converted

    async def close(self) -> None:
        return None


_SHARED: dict[tuple[str | None, str | None], AiodynamoTransport] = {}


def shared_transport(endpoint: str | None = None, region: str | None = None) -> AiodynamoTransport:
    """The process-wide transport for (endpoint, region): one session, reused by every
    middleware, request and Lambda invocation in this process."""
    key = (endpoint or os.environ.get("AWS_ENDPOINT_URL_DYNAMODB"), region or _region())
    transport = _SHARED.get(key)
    if transport is None:
        transport = _SHARED[key] = AiodynamoTransport(key[0], key[1])
    return transport
