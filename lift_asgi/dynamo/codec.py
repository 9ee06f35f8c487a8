"""Plain Python values to DynamoDB attribute values and back, and item sizes.

Handlers pass and receive plain Python; this module is the only place that knows the
low-level wire shape (``{"S": "x"}``, ``{"N": "1"}``, ...). It is on every read and
write, so it dispatches on ``type(value)`` first and falls back to ``isinstance`` only
for subclasses (``IntEnum``, ``StrEnum``, ...).

Python to DynamoDB:

=================================  ===========================================
``str``                            ``S`` (an empty string is allowed outside keys)
``int``, ``float``, ``Decimal``    ``N`` (NaN and infinities are refused)
``bool``                           ``BOOL``
``None``                           ``NULL``
``bytes``/``bytearray``/``memoryview`` ``B``
``dict`` (string keys)             ``M``
``list``/``tuple``                 ``L``
``set``/``frozenset``              ``SS``, ``NS`` or ``BS`` (not empty, one kind)
=================================  ===========================================

DynamoDB to Python: numbers come back as ``int`` when they are integral and as
``decimal.Decimal`` otherwise. ``Decimal`` keeps exactly what DynamoDB stored (38
significant digits); a ``float`` would round money and counters silently. Use
``float(value)`` where a float is wanted; FastAPI serialises ``Decimal`` as a JSON
number. Binary comes back as ``bytes``, sets as ``set``, lists as ``list``.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from lift_asgi.dynamo.limits import MAX_ITEM_BYTES

__all__ = [
    "MAX_ITEM_BYTES",
    "decode_item",
    "decode_value",
    "encode_item",
    "encode_sized",
    "encode_value",
    "item_size",
    "number_size",
    "text_size",
]

AttributeValue = dict[str, Any]

_b64encode = base64.b64encode
_b64decode = base64.b64decode


def _number(value: float | Decimal) -> str:
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"DynamoDB cannot store the number {value!r}")
        return repr(value)
    if not value.is_finite():
        raise ValueError(f"DynamoDB cannot store the number {value!r}")
    return str(value)


def _encode_set(value: set[Any] | frozenset[Any]) -> AttributeValue:
    if not value:
        raise ValueError("DynamoDB cannot store an empty set; store None or omit the attribute")
    kinds = {_set_kind(member) for member in value}
    if len(kinds) != 1:
        raise TypeError("a set must hold only strings, only numbers or only bytes")
    kind = kinds.pop()
    if kind == "SS":
        return {"SS": [str(member) for member in value]}
    if kind == "NS":
        return {"NS": [str(member) if type(member) is int else _number(member) for member in value]}
    return {"BS": [_b64encode(bytes(member)).decode() for member in value]}


def _set_kind(member: Any) -> str:
    if isinstance(member, str):
        return "SS"
    if isinstance(member, bool):
        raise TypeError("a set cannot hold booleans")
    if isinstance(member, int | float | Decimal):
        return "NS"
    if isinstance(member, bytes | bytearray | memoryview):
        return "BS"
    raise TypeError(f"a set cannot hold {type(member).__name__} values")


def encode_value(value: Any) -> AttributeValue:
    """One Python value as a DynamoDB attribute value (see the module docstring)."""
    kind = type(value)
    if kind is str:
        return {"S": value}
    if kind is int:
        return {"N": str(value)}
    if kind is bool:
        return {"BOOL": value}
    if value is None:
        return {"NULL": True}
    if kind is dict:
        return {"M": encode_item(value)}
    if kind is list or kind is tuple:
        return {"L": [encode_value(member) for member in value]}
    if kind is float or kind is Decimal:
        return {"N": _number(value)}
    if kind is bytes:
        return {"B": _b64encode(value).decode()}
    if kind is set or kind is frozenset:
        return _encode_set(value)
    # Subclasses (IntEnum, StrEnum, OrderedDict, ...): the slow path.
    if isinstance(value, bool):
        return {"BOOL": bool(value)}
    if isinstance(value, str):
        return {"S": str(value)}
    if isinstance(value, int):
        return {"N": str(int(value))}
    if isinstance(value, float | Decimal):
        return {"N": _number(value)}
    if isinstance(value, bytes | bytearray | memoryview):
        return {"B": _b64encode(bytes(value)).decode()}
    if isinstance(value, Mapping):
        return {"M": encode_item(value)}
    if isinstance(value, list | tuple):
        return {"L": [encode_value(member) for member in value]}
    if isinstance(value, set | frozenset):
        return _encode_set(value)
    raise TypeError(
        f"cannot store a {type(value).__name__} in DynamoDB; convert it to str, int, "
        "Decimal, bool, None, bytes, list, dict or set first"
    )


def encode_item(item: Mapping[str, Any]) -> dict[str, AttributeValue]:
    """A mapping of attribute names to Python values as a DynamoDB item (or map)."""
    encoded: dict[str, AttributeValue] = {}
    for name, value in item.items():
        if type(name) is not str or not name:
            raise TypeError(f"attribute names must be non-empty strings, not {name!r}")
        encoded[name] = encode_value(value)
    return encoded


def _decode_number(text: str) -> int | Decimal:
    try:
        return int(text)
    except ValueError:
        pass
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"not a DynamoDB number: {text!r}") from None
    if number == number.to_integral_value() and abs(number.adjusted()) < 40:
        return int(number)
    return number


def _decode_binary(value: str | bytes) -> bytes:
    # aiodynamo speaks JSON (base64 text); a transport may hand over raw bytes.
    return value if isinstance(value, bytes) else _b64decode(value)


def decode_value(value: Mapping[str, Any]) -> Any:
    """One DynamoDB attribute value as plain Python."""
    for tag, raw in value.items():
        if tag == "S":
            return raw
        if tag == "N":
            return _decode_number(raw)
        if tag == "M":
            return decode_item(raw)
        if tag == "L":
            return [decode_value(member) for member in raw]
        if tag == "BOOL":
            return bool(raw)
        if tag == "NULL":
            return None
        if tag == "B":
            return _decode_binary(raw)
        if tag == "SS":
            return set(raw)
        if tag == "NS":
            return {_decode_number(member) for member in raw}
        if tag == "BS":
            return {_decode_binary(member) for member in raw}
        raise ValueError(f"unknown DynamoDB attribute type {tag!r}")
    raise ValueError("empty DynamoDB attribute value")


def decode_item(item: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """A DynamoDB item (or map) as a dict of plain Python values."""
    return {name: decode_value(value) for name, value in item.items()}


def _utf8_len(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8"))


#: The size DynamoDB counts for a string (its UTF-8 length).
text_size = _utf8_len


def _number_size(text: str) -> int:
    # About one byte per two significant digits, plus one (DynamoDB's documented rule).
    if text.isdigit():  # the common case: a plain non-negative integer
        digits = len(text.lstrip("0").rstrip("0")) or 1
    else:
        mantissa = text.lstrip("-+").split("e")[0].split("E")[0].replace(".", "")
        digits = len(mantissa.strip("0")) or 1
    return (digits + 1) // 2 + 1


#: The size DynamoDB counts for a number's text.
number_size = _number_size


def _binary_size(value: str | bytes) -> int:
    if isinstance(value, bytes):
        return len(value)
    padding = value.count("=", -2)
    return len(value) * 3 // 4 - padding


def _value_size(value: Mapping[str, Any]) -> int:
    for tag, raw in value.items():
        if tag == "S":
            return _utf8_len(raw)
        if tag == "N":
            return _number_size(raw)
        if tag == "M":
            return 3 + sum(_utf8_len(name) + _value_size(v) + 1 for name, v in raw.items())
        if tag == "L":
            return 3 + sum(_value_size(v) + 1 for v in raw)
        if tag == "BOOL" or tag == "NULL":
            return 1
        if tag == "B":
            return _binary_size(raw)
        if tag == "SS":
            return sum(_utf8_len(v) for v in raw)
        if tag == "NS":
            return sum(_number_size(v) for v in raw)
        if tag == "BS":
            return sum(_binary_size(v) for v in raw)
    return 0


def item_size(item: Mapping[str, Mapping[str, Any]]) -> int:
    """The size DynamoDB counts for an encoded item, in bytes.

    Attribute names (UTF-8) plus values: strings by their UTF-8 length, numbers about one
    byte per two significant digits plus one, binary by its length, booleans and nulls
    one byte, lists and maps 3 bytes plus one per element (plus names for maps), sets the
    sum of their members. An estimate by the published rules, close enough to refuse a
    write before DynamoDB would.
    """
    total = 0
    for name, value in item.items():
        total += len(name) if name.isascii() else len(name.encode())
        text = value.get("S")
        if text is not None:  # the common case, without a call
            total += len(text) if text.isascii() else len(text.encode())
        else:
            total += _value_size(value)
    return total


def encode_sized(value: Any) -> tuple[AttributeValue, int]:
    """:func:`encode_value` and the size :func:`item_size` counts for it, in one walk
    (a put encodes and sizes its item at once; walking it twice cost a third of a put)."""
    kind = type(value)
    if kind is str:
        return {"S": value}, len(value) if value.isascii() else len(value.encode())
    if kind is int:
        text = str(value)
        return {"N": text}, _number_size(text)
    if kind is bool:
        return {"BOOL": value}, 1
    if value is None:
        return {"NULL": True}, 1
    if kind is dict:
        members: dict[str, AttributeValue] = {}
        size = 3
        for name, member in value.items():
            if type(name) is not str or not name:
                raise TypeError(f"attribute names must be non-empty strings, not {name!r}")
            encoded, member_size = encode_sized(member)
            members[name] = encoded
            size += _utf8_len(name) + member_size + 1
        return {"M": members}, size
    if kind is list or kind is tuple:
        elements: list[AttributeValue] = []
        size = 3
        for member in value:
            encoded, member_size = encode_sized(member)
            elements.append(encoded)
            size += member_size + 1
        return {"L": elements}, size
    encoded = encode_value(value)
    return encoded, _value_size(encoded)
