"""A small, safe builder for condition, filter and sort-key expressions.

Handlers never write DynamoDB expression strings by hand: attribute names and values
always travel as placeholders, so no name can clash with a reserved word and no value
can be injected into the expression::

    from lift_asgi.dynamo import Attr, SK

    Attr("status").eq("open")
    Attr("tasks_open").eq(0) & Attr("archived").not_exists()
    Attr("tags").contains("urgent") | ~Attr("priority").lt(3)
    Attr("address", "city").begins_with("San")      # nested: address.city
    Attr("tags").size().gt(2)

    uow.query("project#p1", sk=SK.begins_with("task#"), filter=Attr("status").eq("open"))

``Condition.raw(expression, names=..., values=...)`` is the escape hatch for what the
builder does not cover; its placeholders must not look like the builder's own
(``#l0``, ``:l0``, ...). Values are plain Python (see :mod:`lift_asgi.dynamo.codec`).

Conditions built with :class:`Attr` refer to the values handlers see. A partition key
(the table's or an index's) or the tenant attribute is stored with the tenant prefix,
so the builder refuses to compare one against a value; address items through their key.
A raw expression sees what is stored.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from lift_asgi.dynamo.codec import encode_value, name_size, text_size, utf8_size
from lift_asgi.dynamo.limits import MAX_EXPRESSION_BYTES, MAX_NAME_BYTES, MAX_SK_BYTES
from lift_asgi.errors import InvalidItem

__all__ = ["SK", "Attr", "Condition", "Expression", "SortKeyCondition"]

_OWN_PLACEHOLDER = re.compile(r"[#:]l\d+")
_RAW_PLACEHOLDER = re.compile(r"[#:][A-Za-z0-9_]+")
_ATTRIBUTE_TYPES = frozenset({"S", "SS", "N", "NS", "B", "BS", "BOOL", "NULL", "L", "M"})


class Expression:
    """Collects the placeholders of one request's expressions."""

    __slots__ = ("_name_ids", "names", "values")

    def __init__(self) -> None:
        self.names: dict[str, str] = {}
        self.values: dict[str, dict[str, Any]] = {}
        self._name_ids: dict[str, str] = {}

    def name(self, name: str) -> str:
        placeholder = self._name_ids.get(name)
        if placeholder is None:
            placeholder = self._name_ids[name] = f"#l{len(self._name_ids)}"
            self.names[placeholder] = name
        return placeholder

    def path(self, path: tuple[str | int, ...]) -> str:
        parts: list[str] = []
        for part in path:
            if type(part) is int:
                parts[-1] += f"[{part}]"
            else:
                parts.append(self.name(part))  # type: ignore[arg-type]
        return ".".join(parts)

    def value(self, value: Any) -> str:
        placeholder = f":l{len(self.values)}"
        self.values[placeholder] = encode_value(value)
        return placeholder

    def encoded(self, attribute_value: dict[str, Any]) -> str:
        placeholder = f":l{len(self.values)}"
        self.values[placeholder] = attribute_value
        return placeholder

    def add_raw(self, names: Mapping[str, str], values: Mapping[str, Any]) -> None:
        for placeholder, name in names.items():
            if self.names.get(placeholder, name) != name:
                raise ValueError(f"placeholder {placeholder} names two different attributes")
            self.names[placeholder] = name
        for placeholder, value in values.items():
            encoded = encode_value(value)
            if self.values.get(placeholder, encoded) != encoded:
                raise ValueError(f"placeholder {placeholder} has two different values")
            self.values[placeholder] = encoded

    def apply(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Add the placeholders to ``payload``, whose expressions are complete: each is
        checked against DynamoDB's 4 KB limit here, where the request is built."""
        for field in _EXPRESSION_FIELDS:
            text = payload.get(field)
            if text is not None and len(text) > MAX_EXPRESSION_BYTES // 4:
                _check_length(field, text)
        if self.names:
            payload["ExpressionAttributeNames"] = self.names
        if self.values:
            payload["ExpressionAttributeValues"] = self.values
        return payload


_EXPRESSION_FIELDS = (
    "ConditionExpression",
    "UpdateExpression",
    "KeyConditionExpression",
    "FilterExpression",
    "ProjectionExpression",
)


def _check_length(field: str, text: str) -> None:
    size = len(text) if text.isascii() else utf8_size(text)
    if size > MAX_EXPRESSION_BYTES:
        raise InvalidItem(
            f"The {field} would be {size} bytes; DynamoDB takes at most "
            f"{MAX_EXPRESSION_BYTES} bytes per expression (set fewer attributes in one "
            "update, or split the condition)."
        )


class Condition:
    """A condition or filter expression; combine with ``&``, ``|`` and ``~``."""

    __slots__ = ()

    def render(self, expr: Expression) -> str:
        raise NotImplementedError

    def compared(self) -> Iterable[str]:
        """Top-level attribute names this condition compares against a value."""
        return ()

    def __and__(self, other: Condition) -> Condition:
        if not isinstance(other, Condition):
            return NotImplemented
        return _Bool("AND", (self, other))

    def __or__(self, other: Condition) -> Condition:
        if not isinstance(other, Condition):
            return NotImplemented
        return _Bool("OR", (self, other))

    def __invert__(self) -> Condition:
        return _Not(self)

    def __bool__(self) -> bool:
        raise TypeError("use & | ~ to combine conditions, not and/or/not")

    @staticmethod
    def raw(
        expression: str,
        names: Mapping[str, str] | None = None,
        values: Mapping[str, Any] | None = None,
    ) -> Condition:
        """A hand-written expression with its own ``#name``/``:value`` placeholders."""
        if not isinstance(expression, str) or not expression.strip():
            raise ValueError("a raw condition needs a non-empty expression")
        names = dict(names or {})
        values = dict(values or {})
        for placeholder in (*names, *values):
            if not _RAW_PLACEHOLDER.fullmatch(placeholder):
                raise ValueError(f"{placeholder!r} is not a valid placeholder")
            if _OWN_PLACEHOLDER.fullmatch(placeholder):
                raise ValueError(
                    f"{placeholder!r} clashes with the builder's placeholders (#l0, :l0, ...); "
                    "pick another name"
                )
        for placeholder in _RAW_PLACEHOLDER.findall(expression):
            if placeholder not in names and placeholder not in values:
                raise ValueError(f"placeholder {placeholder} is used but not defined")
        return _Raw(expression, names, values)


@dataclass(frozen=True, slots=True, eq=False)
class _Bool(Condition):
    op: str
    parts: tuple[Condition, Condition]

    def render(self, expr: Expression) -> str:
        left, right = self.parts
        return f"({left.render(expr)}) {self.op} ({right.render(expr)})"

    def compared(self) -> Iterable[str]:
        return (*self.parts[0].compared(), *self.parts[1].compared())


@dataclass(frozen=True, slots=True, eq=False)
class _Not(Condition):
    inner: Condition

    def render(self, expr: Expression) -> str:
        return f"NOT ({self.inner.render(expr)})"

    def compared(self) -> Iterable[str]:
        return self.inner.compared()


@dataclass(frozen=True, slots=True, eq=False)
class _Compare(Condition):
    path: tuple[str | int, ...]
    op: str
    value: Any
    size: bool = False

    def render(self, expr: Expression) -> str:
        target = expr.path(self.path)
        if self.size:
            target = f"size({target})"
        return f"{target} {self.op} {expr.value(self.value)}"

    def compared(self) -> Iterable[str]:
        return (str(self.path[0]),)


@dataclass(frozen=True, slots=True, eq=False)
class _Between(Condition):
    path: tuple[str | int, ...]
    low: Any
    high: Any
    size: bool = False

    def render(self, expr: Expression) -> str:
        target = expr.path(self.path)
        if self.size:
            target = f"size({target})"
        return f"{target} BETWEEN {expr.value(self.low)} AND {expr.value(self.high)}"

    def compared(self) -> Iterable[str]:
        return (str(self.path[0]),)


@dataclass(frozen=True, slots=True, eq=False)
class _Function(Condition):
    function: str
    path: tuple[str | int, ...]
    value: Any = None
    has_value: bool = True

    def render(self, expr: Expression) -> str:
        target = expr.path(self.path)
        if not self.has_value:
            return f"{self.function}({target})"
        return f"{self.function}({target}, {expr.value(self.value)})"

    def compared(self) -> Iterable[str]:
        if self.has_value and self.function != "attribute_type":
            return (str(self.path[0]),)
        return ()


@dataclass(frozen=True, slots=True, eq=False)
class _In(Condition):
    path: tuple[str | int, ...]
    values: tuple[Any, ...]

    def render(self, expr: Expression) -> str:
        members = ", ".join(expr.value(value) for value in self.values)
        return f"{expr.path(self.path)} IN ({members})"

    def compared(self) -> Iterable[str]:
        return (str(self.path[0]),)


@dataclass(frozen=True, slots=True, eq=False)
class _Raw(Condition):
    expression: str
    names: Mapping[str, str]
    values: Mapping[str, Any]

    def render(self, expr: Expression) -> str:
        expr.add_raw(self.names, self.values)
        return self.expression


class _Size:
    __slots__ = ("_path",)

    def __init__(self, path: tuple[str | int, ...]) -> None:
        self._path = path

    def eq(self, value: int) -> Condition:
        return _Compare(self._path, "=", value, size=True)

    def ne(self, value: int) -> Condition:
        return _Compare(self._path, "<>", value, size=True)

    def lt(self, value: int) -> Condition:
        return _Compare(self._path, "<", value, size=True)

    def lte(self, value: int) -> Condition:
        return _Compare(self._path, "<=", value, size=True)

    def gt(self, value: int) -> Condition:
        return _Compare(self._path, ">", value, size=True)

    def gte(self, value: int) -> Condition:
        return _Compare(self._path, ">=", value, size=True)

    def between(self, low: int, high: int) -> Condition:
        return _Between(self._path, low, high, size=True)


class Attr:
    """An attribute of the item: ``Attr("status")``, nested ``Attr("address", "city")``,
    list element ``Attr("tags", 0)``."""

    __slots__ = ("_path",)

    def __init__(self, name: str, *path: str | int) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError("Attr needs a non-empty attribute name")
        for part in path:
            if isinstance(part, bool) or not isinstance(part, str | int) or part == "":
                raise ValueError(f"invalid path element {part!r}")
        for part in (name, *path):
            if isinstance(part, str) and len(part) > MAX_NAME_BYTES // 4:
                name_size(str(part))  # a client-chosen name past 64 KB: a 400, as in put()
        self._path: tuple[str | int, ...] = (name, *path)

    def __repr__(self) -> str:
        return f"Attr{self._path!r}"

    def eq(self, value: Any) -> Condition:
        return _Compare(self._path, "=", value)

    def ne(self, value: Any) -> Condition:
        return _Compare(self._path, "<>", value)

    def lt(self, value: Any) -> Condition:
        return _Compare(self._path, "<", value)

    def lte(self, value: Any) -> Condition:
        return _Compare(self._path, "<=", value)

    def gt(self, value: Any) -> Condition:
        return _Compare(self._path, ">", value)

    def gte(self, value: Any) -> Condition:
        return _Compare(self._path, ">=", value)

    def between(self, low: Any, high: Any) -> Condition:
        return _Between(self._path, low, high)

    def begins_with(self, prefix: str | bytes) -> Condition:
        return _Function("begins_with", self._path, prefix)

    def contains(self, value: Any) -> Condition:
        return _Function("contains", self._path, value)

    def is_in(self, *values: Any) -> Condition:
        if not 1 <= len(values) <= 100:
            raise ValueError("is_in takes 1 to 100 values")
        return _In(self._path, values)

    def exists(self) -> Condition:
        return _Function("attribute_exists", self._path, has_value=False)

    def not_exists(self) -> Condition:
        return _Function("attribute_not_exists", self._path, has_value=False)

    def is_type(self, attribute_type: str) -> Condition:
        if attribute_type not in _ATTRIBUTE_TYPES:
            raise ValueError(f"attribute type must be one of {sorted(_ATTRIBUTE_TYPES)}")
        return _Function("attribute_type", self._path, attribute_type)

    def size(self) -> _Size:
        return _Size(self._path)


@dataclass(frozen=True, slots=True)
class SortKeyCondition:
    """A condition on the sort key of a query (build it with :class:`SK`)."""

    op: str
    values: tuple[str, ...]

    def render(self, expr: Expression, attribute: str) -> str:
        name = expr.name(attribute)
        values = [expr.value(value) for value in self.values]
        if self.op == "begins_with":
            return f"begins_with({name}, {values[0]})"
        if self.op == "BETWEEN":
            return f"{name} BETWEEN {values[0]} AND {values[1]}"
        return f"{name} {self.op} {values[0]}"


def _sort_value(value: Any) -> str:
    """A sort-key value as DynamoDB accepts it in a key condition: a non-empty string of
    at most 1024 UTF-8 bytes. Such values often come from the client (``?after=``), so
    what DynamoDB would refuse is an :class:`InvalidItem` (a 400), as for ``get``'s keys."""
    if not isinstance(value, str):
        raise TypeError(f"sort key values are strings, not {type(value).__name__}")
    if not value:
        raise InvalidItem("A sort key value must not be empty.")
    if text_size(value) > MAX_SK_BYTES:  # a lone surrogate is refused here too
        raise InvalidItem(f"A sort key value is longer than {MAX_SK_BYTES} bytes.")
    return value


class SK:
    """Sort-key conditions for :meth:`UnitOfWork.query`: ``sk=SK.begins_with("task#")``.

    A plain string passed as ``sk=`` means :meth:`SK.eq`.
    """

    __slots__ = ()

    @staticmethod
    def eq(value: str) -> SortKeyCondition:
        return SortKeyCondition("=", (_sort_value(value),))

    @staticmethod
    def lt(value: str) -> SortKeyCondition:
        return SortKeyCondition("<", (_sort_value(value),))

    @staticmethod
    def lte(value: str) -> SortKeyCondition:
        return SortKeyCondition("<=", (_sort_value(value),))

    @staticmethod
    def gt(value: str) -> SortKeyCondition:
        return SortKeyCondition(">", (_sort_value(value),))

    @staticmethod
    def gte(value: str) -> SortKeyCondition:
        return SortKeyCondition(">=", (_sort_value(value),))

    @staticmethod
    def between(low: str, high: str) -> SortKeyCondition:
        low, high = _sort_value(low), _sort_value(high)
        # DynamoDB orders strings by their UTF-8 bytes, which is code point order
        if low > high:
            raise InvalidItem("A sort key range's low end is above its high end.")
        return SortKeyCondition("BETWEEN", (low, high))

    @staticmethod
    def begins_with(prefix: str) -> SortKeyCondition:
        return SortKeyCondition("begins_with", (_sort_value(prefix),))
