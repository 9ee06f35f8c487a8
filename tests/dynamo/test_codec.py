"""Python values to DynamoDB attribute values and back, and DynamoDB's item-size rules."""

from __future__ import annotations

import enum
from decimal import Decimal
from typing import Any

import pytest

from lift_asgi.dynamo.codec import (
    MAX_ITEM_BYTES,
    decode_item,
    decode_value,
    encode_item,
    encode_sized,
    encode_value,
    item_size,
)
from lift_asgi.errors import InvalidItem


class Colour(enum.StrEnum):
    RED = "red"


class Level(enum.IntEnum):
    HIGH = 3


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        ("x", {"S": "x"}),
        ("", {"S": ""}),
        (7, {"N": "7"}),
        (-2, {"N": "-2"}),
        (1.5, {"N": "1.5"}),
        (Decimal("12.340"), {"N": "12.340"}),
        (True, {"BOOL": True}),
        (None, {"NULL": True}),
        (b"\x00\x01", {"B": "AAE="}),
        ([1, "a"], {"L": [{"N": "1"}, {"S": "a"}]}),
        ((1,), {"L": [{"N": "1"}]}),
        ({"a": {"b": None}}, {"M": {"a": {"M": {"b": {"NULL": True}}}}}),
        ({"b"}, {"SS": ["b"]}),
        ({3}, {"NS": ["3"]}),
        (frozenset({b"\x01"}), {"BS": ["AQ=="]}),
        (Colour.RED, {"S": "red"}),
        (Level.HIGH, {"N": "3"}),
    ],
)
def test_encodes_plain_python(value: Any, encoded: dict[str, Any]) -> None:
    assert encode_value(value) == encoded


@pytest.mark.parametrize(
    "value",
    [
        "text",
        0,
        10**30,
        Decimal("0.1"),
        Decimal("-3.14159"),
        True,
        False,
        None,
        b"bin",
        [1, [2, {"x": "y"}]],
        {"nested": {"deep": [True, None]}},
        {"a", "b"},
        {1, 2, Decimal("2.5")},
        {b"a", b"b"},
    ],
)
def test_round_trips(value: Any) -> None:
    assert decode_value(encode_value(value)) == value


def test_numbers_decode_to_int_when_integral_else_decimal() -> None:
    assert decode_value({"N": "5"}) == 5 and type(decode_value({"N": "5"})) is int
    assert type(decode_value({"N": "1E+2"})) is int and decode_value({"N": "1E+2"}) == 100
    assert type(decode_value({"N": "2.0"})) is int
    assert decode_value({"N": "0.1"}) == Decimal("0.1")
    assert type(decode_value({"N": "0.1"})) is Decimal
    # a float goes in, a Decimal comes out: exact, no binary rounding
    assert decode_value(encode_value(0.1)) == Decimal("0.1")


def test_binary_decodes_from_text_or_bytes() -> None:
    assert decode_value({"B": "AAE="}) == b"\x00\x01"
    assert decode_value({"B": b"\x00\x01"}) == b"\x00\x01"


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (float("nan"), InvalidItem),
        (float("inf"), InvalidItem),
        (float("-inf"), InvalidItem),
        (Decimal("Infinity"), InvalidItem),
        (Decimal("NaN"), InvalidItem),
        (Decimal("sNaN"), InvalidItem),
        (set(), ValueError),
        ({1, "a"}, TypeError),
        ({True}, TypeError),
        (object(), TypeError),
        ({1: "non-string key"}, TypeError),
        ({"": "empty name"}, InvalidItem),  # a client's JSON can hold one: a 400
    ],
)
def test_refuses_what_dynamodb_cannot_store(value: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        encode_value(value)


def test_decode_refuses_unknown_types() -> None:
    with pytest.raises(ValueError):
        decode_value({"X": "?"})
    with pytest.raises(ValueError):
        decode_value({})


def test_item_round_trip() -> None:
    item = {"pk": "a", "count": 3, "tags": {"x"}, "meta": {"ok": True}}
    assert decode_item(encode_item(item)) == item


@pytest.mark.parametrize(
    ("item", "size"),
    [
        ({"ab": "xyz"}, 2 + 3),
        ({"a": "é"}, 1 + 2),  # UTF-8 bytes, not characters
        ({"n": 12345}, 1 + 4),  # 5 significant digits: ceil(5/2) + 1
        ({"n": Decimal("0.0100")}, 1 + 2),  # leading and trailing zeros do not count
        ({"b": b"12345"}, 1 + 5),
        ({"t": True, "z": None}, 2 + 2),
        ({"l": ["ab", "c"]}, 1 + 3 + (2 + 1) + (1 + 1)),
        ({"m": {"k": "vv"}}, 1 + 3 + (1 + 2 + 1)),
        ({"s": {"aa", "b"}}, 1 + 3),
    ],
)
def test_item_size_follows_dynamodb_rules(item: dict[str, Any], size: int) -> None:
    assert item_size(encode_item(item)) == size


def test_item_size_limit_is_400_kb() -> None:
    assert MAX_ITEM_BYTES == 409_600
    assert item_size(encode_item({"d": "x" * (MAX_ITEM_BYTES - 1)})) == MAX_ITEM_BYTES


@pytest.mark.parametrize(
    "value",
    [
        "plain",
        "ünïcödé",
        "",
        0,
        -12345678901234567890,
        Decimal("3.14159"),
        1.5,
        True,
        None,
        b"\x00\xff" * 10,
        {"a": 1, "b": ["x", {"c": None}], "é": {1, 2}},
        ["a", 2, [3, [4]]],
        ("t", 1),
        {"s", "t"},
        frozenset({b"x"}),
    ],
)
def test_encode_sized_is_encode_value_and_item_size_in_one_walk(value: object) -> None:
    encoded, size = encode_sized(value)
    assert encoded == encode_value(value)
    assert len("name") + size == item_size({"name": encode_value(value)})
