"""The put hot path without a server: one walk that checks, encodes and sizes an item.

``TenantScope.stored_sized`` sizes the item while encoding it and remembers checked
attribute names per schema; these tests pin that it counts exactly what ``item_size``
counts on the stored item (DynamoDB's rules, every type), and that the name table never
lets through what a first put would refuse.
"""

from __future__ import annotations

import enum
from decimal import Decimal
from typing import Any

import pytest

from lift_asgi.dynamo import keys
from lift_asgi.dynamo.codec import encode_item, item_size
from lift_asgi.dynamo.keys import KEY, PREFIXED_KEY, Schema, TenantScope, UnscopedScope
from lift_asgi.dynamo.limits import MAX_ITEM_BYTES
from lift_asgi.dynamo.operations import build_put
from lift_asgi.dynamo.tables import TableSpec
from lift_asgi.errors import InvalidItem


class Field(enum.StrEnum):
    TITLE = "title"


def schema() -> Schema:
    return Schema.from_spec(
        TableSpec.standard("things"), tenant_attribute="_tenant", version_attribute="version"
    )


def scope(tenant: str = "acme") -> TenantScope:
    return TenantScope(schema(), tenant)


VALUES: list[Any] = [
    "plain",  # S
    "ünïcödé ✓",  # S, multi-byte UTF-8
    "",  # S, empty outside keys
    0,  # N
    7,
    120,  # N, trailing zeros do not count
    -45,
    12345678901234567890,
    Decimal("0.0100"),
    1.5,
    b"\x00\xff" * 7,  # B
    True,  # BOOL
    None,  # NULL
    ["a", 1, None],  # L
    {"k": "v", "é": 2},  # M
    {"x", "yé"},  # SS
    {1, 20, Decimal("3.5")},  # NS
    {b"a", b"bc"},  # BS
    {"deep": [{"n": [1, {"s": {"q"}}]}, b"z"], "t": (True, "u")},  # nested
]


@pytest.mark.parametrize("value", VALUES)
@pytest.mark.parametrize("name", ["v", "nämé"])
def test_one_walk_size_is_dynamodbs_item_size_for_every_type(name: str, value: Any) -> None:
    item = {"pk": "p", "sk": "s", "gsi1pk": "g", "gsi1sk": "ü", name: value}
    for view in (scope(), scope("tënant"), UnscopedScope(schema())):
        encoded, size = view.stored_sized(item)
        assert size == item_size(encoded)
        assert encoded[name] == encode_item({name: value})[name]


def test_keys_are_prefixed_stamped_and_counted() -> None:
    encoded, size = scope().stored_sized(
        {"pk": "p", "sk": "s", "gsi1pk": "g", "gsi1sk": "h", "n": 1}
    )
    assert encoded == {
        "pk": {"S": "acme#p"},
        "sk": {"S": "s"},
        "gsi1pk": {"S": "acme#g"},
        "gsi1sk": {"S": "h"},
        "n": {"N": "1"},
        "_tenant": {"S": "acme"},
    }
    assert size == item_size(encoded)


def test_a_put_and_its_conditional_forms_are_sized_alike() -> None:
    item = {"pk": "p", "sk": "s", "version": 9, "title": "t"}
    plain = build_put(scope(), item)
    assert plain.size == item_size(plain.request["Item"])
    versioned = build_put(scope(), item, expect_version=41)
    assert versioned.request["Item"]["version"] == {"N": "42"}
    assert versioned.size == item_size(versioned.request["Item"])
    assert build_put(scope(), item, if_absent=True).size == plain.size


def test_the_size_limit_is_exact() -> None:
    base = {"pk": "p", "sk": "s"}
    room = MAX_ITEM_BYTES - scope().stored_sized({**base, "d": ""})[1]
    assert build_put(scope(), {**base, "d": "x" * room}).size == MAX_ITEM_BYTES
    with pytest.raises(InvalidItem, match="bytes"):
        build_put(scope(), {**base, "d": "x" * (room + 1)})
    with pytest.raises(InvalidItem, match="bytes"):
        build_put(scope(), {**base, "d": "é" * (room // 2 + 1)})


def test_checked_names_are_remembered_per_schema() -> None:
    view = scope()
    assert view.schema.names["pk"] == PREFIXED_KEY
    assert view.schema.names["gsi1pk"] == PREFIXED_KEY
    assert view.schema.names["sk"] == KEY
    view.stored_sized({"pk": "p", "sk": "s", "nämé": 1})
    assert view.schema.names["nämé"] == len("nämé".encode())
    assert "_tenant" not in view.schema.names


@pytest.mark.parametrize(
    ("name", "error"),
    [
        ("_tenant", InvalidItem),
        ("", InvalidItem),  # a client's JSON can hold one: a 400
        (1, TypeError),
        (Field.TITLE, TypeError),  # a str subclass, even once "title" is known
        (b"title", TypeError),
    ],
)
def test_a_known_name_table_never_lets_a_bad_name_through(name: Any, error: type) -> None:
    view = scope()
    for _ in range(2):  # before and after the good names are remembered
        view.stored_sized({"pk": "p", "sk": "s", "title": "t"})
        with pytest.raises(error):
            view.stored_sized({"pk": "p", "sk": "s", name: "x"})
        with pytest.raises(error):
            build_put(view, {"pk": "p", "sk": "s", name: "x"})


def test_the_name_table_is_bounded_and_names_past_it_are_still_checked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(keys, "_MAX_NAMES", 6)
    view = scope()
    item = {"pk": "p", "sk": "s", **{f"a{i}": i for i in range(10)}}
    encoded, size = view.stored_sized(item)
    assert len(view.schema.names) == 6
    assert size == item_size(encoded)
    with pytest.raises(TypeError):
        view.stored_sized({"pk": "p", "sk": "s", 3: "x"})


def test_long_names_are_checked_every_time_not_remembered() -> None:
    # a handler that spreads a client's JSON keys into items must not let the client
    # grow the table by megabytes: names past 64 bytes are sized per put, not kept
    view = scope()
    long = "n" * 10_000
    item = {"pk": "p", "sk": "s", long: 1, "short": 2}
    encoded, size = view.stored_sized(item)
    assert size == item_size(encoded)
    assert long not in view.schema.names and "short" in view.schema.names
    assert view.stored_sized(item)[1] == size  # the same size the second time


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ({"sk": "s"}, "no 'pk'"),
        ({"pk": "p"}, "no 'sk'"),
        ({"pk": 5, "sk": "s"}, "must be a string"),
        ({"pk": object(), "sk": "s"}, "must be a string"),
        ({"pk": "p", "sk": "s", "gsi1sk": ""}, "must not be empty"),
        ({"pk": "p" * 2044, "sk": "s"}, "longer than"),  # 2049 bytes with "acme#"
        ({"pk": "p", "sk": "s" * 1025}, "longer than"),
    ],
)
def test_key_checks_on_the_hot_path(item: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidItem, match=message):
        build_put(scope(), item)


def test_a_non_ascii_tenant_prefix_takes_its_bytes_from_the_key_limit() -> None:
    view = scope("ünï")  # "ünï#" is 4 characters, 6 UTF-8 bytes
    build_put(view, {"pk": "p" * (2048 - 6), "sk": "s"})
    with pytest.raises(InvalidItem, match="longer than"):
        build_put(view, {"pk": "p" * (2048 - 5), "sk": "s"})


LONE = "\ud800"  # valid JSON ("\ud800"), which Python's json parses; not UTF-8


@pytest.mark.parametrize(
    "item",
    [
        {"pk": "p", "sk": "s", "title": "a" + LONE},  # a value
        {"pk": "p" + LONE, "sk": "s"},  # a prefixed key, short
        {"pk": "p", "sk": "s" + LONE},  # the sort key
        {"pk": "p", "sk": "x" * 300 + LONE},  # a key past the short-key path
        {"pk": "p", "sk": "s", "t" + LONE: 1},  # a name
        {"pk": "p", "sk": "s", "m": {"inner": [LONE]}},  # nested
        {"pk": "p", "sk": "s", "tags": {"a", LONE}},  # a string set
        {"pk": "p", "sk": "s", "": 1},  # an empty name
        {"pk": "p", "sk": "s", "m": {"": 1}},  # an empty name, nested
        {"pk": "p", "sk": "s", "n" * (64 * 1024 + 1): 1},  # a name past 64 KB
    ],
    ids=[
        "value",
        "pk",
        "sk",
        "long-sk",
        "name",
        "nested",
        "set",
        "empty",
        "empty-nested",
        "long-name",
    ],
)
@pytest.mark.parametrize(
    "view", [scope, lambda: UnscopedScope(schema())], ids=["tenant", "unscoped"]
)
def test_what_a_clients_json_can_hold_and_dynamodb_cannot_store_is_invalid_item(
    item: dict[str, Any], view: Any
) -> None:
    # InvalidItem is a 400: a handler that puts a client's fields gets no 500 for them
    with pytest.raises(InvalidItem):
        build_put(view(), item)
    with pytest.raises(InvalidItem):
        build_put(view(), item, if_absent=True)
