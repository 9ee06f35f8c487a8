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

What DynamoDB would refuse is refused here, where the value is added, as
:class:`~lift_asgi.errors.InvalidItem` (a 400): a number of more than 38 significant
digits or a magnitude outside 1E-130 .. 9.99...E+125 (zero is fine), a number set whose
members are one number to DynamoDB (``{0.1, Decimal("0.1")}``), maps and lists nested
more than 32 levels (a top-level attribute's value is level 1), NaN and the infinities
(Python's ``json`` parses ``NaN`` and ``Infinity``, so a client can send them), a string
holding a lone surrogate (:func:`utf8_size`) and an empty attribute name
(:func:`refuse_name`). Empty sets, names that are not strings and unknown types are
programming errors (``ValueError``/``TypeError``).

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
from typing import Any, NoReturn

from lift_asgi.dynamo.limits import MAX_ITEM_BYTES, MAX_NAME_BYTES
from lift_asgi.errors import InvalidItem

__all__ = [
    "MAX_DEPTH",
    "MAX_DIGITS",
    "MAX_ITEM_BYTES",
    "decode_item",
    "decode_value",
    "encode_item",
    "encode_sized",
    "encode_value",
    "int_text",
    "item_size",
    "name_size",
    "number_size",
    "refuse_name",
    "text_size",
    "utf8_size",
]

AttributeValue = dict[str, Any]

_b64encode = base64.b64encode
_b64decode = base64.b64decode


#: DynamoDB's numbers: at most 38 significant digits, magnitude from 1E-130 to
#: 9.9999999999999999999999999999999999999E+125 (and zero).
MAX_DIGITS = 38
_MIN_EXPONENT = -130
_MAX_EXPONENT = 125
#: Values nest at most 32 levels (a top-level attribute's value is level 1).
MAX_DEPTH = 32


def _refuse_number(text: str, why: str) -> NoReturn:
    shown = text if len(text) <= 50 else f"{text[:20]}...{text[-20:]} ({len(text)} characters)"
    raise InvalidItem(f"DynamoDB cannot store the number {shown}: {why}.")


def _check_decimal(value: Decimal, text: str) -> None:
    """Refuse a finite Decimal DynamoDB cannot store (too many digits, out of range)."""
    if not value:
        return
    digits = value.as_tuple().digits
    significant = len(digits)
    while significant > 1 and digits[significant - 1] == 0:
        significant -= 1
    if significant > MAX_DIGITS:
        _refuse_number(text, f"it has {significant} significant digits, at most {MAX_DIGITS}")
    exponent = value.adjusted()
    if exponent > _MAX_EXPONENT:
        _refuse_number(text, "its magnitude is above 9.99...E+125")
    if exponent < _MIN_EXPONENT:
        _refuse_number(text, "its magnitude is below 1E-130")


def _check_int_text(text: str) -> None:
    """Refuse an int's text of more than 38 significant digits or above 9.99...E+125
    (called only for texts longer than 38 characters: shorter ones always fit)."""
    digits = text.lstrip("-")
    if len(digits) - 1 > _MAX_EXPONENT:
        _refuse_number(text, "its magnitude is above 9.99...E+125")
    significant = len(digits.rstrip("0"))
    if significant > MAX_DIGITS:
        _refuse_number(text, f"it has {significant} significant digits, at most {MAX_DIGITS}")


def int_text(value: int) -> str:
    """An int's text for DynamoDB, refusing one it cannot store (InvalidItem)."""
    text = str(value)
    if len(text) > 38:  # MAX_DIGITS, as a constant: this is on every int's path
        _check_int_text(text)
    return text


def _number(value: float | Decimal) -> str:
    if isinstance(value, float):
        # repr has at most 17 significant digits: only the range can be out of bounds
        # (the float nearest 1E-130 prints as 1e-130 and every float below it prints
        # below it, so comparing floats decides as comparing their texts would).
        if 1e-130 <= abs(value) < 1e126:  # False for NaN and infinities
            return repr(value)
        if not math.isfinite(value):
            _refuse_number(repr(value), "DynamoDB numbers are finite")
        text = repr(value)
        if value:
            _check_decimal(Decimal(text), text)
        return text
    if not value.is_finite():
        _refuse_number(str(value), "DynamoDB numbers are finite")
    text = str(value)
    _check_decimal(value, text)
    return text


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
        texts = [
            int_text(member) if type(member) is int else _number_member(member) for member in value
        ]
        # Members Python tells apart can be one number to DynamoDB (0.1 and
        # Decimal("0.1")), which refuses a set holding it twice.
        if len(texts) > 1 and len(set(map(Decimal, texts))) != len(texts):
            seen: set[Decimal] = set()
            for text in texts:
                number = Decimal(text)
                if number in seen:
                    raise InvalidItem(
                        f"The number set holds {text} more than once as DynamoDB numbers "
                        "(e.g. 0.1 and Decimal('0.1')); DynamoDB refuses duplicate members."
                    )
                seen.add(number)
        return {"NS": texts}
    return {"BS": [_b64encode(bytes(member)).decode() for member in value]}


def _number_member(member: Any) -> str:
    if isinstance(member, int):  # an int subclass (IntEnum)
        return int_text(int(member))
    return _number(member)


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
    return _encode(value, 1)


def _encode(value: Any, depth: int) -> AttributeValue:
    """``value`` at nesting level ``depth`` (a top-level attribute's value is level 1)."""
    kind = type(value)
    if kind is str:
        return {"S": value}
    if kind is int:
        return {"N": int_text(value)}
    if kind is bool:
        return {"BOOL": value}
    if value is None:
        return {"NULL": True}
    if kind is dict:
        return {"M": _encode_members(value, depth)}
    if kind is list or kind is tuple:
        if value and depth > 31:
            _too_deep()
        return {"L": [_encode(member, depth + 1) for member in value]}
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
        return {"N": int_text(int(value))}
    if isinstance(value, float | Decimal):
        return {"N": _number(value)}
    if isinstance(value, bytes | bytearray | memoryview):
        return {"B": _b64encode(bytes(value)).decode()}
    if isinstance(value, Mapping):
        return {"M": _encode_members(value, depth)}
    if isinstance(value, list | tuple):
        if value and depth > 31:
            _too_deep()
        return {"L": [_encode(member, depth + 1) for member in value]}
    if isinstance(value, set | frozenset):
        return _encode_set(value)
    raise TypeError(
        f"cannot store a {type(value).__name__} in DynamoDB; convert it to str, int, "
        "Decimal, bool, None, bytes, list, dict or set first"
    )


# The containers' checks read ``depth > 31`` (MAX_DEPTH - 1, as a constant: they are on
# every nested value's path): a container at level 32 may only be empty.
def _too_deep() -> NoReturn:
    raise InvalidItem(
        f"The item nests maps and lists more than {MAX_DEPTH} levels deep; "
        f"DynamoDB stores at most {MAX_DEPTH}."
    )


def _encode_members(item: Mapping[str, Any], depth: int) -> dict[str, AttributeValue]:
    """The members of a map at level ``depth`` (0: the item itself)."""
    if item and depth > 31:
        _too_deep()
    encoded: dict[str, AttributeValue] = {}
    for name, value in item.items():
        if type(name) is not str or not name:
            refuse_name(name)
        encoded[name] = _encode(value, depth + 1)
    return encoded


def encode_item(item: Mapping[str, Any]) -> dict[str, AttributeValue]:
    """A mapping of attribute names to Python values as a DynamoDB item."""
    return _encode_members(item, 0)


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


def utf8_size(text: str) -> int:
    """The UTF-8 length of a string that is not ASCII (callers test ``isascii()`` first,
    which skips the call for most). DynamoDB stores UTF-8, which a lone surrogate
    (``"\\ud800"``, which JSON carries and Python's ``json`` parses) cannot be encoded
    in: client data, so :class:`~lift_asgi.errors.InvalidItem` (a 400)."""
    try:
        return len(text.encode())
    except UnicodeEncodeError:
        raise InvalidItem(
            "A string in the item is not valid Unicode: it holds a lone surrogate "
            "(U+D800..U+DFFF), which DynamoDB cannot store."
        ) from None


def refuse_name(name: object) -> NoReturn:
    """An attribute name that cannot be one: an empty string (which a client's JSON can
    hold) is :class:`~lift_asgi.errors.InvalidItem`, a 400; anything but a string is the
    handler's own mistake (``TypeError``), a ``str`` subclass too."""
    if type(name) is str:
        raise InvalidItem("An attribute name must not be empty.")
    raise TypeError(f"attribute names must be non-empty strings, not {name!r}")


def name_size(name: object) -> int:
    """The size of a top-level attribute ``name``, checked: :func:`refuse_name` for no
    name, :class:`~lift_asgi.errors.InvalidItem` past DynamoDB's 64 KB for one."""
    if type(name) is not str or not name:
        refuse_name(name)
    size = _utf8_len(name)
    if size > MAX_NAME_BYTES:
        raise InvalidItem(
            f"An attribute name is {size} bytes; DynamoDB takes at most {MAX_NAME_BYTES}."
        )
    return size


def _utf8_len(text: str) -> int:
    return len(text) if text.isascii() else utf8_size(text)


#: The size DynamoDB counts for a string (its UTF-8 length).
text_size = _utf8_len


def _number_size(text: str) -> int:
    """DynamoDB's size of a number: its significant digits in base-100 pairs aligned on
    the decimal point (``1000010`` is 01 00 00 10: four pairs), plus one byte, plus one
    more for a negative number. AWS documents "about one byte per two significant
    digits, plus one"; the pairs are how DynamoDB stores a number (ministack, which
    matches DynamoDB's 400 KB refusals byte for byte, counts the same).

    With ``top`` and ``low`` the powers of ten of the highest and the lowest significant
    digit, the pairs are ``top // 2 - low // 2 + 1``."""
    if text.isdigit():  # a non-negative integer (the common case)
        whole = text.lstrip("0")
        if not whole:
            return 1  # zero
        return ((len(whole) - 1) >> 1) - ((len(whole) - len(whole.rstrip("0"))) >> 1) + 2
    sign = text[:1]
    negative = sign == "-"
    if negative or sign == "+":
        text = text[1:]
        if text.isdigit():
            return _number_size(text) + negative if text.strip("0") else 1
    shift = 0
    if "e" in text or "E" in text:
        text, _, exponent = text.replace("E", "e").partition("e")
        shift = int(exponent)
    whole, _, fraction = text.partition(".")
    whole = whole.lstrip("0")
    fraction = fraction.rstrip("0")
    if whole:
        top = len(whole) - 1
        low = -len(fraction) if fraction else len(whole) - len(whole.rstrip("0"))
    else:
        significant = fraction.lstrip("0")
        if not significant:
            return 1  # zero
        top = len(significant) - len(fraction) - 1
        low = -len(fraction)
    return ((top + shift) >> 1) - ((low + shift) >> 1) + 2 + negative


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

    Attribute names (UTF-8) plus values: strings by their UTF-8 length, numbers by
    DynamoDB's rule (:func:`number_size`), binary by its length, booleans and nulls
    one byte, lists and maps 3 bytes plus one per element (plus names for maps), sets the
    sum of their members. An estimate by the published rules, close enough to refuse a
    write before DynamoDB would.
    """
    total = 0
    for name, value in item.items():
        total += len(name) if name.isascii() else utf8_size(name)
        text = value.get("S")
        if text is not None:  # the common case, without a call
            total += len(text) if text.isascii() else utf8_size(text)
        else:
            total += _value_size(value)
    return total


def encode_sized(value: Any, depth: int = 1) -> tuple[AttributeValue, int]:
    """:func:`encode_value` and the size :func:`item_size` counts for it, in one walk
    (a put encodes and sizes its item at once; walking it twice cost a third of a put).
    ``depth``: the value's nesting level (a top-level attribute's value is level 1)."""
    kind = type(value)
    if kind is str:
        return {"S": value}, len(value) if value.isascii() else utf8_size(value)
    if kind is int:
        text = int_text(value)
        return {"N": text}, _number_size(text)
    if kind is bool:
        return {"BOOL": value}, 1
    if value is None:
        return {"NULL": True}, 1
    if kind is dict:
        if value and depth > 31:
            _too_deep()
        members: dict[str, AttributeValue] = {}
        size = 3
        for name, member in value.items():
            if type(name) is not str or not name:
                refuse_name(name)
            encoded, member_size = encode_sized(member, depth + 1)
            members[name] = encoded
            size += _utf8_len(name) + member_size + 1
        return {"M": members}, size
    if kind is list or kind is tuple:
        if value and depth > 31:
            _too_deep()
        elements: list[AttributeValue] = []
        size = 3
        for member in value:
            encoded, member_size = encode_sized(member, depth + 1)
            elements.append(encoded)
            size += member_size + 1
        return {"L": elements}, size
    encoded = _encode(value, depth)
    return encoded, _value_size(encoded)
