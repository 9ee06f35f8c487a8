"""A local DynamoDB server for development and tests: moto's server mode, serialised.

moto's threaded server evaluates a ConditionExpression and applies an update without a
lock, so concurrent conditional writes can over-admit (see DESIGN.md). DynamoDB makes
each item write atomic; to behave the same, the server started here wraps moto's WSGI
application so that one request is handled at a time, behind one lock.

Use it as::

    python -m lift_asgi.local --port 8000 --tables saas-data,saas-rate-limits

or from Python::

    async with LocalDynamoDB() as db:
        print(db.endpoint)

The server is a separate process. It is stopped by :meth:`LocalDynamoDB.stop`, by the
context managers, at interpreter exit, and it stops by itself when its parent process
dies (it watches its parent pid), so no test run leaves one behind.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import contextlib
import importlib.util
import io
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import IO, Any, cast

__all__ = ["MOTO_VERSION", "LocalDynamoDB", "LocalDynamoDBError", "main"]

#: The moto release whose internals the serialising wrapper is written against.
MOTO_VERSION = "5.2.5"

_READY = "LIFT_ASGI_LOCAL_READY"
_FAKE_AUTH = (
    "AWS4-HMAC-SHA256 Credential=lift/20250101/{region}/dynamodb/aws4_request, "
    "SignedHeaders=host;x-amz-target, Signature=00"
)


class LocalDynamoDBError(RuntimeError):
    """The local server could not be started (port in use, moto missing, crashed)."""


def _require_moto() -> None:
    if importlib.util.find_spec("moto") is None or importlib.util.find_spec("werkzeug") is None:
        raise LocalDynamoDBError(
            "the local DynamoDB server needs moto's server mode: "
            "pip install 'lift-asgi[testing]' (it pins moto[server]"
            f"=={MOTO_VERSION})"
        )


def _port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return True
    return False


def dynamodb_request(
    endpoint: str,
    action: str,
    payload: dict[str, Any],
    *,
    region: str = "us-east-1",
    timeout: float = 5.0,
) -> dict[str, Any]:
    """Send one unsigned DynamoDB JSON request (for the local server only)."""
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


class LocalDynamoDB:
    """Start and stop the serialised moto DynamoDB server in a child process.

    ``port=0`` picks a free loopback port. ``start()`` returns once the server answers
    ``ListTables``. The object is a context manager, sync and async.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        region: str = "us-east-1",
        startup_timeout: float = 30.0,
        python: str | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.region = region
        self.startup_timeout = startup_timeout
        self._python = python or sys.executable
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    # -- lifecycle ------------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        if self._process is None:
            raise LocalDynamoDBError("the local DynamoDB server is not running; call start()")
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> LocalDynamoDB:
        if self._process is not None:
            return self
        _require_moto()
        if self.port and _port_in_use(self.host, self.port):
            raise LocalDynamoDBError(
                f"port {self.port} on {self.host} is already in use; "
                "choose another with --port (or port=0 for a free one)"
            )
        self._log = tempfile.TemporaryFile(prefix="lift-asgi-dynamodb-")  # noqa: SIM115
        env = dict(os.environ)
        env.setdefault("AWS_ACCESS_KEY_ID", "testing")
        env.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
        env["PYTHONUNBUFFERED"] = "1"
        self._process = subprocess.Popen(
            [
                self._python,
                "-m",
                "lift_asgi.local",
                "_serve",
                "--host",
                self.host,
                "--port",
                str(self.port),
                "--parent-pid",
                str(os.getpid()),
            ],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        _LIVE.add(self)
        try:
            self.port = self._wait_ready()
            self._wait_answering()
        except BaseException:
            self.stop()
            raise
        return self

    def _log_text(self) -> str:
        if self._log is None:
            return ""
        self._log.seek(0)
        return self._log.read().decode(errors="replace")

    def _last_lines(self, count: int = 15) -> str:
        return "\n".join(self._log_text().splitlines()[-count:])

    def _wait_ready(self) -> int:
        assert self._process is not None
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            for line in self._log_text().splitlines():
                if line.startswith(_READY):
                    return int(line.split()[1])
            if self._process.poll() is not None:
                raise LocalDynamoDBError(
                    f"the local DynamoDB server exited with code {self._process.returncode} "
                    f"while starting; its last lines:\n{self._last_lines()}"
                )
            time.sleep(0.02)
        raise LocalDynamoDBError(
            f"the local DynamoDB server did not start within {self.startup_timeout:.0f}s; "
            f"its last lines:\n{self._last_lines()}"
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
                time.sleep(0.05)
        raise LocalDynamoDBError(f"the local DynamoDB server never answered ListTables: {last}")

    def stop(self, timeout: float = 5.0) -> None:
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

    # -- context managers -----------------------------------------------------------

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

    # -- convenience ----------------------------------------------------------------

    def create_tables(self, names: Iterable[str]) -> None:
        """Create tables with the suite's standard schema (see ``dynamo.tables``)."""
        from lift_asgi.dynamo.tables import TableSpec, create_table_payload, ttl_payload

        for name in names:
            spec = TableSpec.standard(name)
            payload = create_table_payload(spec)
            try:
                dynamodb_request(self.endpoint, "CreateTable", payload, region=self.region)
            except urllib.error.HTTPError as exc:
                body = exc.read().decode(errors="replace")
                if "ResourceInUseException" not in body:
                    raise LocalDynamoDBError(f"could not create table {name!r}: {body}") from None
            if spec.ttl_attribute:
                dynamodb_request(
                    self.endpoint, "UpdateTimeToLive", ttl_payload(spec), region=self.region
                )


_LIVE: set[LocalDynamoDB] = set()


@atexit.register
def _stop_all() -> None:  # pragma: no cover - exercised at interpreter exit
    for server in list(_LIVE):
        server.stop()


# -- the child process --------------------------------------------------------------


def _serialised(app: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a WSGI app so that one request at a time runs, body included, under a lock."""
    lock = threading.Lock()

    def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        with lock:
            result = app(environ, start_response)
            try:
                body = b"".join(result)
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
        return [body]

    return application


def _watch_parent(parent_pid: int) -> None:
    while True:
        if os.getppid() != parent_pid:
            os._exit(0)
        time.sleep(0.5)


class _KeepAliveHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 with keep-alive in front of a WSGI app (moto's, serialised).

    werkzeug's development server closes every connection (it drains the socket after
    each response), which costs every client call a TCP handshake; AWS keeps connections
    alive, and so does this handler. It reads exactly ``Content-Length`` bytes of each
    request and answers with a ``Content-Length``, which is all DynamoDB's JSON protocol
    needs.
    """

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body leave as two writes
    app: Callable[..., Any]

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        path, _, query = self.path.partition("?")
        server_host, server_port = cast(tuple[str, int], self.server.server_address)[:2]
        environ: dict[str, Any] = {
            "REQUEST_METHOD": self.command,
            "SCRIPT_NAME": "",
            "PATH_INFO": urllib.parse.unquote(path),
            "QUERY_STRING": query,
            "SERVER_NAME": server_host,
            "SERVER_PORT": str(server_port),
            "SERVER_PROTOCOL": self.request_version,
            "REMOTE_ADDR": self.client_address[0],
            "CONTENT_LENGTH": str(length),
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(body),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
        }
        for name, value in self.headers.items():
            key = "HTTP_" + name.upper().replace("-", "_")
            if key not in ("HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH"):
                environ[key] = f"{environ[key]},{value}" if key in environ else value
        started: list[Any] = []

        def start_response(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Any:
            started[:] = [status, headers]
            return lambda data: None

        payload = b"".join(self.app(environ, start_response))
        status, headers = started
        code, _, reason = status.partition(" ")
        self.send_response(int(code), reason)
        for name, value in headers:
            if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _handle

    def log_message(self, format: str, *args: Any) -> None:
        return None


def _serve(host: str, port: int, parent_pid: int | None) -> None:
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    def _exit(signum: int, frame: Any) -> None:
        os._exit(0)

    signal.signal(signal.SIGTERM, _exit)
    signal.signal(signal.SIGINT, _exit)
    if parent_pid:
        threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True).start()

    handler = type(
        "Handler",
        (_KeepAliveHandler,),
        {"app": staticmethod(_serialised(DomainDispatcherApplication(create_backend_app)))},
    )
    # socketserver's listen backlog is 5: a burst of new connections would overflow it
    # and wait a second for SYN retransmits.
    server_class = type("Server", (ThreadingHTTPServer,), {"request_queue_size": 1024})
    server = server_class((host, port), handler)
    server.daemon_threads = True
    print(f"{_READY} {server.server_address[1]}", flush=True)
    server.serve_forever()


# -- command line -------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["_serve"]:
        child = argparse.ArgumentParser(prog="lift_asgi.local _serve")
        child.add_argument("--host", default="127.0.0.1")
        child.add_argument("--port", type=int, default=0)
        child.add_argument("--parent-pid", type=int, default=0)
        opts = child.parse_args(args[1:])
        _serve(opts.host, opts.port, opts.parent_pid or None)
        return 0

    parser = argparse.ArgumentParser(
        prog="python -m lift_asgi.local",
        description="Run a local DynamoDB server (moto, serialised) until interrupted.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port (8000; 0 picks one)")
    parser.add_argument(
        "--tables",
        default="",
        help="comma-separated tables to create with the standard schema "
        "(pk/sk strings, GSI gsi1 on gsi1pk/gsi1sk, TTL on ttl)",
    )
    parser.add_argument(
        "--example-tables",
        action="store_true",
        help="create the SaaS example's tables (saas-data, saas-rate-limits)",
    )
    opts = parser.parse_args(args)
    server = LocalDynamoDB(host=opts.host, port=opts.port)
    try:
        server.start()
    except LocalDynamoDBError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    tables = [t.strip() for t in opts.tables.split(",") if t.strip()]
    if opts.example_tables:
        tables += ["saas-data", "saas-rate-limits"]
    try:
        server.create_tables(tables)
        print(f"DynamoDB (moto, serialised) listening on {server.endpoint}")
        if tables:
            print(f"tables: {', '.join(tables)}")
        print(f"export AWS_ENDPOINT_URL_DYNAMODB={server.endpoint}", flush=True)
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        while not stop.is_set() and server.running:
            stop.wait(0.5)
    finally:
        with contextlib.suppress(Exception):
            server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
