"""The unit of work's per-request path on a request that writes nothing (issue 10).

The middleware makes its unit of work without ``UnitOfWork.__init__``, handles the plain
path in ``__call__`` itself and forwards body messages through one cell: these tests pin
what that must keep (the handle the app gets, the outcome, the pass-through, the raise).
"""

from __future__ import annotations

from typing import Any

import pytest
from starlette.types import Message, Receive, Scope, Send

from lift_asgi.dynamo import UnitOfWork, UnitOfWorkMiddleware, current_uow
from lift_asgi.dynamo.tables import TableSpec
from lift_asgi.dynamo.transport import AiodynamoTransport
from lift_asgi.errors import DuplicateItem, NotFound
from lift_asgi.stages import UNIT_OF_WORK, context, current_context

pytestmark = pytest.mark.dynamodb


def _scope() -> dict[str, Any]:
    return {"type": "http", "method": "GET", "path": "/p", "headers": [], "query_string": b""}


async def _receive() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


def _middleware(app: Any, transport: AiodynamoTransport, table: TableSpec) -> Any:
    return UnitOfWorkMiddleware(
        app, table=table.name, transport=transport, tenant_from=lambda scope: "acme"
    )


async def test_the_unit_the_app_gets_is_what_the_constructor_makes(
    aiodynamo_transport: AiodynamoTransport, dynamodb_table: TableSpec
) -> None:
    seen: dict[str, Any] = {}

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        uow = scope["state"]["uow"]
        seen["uow"] = uow
        seen["same"] = uow is context(scope).uow is current_uow()
        made = UnitOfWork(uow.table, "acme")
        seen["fields"] = (dict(vars(uow)), dict(vars(made)))
        seen["pending"] = (uow.pending, made.pending)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    scope = _scope()
    await _middleware(app, aiodynamo_transport, dynamodb_table)(scope, _receive, send)
    assert seen["same"] is True
    assert type(seen["uow"]) is UnitOfWork
    ours, theirs = seen["fields"]
    assert ours == theirs and list(ours) == ["table", "tenant_id", "_ops"]
    assert seen["pending"] == (0, 0)
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    assert sent[1]["body"] == b"ok"
    ctx = context(scope)
    assert ctx.commit == "none" and ctx.stages == [UNIT_OF_WORK]
    assert current_context() is None
    with pytest.raises(RuntimeError, match="no unit of work"):
        current_uow()
    with pytest.raises(RuntimeError, match="has ended"):
        seen["uow"].put({"pk": "late", "sk": "1"})


async def test_a_lift_error_after_the_start_is_raised_and_before_it_is_its_problem(
    aiodynamo_transport: AiodynamoTransport, dynamodb_table: TableSpec
) -> None:
    async def after_start(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        raise NotFound("gone while streaming")

    async def before_start(scope: Scope, receive: Receive, send: Send) -> None:
        raise NotFound("never there")

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    scope = _scope()
    with pytest.raises(NotFound):
        await _middleware(after_start, aiodynamo_transport, dynamodb_table)(scope, _receive, send)
    assert [m["type"] for m in sent] == ["http.response.start"]
    assert context(scope).commit == "none"
    sent.clear()
    await _middleware(before_start, aiodynamo_transport, dynamodb_table)(_scope(), _receive, send)
    assert sent[0]["status"] == 404
    assert b"never there" in sent[1]["body"]


async def test_a_4xx_with_nothing_written_is_none_and_messages_before_the_start_pass(
    aiodynamo_transport: AiodynamoTransport, dynamodb_table: TableSpec
) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.debug", "info": {}})  # not a start: passes
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b"a", "more_body": True})
        await send({"type": "http.response.body", "body": b"b"})

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    scope = _scope()
    await _middleware(app, aiodynamo_transport, dynamodb_table)(scope, _receive, send)
    assert [m.get("body") for m in sent] == [None, None, b"a", b"b"]
    assert context(scope).commit == "none"


def test_a_write_after_a_discard_or_a_commit_starts_a_fresh_buffer(
    aiodynamo_transport: AiodynamoTransport, dynamodb_table: TableSpec
) -> None:
    from lift_asgi.dynamo import DynamoTable

    uow = DynamoTable(dynamodb_table, transport=aiodynamo_transport).unit_of_work("acme")
    uow.put({"pk": "p", "sk": "1"})
    with pytest.raises(DuplicateItem):
        uow.put({"pk": "p", "sk": "1"})
    assert uow.discard() == 1
    uow.put({"pk": "p", "sk": "1"})  # the same item again: the discard forgot it
    assert uow.pending == 1
