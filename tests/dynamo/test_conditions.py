"""The condition / filter / sort-key builder renders placeholders only."""

from __future__ import annotations

from typing import Any

import pytest

from lift_asgi.dynamo import SK, Attr, Condition
from lift_asgi.dynamo.conditions import Expression
from lift_asgi.errors import InvalidItem


def render(condition: Condition) -> tuple[str, dict[str, str], dict[str, object]]:
    expr = Expression()
    text = condition.render(expr)
    return text, expr.names, expr.values


def test_comparison_uses_placeholders_for_names_and_values() -> None:
    text, names, values = render(Attr("status").eq("open"))
    assert text == "#l0 = :l0"
    assert names == {"#l0": "status"}
    assert values == {":l0": {"S": "open"}}


def test_reserved_words_and_injection_attempts_stay_data() -> None:
    text, names, values = render(Attr("size").eq("x) OR (a = b"))
    assert "size" not in text and "OR" not in text
    assert names == {"#l0": "size"}
    assert values == {":l0": {"S": "x) OR (a = b"}}


def test_combinators_and_functions() -> None:
    condition = (Attr("a").exists() & Attr("b").lt(3)) | ~Attr("c").begins_with("x")
    text, names, values = render(condition)
    assert text == "((attribute_exists(#l0)) AND (#l1 < :l0)) OR (NOT (begins_with(#l2, :l1)))"
    assert names == {"#l0": "a", "#l1": "b", "#l2": "c"}
    assert values == {":l0": {"N": "3"}, ":l1": {"S": "x"}}


def test_nested_paths_sizes_in_between_and_types() -> None:
    assert render(Attr("address", "city").eq("x"))[0] == "#l0.#l1 = :l0"
    assert render(Attr("tags", 0).eq("x"))[0] == "#l0[0] = :l0"
    assert render(Attr("tags").size().gt(2))[0] == "size(#l0) > :l0"
    assert render(Attr("n").between(1, 5))[0] == "#l0 BETWEEN :l0 AND :l1"
    assert render(Attr("s").is_in("a", "b"))[0] == "#l0 IN (:l0, :l1)"
    assert render(Attr("s").is_type("S"))[0] == "attribute_type(#l0, :l0)"
    assert render(Attr("s").not_exists())[0] == "attribute_not_exists(#l0)"
    assert render(Attr("s").contains("x"))[0] == "contains(#l0, :l0)"
    assert render(Attr("s").ne(1))[0] == "#l0 <> :l0"


def test_same_name_shares_one_placeholder() -> None:
    _, names, _ = render(Attr("a").gt(1) & Attr("a").lt(5))
    assert names == {"#l0": "a"}


def test_raw_expressions_bring_their_own_placeholders() -> None:
    raw = Condition.raw("#st = :st", names={"#st": "status"}, values={":st": "done"})
    text, names, values = render(raw & Attr("x").exists())
    assert text == "(#st = :st) AND (attribute_exists(#l0))"
    assert names == {"#st": "status", "#l0": "x"}
    assert values == {":st": {"S": "done"}}


@pytest.mark.parametrize(
    ("expression", "names", "values"),
    [
        ("#l0 = :v", {"#l0": "a"}, {":v": 1}),  # clashes with the builder's own
        ("#a = :missing", {"#a": "a"}, {}),
        ("", {}, {}),
        ("#a = :v", {"a": "a"}, {":v": 1}),
    ],
)
def test_raw_refuses_bad_placeholders(
    expression: str, names: dict[str, str], values: dict[str, object]
) -> None:
    with pytest.raises(ValueError):
        Condition.raw(expression, names=names, values=values)


def test_conditions_are_not_booleans() -> None:
    with pytest.raises(TypeError):
        bool(Attr("a").eq(1))


def test_builder_refuses_bad_input() -> None:
    with pytest.raises(ValueError):
        Attr("")
    with pytest.raises(ValueError):
        Attr("a").is_in()
    with pytest.raises(ValueError):
        Attr("a").is_type("X")
    with pytest.raises(TypeError):
        SK.eq(3)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "build",
    [
        lambda: SK.eq(""),
        lambda: SK.gt(""),
        lambda: SK.lte(""),
        lambda: SK.begins_with(""),
        lambda: SK.between("", "z"),
        lambda: SK.between("b", "a"),
        lambda: SK.gte("x" * 1025),
        lambda: SK.lt("\ud800"),
    ],
    ids=[
        "eq empty",
        "gt empty",
        "lte empty",
        "prefix empty",
        "from empty",
        "reversed",
        "too long",
        "lone surrogate",
    ],
)
def test_a_sort_key_value_dynamodb_would_refuse_is_a_400_before_any_call(build: Any) -> None:
    # Such values come from the client (?after=, ?from=&to=): DynamoDB's ValidationException
    # would be a 500, as get()'s keys are checked a 400.
    with pytest.raises(InvalidItem) as caught:
        build()
    assert caught.value.status == 400


def test_a_sort_key_range_may_be_one_value_and_a_value_may_fill_the_limit() -> None:
    assert SK.between("a", "a").values == ("a", "a")
    assert SK.gte("é" * 512).values == ("é" * 512,)  # 1024 UTF-8 bytes


@pytest.mark.parametrize(
    ("condition", "text"),
    [
        (SK.eq("a"), "#l0 = :l0"),
        (SK.lt("a"), "#l0 < :l0"),
        (SK.lte("a"), "#l0 <= :l0"),
        (SK.gt("a"), "#l0 > :l0"),
        (SK.gte("a"), "#l0 >= :l0"),
        (SK.between("a", "b"), "#l0 BETWEEN :l0 AND :l1"),
        (SK.begins_with("a"), "begins_with(#l0, :l0)"),
    ],
)
def test_sort_key_conditions(condition: object, text: str) -> None:
    expr = Expression()
    assert condition.render(expr, "sk") == text  # type: ignore[attr-defined]
    assert expr.names == {"#l0": "sk"}
