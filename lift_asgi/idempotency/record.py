"""The idempotency record of one request: claimed before the handler, completed in the
unit of work's own commit, released when the response is not to be remembered.

One item per key and tenant, written through the unit of work's tenant scope, so it is
stored under the tenant's prefix like any other item (``{tenant}#_idempotency#{key}``)
and carries the tenant attribute:

==================  =========================================================
``state``           ``in_progress`` (claimed, renewed while its request runs),
                    ``completed`` (remembered) or ``released`` (given up: free
                    to any other request, never to a late copy of its own claim)
``token``           the claiming request's random token: only it may complete,
                    renew or release the claim
``fingerprint``     SHA-256 of method, path, query string and body bytes
``expires_at``      epoch seconds after which an in-progress claim may be retaken
                    (the Lambda deadline, or ``in_progress_expiry`` from its last
                    renewal), or a released one leaves; named
                    ``claim_expires_at`` on a table whose TTL attribute is
                    ``expires_at``, so the two never share an attribute
TTL attribute       epoch seconds after which the key is forgotten (``retention``)
``response_*``      status, the headers that matter, body bytes (once completed)
==================  =========================================================

The claim is one conditional ``PutItem`` with ``ReturnValuesOnConditionCheckFailure=
ALL_OLD``: a duplicate learns everything (fingerprint, state, stored response) from the
failed write itself, so a replay or a conflict costs one call. A claim whose answer was
lost is retried safely: finding its own token in the returned item, it knows it holds the
claim. The completion is an ``update`` buffered in the unit of work, conditioned on this
request's token still holding an in-progress claim, so it commits in the same call as the
handler's writes or not at all.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starlette.types import Send

from lift_asgi.dynamo.conditions import Attr, Expression
from lift_asgi.dynamo.handle import TableHandle
from lift_asgi.dynamo.keys import TenantScope
from lift_asgi.dynamo.limits import MAX_TRANSACTION_ITEMS
from lift_asgi.dynamo.uow import UnitOfWork
from lift_asgi.errors import (
    ConditionFailed,
    DynamoDBUnavailable,
    IdempotencyClaimLost,
    IdempotencyInProgress,
    IdempotencyKeyReused,
    LiftError,
    TooManyOperations,
    send_problem,
)
from lift_asgi.stages import SCOPE_KEY

__all__ = [
    "COMPLETED",
    "IN_PROGRESS",
    "RELEASED",
    "IdempotencyClaimLost",
    "IdempotencyInProgress",
    "IdempotencyKeyReused",
    "IdempotentRecord",
    "RecordPolicy",
    "fingerprint",
    "retry_seed",
]

if TYPE_CHECKING:
    from starlette.requests import HTTPConnection

log = logging.getLogger("lift_asgi.idempotency")

IN_PROGRESS = "in_progress"
COMPLETED = "completed"
#: A claim given up (see :meth:`IdempotentRecord.release`): free for any other request.
RELEASED = "released"
REPLAYED_HEADER = (b"idempotent-replayed", b"true")


def fingerprint(method: str, path: str, body: bytes, query: bytes = b"") -> str:
    """What makes two requests "the same": method, path, query string and body bytes.

    Without a query string the digest is the one of earlier versions (method, path and
    body), so a record written before the query string counted still matches its
    retries. With one, path and query are length-prefixed behind a version tag, so no
    split of the same bytes between path, query and body gives the same digest.
    """
    target = path.encode("utf-8", "surrogateescape")
    if not query:
        digest = hashlib.sha256(method.encode() + b"\n" + target)
    else:
        digest = hashlib.sha256(b"v2\n" + method.encode() + b"\n")
        for part in (target, query):
            digest.update(b"%d:" % len(part))
            digest.update(part)
    digest.update(b"\n")
    digest.update(body)
    return digest.hexdigest()


def retry_seed(request: HTTPConnection) -> bytes | None:
    """32 bytes that are the same for every retry of this request, and differ for any
    other request: another tenant, key, method, path, query string or body. ``None``
    when the request is not deduplicated (no key, a method not covered, no tenant).

    For a handler whose work cannot be one transaction (a long import in batches): it
    derives its item ids from the seed and writes them only if absent, so a retry after
    a failure midway resumes the work instead of repeating it. Pass the seed through a
    keyed hash with a server secret (HMAC) before using it as an id, so no client can
    predict the ids and take one first.
    """
    ctx = request.scope.get(SCOPE_KEY)
    record = ctx.idempotency if ctx is not None else None
    if not isinstance(record, IdempotentRecord) or not record.claimed:
        return None
    return record.seed


@dataclass(frozen=True, slots=True)
class RecordPolicy:
    """The stage's options, compiled once (see :class:`IdempotencyMiddleware`)."""

    retention: float
    in_progress_expiry: float
    max_response_bytes: int
    replay_headers: frozenset[bytes]
    key_prefix: str
    ttl_attribute: str | None
    clock: Callable[[], float]

    def ttl_name(self, table: TableHandle) -> str:
        return self.ttl_attribute or table.spec.ttl_attribute or "ttl"

    def expiry_name(self, table: TableHandle) -> str:
        """The in-progress claim's expiry attribute: never the TTL attribute itself (an
        item expiring at the claim's deadline would forget a completed response)."""
        return "claim_expires_at" if self.ttl_name(table) == "expires_at" else "expires_at"


class IdempotentRecord:
    """One request's record; implements :class:`lift_asgi.stages.IdempotentRequest`."""

    __slots__ = (
        "_key",
        "_number",
        "_scope",
        "claimed",
        "expires_in",
        "fingerprint",
        "key",
        "max_response_bytes",
        "policy",
        "renewable",
        "token",
    )

    def __init__(
        self,
        policy: RecordPolicy,
        key: str,
        fingerprint: str,
        expires_in: float,
        token: str,
        *,
        renewable: bool = True,
    ) -> None:
        self.policy = policy
        self.key = key
        self.fingerprint = fingerprint
        self.expires_in = expires_in
        self.token = token
        #: False under Lambda: the claim lasts the invocation, which the request cannot
        #: outlive, so there is nothing to renew
        self.renewable = renewable
        self.max_response_bytes = policy.max_response_bytes
        self.claimed = False
        self._scope: TenantScope | None = None
        self._key: Any = None
        self._number = 0

    @property
    def seed(self) -> bytes:
        """See :func:`retry_seed`; known once the key is claimed (the tenant with it)."""
        if self._scope is None:
            raise RuntimeError("the retry seed is known once the key is claimed")
        tenant = self._scope.tenant_id
        digest = hashlib.sha256(b"lift-asgi retry seed\n")
        for part in (tenant, self.key, self.fingerprint):
            raw = part.encode("utf-8", "surrogateescape")
            digest.update(b"%d:" % len(raw) + raw)
        return digest.digest()

    # -- before the handler -----------------------------------------------------------

    def _locate(self, uow: UnitOfWork) -> tuple[TenantScope, Any]:
        scope = self._scope
        if scope is None:
            assert uow.tenant_id is not None  # the unit of work claims for tenants only
            scope = self._scope = TenantScope(uow.table.schema, uow.tenant_id)
            logical = self.policy.key_prefix + self.key
            self._key = (logical, "_") if scope.schema.sk else logical
        return scope, self._key

    async def claim(self, uow: UnitOfWork, send: Send) -> bool:
        """Claim the key in one conditional write; ``False`` when an answer was sent."""
        table = uow.table
        try:
            scope, key = self._locate(uow)
        except LiftError as error:  # a malformed tenant id from tenant_from
            await send_problem(send, error)
            return False
        schema = scope.schema
        policy = self.policy
        ttl = policy.ttl_name(table)
        expiry = policy.expiry_name(table)
        now = policy.clock()
        fields: dict[str, Any] = {
            schema.pk: key[0] if isinstance(key, tuple) else key,
            "state": IN_PROGRESS,
            "token": self.token,
            "fingerprint": self.fingerprint,
            expiry: math.ceil(now + self.expires_in),
            ttl: math.ceil(now + policy.retention),
        }
        if schema.sk:
            fields[schema.sk] = key[1]
        expr = Expression()
        free = (
            Attr(schema.pk).not_exists()
            | Attr(ttl).lt(int(now))
            | (Attr("state").eq(IN_PROGRESS) & Attr(expiry).lt(int(now)))
            # released by another request; one this request released is a late copy of
            # its own claim, which must not take the key back (see release())
            | (Attr("state").eq(RELEASED) & Attr("token").ne(self.token))
        )
        payload: dict[str, Any] = {
            "TableName": table.name,
            "Item": scope.stored(fields),
            "ConditionExpression": free.render(expr),
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }
        expr.apply(payload)
        try:
            # Safe to retry when the outcome is unknown: a claim that landed is
            # recognised below by its own token.
            await table.retrying("PutItem", payload)
        except ConditionFailed as failed:
            old = failed.item
            if old is None:  # an engine that does not return the item: read it
                found = await table.retrying(
                    "GetItem",
                    {"TableName": table.name, "Key": scope.key(key)[0], "ConsistentRead": True},
                )
                old = found.get("Item")
            record = scope.visible(old) if old else None
            return await self._duplicate(record, now, send)
        except LiftError as error:
            log.warning("idempotency claim of %r failed: %s", self.key, error.detail)
            await send_problem(send, error)
            return False
        self.claimed = True
        return True

    async def _duplicate(self, record: dict[str, Any] | None, now: float, send: Send) -> bool:
        if (
            record is not None
            and record.get("token") == self.token
            and record.get("state") == IN_PROGRESS
        ):
            self.claimed = True  # our own claim, whose first answer was lost
            return True
        if record is not None and record.get("fingerprint") != self.fingerprint:
            await send_problem(
                send,
                IdempotencyKeyReused(
                    "This Idempotency-Key was first used for a request with another method, "
                    "path, query string or body; use a new key for a new request."
                ),
            )
            return False
        if record is not None and record.get("state") == COMPLETED:
            await self._replay(record, send)
            return False
        # The first request usually finishes within a second; its claim's expiry (up to
        # the Lambda deadline) would make a client wait far longer than needed.
        wait = 1
        await send_problem(
            send,
            IdempotencyInProgress(
                "A request with this Idempotency-Key is still being handled; retry shortly.",
                headers={"retry-after": str(wait)},
                retry_after=wait,
            ),
        )
        return False

    @staticmethod
    async def _replay(record: dict[str, Any], send: Send) -> None:
        body = bytes(record.get("response_body") or b"")
        headers = [
            (str(name).encode("latin-1"), str(value).encode("latin-1"))
            for name, value in record.get("response_headers") or ()
        ]
        headers.append((b"content-length", str(len(body)).encode()))
        headers.append(REPLAYED_HEADER)
        await send(
            {
                "type": "http.response.start",
                "status": int(record["response_status"]),
                "headers": headers,
            }
        )
        await send({"type": "http.response.body", "body": body})

    # -- after the handler ------------------------------------------------------------

    def complete(
        self, uow: UnitOfWork, status: int, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> None:
        """Buffer the completion in ``uow``: it commits with the handler's writes."""
        if uow.pending >= MAX_TRANSACTION_ITEMS:
            raise TooManyOperations(
                f"The request buffered {uow.pending} operations, as many as one DynamoDB "
                "transaction holds, so its idempotency record has no room; nothing was "
                "written. Buffer at most 99 operations in an idempotent request."
            )
        _, key = self._locate(uow)
        policy = self.policy
        keep = policy.replay_headers
        values: dict[str, Any] = {
            "state": COMPLETED,
            "response_status": status,
            "response_headers": [
                [name.decode("latin-1"), value.decode("latin-1")]
                for name, value in headers
                if name.lower() in keep
            ],
            policy.ttl_name(uow.table): math.ceil(policy.clock() + policy.retention),
        }
        if body:
            values["response_body"] = body
        try:
            uow.update(
                key,
                set=values,
                remove=[policy.expiry_name(uow.table)],
                condition=Attr("token").eq(self.token) & Attr("state").eq(IN_PROGRESS),
            )
        except LiftError as error:  # over 400 KB, or the transaction over 4 MB
            raise LiftError(
                "The response to this idempotent request is too large to remember "
                f"({error.detail}); nothing was written."
            ) from None
        self._number = uow.pending

    def keep_alive(self, uow: UnitOfWork) -> Callable[[], None]:
        """Push the claim's expiry forward every third of it while the app runs, so a
        request slower than ``in_progress_expiry`` (a long import under throttling)
        keeps its key instead of a retry taking it over and running alongside; returns
        the function that stops it (the unit of work calls it once the response is
        complete). One conditional ``UpdateItem`` per renewal. Until the first is due
        there is only a timer on the loop: a request faster than a third of the expiry
        costs no task and no call. A renewal that fails leaves the claim to its expiry;
        the commit then finds out whether it was lost (``IdempotencyClaimLost``)."""
        if not self.renewable or not self.claimed:
            return _nothing
        loop = asyncio.get_running_loop()
        every = self.expires_in / 3
        task: asyncio.Task[None] | None = None

        def start() -> None:
            nonlocal task
            task = loop.create_task(self._renew_every(uow, every))

        timer = loop.call_later(every, start)

        def stop() -> None:
            timer.cancel()
            if task is not None:
                task.cancel()  # not awaited: that could swallow the caller's cancellation

        return stop

    async def _renew_every(self, uow: UnitOfWork, every: float) -> None:
        table = uow.table
        scope, key = self._locate(uow)
        policy = self.policy
        expiry = policy.expiry_name(table)
        while True:
            expr = Expression()
            until = math.ceil(policy.clock() + self.expires_in)
            mine = Attr("token").eq(self.token) & Attr("state").eq(IN_PROGRESS)
            payload: dict[str, Any] = {
                "TableName": table.name,
                "Key": scope.key(key)[0],
                "UpdateExpression": f"SET {expr.name(expiry)} = {expr.value(until)}",
                "ConditionExpression": mine.render(expr),
            }
            expr.apply(payload)
            try:
                await table.retrying("UpdateItem", payload)
            except ConditionFailed:
                return  # completed, released or taken over: nothing of ours to renew
            except LiftError as error:
                log.warning("renewing idempotency key %r failed: %s", self.key, error.detail)
            await asyncio.sleep(every)

    async def release(self, uow: UnitOfWork) -> None:
        """Give the claim up if this request still holds it, so a retry executes.

        The record is marked released under this request's token, not deleted: a copy
        of this request's claim still on its way (sent, timed out, resent) would find a
        deleted key free and take it back, leaving a claim no request owns and a 409 for
        every retry until it expires. A released record is free to any other request
        (see :meth:`claim`), and leaves with the claim's expiry.
        """
        if not self.claimed:
            return
        self.claimed = False
        table = uow.table
        scope, key = self._locate(uow)
        policy = self.policy
        until = math.ceil(policy.clock() + self.expires_in)
        expr = Expression()
        mine = Attr("token").eq(self.token) & Attr("state").eq(IN_PROGRESS)
        payload: dict[str, Any] = {
            "TableName": table.name,
            "Key": scope.key(key)[0],
            "UpdateExpression": (
                f"SET {expr.name('state')} = {expr.value(RELEASED)}, "
                f"{expr.name(policy.expiry_name(table))} = {expr.value(until)}, "
                f"{expr.name(policy.ttl_name(table))} = {expr.value(until)}"
            ),
            "ConditionExpression": mine.render(expr),
        }
        expr.apply(payload)
        try:
            await table.retrying("UpdateItem", payload)
        except ConditionFailed:
            pass  # completed after all (a lost answer), or retaken: not ours to give up
        except Exception as error:  # the claim expires on its own
            log.warning("releasing idempotency key %r failed: %r", self.key, error)

    async def recover(self, uow: UnitOfWork, error: Exception) -> Exception | None:
        """The commit carrying the completion failed, or seemed to: read the record.

        Completed under this request's token means the transaction was applied (the
        record and the data commit together) and only its answer was lost: ``None``, the
        held response stands. Otherwise the claim is released, so a retry executes, and
        the error to answer with is returned (a failed record condition: the claim was
        lost to another request after it expired).
        """
        table = uow.table
        scope, key = self._locate(uow)
        record: dict[str, Any] | None = None
        try:
            found = await table.retrying(
                "GetItem",
                {"TableName": table.name, "Key": scope.key(key)[0], "ConsistentRead": True},
            )
            raw = found.get("Item")
            record = scope.visible(raw) if raw else None
        except LiftError as failure:
            log.warning("reading idempotency key %r after a failed commit: %s", self.key, failure)
        if (
            record is not None
            and record.get("token") == self.token
            and record.get("state") == COMPLETED
        ):
            self.claimed = False
            return None
        await self.release(uow)
        if isinstance(error, DynamoDBUnavailable) and error.extra.get("outcome") == "unknown":
            # The key makes the client's resend safe, so it is "retry shortly": a late
            # copy of this commit fails its record condition once the claim is released,
            # and one that landed first left a completed record, which the resend replays.
            return DynamoDBUnavailable(aws_code=error.aws_code, retry_after=error.retry_after)
        if isinstance(error, ConditionFailed) and self._number:
            failed = error.extra.get("failed") or ()
            if any(entry.get("number") == self._number for entry in failed):
                return IdempotencyClaimLost(
                    "This request's claim on its Idempotency-Key expired and another request "
                    "took it before this one committed; nothing was written."
                )
        return error


def _nothing() -> None:
    """The stop of a claim with nothing to renew."""
