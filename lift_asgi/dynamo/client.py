"""The process-wide handle on one table: transport, schema check, timeouts and retries.

:class:`DynamoTable` is built once (by :class:`~lift_asgi.dynamo.UnitOfWorkMiddleware`
or by you, for scripts and jobs) and shared by every request. It holds:

- the transport: the process-wide aiodynamo transport for the endpoint and region
  (:func:`~lift_asgi.dynamo.transport.shared_transport`, its aiohttp session opened
  lazily in the running event loop, so it works under Mangum), or the transport or
  aioboto3 client you pass;
- the table check: on the first call, one ``DescribeTable`` verifies the table exists
  and has the expected key schema and indexes. Success is remembered for the life of
  the process; a failure is a 500 :class:`~lift_asgi.errors.TableMisconfigured` naming
  the table and what is wrong, remembered for a few seconds so a broken deployment does
  not describe the table on every request;
- the per-call timeout and the :class:`RetryPolicy` (exponential backoff, full jitter,
  bounded attempts and time);
- the cursor signer.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import time
from collections.abc import Mapping
from typing import Any

from lift_asgi.dynamo.cursor import CursorSigner, resolve_secret
from lift_asgi.dynamo.keys import Schema
from lift_asgi.dynamo.limits import (
    LIMITED_ACTIONS,
    MAX_BATCH_GET,
    MAX_BATCH_WRITE,
    MAX_TRANSACTION_ITEMS,
    check_request_limits,
)
from lift_asgi.dynamo.retry import RetryPolicy, any_unavailable, not_applied, run_with_retries
from lift_asgi.dynamo.tables import TableSpec
from lift_asgi.dynamo.transport import Aioboto3Transport, DynamoTransport, shared_transport
from lift_asgi.dynamo.uow import UnitOfWork
from lift_asgi.errors import (
    ConfigurationError,
    DynamoDBError,
    DynamoDBUnavailable,
    LiftError,
    TableMisconfigured,
    TableNotFound,
)

__all__ = [
    "MAX_BATCH_GET",
    "MAX_BATCH_WRITE",
    "MAX_TRANSACTION_ITEMS",
    "DynamoTable",
    "RetryPolicy",
    "check_request_limits",
]

log = logging.getLogger("lift_asgi.dynamo")

_FAILURE_MEMORY = 5.0  # seconds a failed table check is remembered
#: DynamoDB's rule for a table's name, or its ARN (another account's table)
_TABLE_NAME = re.compile(
    r"[A-Za-z0-9_.-]{3,255}|arn:aws[a-z-]*:dynamodb:[a-z0-9-]+:\d{12}:table/[A-Za-z0-9_.-]{3,255}"
)


def _describe_problems(schema: Schema, table: Mapping[str, Any]) -> list[str]:
    problems: list[str] = []
    types = {d["AttributeName"]: d["AttributeType"] for d in table.get("AttributeDefinitions", ())}

    def keys_of(key_schema: Any) -> tuple[str | None, str | None]:
        hash_key = range_key = None
        for element in key_schema or ():
            if element.get("KeyType") == "HASH":
                hash_key = element.get("AttributeName")
            elif element.get("KeyType") == "RANGE":
                range_key = element.get("AttributeName")
        return hash_key, range_key

    def compare(where: str, actual: tuple[str | None, str | None], pk: str, sk: str | None) -> None:
        if actual[0] != pk:
            problems.append(f"{where} partition key is '{actual[0]}', expected '{pk}'")
        if actual[1] != sk:
            found = f"'{actual[1]}'" if actual[1] else "none"
            wanted = f"'{sk}'" if sk else "none"
            problems.append(f"{where} sort key is {found}, expected {wanted}")
        for name in (pk, sk):
            if name and name in types and types[name] != "S":
                problems.append(f"key attribute '{name}' is of type {types[name]}, expected S")

    compare("its", keys_of(table.get("KeySchema")), schema.pk, schema.sk)
    indexes = {
        index.get("IndexName"): index
        for index in (
            *table.get("GlobalSecondaryIndexes", ()),
            *table.get("LocalSecondaryIndexes", ()),
        )
    }
    for name, (pk, sk) in schema.indexes.items():
        index = indexes.get(name)
        if index is None:
            problems.append(f"index '{name}' is missing")
            continue
        compare(f"index '{name}'", keys_of(index.get("KeySchema")), pk, sk)
        projection = index.get("Projection", {})
        kind = projection.get("ProjectionType", "ALL")
        if kind == "KEYS_ONLY" or (
            kind == "INCLUDE"
            and schema.tenant_attribute not in projection.get("NonKeyAttributes", ())
        ):
            problems.append(
                f"index '{name}' does not project '{schema.tenant_attribute}' (use ALL)"
            )
    return problems


class DynamoTable:
    """One table as the unit of work sees it; one instance per process and table.

    Options (checked here; mistakes raise :class:`~lift_asgi.errors.ConfigurationError`):

    - ``table``: the table name (standard schema: ``pk``/``sk`` strings, index ``gsi1``
      on ``gsi1pk``/``gsi1sk``) or a :class:`~lift_asgi.dynamo.tables.TableSpec`.
    - ``transport`` / ``client``: a :class:`DynamoTransport`, or an aioboto3 DynamoDB
      client (wrapped in :class:`Aioboto3Transport`); default the process-wide aiodynamo
      transport for ``endpoint`` (default ``AWS_ENDPOINT_URL_DYNAMODB``, else AWS) and
      ``region`` (default ``AWS_REGION``/``AWS_DEFAULT_REGION``).
    - ``tenant_attribute`` (``"_tenant"``), ``version_attribute`` (``"version"``).
    - ``cursor_secret`` (``None``: ``LIFT_ASGI_CURSOR_SECRET``, else random per process).
    - ``timeout`` (``5.0`` s per DynamoDB call; past it the call counts as unavailable
      and is retried or becomes a 503). An aiodynamo transport enforces its own timeout
      (5 s for the shared one); a shorter ``timeout`` here is enforced on top.
    - ``retry`` (:class:`RetryPolicy`, default 5 attempts, 50 ms base, 1 s cap, 10 s deadline).
    - ``bulk_concurrency`` (``4``): BatchWriteItem/BatchGetItem calls in flight at once.
    - ``verify_table`` (``True``): describe the table once, lazily, and check its schema.
    """

    def __init__(
        self,
        table: str | TableSpec,
        *,
        transport: DynamoTransport | None = None,
        client: Any = None,
        endpoint: str | None = None,
        region: str | None = None,
        tenant_attribute: str = "_tenant",
        version_attribute: str = "version",
        cursor_secret: str | bytes | None = None,
        timeout: float = 5.0,
        retry: RetryPolicy | None = None,
        bulk_concurrency: int = 4,
        verify_table: bool = True,
    ) -> None:
        if isinstance(table, str):
            if not table.strip():
                raise ConfigurationError("table", "must be a non-empty table name")
            spec = TableSpec.standard(table)
        elif isinstance(table, TableSpec):
            spec = table
        else:
            raise ConfigurationError("table", "must be a table name or a TableSpec")
        if not isinstance(spec.name, str) or _TABLE_NAME.fullmatch(spec.name) is None:
            raise ConfigurationError(
                "table",
                f"{spec.name!r} is not a DynamoDB table name (3 to 255 of A-Z a-z 0-9 _ . -)",
            )
        for option, value in (
            ("tenant_attribute", tenant_attribute),
            ("version_attribute", version_attribute),
        ):
            if not isinstance(value, str) or not value:
                raise ConfigurationError(option, "must be a non-empty attribute name")
        if version_attribute == tenant_attribute:
            # both are the unit of work's own: every versioned write would then fail
            raise ConfigurationError(
                "version_attribute", f"{version_attribute!r} is the tenant_attribute too"
            )
        try:
            self.schema = Schema.from_spec(
                spec, tenant_attribute=tenant_attribute, version_attribute=version_attribute
            )
        except ValueError as exc:
            raise ConfigurationError("table", str(exc)) from None
        if transport is not None and client is not None:
            raise ConfigurationError("transport", "pass a transport or a client, not both")
        if (transport is not None or client is not None) and (endpoint or region):
            raise ConfigurationError("endpoint", "endpoint/region belong to the default transport")
        if client is not None:
            transport = Aioboto3Transport(client)
        if transport is not None and not isinstance(transport, DynamoTransport):
            raise ConfigurationError("transport", "must implement request(), close() and calls")
        self._owns_transport = transport is None
        self.transport: DynamoTransport = transport or shared_transport(endpoint, region)
        try:  # an int too large for a float is no number of seconds either
            seconds = float(timeout) if not isinstance(timeout, bool | str) else math.nan
        except (TypeError, ValueError, OverflowError):
            seconds = math.nan
        if not 0 < seconds < math.inf:
            raise ConfigurationError("timeout", "must be a positive number of seconds")
        self.timeout = seconds
        # A transport that bounds every call itself and says so (``timeout``, seconds:
        # AiodynamoTransport's aiohttp timer) needs no second timer, which would cost
        # ~10 µs a call; others are wrapped in asyncio.timeout.
        own_timeout = getattr(self.transport, "timeout", None)
        self._timer_needed = not (
            isinstance(own_timeout, int | float) and own_timeout <= self.timeout
        )
        if retry is None:
            retry = RetryPolicy()
        elif not isinstance(retry, RetryPolicy):
            raise ConfigurationError("retry", "must be a RetryPolicy")
        self.retry = retry
        if isinstance(bulk_concurrency, bool) or not isinstance(bulk_concurrency, int):
            raise ConfigurationError("bulk_concurrency", "must be an int >= 1")
        if bulk_concurrency < 1:
            raise ConfigurationError("bulk_concurrency", "must be an int >= 1")
        self.bulk_concurrency = bulk_concurrency
        self.cursors = CursorSigner(resolve_secret(cursor_secret))
        self.name = spec.name
        self.spec = spec
        if not isinstance(verify_table, bool):  # "no" would have been true
            raise ConfigurationError("verify_table", "True or False")
        self._verified = not verify_table
        self._failure: LiftError | None = None
        self._failure_until = 0.0

    def __repr__(self) -> str:
        return f"DynamoTable({self.name!r}, transport={type(self.transport).__name__})"

    def unit_of_work(self, tenant_id: str | None) -> UnitOfWork:
        """A unit of work scoped to ``tenant_id`` (outside HTTP: scripts, jobs, tests).

        Use it as ``async with table.unit_of_work("acme") as uow: ...``: it commits when
        the block ends normally and discards when it raises.
        """
        return UnitOfWork(self, tenant_id)

    # -- calls ----------------------------------------------------------------------

    async def call(self, action: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        """One DynamoDB call: table check on first use, limits, timeout. No retry."""
        if not self._verified:
            await self.verify()
        if action in LIMITED_ACTIONS:
            check_request_limits(action, payload)
        try:
            if not self._timer_needed:
                return await self.transport.request(action, payload)
            async with asyncio.timeout(self.timeout):
                return await self.transport.request(action, payload)
        except TimeoutError:
            log.warning("DynamoDB %s on %r timed out after %.2fs", action, self.name, self.timeout)
            raise DynamoDBUnavailable(
                aws_code="Timeout", retry_after=self.retry.retry_after
            ) from None
        except TableNotFound:
            self._verified = False
            raise self._remember(
                TableNotFound(f"The DynamoDB table '{self.name}' does not exist.")
            ) from None

    async def retrying(
        self, action: str, payload: Mapping[str, Any], *, ambiguous_ok: bool = True
    ) -> dict[str, Any]:
        """:meth:`call` with the retry policy.

        Throttling is always retried (a throttled request was not applied). Failures whose
        outcome is unknown (5xx, timeouts, dropped connections) are retried only when
        ``ambiguous_ok``: the request is safe to apply twice.
        """
        return await run_with_retries(
            lambda: self.call(action, payload),
            self.retry,
            any_unavailable if ambiguous_ok else not_applied,
        )

    # -- the table check --------------------------------------------------------------

    def _remember(self, error: LiftError) -> LiftError:
        self._failure = error
        self._failure_until = time.monotonic() + _FAILURE_MEMORY
        return error

    async def verify(self) -> None:
        """Describe the table once and check it; raise :class:`TableMisconfigured`."""
        if self._verified:
            return
        failure = self._failure
        if failure is not None and time.monotonic() < self._failure_until:
            raise type(failure)(failure.detail)
        try:
            async with asyncio.timeout(self.timeout):
                described = await self.transport.request("DescribeTable", {"TableName": self.name})
        except TimeoutError:
            raise DynamoDBUnavailable(aws_code="Timeout") from None
        except TableNotFound:
            log.error("DynamoDB table %r does not exist", self.name)
            raise self._remember(
                TableNotFound(f"The DynamoDB table '{self.name}' does not exist.")
            ) from None
        except DynamoDBError as exc:
            if exc.aws_code == "AccessDeniedException":
                log.warning(
                    "not allowed to describe DynamoDB table %r; its schema is not checked",
                    self.name,
                )
                self._verified = True
                return
            raise
        description = described.get("Table", {})
        status = description.get("TableStatus", "ACTIVE")
        if status == "CREATING":
            raise DynamoDBUnavailable(aws_code="TableCreating", retry_after=5)
        problems = _describe_problems(self.schema, description)
        if status in {"DELETING", "ARCHIVING", "ARCHIVED", "INACCESSIBLE_ENCRYPTION_CREDENTIALS"}:
            problems.insert(0, f"it is {status}")
        if problems:
            log.error("DynamoDB table %r is misconfigured: %s", self.name, "; ".join(problems))
            raise self._remember(
                TableMisconfigured(
                    f"The DynamoDB table '{self.name}' is misconfigured: {'; '.join(problems)}."
                )
            )
        self._failure = None
        self._verified = True

    async def close(self) -> None:
        """Close the transport if this table opened it (it reopens lazily if used again)."""
        if self._owns_transport:
            await self.transport.close()
