"""Composite keys (``key=(...)``): two different tuples of parts are two budgets."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from lift_asgi.ratelimit import RateLimitMiddleware, Rule

from .conftest import Clock, client_for


async def _ok(request: Any) -> JSONResponse:
    return JSONResponse({"ok": True})


def _part(scope: Any) -> str:
    return dict(scope["headers"])[b"x-part"].decode()


@pytest.mark.parametrize(
    "key",
    [(_part, "global"), ("global", _part), (_part, "global", "method")],
    ids=["first", "second", "three parts"],
)
async def test_a_literal_escape_and_a_bar_in_a_key_part_are_two_budgets(
    key: tuple[Any, ...], clock: Clock
) -> None:
    limiter = RateLimitMiddleware(
        Starlette(routes=[Route("/a", _ok)]),
        rules=[Rule("1/minute", key=key)],
        clock=clock,
    )
    parts = ["a|", "a%7C", "a%257C", "a%", "a%25"]
    async with client_for(limiter) as http:
        first = [(await http.get("/a", headers={"x-part": p})).status_code for p in parts]
        again = [(await http.get("/a", headers={"x-part": p})).status_code for p in parts]
    assert first == [200] * len(parts)  # five clients, five budgets
    assert again == [429] * len(parts)
