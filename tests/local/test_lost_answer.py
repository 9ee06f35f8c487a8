"""The scenario ClientRequestToken exists for, end to end: a unit of work commits, the
answer is lost on the way back, the unit of work retries with the same token, and the
client sees the success that really happened, with the data written once (before,
moto applied the retry as a new transaction: its conditions failed and the client got a
false 409 "nothing was written")."""

from __future__ import annotations

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from lift_asgi import UnitOfWorkMiddleware, current_uow
from lift_asgi.dynamo.tables import TableSpec
from lift_asgi.dynamo.transport import AiodynamoTransport
from lift_asgi.testing import FaultProxy


async def create(request: Request) -> JSONResponse:
    uow = current_uow()
    uow.put({"pk": "projects", "sk": "p1", "name": "First"}, if_absent=True)
    uow.update({"pk": "stats", "sk": "projects"}, add={"count": 1})
    return JSONResponse({"ok": True}, status_code=201)


async def test_a_lost_commit_answer_retried_with_its_token_is_a_success_written_once(
    dynamodb_fault_proxy: FaultProxy, dynamodb_table: TableSpec, dynamodb_endpoint: str
) -> None:
    app = UnitOfWorkMiddleware(
        Starlette(routes=[Route("/", create, methods=["POST"])]),
        table=dynamodb_table.name,
        endpoint=dynamodb_fault_proxy.endpoint,
        tenant_from=lambda scope: "acme",
    )
    dynamodb_fault_proxy.lose_answer(operation="TransactWriteItems")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.post("/")
    assert response.status_code == 201, response.text
    sent = dynamodb_fault_proxy.calls_of("TransactWriteItems")
    assert [call.fault for call in sent] == ["lose", None]
    assert sent[0].status == 200, "the first attempt was committed upstream"
    assert len({call.payload["ClientRequestToken"] for call in sent}) == 1
    direct = AiodynamoTransport.static(dynamodb_endpoint)
    try:
        stats = await direct.request(
            "GetItem",
            {
                "TableName": dynamodb_table.name,
                "Key": {"pk": {"S": "acme#stats"}, "sk": {"S": "projects"}},
                "ConsistentRead": True,
            },
        )
    finally:
        await direct.close()
    assert stats["Item"]["count"] == {"N": "1"}, "the retry must not apply the writes again"
