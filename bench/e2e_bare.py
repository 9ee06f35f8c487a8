"""The end-to-end baseline: bare FastAPI doing the example's DynamoDB calls by hand.

    uvicorn bench.e2e_bare:app

What a hand-written service would do without lift_asgi, with aioboto3 (one client per
process, opened in the lifespan): verify the HS256 JWT with PyJWT, count the request
against the tenant's per-minute limit with one conditional ``UpdateItem`` (what the
suite's rate limiter sends), then the same data calls the SaaS example makes for the
route, on the same table layout (``{tenant}#`` partition keys, a ``_tenant`` attribute):

- ``GET /projects/{id}``: ``UpdateItem`` + ``GetItem``;
- ``POST /projects``: ``UpdateItem`` + ``TransactWriteItems`` (put the project if absent,
  add 1 to the analytics counter).

Environment: ``BARE_TABLE``, ``BARE_RATE_TABLE``, ``BARE_LIMIT`` (per minute, 10000),
``SAAS_JWT_SECRET`` (else the example's dev key), ``AWS_ENDPOINT_URL_DYNAMODB``,
``AWS_REGION``. No ``lift_asgi`` import: this is the app the suite is compared with.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import aioboto3
import jwt
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

TABLE = os.environ.get("BARE_TABLE", "bare-data")
RATE_TABLE = os.environ.get("BARE_RATE_TABLE", "bare-rate-limits")
LIMIT = int(os.environ.get("BARE_LIMIT", "10000"))
SECRET = os.environ.get("SAAS_JWT_SECRET") or "dev-only-secret-not-for-production-use"


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    session = aioboto3.Session()
    async with session.client(
        "dynamodb",
        endpoint_url=os.environ.get("AWS_ENDPOINT_URL_DYNAMODB"),
        region_name=os.environ.get("AWS_REGION", "us-east-1"),
    ) as client:
        app.state.db = client
        yield


app = FastAPI(lifespan=lifespan)


class NewProject(BaseModel):
    name: str = Field(min_length=1, max_length=200)


async def admit(request: Request) -> tuple[Any, str]:
    """The DynamoDB client and the tenant, once the token is verified and the request
    counted; raises 401 or 429."""
    header = request.headers.get("authorization", "")
    try:
        claims = jwt.decode(
            header.removeprefix("Bearer "),
            SECRET,
            algorithms=["HS256"],
            options={"require": ["exp", "tenant_id"]},
        )
    except jwt.PyJWTError:
        raise HTTPException(401, "invalid token") from None
    tenant = str(claims["tenant_id"])
    db = request.app.state.db
    now = time.time()
    window = int(now // 60)
    try:
        await db.update_item(
            TableName=RATE_TABLE,
            Key={"pk": {"S": f"rl#default#{tenant}"}, "sk": {"S": "rl"}},
            UpdateExpression="ADD #c :n SET #t = :t",
            ConditionExpression="attribute_not_exists(#c) OR #c <= :m",
            ExpressionAttributeNames={"#c": f"60s{window}", "#t": "ttl"},
            ExpressionAttributeValues={
                ":n": {"N": "1"},
                ":m": {"N": str(LIMIT - 1)},
                ":t": {"N": str((window + 2) * 60)},
            },
            ReturnValues="ALL_NEW",
        )
    except db.exceptions.ConditionalCheckFailedException:
        raise HTTPException(429, "rate limit exceeded") from None
    return db, tenant


def project_out(item: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": item["id"]["S"],
        "name": item["name"]["S"],
        "created_at": item["created_at"]["S"],
        "version": int(item["version"]["N"]),
    }


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/projects/{project_id}")
async def get_project(project_id: str, request: Request) -> dict[str, Any]:
    db, tenant = await admit(request)
    answer = await db.get_item(
        TableName=TABLE,
        Key={"pk": {"S": f"{tenant}#projects"}, "sk": {"S": f"project#{project_id}"}},
    )
    item = answer.get("Item")
    if item is None or item.get("_tenant", {}).get("S") != tenant:
        raise HTTPException(404, "No such project.")
    return project_out(item)


@app.post("/projects", status_code=201)
async def create_project(body: NewProject, request: Request) -> Any:
    db, tenant = await admit(request)
    project_id = f"{int(time.time() * 1000):012x}{secrets.token_hex(5)}"
    created = datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
    item = {
        "pk": {"S": f"{tenant}#projects"},
        "sk": {"S": f"project#{project_id}"},
        "_tenant": {"S": tenant},
        "id": {"S": project_id},
        "name": {"S": body.name},
        "created_at": {"S": created},
        "version": {"N": "1"},
        "task_count": {"N": "0"},
    }
    try:
        await db.transact_write_items(
            TransactItems=[
                {
                    "Put": {
                        "TableName": TABLE,
                        "Item": item,
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                },
                {
                    "Update": {
                        "TableName": TABLE,
                        "Key": {"pk": {"S": f"{tenant}#analytics"}, "sk": {"S": "summary"}},
                        "UpdateExpression": "ADD #p :one SET #t = :tenant",
                        "ExpressionAttributeNames": {"#p": "projects", "#t": "_tenant"},
                        "ExpressionAttributeValues": {
                            ":one": {"N": "1"},
                            ":tenant": {"S": tenant},
                        },
                    }
                },
            ]
        )
    except db.exceptions.TransactionCanceledException:
        return JSONResponse({"detail": "conflict"}, status_code=409)
    return project_out(item)
