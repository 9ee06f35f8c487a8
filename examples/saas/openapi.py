"""Print the example's OpenAPI document: python -m examples.saas.openapi [--indent N].

The app serves no ``/docs`` or ``/openapi.json``: every route but ``/health`` needs a
token, and a browser cannot send one. The document is built from the routes, needing no
server, no DynamoDB and no secret."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence

from examples.saas.app import create_app
from examples.saas.settings import Settings


def document() -> dict[str, object]:
    return create_app(Settings.from_env({"SAAS_ENV": "dev"})).openapi()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m examples.saas.openapi")
    parser.add_argument("--indent", type=int, default=2)
    args = parser.parse_args(argv)
    print(json.dumps(document(), indent=args.indent or None))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
