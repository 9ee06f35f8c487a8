"""``python -m lift_asgi.local``: run a local DynamoDB engine until Ctrl-C.

It prints every variable a shell needs to talk to it (endpoint, region and dummy
credentials: the AWS SDKs refuse to sign without some), as ``export`` lines to paste or
``eval``.
"""

from __future__ import annotations

import argparse
import contextlib
import shlex
import signal
import sys
import threading
from collections.abc import Sequence

from lift_asgi.local.engines import DEFAULT_ENGINE, ENGINE_VARIABLE, ENGINES
from lift_asgi.local.server import LocalDynamoDB
from lift_asgi.local.wire import LocalDynamoDBError

__all__ = ["exports", "main"]

EXAMPLE_TABLES = ("saas-data", "saas-rate-limits")


def exports(server: LocalDynamoDB) -> dict[str, str]:
    """The environment an app or SDK needs for ``server``, without AWS credentials."""
    return {
        "AWS_ENDPOINT_URL_DYNAMODB": server.endpoint,
        "AWS_REGION": server.region,
        "AWS_DEFAULT_REGION": server.region,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lift_asgi.local",
        description="Run a local DynamoDB engine until interrupted, and print the "
        "variables to export.",
    )
    parser.add_argument(
        "--engine",
        choices=ENGINES,
        default=None,
        help=f"moto or ministack (default: ${ENGINE_VARIABLE}, else {DEFAULT_ENGINE} when "
        "installed, else moto)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port (8000; 0 picks one)")
    parser.add_argument("--region", default="us-east-1", help="region to export (us-east-1)")
    parser.add_argument(
        "--tables",
        default="",
        help="comma-separated tables to create with the standard schema "
        "(pk/sk strings, GSI gsi1 on gsi1pk/gsi1sk, TTL on ttl)",
    )
    parser.add_argument(
        "--example-tables",
        action="store_true",
        help=f"create the SaaS example's tables ({', '.join(EXAMPLE_TABLES)})",
    )
    opts = parser.parse_args(argv)
    try:
        server = LocalDynamoDB(
            engine=opts.engine, host=opts.host, port=opts.port, region=opts.region
        )
        server.start()
    except LocalDynamoDBError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    tables = [t.strip() for t in opts.tables.split(",") if t.strip()]
    if opts.example_tables:
        tables += EXAMPLE_TABLES
    try:
        server.create_tables(tables)
        print(f"DynamoDB ({server.engine}) listening on {server.endpoint}")
        if tables:
            print(f"tables: {', '.join(tables)}")
        print("# paste into the shell that runs your app (dummy credentials: local only)")
        for name, value in exports(server).items():
            print(f"export {name}={shlex.quote(value)}")
        sys.stdout.flush()
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        while not stop.is_set() and server.running:
            stop.wait(0.5)
    finally:
        with contextlib.suppress(Exception):
            server.stop()
    return 0
