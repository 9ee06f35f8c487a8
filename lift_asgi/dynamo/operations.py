"""Write requests of the unit of work, built and checked when the handler adds them.

Each builder turns one ``put``/``update``/``delete``/``check`` into an :class:`Operation`:
the DynamoDB request (physical keys, tenant stamp, condition expression), whether
applying it twice is harmless (which decides how a failure of unknown outcome is
retried), the version it expects and its size. Nothing here does I/O; a bad item fails
here, at the line that added it, not at commit.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from lift_asgi.dynamo.codec import encode_value, item_size, name_size, refuse_name
from lift_asgi.dynamo.conditions import Condition, Expression
from lift_asgi.dynamo.keys import KeyLike, Schema, Scope, check_key_value
from lift_asgi.dynamo.limits import MAX_ITEM_BYTES, MAX_SK_BYTES
from lift_asgi.errors import InvalidItem

__all__ = [
    "Operation",
    "PutOperation",
    "build_check",
    "build_delete",
    "build_put",
    "build_update",
    "check_condition",
    "check_size",
    "show_key",
]

#: (table, physical partition key, physical sort key): the same item twice is refused.
Identity = tuple[str, str, str | None]


@dataclass(slots=True)
class Operation:
    """One buffered write, ready to send."""

    kind: str
    #: The key as the handler gave it (logical: no tenant prefix), for logs.
    logical: tuple[str, str | None]
    request: dict[str, Any]
    #: No condition and no ADD: applying it twice is applying it once.
    idempotent: bool
    expected_version: int | None
    size: int
    identity: Identity
    #: An update with an ADD clause (a second application adds twice).
    adds: bool = False

    @property
    def replayable(self) -> bool:
        """Sending it again after a failure of unknown outcome leaves the item as one
        application would: a put or a delete (the same item, or none, again), an update
        that only sets and removes, or one whose expected version excludes a second
        application. Not an update that adds without expecting a version."""
        return not self.adds or self.expected_version is not None


class PutOperation(Operation):
    """An unconditional put (the hot path of a handler that writes): checked, encoded and
    sized when added, like every operation; what is the same for every such put is a
    class-level constant, and the request and the logical key are assembled when read (by
    the commit: one small dict, no checks), so adding one makes no dict or tuple for them."""

    __slots__ = ("_pk", "item")
    kind = "put"
    idempotent = True
    expected_version = None
    adds = False
    #: The item as stored (encoded, prefixed, stamped).
    item: dict[str, Any]
    #: The partition key as the handler gave it.
    _pk: str

    # read-only here (the override mypy flags): a put's request is its table and item
    @property
    def request(self) -> dict[str, Any]:  # type: ignore[override]
        return {"TableName": self.identity[0], "Item": self.item}

    @property
    def logical(self) -> tuple[str, str | None]:  # type: ignore[override]
        return (self._pk, self.identity[2])

    # A value like any Operation: its constants cannot be set on an instance, so what
    # would build a PutOperation from fields (dataclasses.replace, copy, pickle) builds
    # the plain Operation with those fields instead, and the two compare equal.
    def __new__(cls, *args: Any, **kwargs: Any) -> Operation:  # type: ignore[misc]
        return Operation(*args, **kwargs)

    def __reduce__(self) -> tuple[type[Operation], tuple[Any, ...]]:
        return Operation, _values(self)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Operation):
            return NotImplemented
        return _values(self) == _values(other)

    __hash__ = None  # type: ignore[assignment]  # mutable, as Operation is


def _values(op: Operation) -> tuple[Any, ...]:
    """An operation's fields, in Operation's order (properties read as fields)."""
    return tuple(getattr(op, name) for name in _FIELDS)


_FIELDS = tuple(field.name for field in fields(Operation))

_new = object.__new__


def show_key(schema: Schema, logical: tuple[str, str | None]) -> str:
    """The logical key as ``{"pk": ..., "sk": ...}`` text (for logs and local errors)."""
    key: dict[str, Any] = {schema.pk: logical[0]}
    if schema.sk is not None:
        key[schema.sk] = logical[1]
    return json.dumps(key, separators=(", ", ": "), default=str)


def check_size(size: int) -> int:
    if size > MAX_ITEM_BYTES:
        raise InvalidItem(
            f"The item is {size} bytes; DynamoDB stores at most {MAX_ITEM_BYTES} bytes per item."
        )
    return size


def _version(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"expect_version must be an int >= 0, not {value!r}")
    return value


def stored_item(scope: Scope, item: Mapping[str, Any]) -> tuple[dict[str, Any], int]:
    """``item`` as stored through ``scope``, and its size, in one walk."""
    if type(item) is not dict and not isinstance(item, Mapping):
        raise TypeError(f"an item is a mapping, not {type(item).__name__}")
    schema = scope.schema
    if schema.pk not in item:
        raise InvalidItem(f"The item has no '{schema.pk}' attribute.")
    if schema.sk is not None and schema.sk not in item:
        raise InvalidItem(f"The item has no '{schema.sk}' attribute.")
    return scope.stored_sized(item)


def check_condition(scope: Scope, condition: Condition) -> None:
    """Refuse a condition that compares a value the tenant scope stores prefixed."""
    if not isinstance(condition, Condition):
        raise TypeError("conditions are built with Attr(...) or Condition.raw(...)")
    if scope.stamp() is None:
        return
    schema = scope.schema
    for name in condition.compared():
        if name in schema.prefixed or name == schema.tenant_attribute:
            raise ValueError(
                f"a condition cannot compare '{name}' with a value: it is stored with the "
                "tenant prefix; address the item through its key instead"
            )


def _conditions(
    scope: Scope,
    expr: Expression,
    condition: Condition | None,
    *,
    must_exist: bool | None = None,
    expected_version: int | None = None,
) -> str | None:
    parts: list[str] = []
    if must_exist is not None:
        function = "attribute_exists" if must_exist else "attribute_not_exists"
        parts.append(f"{function}({expr.name(scope.schema.pk)})")
    if expected_version is not None:
        parts.append(
            f"{expr.name(scope.schema.version_attribute)} = "
            f"{expr.encoded({'N': str(expected_version)})}"
        )
    if condition is not None:
        check_condition(scope, condition)
        parts.append(condition.render(expr))
    if not parts:
        return None
    if len(parts) == 1:
        return parts[0]
    return " AND ".join(f"({part})" for part in parts)


def _identity(schema: Schema, physical: Mapping[str, Any]) -> Identity:
    return (
        schema.table,
        physical[schema.pk]["S"],
        physical[schema.sk]["S"] if schema.sk is not None else None,
    )


def build_put(
    scope: Scope,
    item: Mapping[str, Any],
    if_absent: bool = False,
    condition: Condition | None = None,
    expect_version: int | None = None,
) -> Operation:
    """The PutItem of ``item`` (see :meth:`UnitOfWork.put <lift_asgi.dynamo.UnitOfWork.put>`)."""
    if if_absent or condition is not None or expect_version is not None:
        return _conditional_put(scope, item, if_absent, condition, expect_version)
    return plain_put(scope, item)


def plain_put(scope: Scope, item: Mapping[str, Any]) -> PutOperation:
    """The unconditional PutItem of ``item``: one walk in stored_sized, then lookups only."""
    if type(item) is not dict and not isinstance(item, Mapping):
        raise TypeError(f"an item is a mapping, not {type(item).__name__}")
    encoded, size = scope.stored_sized(item)
    schema = scope.schema
    try:
        pk_text = encoded[schema.pk]["S"]
        sk_name = schema.sk
        sk_text = encoded[sk_name]["S"] if sk_name is not None else None
    except KeyError as missing:
        raise InvalidItem(f"The item has no '{missing.args[0]}' attribute.") from None
    if size > MAX_ITEM_BYTES:
        check_size(size)
    # object.__new__ and four slots: the other fields are PutOperation's constants
    op = _new(PutOperation)
    op.item = encoded
    op.size = size
    op.identity = (schema.table, pk_text, sk_text)
    op._pk = item[schema.pk]
    return op


def _conditional_put(
    scope: Scope,
    item: Mapping[str, Any],
    if_absent: bool,
    condition: Condition | None,
    expect_version: int | None,
) -> Operation:
    if if_absent and expect_version is not None:
        raise ValueError("if_absent and expect_version exclude each other")
    if type(item) is not dict and not isinstance(item, Mapping):
        raise TypeError(f"an item is a mapping, not {type(item).__name__}")
    encoded, size = scope.stored_sized(item)
    schema = scope.schema
    pk_name, sk_name = schema.pk, schema.sk
    pk_value = encoded.get(pk_name)
    if pk_value is None:
        raise InvalidItem(f"The item has no '{pk_name}' attribute.")
    if expect_version is not None:
        expect_version = _version(expect_version)
        name = schema.version_attribute
        old = encoded.get(name)
        new = encoded[name] = {"N": str(expect_version + 1)}
        size += item_size({name: new}) - (item_size({name: old}) if old is not None else 0)
    if size > MAX_ITEM_BYTES:
        check_size(size)
    if sk_name is None:
        logical: tuple[str, str | None] = (item[pk_name], None)
        identity: Identity = (schema.table, pk_value["S"], None)
    else:
        sk_value = encoded.get(sk_name)
        if sk_value is None:
            raise InvalidItem(f"The item has no '{sk_name}' attribute.")
        sk_text = sk_value["S"]
        logical = (item[pk_name], sk_text)
        identity = (schema.table, pk_value["S"], sk_text)
    request: dict[str, Any] = {"TableName": schema.table, "Item": encoded}
    expr = Expression()
    request["ConditionExpression"] = _conditions(
        scope,
        expr,
        condition,
        must_exist=False if if_absent else None,
        expected_version=expect_version,
    )
    expr.apply(request)
    return Operation("put", logical, request, False, expect_version, size, identity)


def build_update(
    scope: Scope,
    key: KeyLike,
    *,
    set: Mapping[str, Any] | None = None,
    add: Mapping[str, Any] | None = None,
    remove: Iterable[str] | str = (),
    condition: Condition | None = None,
    expect_version: int | None = None,
    if_exists: bool = False,
) -> Operation:
    """The UpdateItem of the item at ``key`` (see ``UnitOfWork.update``)."""
    schema = scope.schema
    physical, logical = scope.key(key)
    expr = Expression()
    protected = {schema.pk, schema.sk, schema.tenant_attribute}
    touched: dict[str, str] = {}

    def claim(name: Any, clause: str) -> str:
        if not isinstance(name, str):
            refuse_name(name)
        name_size(str(name))  # none, or past 64 KB: refused as put() does (a StrEnum kept)
        if name in protected:
            raise ValueError(
                f"update cannot write '{name}' ({clause}): it is part of the key, or the "
                "tenant attribute"
            )
        if name in touched:
            raise ValueError(f"'{name}' is both in {touched[name]} and {clause}")
        touched[name] = clause
        return expr.name(name)

    sets: list[str] = []
    size = 0
    for name, value in (set or {}).items():
        placeholder = claim(name, "set")
        if name in schema.prefixed:
            encoded = {"S": scope.partition(value, name)}
        elif name in schema.key_attributes:
            encoded = {"S": check_key_value(name, value, MAX_SK_BYTES)}
        else:
            encoded = encode_value(value)
        size += item_size({name: encoded})
        sets.append(f"{placeholder} = {expr.encoded(encoded)}")
    if expect_version is not None:
        expect_version = _version(expect_version)
        placeholder = claim(schema.version_attribute, "the version")
        version = {"N": str(expect_version + 1)}
        sets.append(f"{placeholder} = {expr.encoded(version)}")
    adds: list[str] = []
    for name, value in (add or {}).items():
        placeholder = claim(name, "add")
        if name in schema.key_attributes:
            raise ValueError(f"update cannot add to the key attribute '{name}'")
        encoded = encode_value(value)
        if not encoded.keys() & {"N", "SS", "NS", "BS"}:
            raise TypeError(f"add takes numbers or sets, not {type(value).__name__} ('{name}')")
        size += item_size({name: encoded})
        adds.append(f"{placeholder} {expr.encoded(encoded)}")
    removed = [remove] if isinstance(remove, str) else list(remove)
    removes = [claim(name, "remove") for name in removed]
    if not (sets or adds or removes):
        raise ValueError("update needs set=, add=, remove= or expect_version=")
    stamp = scope.stamp()
    if stamp is not None:
        sets.append(f"{expr.name(stamp[0])} = {expr.encoded(stamp[1])}")
    if size > MAX_ITEM_BYTES:
        raise InvalidItem(
            f"The update writes {size} bytes; DynamoDB stores at most "
            f"{MAX_ITEM_BYTES} bytes per item."
        )
    clauses = []
    if sets:
        clauses.append("SET " + ", ".join(sets))
    if adds:
        clauses.append("ADD " + ", ".join(adds))
    if removes:
        clauses.append("REMOVE " + ", ".join(removes))
    request: dict[str, Any] = {
        "TableName": schema.table,
        "Key": physical,
        "UpdateExpression": " ".join(clauses),
    }
    expression = _conditions(
        scope,
        expr,
        condition,
        must_exist=True if if_exists else None,
        expected_version=expect_version,
    )
    if expression is not None:
        request["ConditionExpression"] = expression
    expr.apply(request)
    return Operation(
        "update",
        logical,
        request,
        expression is None and not adds,
        expect_version,
        size,
        _identity(schema, physical),
        bool(adds),
    )


def build_delete(
    scope: Scope,
    key: KeyLike,
    *,
    condition: Condition | None = None,
    expect_version: int | None = None,
    if_exists: bool = False,
) -> Operation:
    """The DeleteItem of the item at ``key`` (see ``UnitOfWork.delete``)."""
    physical, logical = scope.key(key)
    request: dict[str, Any] = {"TableName": scope.schema.table, "Key": physical}
    if expect_version is not None:
        expect_version = _version(expect_version)
    expr = Expression()
    expression = _conditions(
        scope,
        expr,
        condition,
        must_exist=True if if_exists else None,
        expected_version=expect_version,
    )
    if expression is not None:
        request["ConditionExpression"] = expression
        expr.apply(request)
    return Operation(
        "delete",
        logical,
        request,
        expression is None,
        expect_version,
        0,
        _identity(scope.schema, physical),
    )


def build_check(scope: Scope, key: KeyLike, condition: Condition) -> Operation:
    """A ConditionCheck on the item at ``key`` (see ``UnitOfWork.check``)."""
    if condition is None:
        raise ValueError("check needs a condition")
    physical, logical = scope.key(key)
    expr = Expression()
    expression = _conditions(scope, expr, condition)
    request: dict[str, Any] = {
        "TableName": scope.schema.table,
        "Key": physical,
        "ConditionExpression": expression,
    }
    expr.apply(request)
    return Operation("check", logical, request, False, None, 0, _identity(scope.schema, physical))
