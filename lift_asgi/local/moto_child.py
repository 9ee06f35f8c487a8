"""The moto engine's process: moto's WSGI app behind the serialising front, served by
waitress (HTTP/1.1, connections kept alive as AWS keeps them), its transactions backed
up once per table (:mod:`lift_asgi.local.moto_backup`).

Started by :class:`~lift_asgi.local.server.LocalDynamoDB` as
``python -m lift_asgi.local.moto_child --port 0 --parent-pid N``; prints
``LIFT_ASGI_LOCAL_READY <port>`` once listening, exits on SIGTERM/SIGINT and when its
parent dies (it watches the parent pid), so no test run leaves one behind.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading
import time
from collections.abc import Sequence
from typing import Any

__all__ = ["READY", "main"]

READY = "LIFT_ASGI_LOCAL_READY"


def _watch_parent(parent_pid: int) -> None:
    while True:
        if os.getppid() != parent_pid:
            os._exit(0)
        time.sleep(0.5)


def serve(host: str, port: int, parent_pid: int | None, threads: int = 8) -> None:
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from waitress.server import create_server

    from lift_asgi.local.moto_backup import backup_each_table_once
    from lift_asgi.local.moto_front import serialised

    def _exit(signum: int, frame: Any) -> None:
        os._exit(0)

    signal.signal(signal.SIGTERM, _exit)
    signal.signal(signal.SIGINT, _exit)
    if parent_pid:
        threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True).start()
    backup_each_table_once()
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)  # "task queue depth" notes
    server = create_server(
        serialised(DomainDispatcherApplication(create_backend_app)),
        host=host,
        port=port,
        threads=threads,
        backlog=1024,  # a burst of new connections must not wait for SYN retransmits
        connection_limit=1000,
        channel_timeout=300,
        ident="lift-asgi-moto",
    )
    print(f"{READY} {server.effective_port}", flush=True)  # type: ignore[union-attr]
    server.run()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lift_asgi.local.moto_child")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--parent-pid", type=int, default=0)
    opts = parser.parse_args(argv)
    serve(opts.host, opts.port, opts.parent_pid or None)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
