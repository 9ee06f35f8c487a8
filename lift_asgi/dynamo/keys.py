"""Table schema and tenant key scoping: the one place that builds physical keys.

A tenant-scoped view stores the logical partition key ``p`` of tenant ``t`` as
``"t#p"``, in the table's partition key and in every index partition key the item
carries, and writes the tenant id into the tenant attribute (``_tenant``). Reading, it
checks the tenant attribute (an item of another tenant is not found, and logged) and
strips the prefix, so handlers never see or build it. The unscoped view does none of
this; it exists only behind :meth:`UnitOfWork.unscoped`.

Key attributes are strings (the standard schema of :mod:`lift_asgi.dynamo.tables`);
DynamoDB's key rules are checked here, before any call: present, non-empty, at most
2048 bytes for a partition key and 1024 for a sort key.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from lift_asgi.dynamo.codec import (
    decode_item,
    decode_value,
    encode_sized,
    int_text,
    name_size,
    number_size,
    text_size,
    utf8_size,
)
from lift_asgi.dynamo.limits import MAX_PK_BYTES, MAX_SK_BYTES
from lift_asgi.dynamo.tables import TableSpec
from lift_asgi.errors import InvalidItem, InvalidTenant

__all__ = [
    "MAX_PK_BYTES",
    "MAX_SK_BYTES",
    "KeyLike",
    "Schema",
    "Scope",
    "TenantScope",
    "UnscopedScope",
    "check_key_value",
    "key_parts",
    "validate_tenant_id",
]

log = logging.getLogger("lift_asgi.dynamo")

#: A key as handlers give it: ``{"pk": ..., "sk": ...}``, ``(pk, sk)`` or, for a table
#: without a sort key, the partition key alone.
KeyLike = Mapping[str, Any] | tuple[str, str] | str

_MAX_TENANT_ID = 256
#: A key value of up to this many characters fits every key limit: at most 4 UTF-8 bytes
#: each, 768 bytes, under the sort key's 1024 and the prefixed partition key's 2048 - 257.
_SHORT_KEY = 192
#: Codes of key attributes in Schema.names (sizes are >= 1).
PREFIXED_KEY = -1
KEY = -2
#: How many checked attribute names a schema remembers, and the longest one it keeps
#: (UTF-8 bytes): at most ~4096 * (64 + 50) bytes however names come, from a handler that
#: spreads a client's JSON keys into items included. Longer names are checked every time.
_MAX_NAMES = 4096
_MAX_NAME_BYTES = 64


@dataclass(frozen=True, slots=True)
class Schema:
    """The key layout the unit of work expects of its table (checked once, lazily)."""

    table: str
    pk: str
    sk: str | None
    indexes: Mapping[str, tuple[str, str | None]]
    tenant_attribute: str
    version_attribute: str
    #: Attributes stored with the tenant prefix: the table's and every index's partition key.
    prefixed: frozenset[str]
    #: Every key attribute of the table and its indexes (strings, never empty).
    key_attributes: frozenset[str]
    #: The attribute names a tenant's put has met and checked: name -> its size
    #: (UTF-8 bytes), or PREFIXED_KEY / KEY for key attributes. Bounded by _MAX_NAMES;
    #: the tenant attribute is never in it (a handler may not write it).
    names: dict[Any, int] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        for name in self.key_attributes:
            self.names[name] = PREFIXED_KEY if name in self.prefixed else KEY

    def learn(self, name: Any) -> int:
        """Check an attribute name a put has not met before; its entry in :attr:`names`."""
        if name == self.tenant_attribute:
            raise InvalidItem(
                f"'{self.tenant_attribute}' is written by the unit of work, not by handlers."
            )
        size = name_size(name)
        if size <= _MAX_NAME_BYTES and len(self.names) < _MAX_NAMES:
            self.names[name] = size
        return size

    @classmethod
    def from_spec(cls, spec: TableSpec, *, tenant_attribute: str, version_attribute: str) -> Schema:
        indexes = {gsi.name: (gsi.pk, gsi.sk) for gsi in spec.gsis}
        prefixed = frozenset({spec.pk, *(pk for pk, _ in indexes.values())})
        keys = {spec.pk, *prefixed}
        if spec.sk:
            keys.add(spec.sk)
        keys.update(sk for _, sk in indexes.values() if sk)
        reserved = {tenant_attribute, version_attribute} & keys
        if reserved:
            raise ValueError(f"{sorted(reserved)} cannot be both a key and a bookkeeping attribute")
        if spec.sk and spec.sk in prefixed:
            # An inverted index (its partition key is the table's sort key) would store the
            # sort key with the tenant prefix while keys address it without: refuse it.
            raise ValueError(
                f"index partition key {spec.sk!r} is the table's sort key; give the index "
                "its own attribute (e.g. gsi1pk) and copy the value into it"
            )
        return cls(
            table=spec.name,
            pk=spec.pk,
            sk=spec.sk,
            indexes=indexes,
            tenant_attribute=tenant_attribute,
            version_attribute=version_attribute,
            prefixed=prefixed,
            key_attributes=frozenset(keys),
        )

    def index_keys(self, index: str | None) -> tuple[str, str | None]:
        if index is None:
            return self.pk, self.sk
        try:
            return self.indexes[index]
        except KeyError:
            known = ", ".join(sorted(self.indexes)) or "none"
            raise ValueError(
                f"unknown index {index!r} on table {self.table!r} (known: {known})"
            ) from None


def check_key_value(attribute: str, value: Any, limit: int) -> str:
    """``value`` as a key string: a non-empty string of at most ``limit`` UTF-8 bytes."""
    if type(value) is not str:
        if not isinstance(value, str):
            raise InvalidItem(f"The key attribute '{attribute}' must be a string.")
        value = str(value)
    text: str = value
    if not text:
        raise InvalidItem(f"The key attribute '{attribute}' must not be empty.")
    if (len(text) * 4 > limit or not text.isascii()) and text_size(text) > limit:
        raise InvalidItem(f"The key attribute '{attribute}' is longer than {limit} bytes.")
    return text


def key_parts(schema: Schema, key: KeyLike) -> tuple[str, str | None]:
    """The logical (partition, sort) values of ``key``, checked."""
    if isinstance(key, Mapping):
        if schema.pk not in key:
            raise InvalidItem(f"The key has no '{schema.pk}' attribute.")
        pk = key[schema.pk]
        if schema.sk is None:
            return check_key_value(schema.pk, pk, MAX_PK_BYTES), None
        if schema.sk not in key:
            raise InvalidItem(f"The key has no '{schema.sk}' attribute.")
        sk = key[schema.sk]
    elif isinstance(key, tuple):
        if len(key) != (2 if schema.sk else 1):
            raise InvalidItem(
                f"A key of table '{schema.table}' is ({schema.pk}"
                + (f", {schema.sk})" if schema.sk else ",)")
            )
        pk = key[0]
        sk = key[1] if schema.sk else None
    elif isinstance(key, str) and schema.sk is None:
        pk, sk = key, None
    else:
        raise InvalidItem(
            f"A key is a mapping with '{schema.pk}'"
            + (f" and '{schema.sk}'" if schema.sk else "")
            + " or a tuple."
        )
    pk = check_key_value(schema.pk, pk, MAX_PK_BYTES)
    if schema.sk is None:
        return pk, None
    return pk, check_key_value(schema.sk, sk, MAX_SK_BYTES)


def validate_tenant_id(tenant_id: Any) -> str:
    """A tenant id that is safe inside a key: a non-empty printable string without
    ``#``, at most 256 characters (TenantMiddleware's default rule is stricter)."""
    if (
        type(tenant_id) is not str
        or not 0 < len(tenant_id) <= _MAX_TENANT_ID
        or "#" in tenant_id
        or not tenant_id.isprintable()
    ):
        raise InvalidTenant("The tenant id is malformed.")
    return tenant_id


class Scope(Protocol):
    """How one view of the table maps handler values to stored values and back."""

    schema: Schema
    #: Names the cursor binding (the tenant id, or a marker for unscoped access).
    binding: str

    def partition(self, logical: Any, attribute: str) -> str: ...

    def key(self, key: KeyLike) -> tuple[dict[str, Any], tuple[str, str | None]]: ...

    def stored(self, item: Mapping[str, Any]) -> dict[str, Any]:
        """The item as stored: encoded, prefixed, stamped."""
        ...

    def stored_sized(self, item: Mapping[str, Any]) -> tuple[dict[str, Any], int]:
        """:meth:`stored` and the item's size, in one walk."""
        ...

    def visible(self, raw: Mapping[str, Any]) -> dict[str, Any] | None: ...

    def owns(self, last_key: Mapping[str, Any]) -> bool: ...

    def stamp(self) -> tuple[str, dict[str, Any]] | None: ...


class TenantScope:
    """Everything a tenant's handler reads and writes, prefixed and checked."""

    __slots__ = (
        "_keys",
        "_pk_limit",
        "_prefix_len",
        "_prefixed",
        "_stamp_size",
        "_tenant_attribute",
        "_tenant_av",
        "binding",
        "prefix",
        "schema",
        "tenant_id",
    )

    def __init__(self, schema: Schema, tenant_id: str) -> None:
        self.schema = schema
        self.tenant_id = validate_tenant_id(tenant_id)
        self.prefix = tenant_id + "#"
        self._prefix_len = len(self.prefix)
        self._tenant_av: dict[str, Any] = {"S": tenant_id}
        self._stamp_size = text_size(schema.tenant_attribute) + text_size(tenant_id)
        self._tenant_attribute = schema.tenant_attribute
        self._keys = schema.key_attributes
        self._prefixed = schema.prefixed
        # a prefixed key's logical value: the prefix takes its share of the byte limit
        self._pk_limit = MAX_PK_BYTES - text_size(self.prefix)
        self.binding = "t:" + tenant_id

    def partition(self, logical: Any, attribute: str) -> str:
        value = check_key_value(attribute, logical, self._pk_limit)
        return self.prefix + value

    def key(self, key: KeyLike) -> tuple[dict[str, Any], tuple[str, str | None]]:
        schema = self.schema
        pk, sk = key_parts(schema, key)
        physical: dict[str, Any] = {schema.pk: {"S": self.partition(pk, schema.pk)}}
        if sk is not None and schema.sk is not None:
            physical[schema.sk] = {"S": sk}
        return physical, (pk, sk)

    def stored(self, item: Mapping[str, Any]) -> dict[str, Any]:
        return self.stored_sized(item)[0]

    def stored_sized(self, item: Mapping[str, Any]) -> tuple[dict[str, Any], int]:
        # The hot path of every put: one walk that checks, encodes and sizes. Each name
        # is looked up once in the schema's table of checked names (its size, or a key
        # code); strings and ints (most values) are encoded inline.
        names = self.schema.names
        encoded: dict[str, Any] = {}
        size = self._stamp_size
        for name, value in item.items():
            if type(name) is not str:  # refused (a str subclass too, as everywhere)
                self.schema.learn(name)
            try:
                rule = names[name]
            except KeyError:
                rule = self.schema.learn(name)
            kind = type(value)
            if rule < 0:  # a key attribute
                if kind is not str or not 0 < len(value) <= _SHORT_KEY:
                    # a short non-empty str is valid at any limit: no call for it
                    value = check_key_value(
                        name, value, self._pk_limit if rule == PREFIXED_KEY else MAX_SK_BYTES
                    )
                if rule == PREFIXED_KEY:
                    value = self.prefix + value
                encoded[name] = {"S": value}
                size += len(name) + (len(value) if value.isascii() else utf8_size(value))
                continue
            size += rule
            if kind is str:
                encoded[name] = {"S": value}
                size += len(value) if value.isascii() else utf8_size(value)
            elif kind is int:
                number = str(value)
                encoded[name] = {"N": number}
                digits = len(number)
                if value > 0 and value % 10 and digits < 39:
                    # positive, at most 38 digits (MAX_DIGITS), no trailing zero: every
                    # digit is significant, in ceil(n / 2) pairs from the units, plus one
                    size += (digits + 3) >> 1
                else:  # negative, zero, trailing zeros or long: checked, exact rule
                    if digits > 38:
                        int_text(value)  # refuses what DynamoDB cannot store
                    size += number_size(number)
            else:
                encoded[name], value_size = encode_sized(value)
                size += value_size
        encoded[self._tenant_attribute] = self._tenant_av
        return encoded, size

    def visible(self, raw: Mapping[str, Any]) -> dict[str, Any] | None:
        schema = self.schema
        owner = raw.get(schema.tenant_attribute)
        if owner is None or owner.get("S") != self.tenant_id:
            log.warning(
                "item %s in table %r is not tenant %r's (tenant attribute %r): not found",
                raw.get(schema.pk, {}).get("S"),
                schema.table,
                self.tenant_id,
                owner,
            )
            return None
        prefix = self.prefix
        cut = self._prefix_len
        prefixed = schema.prefixed
        tenant_attribute = schema.tenant_attribute
        item: dict[str, Any] = {}
        for name, value in raw.items():
            if name in prefixed:
                text = value.get("S")
                if text is not None and text.startswith(prefix):
                    item[name] = text[cut:]
                    continue
            elif name == tenant_attribute:
                continue
            item[name] = decode_value(value)
        return item

    def owns(self, last_key: Mapping[str, Any]) -> bool:
        prefix = self.prefix
        for name in self.schema.prefixed:
            value = last_key.get(name)
            if value is not None and not str(value.get("S", "")).startswith(prefix):
                return False
        return True

    def stamp(self) -> tuple[str, dict[str, Any]] | None:
        return self.schema.tenant_attribute, self._tenant_av


class UnscopedScope:
    """No prefix, no tenant attribute, no checks: the table as it is stored."""

    __slots__ = ("binding", "schema")

    def __init__(self, schema: Schema) -> None:
        self.schema = schema
        self.binding = "unscoped"

    def partition(self, logical: Any, attribute: str) -> str:
        return check_key_value(attribute, logical, MAX_PK_BYTES)

    def key(self, key: KeyLike) -> tuple[dict[str, Any], tuple[str, str | None]]:
        schema = self.schema
        pk, sk = key_parts(schema, key)
        physical: dict[str, Any] = {schema.pk: {"S": pk}}
        if sk is not None and schema.sk is not None:
            physical[schema.sk] = {"S": sk}
        return physical, (pk, sk)

    def stored(self, item: Mapping[str, Any]) -> dict[str, Any]:
        return self.stored_sized(item)[0]

    def stored_sized(self, item: Mapping[str, Any]) -> tuple[dict[str, Any], int]:
        keys = self.schema.key_attributes
        encoded: dict[str, Any] = {}
        size = 0
        for name, value in item.items():
            if name in keys:
                limit = MAX_PK_BYTES if name in self.schema.prefixed else MAX_SK_BYTES
                text = check_key_value(name, value, limit)
                encoded[name] = {"S": text}
                size += text_size(name) + text_size(text)
            else:
                size += name_size(name)  # checked before its value is walked
                encoded[name], value_size = encode_sized(value)
                size += value_size
        return encoded, size

    def visible(self, raw: Mapping[str, Any]) -> dict[str, Any] | None:
        return decode_item(raw)

    def owns(self, last_key: Mapping[str, Any]) -> bool:
        return True

    def stamp(self) -> tuple[str, dict[str, Any]] | None:
        return None
