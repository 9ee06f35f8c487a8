"""`make run`: a local DynamoDB engine, the tables, and the app on 127.0.0.1:8080.

The engine is ``--engine`` (``make run ENGINE=moto``), else ``LIFT_ASGI_DYNAMODB_ENGINE``,
else lift-asgi's default (ministack; see the README's "Local DynamoDB").

Prints a curl line with a fresh dev token. Ctrl-C stops the app and the server.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import Sequence

from examples.saas.settings import Settings
from examples.saas.setup import create_tables
from examples.saas.token import mint
from lift_asgi.local import ENGINES, LocalDynamoDB


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m examples.saas.dev")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--dynamodb-port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--engine", choices=ENGINES, default=None, help="local DynamoDB engine")
    args = parser.parse_args(argv)

    import uvicorn

    os.environ.setdefault("SAAS_ENV", "dev")
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ.setdefault("AWS_REGION", "us-east-1")
    with LocalDynamoDB(engine=args.engine, port=args.dynamodb_port) as server:
        os.environ["AWS_ENDPOINT_URL_DYNAMODB"] = server.endpoint
        settings = Settings.from_env()
        asyncio.run(create_tables(settings))
        token = mint("acme", plan="pro", sub="alice", secret=settings.jwt_secret)
        base = f"http://{args.host}:{args.port}"
        print(f"DynamoDB (local, {server.engine}): {server.endpoint}")
        print(f"tables: {settings.table}, {settings.rate_table}")
        print(f"app: {base}  (Ctrl-C stops the app and the database)")
        print("try:")
        print(
            f"  curl -s -X POST {base}/projects -H 'Authorization: Bearer {token}' "
            "-H 'Content-Type: application/json' -d '{\"name\": \"First project\"}'"
        )
        print(f"  curl -s {base}/projects -H 'Authorization: Bearer {token}'", flush=True)
        uvicorn.run("examples.saas.app:app", host=args.host, port=args.port, log_level="info")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
