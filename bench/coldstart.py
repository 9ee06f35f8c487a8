"""Cold start of a Lambda handler: process start to the first answered event.

    python -m bench.coldstart [--runs N]

Two handlers answer the same API Gateway (HTTP API, v2) event, ``GET /projects/{id}``
with a bearer token, from a fresh Python process each time, against one local DynamoDB
server (:class:`~lift_asgi.local.LocalDynamoDB`):

- **the example**: ``examples.saas.lambda_handler.handler`` (FastAPI, every stage the
  example installs, ``lift_asgi.aws.handler``): it verifies the JWT, counts the request
  in the rate-limit table (one UpdateItem) and reads the project (one GetItem);
- **FastAPI + Mangum + aioboto3**, written the usual way: PyJWT verifies the token, one
  aioboto3 client (created on the first request, kept) reads the same item with the same
  GetItem; no rate limit.

Per run the parent starts the child and waits for the line it prints once the handler
returned the answer; the wall time between the two is the row (interpreter start
included, the same for both). The child also reports how long importing the handler's
module took and how long the first event took after that. Medians of ``runs``
alternating starts; ratios to the FastAPI + Mangum + aioboto3 handler. Nothing here
asserts on a time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Row", "render", "run"]

ROOT = Path(__file__).resolve().parent.parent
TENANT = "acme"
BASELINE = "FastAPI + Mangum + aioboto3 (by hand)"
EXAMPLE = "the example (lift_asgi.aws.handler, every stage)"

# What each child runs: import the handler (timed), answer one event (timed), print.
_CHILD = """
import json, sys, time
start = time.perf_counter()
{import_handler}
imported = time.perf_counter()
from lift_asgi.testing import api_gateway_v2_event, lambda_context
event = api_gateway_v2_event("GET", "/projects/" + sys.argv[1],
                             headers={{"authorization": "Bearer " + sys.argv[2]}})
answer = handler(event, lambda_context())
done = time.perf_counter()
print(json.dumps({{"status": answer["statusCode"], "body": answer["body"],
                  "import_s": imported - start, "event_s": done - imported}}), flush=True)
"""

_BY_HAND = '''
"""FastAPI + Mangum + aioboto3, the usual way: the baseline handler."""
import os

import aioboto3
import jwt
from fastapi import FastAPI, Header, HTTPException
from mangum import Mangum

app = FastAPI()
session = aioboto3.Session()
client = None
SECRET = os.environ["SAAS_JWT_SECRET"]
TABLE = os.environ["SAAS_TABLE"]


@app.get("/projects/{project_id}")
async def get_project(project_id: str, authorization: str = Header()) -> dict:
    global client
    try:
        claims = jwt.decode(authorization.removeprefix("Bearer "), SECRET, algorithms=["HS256"])
    except jwt.PyJWTError:
        raise HTTPException(401) from None
    if client is None:
        client = await session.client("dynamodb").__aenter__()
    key = {"pk": {"S": claims["tenant_id"] + "#projects"}, "sk": {"S": "project#" + project_id}}
    item = (await client.get_item(TableName=TABLE, Key=key)).get("Item")
    if item is None:
        raise HTTPException(404)
    return {"id": item["id"]["S"], "name": item["name"]["S"], "created_at": item["created_at"]["S"],
            "version": int(item["version"]["N"])}


handler = Mangum(app, lifespan="off")
'''


@dataclass(frozen=True)
class Row:
    handler: str
    ms: float  # process start -> first answer, median
    import_ms: float  # importing the handler's module, in the child
    event_ms: float  # the first event, after the import
    ratio: float  # ms / the baseline's


def _env(endpoint: str, tables: dict[str, str], secret: str) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        "AWS_ENDPOINT_URL_DYNAMODB": endpoint,
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "SAAS_ENV": "dev",
        "SAAS_JWT_SECRET": secret,
        "SAAS_TABLE": tables["data"],
        "SAAS_RATE_TABLE": tables["rate"],
    }


def _start(import_handler: str, env: dict[str, str], project: str, token: str) -> dict[str, Any]:
    code = _CHILD.format(import_handler=import_handler)
    began = time.perf_counter()
    child = subprocess.Popen(
        [sys.executable, "-c", code, project, token],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tempfile.gettempdir(),
    )
    assert child.stdout is not None
    line = child.stdout.readline()
    answered = time.perf_counter()
    _, err = child.communicate(timeout=60)
    if not line:
        raise RuntimeError(f"the handler printed nothing:\n{err[-2000:]}")
    result: dict[str, Any] = json.loads(line)
    if result["status"] != 200:
        raise RuntimeError(f"the handler answered {result['status']}: {result['body']}")
    result["total_s"] = answered - began
    return result


async def _seed(endpoint: str, tables: dict[str, str], secret: str) -> str:
    """Create the example's tables and one project through the example itself."""
    import httpx

    from examples.saas.app import create_app
    from examples.saas.settings import Settings
    from examples.saas.setup import create_tables
    from examples.saas.token import mint

    settings = Settings(
        env="dev",
        jwt_secret=secret,
        table=tables["data"],
        rate_table=tables["rate"],
        rates={"free": "1000/minute", "pro": "1000/minute", "enterprise": "1000/minute"},
        endpoint=endpoint,
        region="us-east-1",
    )
    await create_tables(settings)
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    headers = {"authorization": f"Bearer {mint(TENANT, plan='pro', secret=secret)}"}
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as http:
        created = await http.post("/projects", json={"name": "Apollo"}, headers=headers)
    if created.status_code != 201:
        raise RuntimeError(f"seeding answered {created.status_code}: {created.text}")
    project: str = created.json()["id"]
    return project


def run(runs: int = 7) -> list[Row]:
    """The baseline row first, then the example's."""
    from examples.saas.token import mint
    from lift_asgi.local import LocalDynamoDB

    secret = "bench-coldstart-secret-0123456789abcdef"
    suffix = uuid.uuid4().hex[:8]
    tables = {"data": f"cold-data-{suffix}", "rate": f"cold-rate-{suffix}"}
    with tempfile.TemporaryDirectory(prefix="lift-coldstart-") as scratch:
        (Path(scratch) / "by_hand_handler.py").write_text(_BY_HAND)
        with LocalDynamoDB() as server:
            project = asyncio.run(_seed(server.endpoint, tables, secret))
            env = _env(server.endpoint, tables, secret)
            env["PYTHONPATH"] = os.pathsep.join([scratch, env["PYTHONPATH"]])
            cases = [
                (BASELINE, "from by_hand_handler import handler"),
                (EXAMPLE, "from examples.saas.lambda_handler import handler"),
            ]
            results: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in cases}
            for _ in range(runs):
                for name, statement in cases:
                    token = mint(TENANT, plan="pro", secret=secret)
                    results[name].append(_start(statement, env, project, token))
    rows = []
    base = statistics.median(r["total_s"] for r in results[BASELINE])
    for name, _ in cases:
        total = statistics.median(r["total_s"] for r in results[name])
        rows.append(
            Row(
                name,
                total * 1e3,
                statistics.median(r["import_s"] for r in results[name]) * 1e3,
                statistics.median(r["event_s"] for r in results[name]) * 1e3,
                total / base,
            )
        )
    return rows


def render(rows: list[Row]) -> str:
    width = max(len(row.handler) for row in rows)
    lines = [f"{'handler':<{width}}  {'start→answer ms':>15}  {'import ms':>9}  "
             f"{'1st event ms':>12}  {'ratio':>5}"]  # fmt: skip
    lines.append("-" * len(lines[0]))
    lines += [
        f"{r.handler:<{width}}  {r.ms:>15.0f}  {r.import_ms:>9.0f}  {r.event_ms:>12.0f}  "
        f"{r.ratio:>5.2f}"
        for r in rows
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=7, help="fresh processes per handler")
    args = parser.parse_args(argv)
    print(render(run(args.runs)))


if __name__ == "__main__":
    main()
