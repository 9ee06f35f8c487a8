"""The unit of work against the local DynamoDB server, on both transports.

Every test here takes the ``transport`` fixture (directly or through ``table``/``uow``),
so the whole module is the conformance suite: it runs once on aiodynamo and once on an
aioboto3 client.
"""

from __future__ import annotations

import base64
import logging
from decimal import Decimal
from typing import Any

import pytest

from lift_asgi.dynamo import SK, Attr, Condition, DynamoTable, Page, UnitOfWork
from lift_asgi.dynamo.tables import TableSpec
from lift_asgi.dynamo.transport import AiodynamoTransport, DynamoTransport
from lift_asgi.errors import (
    ConditionFailed,
    DuplicateItem,
    InvalidCursor,
    InvalidItem,
    InvalidTenant,
    NotFound,
    TableMisconfigured,
    TableNotFound,
    TooManyOperations,
    Unauthorized,
    problem_body,
)

from .conftest import SECRET, scan

pytestmark = pytest.mark.dynamodb


def other(table: DynamoTable, tenant: str = "globex") -> UnitOfWork:
    return table.unit_of_work(tenant)


# -- reads and writes round trip ------------------------------------------------------


async def test_put_then_get_round_trips_plain_python(uow: UnitOfWork, raw: Any) -> None:
    item = {
        "pk": "projects",
        "sk": "p1",
        "name": "Apollo",
        "count": 3,
        "ratio": Decimal("0.25"),
        "done": False,
        "note": None,
        "tags": {"a", "b"},
        "blob": b"\x00\xff",
        "meta": {"nested": [1, "two"]},
        "empty": "",
    }
    uow.put(item)
    assert await uow.commit() == 1
    assert await uow.get("projects", "p1") == item
    assert await uow.get({"pk": "projects", "sk": "p1"}) == item
    assert await uow.get(("projects", "p1"), consistent=True) == item
    stored = await scan(raw, uow.table.name)
    assert len(stored) == 1
    assert stored[0]["pk"] == "acme#projects"
    assert stored[0]["_tenant"] == "acme"


async def test_get_missing_is_none_and_get_or_404_raises(uow: UnitOfWork) -> None:
    assert await uow.get("projects", "nope") is None
    with pytest.raises(NotFound) as caught:
        await uow.get_or_404("projects", "nope", detail="No such project.")
    assert caught.value.status == 404
    assert caught.value.detail == "No such project."


async def test_update_set_add_remove(uow: UnitOfWork) -> None:
    uow.put({"pk": "p", "sk": "1", "n": 1, "old": "x", "tags": {"a"}})
    await uow.commit()
    uow.update(("p", "1"), set={"name": "new"}, add={"n": 4, "tags": {"b"}}, remove=["old"])
    await uow.commit()
    assert await uow.get("p", "1") == {
        "pk": "p",
        "sk": "1",
        "n": 5,
        "name": "new",
        "tags": {"a", "b"},
    }


async def test_update_creates_a_tenant_stamped_item(uow: UnitOfWork, table: DynamoTable) -> None:
    uow.update(("stats", "counters"), add={"projects": 1})
    await uow.commit()
    assert await uow.get("stats", "counters") == {"pk": "stats", "sk": "counters", "projects": 1}
    assert await other(table).get("stats", "counters") is None


async def test_delete(uow: UnitOfWork) -> None:
    uow.put({"pk": "p", "sk": "1"})
    await uow.commit()
    uow.delete(("p", "1"))
    await uow.commit()
    assert await uow.get("p", "1") is None


# -- commit shapes: calls counted at the transport -----------------------------------


async def test_nothing_buffered_makes_no_call(uow: UnitOfWork, transport: DynamoTransport) -> None:
    before = transport.calls
    assert await uow.commit() == 0
    assert transport.calls == before


async def test_one_write_is_one_plain_call(uow: UnitOfWork, transport: DynamoTransport) -> None:
    await uow.get("warm", "up")  # the one-off table check happens here
    before = transport.calls
    uow.put({"pk": "p", "sk": "1"}, if_absent=True)
    assert uow.pending == 1
    await uow.commit()
    assert transport.calls - before == 1
    assert uow.pending == 0


async def test_several_writes_are_one_transaction(
    uow: UnitOfWork, transport: DynamoTransport
) -> None:
    await uow.get("warm", "up")
    before = transport.calls
    for i in range(5):
        uow.put({"pk": "p", "sk": str(i)})
    assert await uow.commit() == 5
    assert transport.calls - before == 1
    page = await uow.query("p")
    assert [item["sk"] for item in page] == ["0", "1", "2", "3", "4"]


async def test_table_is_described_once(table: DynamoTable, transport: DynamoTransport) -> None:
    first = table.unit_of_work("acme")
    await first.get("a", "b")
    after_first = transport.calls
    assert after_first == 2  # DescribeTable + GetItem
    await table.unit_of_work("globex").get("a", "b")
    assert transport.calls == after_first + 1


# -- atomicity and conditions ---------------------------------------------------------


async def test_failing_condition_writes_nothing_and_names_the_operation(
    uow: UnitOfWork, raw: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "lift_asgi.dynamo")
    uow.put({"pk": "p", "sk": "taken"})
    await uow.commit()
    uow.put({"pk": "p", "sk": "a"})
    uow.update(("stats", "c"), add={"n": 1})
    uow.put({"pk": "p", "sk": "taken"}, if_absent=True)
    uow.put({"pk": "p", "sk": "b"})
    with pytest.raises(ConditionFailed) as caught:
        await uow.commit()
    error = caught.value
    assert error.status == 409
    # One numbering (from 1, in the order added) in the detail and the fields; no key.
    assert error.extra["operation"] == {"number": 3, "of": 4, "kind": "put"}
    assert error.extra["failed"] == [{"number": 3, "kind": "put"}]
    assert error.detail.startswith("Operation 3 of 4 (a put) failed its condition")
    body = problem_body(error).decode()
    for shown in ("taken", '"pk"', '"sk"', "acme", '"index"'):
        assert shown not in body
    assert "taken" in caplog.text  # the key is in the log
    stored = await scan(raw, uow.table.name)
    assert [item["sk"] for item in stored] == ["taken"]
    assert uow.pending == 0


async def test_check_guards_the_transaction(uow: UnitOfWork) -> None:
    uow.put({"pk": "project", "sk": "p1", "tasks": 2})
    await uow.commit()
    uow.check(("project", "p1"), Attr("tasks").eq(0))
    uow.put({"pk": "project", "sk": "p2"})
    with pytest.raises(ConditionFailed) as caught:
        await uow.commit()
    assert caught.value.extra["operation"]["kind"] == "check"
    assert await uow.get("project", "p2") is None
    uow.check(("project", "p1"), Attr("tasks").gt(1))
    await uow.commit()  # a lone check is a one-item transaction and passes


async def test_expect_version_bumps_and_detects_conflicts(uow: UnitOfWork) -> None:
    uow.put({"pk": "p", "sk": "1", "name": "a", "version": 1}, if_absent=True)
    await uow.commit()
    uow.update(("p", "1"), set={"name": "b"}, expect_version=1)
    await uow.commit()
    assert (await uow.get_or_404("p", "1"))["version"] == 2
    uow.update(("p", "1"), set={"name": "stale"}, expect_version=1)
    with pytest.raises(ConditionFailed) as caught:
        await uow.commit()
    assert "expected version 1" in caught.value.detail
    assert (await uow.get_or_404("p", "1"))["name"] == "b"
    uow.put({"pk": "p", "sk": "1", "name": "c"}, expect_version=2)
    await uow.commit()
    assert await uow.get("p", "1") == {"pk": "p", "sk": "1", "name": "c", "version": 3}
    uow.delete(("p", "1"), expect_version=2)
    with pytest.raises(ConditionFailed):
        await uow.commit()
    uow.delete(("p", "1"), expect_version=3)
    await uow.commit()
    assert await uow.get("p", "1") is None


async def test_conditions_and_if_exists(uow: UnitOfWork) -> None:
    uow.update(("p", "missing"), set={"x": 1}, if_exists=True)
    with pytest.raises(ConditionFailed):
        await uow.commit()
    assert await uow.get("p", "missing") is None
    uow.put({"pk": "p", "sk": "1", "status": "open"})
    await uow.commit()
    uow.update(("p", "1"), set={"status": "done"}, condition=Attr("status").eq("closed"))
    with pytest.raises(ConditionFailed):
        await uow.commit()
    raw_condition = Condition.raw("#s = :s", names={"#s": "status"}, values={":s": "open"})
    uow.update(("p", "1"), set={"status": "done"}, condition=raw_condition)
    await uow.commit()
    assert (await uow.get_or_404("p", "1"))["status"] == "done"


async def test_discard_drops_the_buffer(uow: UnitOfWork, transport: DynamoTransport) -> None:
    uow.put({"pk": "p", "sk": "1"})
    uow.put({"pk": "p", "sk": "2"})
    assert uow.discard() == 2
    before = transport.calls
    assert await uow.commit() == 0
    assert transport.calls == before


async def test_async_with_commits_on_success_and_discards_on_error(table: DynamoTable) -> None:
    async with table.unit_of_work("acme") as uow:
        uow.put({"pk": "p", "sk": "kept"})
    with pytest.raises(RuntimeError):
        async with table.unit_of_work("acme") as uow:
            uow.put({"pk": "p", "sk": "dropped"})
            raise RuntimeError("boom")
    reader = table.unit_of_work("acme")
    assert await reader.get("p", "kept") is not None
    assert await reader.get("p", "dropped") is None
    with pytest.raises(RuntimeError, match="ended"):
        uow.put({"pk": "p", "sk": "late"})


# -- limits refused before any call -----------------------------------------------------


async def test_101st_operation_raises_at_once(uow: UnitOfWork, transport: DynamoTransport) -> None:
    for i in range(100):
        uow.put({"pk": "p", "sk": f"{i:03}"})
    before = transport.calls
    with pytest.raises(TooManyOperations) as caught:
        uow.put({"pk": "p", "sk": "100"})
    assert "at most 100" in caught.value.detail
    assert transport.calls == before
    assert uow.pending == 100
    await uow.commit()  # the 100 that fit are one transaction
    assert len(await scan_tenant(uow)) == 100


async def scan_tenant(uow: UnitOfWork) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = await uow.query("p", limit=100, cursor=cursor)
        items.extend(page.items)
        if page.next_cursor is None:
            return items
        cursor = page.next_cursor


async def test_same_item_twice_is_refused(uow: UnitOfWork) -> None:
    uow.put({"pk": "p", "sk": "1"})
    with pytest.raises(DuplicateItem) as caught:
        uow.update(("p", "1"), set={"x": 1})
    assert caught.value.status == 409
    assert "(operation 2) touches the same item as operation 1" in caught.value.detail
    assert '"pk"' not in caught.value.detail


@pytest.mark.parametrize(
    "item",
    [
        {"sk": "1"},
        {"pk": "p"},
        {"pk": "", "sk": "1"},
        {"pk": "p", "sk": ""},
        {"pk": 5, "sk": "1"},
        {"pk": "p", "sk": "1", "gsi1pk": ""},
        {"pk": "p", "sk": "1", "gsi1sk": ""},
        {"pk": "x" * 2048, "sk": "1"},
        {"pk": "p", "sk": "s" * 1025},
        {"pk": "p", "sk": "1", "_tenant": "globex"},
        {"pk": "p", "sk": "1", "blob": "x" * 409_600},
    ],
)
async def test_malformed_items_are_refused_before_any_call(
    uow: UnitOfWork, transport: DynamoTransport, item: dict[str, Any]
) -> None:
    before = transport.calls
    with pytest.raises(InvalidItem) as caught:
        uow.put(item)
    assert caught.value.status == 400
    assert uow.pending == 0
    assert transport.calls == before


@pytest.mark.parametrize("key", [("", "1"), ("p", ""), ("p",), {"pk": "p"}, {"sk": "1"}, 42])
async def test_malformed_keys_are_refused(uow: UnitOfWork, key: Any) -> None:
    with pytest.raises(InvalidItem):
        await uow.get(key)
    with pytest.raises(InvalidItem):
        uow.delete(key)


async def test_update_cannot_touch_keys_or_tenant(uow: UnitOfWork) -> None:
    for changes in ({"set": {"pk": "x"}}, {"set": {"_tenant": "x"}}, {"remove": ["sk"]}):
        with pytest.raises(ValueError):
            uow.update(("p", "1"), **changes)
    with pytest.raises(ValueError):
        uow.update(("p", "1"), set={"n": 1}, add={"n": 1})
    with pytest.raises(ValueError):
        uow.update(("p", "1"))
    with pytest.raises(TypeError):
        uow.update(("p", "1"), add={"n": "not a number"})


async def test_conditions_cannot_compare_prefixed_keys(uow: UnitOfWork) -> None:
    with pytest.raises(ValueError, match="tenant prefix"):
        uow.put({"pk": "p", "sk": "1"}, condition=Attr("pk").eq("p"))
    with pytest.raises(ValueError, match="tenant prefix"):
        await uow.query("p", filter=Attr("gsi1pk").begins_with("x"))


# -- queries -------------------------------------------------------------------------


@pytest.fixture
async def tasks(uow: UnitOfWork) -> UnitOfWork:
    for i in range(10):
        uow.put(
            {
                "pk": "project#p1",
                "sk": f"task#{i:02}",
                "status": "done" if i % 3 == 0 else "open",
                "gsi1pk": "status#open" if i % 3 else "status#done",
                "gsi1sk": f"2024-01-{i + 1:02}",
            }
        )
    uow.put({"pk": "project#p1", "sk": "meta", "name": "P1"})
    await uow.commit()
    return uow


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        (SK.begins_with("task#0"), [f"task#0{i}" for i in range(10)]),
        ("meta", ["meta"]),
        (SK.eq("task#03"), ["task#03"]),
        (SK.between("task#02", "task#04"), ["task#02", "task#03", "task#04"]),
        (SK.lt("task#02"), ["meta", "task#00", "task#01"]),  # "meta" sorts first
        (SK.lte("task#01"), ["meta", "task#00", "task#01"]),
        (SK.gt("task#08"), ["task#09"]),
        (SK.gte("task#09"), ["task#09"]),
    ],
)
async def test_query_sort_key_conditions(
    tasks: UnitOfWork, condition: Any, expected: list[str]
) -> None:
    page = await tasks.query("project#p1", condition)
    assert sorted(item["sk"] for item in page) == sorted(expected)
    assert page.next_cursor is None
    assert all(item["pk"] == "project#p1" for item in page)


async def test_query_filter_direction_and_limit_fill(tasks: UnitOfWork) -> None:
    page = await tasks.query(
        "project#p1",
        SK.begins_with("task#"),
        filter=Attr("status").eq("open"),
        scan_forward=False,
        limit=3,
    )
    assert [item["sk"] for item in page] == ["task#08", "task#07", "task#05"]
    assert page.next_cursor is not None


async def test_pagination_walks_every_item_once(tasks: UnitOfWork) -> None:
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = await tasks.query("project#p1", SK.begins_with("task#"), limit=4, cursor=cursor)
        pages += 1
        seen.extend(item["sk"] for item in page)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == [f"task#{i:02}" for i in range(10)]
    assert pages in (3, 4)


async def test_gsi_query_strips_the_prefix(tasks: UnitOfWork) -> None:
    page = await tasks.query("status#done", index="gsi1", scan_forward=False)
    assert [item["sk"] for item in page] == ["task#09", "task#06", "task#03", "task#00"]
    assert {item["gsi1pk"] for item in page} == {"status#done"}
    assert all("_tenant" not in item for item in page)
    with pytest.raises(ValueError):
        await tasks.query("status#done", index="gsi1", consistent=True)
    with pytest.raises(ValueError):
        await tasks.query("x", index="nope")


async def test_cursor_bound_to_listing(tasks: UnitOfWork, table: DynamoTable) -> None:
    page = await tasks.query("project#p1", SK.begins_with("task#"), limit=2)
    cursor = page.next_cursor
    assert cursor is not None
    # the same listing continues
    following = await tasks.query("project#p1", SK.begins_with("task#"), limit=2, cursor=cursor)
    assert [item["sk"] for item in following] == ["task#02", "task#03"]
    # another listing, another filter, another direction, another tenant, another secret
    attempts = [
        tasks.query("project#p2", SK.begins_with("task#"), limit=2, cursor=cursor),
        tasks.query("project#p1", limit=2, cursor=cursor),
        tasks.query(
            "project#p1", SK.begins_with("task#"), filter=Attr("x").exists(), cursor=cursor
        ),
        tasks.query("project#p1", SK.begins_with("task#"), scan_forward=False, cursor=cursor),
        other(table).query("project#p1", SK.begins_with("task#"), limit=2, cursor=cursor),
        tasks.query("project#p1", SK.begins_with("task#"), cursor=cursor + "x"),
        tasks.query("project#p1", SK.begins_with("task#"), cursor="forged.cursor"),
    ]
    for attempt in attempts:
        with pytest.raises(InvalidCursor):
            await attempt
    # an empty cursor (a query string's `cursor=`) is no cursor: the first page
    first = await tasks.query("project#p1", SK.begins_with("task#"), limit=2, cursor="")
    assert list(first) == list(page) and first.next_cursor is not None
    rotated = DynamoTable(
        table.name, transport=table.transport, cursor_secret=SECRET[::-1], verify_table=False
    )
    with pytest.raises(InvalidCursor):
        await rotated.unit_of_work("acme").query(
            "project#p1", SK.begins_with("task#"), limit=2, cursor=cursor
        )


async def test_page_cursor_is_opaque_and_canonical(tasks: UnitOfWork) -> None:
    page = await tasks.query("project#p1", SK.begins_with("task#"), limit=2)
    cursor = page.next_cursor
    assert cursor is not None
    raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    for shown in (b"acme#", b"project#p1", b"task#01", b'"pk"', b"_tenant"):
        assert shown not in raw
    last = cursor[-1]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    same_bytes = alphabet[alphabet.index(last) ^ 1]  # flips an unused low bit (or a used one)
    for edited in (cursor + "=", cursor + "==", cursor[:-1] + same_bytes):
        with pytest.raises(InvalidCursor):
            await tasks.query("project#p1", SK.begins_with("task#"), limit=2, cursor=edited)


async def test_batch_get_in_order_with_gaps_and_chunks(uow: UnitOfWork) -> None:
    for i in range(0, 150, 2):
        uow.put({"pk": "b", "sk": f"{i:03}", "i": i})
        if uow.pending == 100:
            await uow.commit()
    await uow.commit()
    keys = [("b", f"{i:03}") for i in range(150)] + [("b", "000")]
    got = await uow.batch_get(keys)
    assert len(got) == 151
    for i in range(150):
        item = got[i]
        assert (item is not None and item["i"] == i) if i % 2 == 0 else item is None
    assert got[150] == got[0]
    assert await uow.batch_get([]) == []


# -- tenant isolation ------------------------------------------------------------------


async def test_tenants_never_see_each_other(table: DynamoTable) -> None:
    acme, globex = table.unit_of_work("acme"), other(table)
    acme.put({"pk": "projects", "sk": "p1", "owner": "acme", "gsi1pk": "all", "gsi1sk": "1"})
    await acme.commit()
    assert await globex.get("projects", "p1") is None
    assert (await globex.query("projects")).items == []
    assert (await globex.query("all", index="gsi1")).items == []
    assert await globex.batch_get([("projects", "p1")]) == [None]
    with pytest.raises(NotFound):
        await globex.get_or_404("projects", "p1")
    # a write of globex with the same logical key is another item
    globex.put({"pk": "projects", "sk": "p1", "owner": "globex"})
    await globex.commit()
    assert (await acme.get_or_404("projects", "p1"))["owner"] == "acme"
    assert (await globex.get_or_404("projects", "p1"))["owner"] == "globex"


async def test_item_with_foreign_tenant_attribute_is_not_found(
    uow: UnitOfWork, table: DynamoTable, raw: AiodynamoTransport
) -> None:
    await raw.request(
        "PutItem",
        {
            "TableName": table.name,
            "Item": {"pk": {"S": "acme#p"}, "sk": {"S": "1"}, "_tenant": {"S": "globex"}},
        },
    )
    assert await uow.get("p", "1") is None
    assert (await uow.query("p")).items == []
    assert await uow.batch_get([("p", "1")]) == [None]


async def test_no_tenant_means_no_scoped_access(table: DynamoTable) -> None:
    anonymous = table.unit_of_work(None)
    with pytest.raises(Unauthorized) as caught:
        await anonymous.get("p", "1")
    assert caught.value.status == 401
    with pytest.raises(Unauthorized):
        anonymous.put({"pk": "p", "sk": "1"})
    # the explicit, greppable way around isolation
    anonymous.unscoped().put({"pk": "global", "sk": "settings", "x": 1})
    await anonymous.commit()
    assert await anonymous.unscoped().get("global", "settings") == {
        "pk": "global",
        "sk": "settings",
        "x": 1,
    }
    page = await anonymous.unscoped().query("global")
    assert len(page) == 1


@pytest.mark.parametrize("tenant", ["a#b", "", "tab\there", "x" * 300])
async def test_malformed_tenant_ids_never_reach_a_key(table: DynamoTable, tenant: str) -> None:
    with pytest.raises(InvalidTenant):
        await table.unit_of_work(tenant).get("p", "1")


async def test_unscoped_sees_physical_keys_and_shares_the_transaction(
    table: DynamoTable, uow: UnitOfWork
) -> None:
    uow.put({"pk": "p", "sk": "1"})
    uow.unscoped().put({"pk": "audit", "sk": "e1", "what": "created"})
    await uow.commit()
    raw_item = await uow.unscoped().get("acme#p", "1")
    assert raw_item == {"pk": "acme#p", "sk": "1", "_tenant": "acme"}


# -- the table check -------------------------------------------------------------------


async def test_missing_table_is_reported_by_name(transport: DynamoTransport) -> None:
    table = DynamoTable("no-such-table-xyz", transport=transport)
    with pytest.raises(TableNotFound) as caught:
        await table.unit_of_work("acme").get("p", "1")
    error = caught.value
    assert error.status == 500
    assert "no-such-table-xyz" in error.detail and "does not exist" in error.detail
    # remembered for a moment: no describe storm while the table is missing
    before = transport.calls
    with pytest.raises(TableMisconfigured):
        await table.unit_of_work("acme").get("p", "1")
    assert transport.calls == before


async def test_wrong_key_schema_is_reported_by_name(
    transport: DynamoTransport, dynamodb_table_factory: Any
) -> None:
    spec: TableSpec = dynamodb_table_factory(pk="id", sk=None, gsis=())
    table = DynamoTable(spec.name, transport=transport)
    with pytest.raises(TableMisconfigured) as caught:
        await table.unit_of_work("acme").query("p")
    error = caught.value
    assert error.status == 500
    assert spec.name in error.detail
    assert "partition key is 'id', expected 'pk'" in error.detail
    assert "index 'gsi1' is missing" in error.detail


async def test_page_is_a_sequence(tasks: UnitOfWork) -> None:
    page = await tasks.query("project#p1", "meta")
    assert isinstance(page, Page) and len(page) == 1 and [i["name"] for i in page] == ["P1"]
