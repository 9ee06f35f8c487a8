"""The unconditional put's fast path gives what the general path gives.

An unconditional put is a :class:`PutOperation`: the same checks, encoding and size as
every put, its constant fields at class level and its request and logical key assembled
when read. These tests hold its fields to what the general path (the stored item, its
size, a conditional put of the same item) computes, and its errors to the general ones.
"""

from __future__ import annotations

import copy
import dataclasses
import enum
import pickle
from typing import Any

import pytest

from lift_asgi.dynamo.codec import item_size
from lift_asgi.dynamo.keys import Schema, TenantScope, UnscopedScope
from lift_asgi.dynamo.operations import Operation, PutOperation, build_put, plain_put
from lift_asgi.dynamo.tables import TableSpec
from lift_asgi.dynamo.uow import UnitOfWork
from lift_asgi.errors import DuplicateItem, InvalidItem, TooManyOperations


class Key(enum.StrEnum):
    P1 = "p1"


def schema() -> Schema:
    return Schema.from_spec(
        TableSpec.standard("things"), tenant_attribute="_tenant", version_attribute="version"
    )


ITEMS: list[dict[str, Any]] = [
    {"pk": "project#p1", "sk": "task#001", "title": "Write the docs", "version": 1},
    {"pk": "p", "sk": "s", "gsi1pk": "g", "gsi1sk": "ü", "n": -10, "f": 1.5, "l": [1, "a"]},
    {"pk": Key.P1, "sk": "s", "title": "ünïcödé", "tags": {"a", "b"}, "none": None},
    {"sk": "s", "pk": "x" * 500, "big": 10**30, "flag": True},
]


def general_fields(scope: Any, item: dict[str, Any]) -> dict[str, Any]:
    """What an unconditional put must carry, computed without the fast path."""
    stored = scope.stored(item)
    return {
        "kind": "put",
        "logical": (item["pk"], stored["sk"]["S"]),
        "request": {"TableName": "things", "Item": stored},
        "idempotent": True,
        "expected_version": None,
        "size": item_size(stored),
        "identity": ("things", stored["pk"]["S"], stored["sk"]["S"]),
        "adds": False,
        "replayable": True,
    }


@pytest.mark.parametrize("item", ITEMS)
@pytest.mark.parametrize("tenant", ["acme", "tënant"])
def test_a_plain_put_carries_what_the_general_path_computes(
    item: dict[str, Any], tenant: str
) -> None:
    for scope in (TenantScope(schema(), tenant), UnscopedScope(schema())):
        op = build_put(scope, item)
        assert type(op) is PutOperation
        assert isinstance(op, Operation)
        assert {name: getattr(op, name) for name in general_fields(scope, item)} == (
            general_fields(scope, item)
        )
        # a conditional put of the same item stores the same item, of the same size
        conditional = build_put(scope, item, if_absent=True)
        assert type(conditional) is Operation
        assert conditional.request["Item"] == op.request["Item"]
        assert (conditional.size, conditional.identity) == (op.size, op.identity)


def test_the_request_is_assembled_from_the_op_not_shared_with_the_handler() -> None:
    item = {"pk": "p", "sk": "s", "n": 1}
    op = plain_put(TenantScope(schema(), "acme"), item)
    item["n"] = 2
    item["pk"] = "q"
    assert op.request["Item"]["n"] == {"N": "1"}
    assert op.logical == ("p", "s")
    assert op.request == op.request
    assert "PutOperation(kind='put'" in repr(op)


@pytest.mark.parametrize(
    ("item", "error", "message"),
    [
        ({"sk": "s"}, InvalidItem, "no 'pk' attribute"),
        ({"pk": "p"}, InvalidItem, "no 'sk' attribute"),
        ({"pk": "", "sk": "s"}, InvalidItem, "must not be empty"),
        ({"pk": 1, "sk": "s"}, InvalidItem, "must be a string"),
        ({"pk": "p", "sk": "s", "_tenant": "x"}, InvalidItem, "written by the unit of work"),
        ({"pk": "p", "sk": "s", 1: "x"}, TypeError, "attribute names"),
        ({"pk": "p", "sk": "s", "d": "x" * 410_000}, InvalidItem, "bytes per item"),
        (["pk", "sk"], TypeError, "an item is a mapping"),
    ],
)
def test_a_plain_put_refuses_what_a_conditional_put_refuses(
    item: Any, error: type[Exception], message: str
) -> None:
    scope = TenantScope(schema(), "acme")
    for put in (
        lambda: build_put(scope, item),
        lambda: build_put(scope, item, condition=None, if_absent=True),
    ):
        with pytest.raises(error, match=message):
            put()


class Handle:
    """The two attributes of a table handle the buffer reads (no I/O here)."""

    name = "things"

    def __init__(self) -> None:
        self.schema = schema()


def test_the_unit_of_work_buffers_the_fast_put_with_the_same_refusals() -> None:
    uow = UnitOfWork(Handle(), "acme")  # type: ignore[arg-type]
    uow.put({"pk": "p", "sk": "s", "n": 1})
    uow.update(("p", "t"), set={"n": 2})
    with pytest.raises(DuplicateItem, match=r"operation 3\) touches the same item as operation 1"):
        uow.put({"pk": "p", "sk": "s"})
    with pytest.raises(DuplicateItem, match="as operation 2 \\(a update\\)"):
        uow.put({"pk": "p", "sk": "t"})
    ops = uow.operations
    assert [op.kind for op in ops] == ["put", "update"]
    assert ops[0].request == {
        "TableName": "things",
        "Item": {
            "pk": {"S": "acme#p"},
            "sk": {"S": "s"},
            "n": {"N": "1"},
            "_tenant": {"S": "acme"},
        },
    }
    for i in range(98):
        uow.put({"pk": "p", "sk": f"s{i}"})
    with pytest.raises(TooManyOperations, match="would be operation 101"):
        uow.put({"pk": "p", "sk": "s-last"})
    assert uow.pending == 100
    uow._end()
    with pytest.raises(RuntimeError, match="has ended"):
        uow.put({"pk": "p", "sk": "s-after"})


def test_a_fast_put_is_a_value_like_any_operation() -> None:
    """Copied, pickled or replaced, a fast put is the plain Operation with its fields,
    equal to it (both ways); before, each of these raised (its constants are not
    settable on an instance) and it never equalled the same Operation."""
    op = plain_put(TenantScope(schema(), "acme"), {"pk": "p", "sk": "s", "n": 1})
    fields = {field.name: getattr(op, field.name) for field in dataclasses.fields(op)}
    plain = Operation(**fields)
    assert op == plain and plain == op and (op != plain) is False
    assert op != Operation(**{**fields, "size": 1}) and op != "put"
    for made in (
        copy.copy(op),
        copy.deepcopy(op),
        pickle.loads(pickle.dumps(op)),
        dataclasses.replace(op),
    ):
        assert type(made) is Operation and made == op and made == plain
    deep = copy.deepcopy(op)
    assert deep.request["Item"] is not op.item  # a deep copy shares nothing
    replaced = dataclasses.replace(op, size=1)
    assert (type(replaced), replaced.size, replaced.identity) == (Operation, 1, op.identity)
    assert dataclasses.asdict(op) == dataclasses.asdict(plain)
    with pytest.raises(TypeError):
        hash(op)  # mutable, as Operation is
