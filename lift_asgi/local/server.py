"""Start, wait for and stop a local DynamoDB engine in a child process; or attach to one
that already runs. One type, one API, whichever.

``LocalDynamoDB(engine="moto" | "ministack")`` starts an engine on a loopback port
(``port=0``: a free one); ``start()`` returns once it answers ``ListTables``. It is
stopped by :meth:`LocalDynamoDB.stop`, by the context managers (sync and async), at
interpreter exit, and by itself when its parent dies. ``LocalDynamoDB.attach(endpoint)``
wraps a server someone else runs (``LIFT_ASGI_DYNAMODB_ENDPOINT``): same methods, and
``stop()`` leaves that server alone.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
from collections.abc import Iterable
from types import TracebackType
from typing import IO, TYPE_CHECKING

from lift_asgi.local.engines import EngineName, launch, resolve_engine
from lift_asgi.local.moto_child import READY
from lift_asgi.local.wire import LocalDynamoDBError, dynamodb_request, port_in_use

if TYPE_CHECKING:
    from lift_asgi.dynamo.tables import TableSpec

__all__ = ["LocalDynamoDB"]

# Dummy credentials for the child: some engines' SDK code wants any at all.
_CHILD_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


class LocalDynamoDB:
    """A local DynamoDB server: started here (``engine``), or attached (:meth:`attach`)."""

    def __init__(
        self,
        *,
        engine: EngineName | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        region: str = "us-east-1",
        startup_timeout: float = 30.0,
        python: str | None = None,
    ) -> None:
        self.engine: str = resolve_engine(engine)
        self.host = host
        self.port = port
        self.region = region
        self.startup_timeout = startup_timeout
        self._python = python or sys.executable
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._attached: str | None = None

    @classmethod
    def attach(cls, endpoint: str, *, region: str = "us-east-1") -> LocalDynamoDB:
        """A server that already runs at ``endpoint`` (its requests are signed with the
        environment's credentials, dummy ones when there are none). :meth:`stop` never
        stops it."""
        server = cls(engine="moto", region=region)
        server.engine = "external"
        server._attached = endpoint.rstrip("/")
        return server

    # -- state ----------------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        if self._attached is not None:
            return self._attached
        if self._process is None:
            raise LocalDynamoDBError("the local DynamoDB server is not running; call start()")
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        """The child process's pid; ``None`` when attached or stopped."""
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        if self._attached is not None:
            return True
        return self._process is not None and self._process.poll() is None

    # -- lifecycle ------------------------------------------------------------------

    def start(self) -> LocalDynamoDB:
        if self._process is not None or self._attached is not None:
            return self
        if self.port and port_in_use(self.host, self.port):
            raise LocalDynamoDBError(
                f"port {self.port} on {self.host} is already in use; "
                "choose another with --port (or port=0 for a free one)"
            )
        how = launch(self.engine, self.host, self.port, os.getpid(), self._python)  # type: ignore[arg-type]
        self._log = tempfile.TemporaryFile(prefix="lift-asgi-dynamodb-")  # noqa: SIM115
        env = {**_CHILD_ENV, **os.environ, **how.env, "PYTHONUNBUFFERED": "1"}
        self._process = subprocess.Popen(
            how.argv,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        _LIVE.add(self)
        try:
            self.port = how.port if how.port is not None else self._wait_ready_line()
            self._wait_answering()
        except BaseException:
            self.stop()
            raise
        return self

    def _log_text(self, since: int = 0) -> str:
        # pread: the child writes through the same open file, whose offset a seek would move
        if self._log is None:
            return ""
        fd = self._log.fileno()
        size = os.fstat(fd).st_size
        return os.pread(fd, max(size - since, 0), since).decode(errors="replace")

    @property
    def log_offset(self) -> int:
        """How many bytes the server has logged so far (``0`` when attached): pass it to
        :meth:`log_tail` later to see only what was logged since."""
        return os.fstat(self._log.fileno()).st_size if self._log is not None else 0

    def log_tail(self, lines: int = 40, *, since: int = 0) -> str:
        """The server's last ``lines`` log lines, from byte ``since`` on: the tracebacks
        of requests it failed (answered 500) and its own errors. Empty when attached."""
        return "\n".join(self._log_text(since).splitlines()[-lines:])

    def _exited(self) -> LocalDynamoDBError | None:
        assert self._process is not None
        if self._process.poll() is None:
            return None
        return LocalDynamoDBError(
            f"the local DynamoDB server ({self.engine}) exited with code "
            f"{self._process.returncode} while starting; its last lines:\n{self.log_tail(15)}"
        )

    def _wait_ready_line(self) -> int:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            for line in self._log_text().splitlines():
                if line.startswith(READY):
                    return int(line.split()[1])
            if (error := self._exited()) is not None:
                raise error
            time.sleep(0.02)
        raise LocalDynamoDBError(
            f"the local DynamoDB server ({self.engine}) did not start within "
            f"{self.startup_timeout:.0f}s; its last lines:\n{self.log_tail(15)}"
        )

    def _wait_answering(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            try:
                dynamodb_request(self.endpoint, "ListTables", {}, region=self.region, timeout=2)
                return
            except (urllib.error.URLError, OSError, ValueError) as exc:
                last = exc
            if (error := self._exited()) is not None:
                raise error
            time.sleep(0.05)
        raise LocalDynamoDBError(
            f"the local DynamoDB server ({self.engine}) never answered ListTables within "
            f"{self.startup_timeout:.0f}s: {last}; its last lines:\n{self.log_tail(15)}"
        )

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the child (SIGTERM, then SIGKILL). Attached servers are left running."""
        process, self._process = self._process, None
        _LIVE.discard(self)
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout)
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> LocalDynamoDB:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> LocalDynamoDB:
        return await asyncio.to_thread(self.start)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await asyncio.to_thread(self.stop)

    # -- tables -----------------------------------------------------------------------

    def create_tables(self, names: Iterable[str]) -> None:
        """Create tables with the suite's standard schema (see ``dynamo.tables``); an
        existing table is left as it is."""
        from lift_asgi.dynamo.tables import TableSpec

        for name in names:
            self.create_table(TableSpec.standard(name), exist_ok=True)

    def create_table(self, spec: TableSpec, *, exist_ok: bool = False) -> TableSpec:
        """Create ``spec`` (its TTL included) and return it."""
        from lift_asgi.dynamo.tables import create_table_payload, ttl_payload

        try:
            dynamodb_request(
                self.endpoint, "CreateTable", create_table_payload(spec), region=self.region
            )
        except urllib.error.HTTPError as exc:
            body = exc.read().decode(errors="replace")
            if not (exist_ok and "ResourceInUseException" in body):
                raise LocalDynamoDBError(f"could not create table {spec.name!r}: {body}") from None
            return spec
        self._wait_active(spec.name)
        if spec.ttl_attribute:
            dynamodb_request(
                self.endpoint, "UpdateTimeToLive", ttl_payload(spec), region=self.region
            )
        return spec

    def _wait_active(self, name: str, limit: float = 300.0) -> None:
        """Local engines create a table at once; real DynamoDB takes seconds."""
        deadline = time.monotonic() + limit
        while True:
            table = dynamodb_request(
                self.endpoint, "DescribeTable", {"TableName": name}, region=self.region
            )["Table"]
            indexes = table.get("GlobalSecondaryIndexes", [])
            if table.get("TableStatus", "ACTIVE") == "ACTIVE" and all(
                index.get("IndexStatus", "ACTIVE") == "ACTIVE" for index in indexes
            ):
                return
            if time.monotonic() > deadline:
                raise LocalDynamoDBError(f"table {name!r} was not ACTIVE within {limit:.0f}s")
            time.sleep(1.0)

    def delete_table(self, name: str) -> None:
        """Delete table ``name``; one already gone (or a server gone) is not an error."""
        with contextlib.suppress(urllib.error.URLError, OSError, ValueError):
            dynamodb_request(self.endpoint, "DeleteTable", {"TableName": name}, region=self.region)

    def __repr__(self) -> str:
        where = self._attached or (f"{self.host}:{self.port}" if self._process else "stopped")
        return f"<LocalDynamoDB {self.engine} {where}>"


_LIVE: set[LocalDynamoDB] = set()


@atexit.register
def _stop_all() -> None:  # pragma: no cover - exercised at interpreter exit
    for server in list(_LIVE):
        server.stop()
