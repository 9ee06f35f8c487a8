"""The transports: the one small protocol every DynamoDB call of the suite goes through
(:class:`~lift_asgi.dynamo.protocol.DynamoTransport`, re-exported here), implemented.

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

- :class:`AiodynamoTransport`: the hot path. aiodynamo's credential chain and a cached
  SigV4 signer (:mod:`~lift_asgi.dynamo.sigv4`) on one long-lived aiohttp session, opened
  lazily on first use in the running loop.
- :class:`Aioboto3Transport`: wraps an aioboto3/aiobotocore DynamoDB client you already hold.

Both count the calls they send (``transport.calls``), which is how tests and
benchmarks count DynamoDB calls per request.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import re
import urllib.parse
from collections.abc import AsyncGenerator, Mapping
from typing import Any

import aiohttp
from aiodynamo.credentials import Credentials, Key, StaticCredentials
from yarl import URL

from lift_asgi.dynamo.botocore_errors import error_code, from_botocore, method_name
from lift_asgi.dynamo.credentials import SEARCHED, default_credentials
from lift_asgi.dynamo.error_codes import EXPIRED_CREDENTIALS_CODES, QUIET_CODES, error_from_code
from lift_asgi.dynamo.protocol import DynamoTransport
from lift_asgi.dynamo.sigv4 import SigV4Signer
from lift_asgi.errors import (
    ConfigurationError,
    DynamoDBError,
    DynamoDBUnavailable,
    DynamoDBUnreachable,
)
from lift_asgi.observe.cost import current_cost

__all__ = [
    "Aioboto3Transport",
    "AiodynamoTransport",
    "DynamoTransport",
    "error_from_code",
    "shared_transport",
]

log = logging.getLogger("lift_asgi.dynamo")


def _region() -> str:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


class AiodynamoTransport:
    """aiodynamo's credentials and a cached SigV4 signer on one long-lived aiohttp session.

    ``endpoint`` defaults to ``AWS_ENDPOINT_URL_DYNAMODB`` (then AWS's regional
    endpoint); ``region`` to ``AWS_REGION``/``AWS_DEFAULT_REGION``; credentials to the
    chain of :func:`~lift_asgi.dynamo.credentials.default_credentials` (environment,
    credentials file, container and instance metadata; dummy credentials for a loopback
    endpoint). ``timeout`` bounds each call; a call past it raises
    :class:`DynamoDBUnavailable`.

    A request refused with ``ExpiredTokenException`` (temporary credentials that
    expired: task roles, assumed roles) was not applied: the credentials are refreshed
    and the request is signed and sent once more, as aiodynamo's own client does.
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
        self.credentials = credentials or default_credentials(self.endpoint)
        self.timeout = timeout
        self.max_connections = max_connections
        self.calls = 0
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._warned_no_key = False
        self._signer = SigV4Signer(self.region, self.endpoint)
        self._url = self._signer.url
        self._credential_http: _AiodynamoHttp | None = None
        self._closer: AsyncGenerator[None, None] | None = None

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
            self._session = session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.max_connections, ttl_dns_cache=300),
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                skip_auto_headers=("User-Agent",),
            )
            self._loop = loop
            self._closer = closed_with_loop(session)
        return self._session

    async def _key(self, session: aiohttp.ClientSession) -> Key:
        http = self._credential_http
        if http is None or http.session is not session:
            http = self._credential_http = _AiodynamoHttp(session)
        key = await self.credentials.get_key(http)
        if key is None:
            if not self._warned_no_key:
                self._warned_no_key = True
                log.error(
                    "no AWS credentials were found for DynamoDB at %s (looked in: %s)",
                    self.endpoint or f"AWS {self.region}",
                    SEARCHED,
                )
            raise DynamoDBError("No AWS credentials were found.", aws_code="NoCredentials")
        return key

    async def request(self, action: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        cost = current_cost()  # the observed request's DynamoDB accounting, if any
        if cost is None:
            return await self._request(action, payload)
        return await cost.call(self._request, action, payload)

    async def _request(self, action: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        session = self._http()
        body = json.dumps(payload, separators=(",", ":")).encode()
        refreshed = False
        while True:
            key = await self._key(session)
            headers = self._signer.headers(key, action, body)
            self.calls += 1
            try:
                async with session.post(self._url, headers=headers, data=body) as response:
                    status = response.status
                    answer = await response.read()
            except TimeoutError as exc:
                log.warning("DynamoDB %s timed out after %.1fs", action, self.timeout)
                raise DynamoDBUnavailable(aws_code="Timeout") from exc
            except aiohttp.ClientConnectorError as exc:  # before anything was sent
                log.warning("DynamoDB %s: cannot connect: %r", action, exc)
                raise DynamoDBUnreachable(aws_code="ConnectFailed") from exc
            except aiohttp.ClientError as exc:
                log.warning("DynamoDB %s failed: %r", action, exc)
                raise DynamoDBUnavailable(aws_code="ConnectionError") from exc
            if status == 200:
                try:
                    result = json.loads(answer)
                except (ValueError, RecursionError):  # not JSON, or nested past the parser
                    result = None
                if isinstance(result, dict):
                    return result
                # a 200 that is no answer (cut short, a middlebox's page): the call may
                # have been applied, so it is a failure of unknown outcome, not a 500
                log.warning("DynamoDB %s answered 200 with a body that is no JSON object", action)
                raise DynamoDBUnavailable(aws_code="InvalidResponse")
            try:
                data = json.loads(answer)
                code = str(data.get("__type", "")).rpartition("#")[2]
                message = str(data.get("message") or data.get("Message") or "")
            except (ValueError, RecursionError, AttributeError):  # no JSON object
                data, code, message = {}, "", answer[:200].decode(errors="replace")
            expired = code in EXPIRED_CREDENTIALS_CODES and not refreshed
            if expired and self.credentials.invalidate():
                # Refused before it was applied: safe to send again with fresh credentials.
                log.info("DynamoDB %s: credentials expired; refreshed, sending it again", action)
                refreshed = True
                continue
            _log_error(action, status, code, message)
            raise error_from_code(code, message, status, data)

    async def close(self) -> None:
        closer, self._closer, self._session = self._closer, None, None
        if closer is not None:
            await closer.aclose()  # its finally closes the session


def closed_with_loop(session: aiohttp.ClientSession) -> AsyncGenerator[None, None]:
    """Have the running loop close ``session`` when it shuts down; keep what is returned
    as long as the session (the loop holds it only weakly).

    A transport's session lives as long as its loop, and nothing closes one that no
    lifespan shutdown or ``close()`` reached: a script's ``asyncio.run``, an app served
    without a lifespan, each test of a suite on its own loop. aiohttp then warns
    "Unclosed client session" when it is collected, and its connections are never shut.
    asyncio has no hook for a loop's end but one, for async generators:
    ``asyncio.run``, ``asyncio.Runner`` (pytest-asyncio's loops) and uvicorn close every
    suspended async generator of the loop (``loop.shutdown_asyncgens()``) before closing
    it. So this starts one that waits at its ``yield`` and closes the session when
    closed. Dropped while its loop runs (a session replaced), the loop closes it too.
    """
    closer = _closing(session)
    # to its yield, with no await: the step ends as an async generator's first one does
    with contextlib.suppress(StopIteration):
        closer.__anext__().send(None)
    return closer


async def _closing(session: aiohttp.ClientSession) -> AsyncGenerator[None, None]:
    try:
        yield
    finally:
        await session.close()


def _log_error(action: str, status: int | str, code: str, message: str) -> None:
    log.log(
        logging.DEBUG if code in QUIET_CODES else logging.WARNING,
        "DynamoDB %s -> %s %s: %s",
        action,
        status,
        code,
        message,
    )


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
        cost = current_cost()  # the observed request's DynamoDB accounting, if any
        if cost is None:
            return await self._request(action, payload)
        return await cost.call(self._request, action, payload)

    async def _request(self, action: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        method = self._methods.get(action)
        if method is None:
            method = self._methods[action] = getattr(self.client, method_name(action))
        arguments = _binary_to_bytes(payload)
        refreshed = False
        while True:
            self.calls += 1
            try:
                result: dict[str, Any] = await method(**arguments)
                break
            except Exception as exc:
                code = error_code(exc)
                if code in EXPIRED_CREDENTIALS_CODES and not refreshed:
                    # Refused before it was applied: refresh and send it once more.
                    log.info("DynamoDB %s: credentials expired; refreshing, sending again", action)
                    refreshed = True
                    await _refresh_botocore_credentials(self.client)
                    continue
                mapped = from_botocore(exc)
                if mapped is None:
                    raise
                _log_error(action, "aioboto3", code or type(exc).__name__, "")
                raise mapped from exc
        result.pop("ResponseMetadata", None)
        converted: dict[str, Any] = _bytes_to_binary(result)
        return converted

    async def close(self) -> None:
        return None


async def _refresh_botocore_credentials(client: Any) -> None:
    """Make botocore fetch its temporary credentials again before the next call.

    botocore refreshes refreshable credentials on its own shortly before they expire by
    its clock; DynamoDB's word that they expired wins here. Credentials that cannot be
    refreshed (static keys) are left as they are: the retry then fails the same way.
    """
    signer = getattr(client, "_request_signer", None)
    credentials = getattr(signer, "_credentials", None)
    refresh = getattr(credentials, "_protected_refresh", None)
    if refresh is None or getattr(credentials, "_refresh_using", None) is None:
        return
    try:
        result = refresh(is_mandatory=True)
        if asyncio.iscoroutine(result):
            await result
    except Exception:
        log.warning("refreshing the aioboto3 client's credentials failed", exc_info=True)


_SHARED: dict[tuple[str | None, str | None], AiodynamoTransport] = {}
_REGION = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")  # "local" too, for a local server


def checked_endpoint(option: str, value: object) -> str:
    """An ``http(s)://host[:port]`` URL, else a ConfigurationError naming ``option`` (a
    URL without its scheme would be read as a path: every call a misleading 503)."""
    try:  # urlsplit raises on a broken IPv6 host ("http://[::1"), .port on a bad port
        parts = urllib.parse.urlsplit(value) if isinstance(value, str) else None
        port_ok = parts is not None and (parts.port is None or parts.port > 0)
    except ValueError:
        parts, port_ok = None, False
    if (
        parts is None
        or parts.scheme not in ("http", "https")
        or not parts.hostname
        or not port_ok
        or any(char.isspace() for char in str(value))
    ):
        raise ConfigurationError(option, f"an http(s)://host[:port] URL, not {value!r}")
    return str(value)


def checked_region(option: str, value: object) -> str:
    """A region name (``eu-west-1``; a local server's ``local``): lower-case letters,
    digits and dashes, else a ConfigurationError naming ``option``."""
    if not isinstance(value, str) or _REGION.fullmatch(value) is None:
        raise ConfigurationError(option, f"an AWS region name such as 'eu-west-1', not {value!r}")
    return value


def shared_transport(endpoint: str | None = None, region: str | None = None) -> AiodynamoTransport:
    """The process-wide transport for (endpoint, region): one session, reused by every
    middleware, request and Lambda invocation in this process. Both are checked here,
    where a table is made, the environment's values too (named by their variable)."""
    if endpoint is not None:
        endpoint = checked_endpoint("endpoint", endpoint)
    elif os.environ.get("AWS_ENDPOINT_URL_DYNAMODB"):
        endpoint = checked_endpoint(
            "AWS_ENDPOINT_URL_DYNAMODB", os.environ["AWS_ENDPOINT_URL_DYNAMODB"]
        )
    region = (
        checked_region("region", region)
        if region is not None
        else checked_region("AWS_REGION", _region())
    )
    key = (endpoint, region)
    transport = _SHARED.get(key)
    if transport is None:
        transport = _SHARED[key] = AiodynamoTransport(key[0], key[1])
    return transport
