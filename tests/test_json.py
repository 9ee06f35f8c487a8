"""Strict JSON (lift_asgi._json): what json.dumps writes as not-JSON or raises on is
repaired, and what it handles is left exactly as json.dumps writes it."""

from __future__ import annotations

import json
from typing import Any

import pytest

from lift_asgi._json import encodable, strict_encoder


def _refuse(constant: str) -> Any:
    raise AssertionError(f"{constant} is not JSON")


@pytest.mark.parametrize(
    "value",
    [{"a": [1, 2.5, None, True], "b": {"c": "é"}}, [], "x", 1, {1: "int key", None: 0}],
)
@pytest.mark.parametrize("ascii_only", [True, False])
def test_what_json_handles_is_written_as_json_dumps_writes_it(value: Any, ascii_only: bool) -> None:
    expected = json.dumps(value, separators=(",", ":"), ensure_ascii=ascii_only)
    assert strict_encoder(ensure_ascii=ascii_only)(value) == expected


def test_non_finite_floats_and_odd_keys_become_strings_nested_too() -> None:
    value = {"n": float("nan"), "deep": [{"inf": float("inf")}, (float("-inf"),)], (1, 2): 3}
    text = strict_encoder()(value)
    assert json.loads(text, parse_constant=_refuse) == {
        "n": "NaN",
        "deep": [{"inf": "Infinity"}, ["-Infinity"]],
        "(1, 2)": 3,
    }


def test_default_renders_other_objects_and_without_it_they_still_raise() -> None:
    assert strict_encoder(default=str)({"at": object}) == '{"at":"<class \'object\'>"}'
    with pytest.raises(TypeError):
        strict_encoder()({"at": object})


def test_unpaired_surrogates_become_the_replacement_character_pairs_stay() -> None:
    text = strict_encoder(ensure_ascii=False)(["\ud800", "\U0001f600", "\udfff!"])
    assert text == '["\ufffd","\U0001f600","\ufffd!"]'
    text.encode()  # UTF-8 can encode it
    assert encodable("plain é") == "plain é"
