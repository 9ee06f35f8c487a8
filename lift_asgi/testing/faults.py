"""A fault-injecting HTTP proxy in front of a DynamoDB endpoint.

The local emulator never throttles, never fails and never drops a connection; the
proxy does, on demand, so tests can prove what an app does when DynamoDB does::

    proxy.throttle(times=2, operation="TransactWriteItems")
    proxy.fail(status=500)                  # the next call answers 500
    proxy.delay(2.0, operation="GetItem")   # the next GetItem waits 2 s first
    proxy.drop(times=None)                  # every call: connection closed, no answer
    proxy.lose_answer(operation="TransactWriteItems")  # applied upstream, answer lost
    proxy.fail(status=500, applied=True)    # applied upstream, then answered 500
    proxy.garble_answer()                   # applied upstream, a 200 that is not JSON
    proxy.error("TransactionConflictException", operation="UpdateItem")
    proxy.reset()                           # no faults, no recorded calls

``times=None`` keeps a fault until :meth:`FaultProxy.reset`; ``after=k`` lets the first
``k`` matching calls through before the fault starts (a failure midway through a batch);
``table="name"`` limits a fault to calls on that table (its ``TableName``, or a batch's or
transaction's tables: the data table's writes, not the rate limiter's). Every helper
takes ``operation``, ``after`` and ``table``.
Faults are consumed in the order they were added; each call meets at most one. Every
call is recorded (operation, decoded JSON payload, the fault it met) in
:attr:`FaultProxy.calls`, which is how a test sees what a client really sent (retries,
ClientRequestToken, batch sizes).

The proxy runs its own event loop in a daemon thread, so it works from sync and async
tests alike and whatever event loop the test uses.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from dataclasses import dataclass, field
from http import HTTPStatus
from types import TracebackType
from typing import Any, Literal

import aiohttp

__all__ = ["Call", "Fault", "FaultProxy"]

FaultKind = Literal["throttle", "error", "delay", "drop", "lose", "garble"]

_THROTTLE_TYPES = {
    "ProvisionedThroughputExceededException": "com.amazonaws.dynamodb.v20120810#",
    "ThrottlingException": "com.amazon.coral.availability#",
    "RequestLimitExceeded": "com.amazonaws.dynamodb.v20120810#",
}
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


@dataclass
class Fault:
    kind: FaultKind
    times: int | None = 1
    operation: str | None = None
    status: int = 500
    code: str = "ProvisionedThroughputExceededException"
    seconds: float = 0.0
    applied: bool = False  # an "error" after forwarding the call (the server applied it)
    after: int = 0  # let this many matching calls through first
    table: str | None = None  # only calls on this table (see FaultProxy)

    def matches(self, operation: str, tables: frozenset[str] = frozenset()) -> bool:
        return (
            (self.times is None or self.times > 0)
            and (self.operation is None or self.operation == operation)
            and (self.table is None or self.table in tables)
        )


@dataclass
class Call:
    """One request the proxy received."""

    operation: str
    payload: dict[str, Any] = field(repr=False)
    fault: FaultKind | None = None
    status: int | None = None
    lost_answer: bytes | None = field(default=None, repr=False)


class FaultProxy:
    """Forward DynamoDB JSON-protocol requests to ``upstream``, injecting faults."""

    def __init__(self, upstream: str, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.upstream = upstream.rstrip("/")
        self.host = host
        self.port = port
        self.calls: list[Call] = []
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._session: aiohttp.ClientSession | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    # -- faults ---------------------------------------------------------------------

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            self._faults.append(fault)
        return fault

    def throttle(
        self,
        times: int | None = 1,
        *,
        operation: str | None = None,
        code: str = "ProvisionedThroughputExceededException",
        after: int = 0,
        table: str | None = None,
    ) -> Fault:
        """Answer 400 with a throttling error (``ThrottlingException`` and others)."""
        if code not in _THROTTLE_TYPES:
            raise ValueError(f"code: one of {sorted(_THROTTLE_TYPES)}, not {code!r}")
        return self.add(
            Fault("throttle", times, operation, status=400, code=code, after=after, table=table)
        )

    def fail(
        self,
        times: int | None = 1,
        *,
        operation: str | None = None,
        status: int = 500,
        after: int = 0,
        table: str | None = None,
        applied: bool = False,
    ) -> Fault:
        """Answer ``status`` (500 InternalServerError, 503 ServiceUnavailable, ...);
        with ``applied=True`` after forwarding the call, which the server applies (a 5xx
        DynamoDB may answer for a request it carried out).

        Only server errors: a 4xx needs its DynamoDB error code, given to :meth:`error`
        (or :meth:`throttle`); ``fail(status=400)`` answered a throttle before, so a test
        meaning a non-retryable error passed for the wrong reason.
        """
        if isinstance(status, bool) or not isinstance(status, int) or not 500 <= status <= 599:
            raise ValueError(
                f"status: a 5xx, not {status!r}; for a 4xx use error(code, status=...) "
                "or throttle()"
            )
        return self.add(
            Fault(
                "error", times, operation, status=status, applied=applied, after=after, table=table
            )
        )

    def error(
        self,
        code: str,
        times: int | None = 1,
        *,
        operation: str | None = None,
        status: int = 400,
        after: int = 0,
        table: str | None = None,
    ) -> Fault:
        """Answer with any DynamoDB error ``code`` (``TransactionConflictException``,
        ``ValidationException``, ...), not applying the call."""
        return self.add(
            Fault("error", times, operation, status=status, code=code, after=after, table=table)
        )

    def delay(
        self,
        seconds: float,
        times: int | None = 1,
        *,
        operation: str | None = None,
        after: int = 0,
        table: str | None = None,
    ) -> Fault:
        """Wait ``seconds`` before forwarding the call (which then applies upstream,
        even if the client gave up waiting: a request slower than its timeout)."""
        return self.add(Fault("delay", times, operation, seconds=seconds, after=after, table=table))

    def drop(
        self,
        times: int | None = 1,
        *,
        operation: str | None = None,
        after: int = 0,
        table: str | None = None,
    ) -> Fault:
        """Close the connection without answering (the call is not forwarded)."""
        return self.add(Fault("drop", times, operation, after=after, table=table))

    def lose_answer(
        self,
        times: int | None = 1,
        *,
        operation: str | None = None,
        after: int = 0,
        table: str | None = None,
    ) -> Fault:
        """Forward the call (the server applies it), then close the connection before
        the answer reaches the client: the ambiguous failure a retry with the same
        ``ClientRequestToken`` exists for. The answer the client never saw is kept in
        :attr:`Call.status` / :attr:`Call.lost_answer`."""
        return self.add(Fault("lose", times, operation, after=after, table=table))

    def garble_answer(
        self,
        times: int | None = 1,
        *,
        operation: str | None = None,
        after: int = 0,
        table: str | None = None,
    ) -> Fault:
        """Forward the call (the server applies it), then answer 200 with the first half
        of its answer, which is not JSON (a broken middlebox, a body cut short). The
        answer the client never saw whole is kept in :attr:`Call.lost_answer`. A call
        the server refused (a failed condition) is answered as it is."""
        return self.add(Fault("garble", times, operation, after=after, table=table))

    def reset(self) -> None:
        with self._lock:
            self._faults.clear()
            self.calls.clear()

    def operations(self) -> list[str]:
        return [call.operation for call in self.calls]

    def calls_of(self, operation: str) -> list[Call]:
        return [call for call in self.calls if call.operation == operation]

    def _take(self, operation: str, payload: dict[str, Any]) -> Fault | None:
        tables = _tables(payload)
        with self._lock:
            for fault in self._faults:
                if fault.matches(operation, tables):
                    if fault.after > 0:
                        fault.after -= 1
                        return None
                    if fault.times is not None:
                        fault.times -= 1
                    return fault
        return None

    # -- lifecycle ------------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> FaultProxy:
        ready = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self._open())
            except BaseException as exc:  # pragma: no cover - bind failure
                errors.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._close())
            loop.close()

        self._thread = threading.Thread(target=run, name="lift-asgi-fault-proxy", daemon=True)
        self._thread.start()
        ready.wait(10)
        if errors:
            raise errors[0]
        return self

    async def _open(self) -> None:
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=60), auto_decompress=False
        )
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)
        if self._session is not None:
            await self._session.close()

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        self._loop = self._thread = None

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- the proxy ------------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            await self._serve(reader, writer)
        except asyncio.CancelledError:
            # stop() cancels the connections still open (keep-alive, a delay). The task
            # ends normally instead: Python < 3.12's start_server callback calls
            # task.exception() on a cancelled handler and logs "Exception in callback"
            # with a CancelledError traceback for every such connection.
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            request_line, *header_lines = head.decode("latin-1").split("\r\n")
            method, path, _ = request_line.split(" ", 2)
            headers: list[tuple[str, str]] = []
            for line in header_lines:
                if line:
                    name, _, value = line.partition(":")
                    headers.append((name.strip(), value.strip()))
            lowered = {name.lower(): value for name, value in headers}
            body = await reader.readexactly(int(lowered.get("content-length", "0")))
            if not await self._answer(writer, method, path, headers, lowered, body):
                return
            if lowered.get("connection", "").lower() == "close":
                return

    async def _answer(
        self,
        writer: asyncio.StreamWriter,
        method: str,
        path: str,
        headers: list[tuple[str, str]],
        lowered: dict[str, str],
        body: bytes,
    ) -> bool:
        operation = lowered.get("x-amz-target", "").rpartition(".")[2] or "?"
        try:
            payload = json.loads(body) if body else {}
        except ValueError:
            payload = {}
        call = Call(operation, payload)
        self.calls.append(call)
        fault = self._take(operation, payload)
        if fault is not None:
            call.fault = fault.kind
            if fault.kind == "drop":
                writer.transport.abort()
                return False
            if fault.kind == "delay":
                await asyncio.sleep(fault.seconds)
            elif fault.kind == "throttle":
                error_type = _THROTTLE_TYPES[fault.code] + fault.code
                call.status = 400
                await self._write(
                    writer,
                    400,
                    _error_body(error_type, "Rate of requests exceeds the allowed throughput."),
                )
                return True
            elif fault.kind == "error" and not fault.applied:
                if fault.status < 500:
                    name = fault.code
                elif fault.status == 503:
                    name = "ServiceUnavailable"
                else:
                    name = "InternalServerError"
                call.status = fault.status
                await self._write(
                    writer,
                    fault.status,
                    _error_body(f"com.amazonaws.dynamodb.v20120810#{name}", "Injected failure"),
                )
                return True
        assert self._session is not None
        forward = {k: v for k, v in headers if k.lower() not in _HOP_BY_HOP}
        try:
            async with self._session.request(
                method, self.upstream + path, headers=forward, data=body
            ) as response:
                data = await response.read()
                call.status = response.status
                content_type = response.headers.get("content-type", "application/x-amz-json-1.0")
        except aiohttp.ClientError:
            writer.transport.abort()
            return False
        if fault is not None and fault.kind == "lose":
            call.lost_answer = data
            writer.transport.abort()
            return False
        if fault is not None and fault.kind == "garble" and call.status == 200:
            call.lost_answer = data
            await self._write(writer, 200, data[: len(data) // 2], content_type)
            return True
        if fault is not None and fault.kind == "error":  # applied, then a server error
            call.lost_answer, call.status = data, fault.status
            name = "ServiceUnavailable" if fault.status == 503 else "InternalServerError"
            await self._write(
                writer,
                fault.status,
                _error_body(f"com.amazonaws.dynamodb.v20120810#{name}", "Injected failure"),
            )
            return True
        await self._write(writer, call.status, data, content_type)
        return True

    @staticmethod
    async def _write(
        writer: asyncio.StreamWriter,
        status: int,
        body: bytes,
        content_type: str = "application/x-amz-json-1.0",
    ) -> None:
        reason = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else ""
        writer.write(
            (
                f"HTTP/1.1 {status} {reason}\r\n"
                f"Content-Type: {content_type}\r\n"
                f"Content-Length: {len(body)}\r\n"
                "x-amzn-RequestId: lift-asgi-fault-proxy\r\n\r\n"
            ).encode("latin-1")
            + body
        )
        await writer.drain()


def _tables(payload: dict[str, Any]) -> frozenset[str]:
    """The tables a call names: its TableName, a batch's RequestItems, a transaction's."""
    names: set[str] = set()
    if isinstance(payload.get("TableName"), str):
        names.add(payload["TableName"])
    items = payload.get("RequestItems")
    if isinstance(items, dict):
        names.update(items)
    for entry in payload.get("TransactItems") or ():
        for action in entry.values() if isinstance(entry, dict) else ():
            if isinstance(action, dict) and isinstance(action.get("TableName"), str):
                names.add(action["TableName"])
    return frozenset(names)


def _error_body(error_type: str, message: str) -> bytes:
    return json.dumps({"__type": error_type, "message": message}).encode()
