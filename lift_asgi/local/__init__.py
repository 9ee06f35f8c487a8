"""Local DynamoDB engines for development and tests, in a separate process.

Two engines (see :mod:`lift_asgi.local.engines`): moto's server mode behind lift-asgi's
serialising front, and ministack. Use them as::

    python -m lift_asgi.local --engine moto --port 8000 --tables app-data

or from Python::

    async with LocalDynamoDB() as db:
        print(db.endpoint)

Files: ``server`` (start/wait/stop, table helpers), ``engines`` (how each engine starts),
``moto_front`` and ``tokens`` (moto's WSGI front and its ClientRequestToken memory),
``moto_backup`` (moto's transaction backup, once per table), ``moto_child`` (moto's
process), ``watchdog`` (stops ministack with its parent), ``wire`` (one SigV4-signed
JSON request without an SDK, free ports), ``cli``.
"""

from lift_asgi.local.engines import (
    DEFAULT_ENGINE,
    ENGINE_VARIABLE,
    ENGINES,
    MINISTACK_VERSION,
    MOTO_VERSION,
    EngineName,
    resolve_engine,
)
from lift_asgi.local.server import LocalDynamoDB
from lift_asgi.local.wire import LocalDynamoDBError, dynamodb_request

__all__ = [
    "DEFAULT_ENGINE",
    "ENGINES",
    "ENGINE_VARIABLE",
    "MINISTACK_VERSION",
    "MOTO_VERSION",
    "EngineName",
    "LocalDynamoDB",
    "LocalDynamoDBError",
    "dynamodb_request",
    "main",
    "resolve_engine",
]


def main() -> int:
    from lift_asgi.local.cli import main as cli_main

    return cli_main()
