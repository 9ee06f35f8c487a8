"""The exception handlers an app registers: the app's own errors as problem+json, and
FastAPI's 422 rendered so that it cannot fail."""

from __future__ import annotations

import copy
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Query
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.routing import Route
from starlette.types import ASGIApp

from lift_asgi._late_keys import LateKeysDict
from lift_asgi.errors import Conflict
from lift_asgi.exception_handlers import PROBLEM_HANDLERS, validation_exception_handler
from tests.test_errors import _strict_json


async def _boom(request: Request) -> None:
    raise Conflict("taken")


async def _http(request: Request) -> None:
    raise HTTPException(418, "short and stout")


async def test_starlette_errors_and_unknown_routes_are_problems() -> None:
    app = Starlette(
        routes=[Route("/boom", _boom), Route("/teapot", _http)],
        exception_handlers=PROBLEM_HANDLERS,
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        for path, method, status in [
            ("/boom", "GET", 409),
            ("/teapot", "GET", 418),
            ("/nowhere", "GET", 404),
            ("/boom", "DELETE", 405),
        ]:
            answer = await client.request(method, path)
            assert answer.status_code == status
            assert answer.headers["content-type"] == "application/problem+json"
            assert answer.json()["status"] == status
        assert (await client.get("/teapot")).json()["detail"] == "short and stout"


async def _crash(request: Request) -> None:
    raise RuntimeError("secret internals: db password hunter2")


@pytest.mark.parametrize("framework", ["starlette", "fastapi"])
async def test_an_exception_nothing_handled_is_a_500_problem_and_still_raised(
    framework: str,
) -> None:
    # without the observer stage it was Starlette's text/plain "Internal Server Error"
    if framework == "fastapi":
        app: Any = FastAPI(exception_handlers=PROBLEM_HANDLERS)
        app.add_api_route("/crash", _crash)
    else:
        app = Starlette(routes=[Route("/crash", _crash)], exception_handlers=PROBLEM_HANDLERS)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        answer = await client.get("/crash")
    assert answer.status_code == 500
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["status"] == 500
    assert "hunter2" not in answer.text and "RuntimeError" not in answer.text
    raising = httpx.ASGITransport(app=app)  # the server still sees (and logs) it
    async with httpx.AsyncClient(transport=raising, base_url="http://t") as client:
        with pytest.raises(RuntimeError, match="hunter2"):
            await client.get("/crash")


# -- FastAPI's 422, rendered whatever the input ---------------------------------------------


class Project(BaseModel):
    name: str = Field(min_length=1, max_length=1)


def _fastapi_app() -> ASGIApp:
    app = FastAPI(exception_handlers=PROBLEM_HANDLERS)

    @app.post("/projects", status_code=201)
    async def create(project: Project) -> dict[str, str]:
        return {"name": project.name}

    return app


@pytest.mark.parametrize(
    ("raw", "echoed"),
    [
        (b'{"name": "\\ud800x"}', "\ufffdx"),  # a lone surrogate: valid JSON, not UTF-8
        (b'{"name": "\\udfff\\ud83d\\ude00"}', "\ufffd\U0001f600"),  # a pair stays one
        (b'{"name": "ab"}', "ab"),
    ],
)
async def test_validation_errors_keep_fastapis_422_whatever_the_input(
    raw: bytes, echoed: str
) -> None:
    transport = httpx.ASGITransport(app=_fastapi_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        answer = await client.post(
            "/projects", content=raw, headers={"content-type": "application/json"}
        )
    assert answer.status_code == 422
    assert answer.headers["content-type"] == "application/json"
    (error,) = answer.json()["detail"]
    assert error["loc"] == ["body", "name"]
    assert error["type"] in {"string_unicode", "string_too_long"}
    assert error["input"] == echoed


@pytest.mark.parametrize(
    ("raw", "reason", "position"),
    [
        (b'{"name": "\xe9"}', "Invalid UTF-8", 10),  # Latin-1, not UTF-8
        (b"[" * 200_000, "Nested too deeply", 0),  # past the parser's recursion limit
        (b'{"name": "n", "version": ' + b"9" * 5000 + b"}", "Number too long", 0),
        (b'{"name": ', "Expecting value", 9),  # FastAPI's own 422, the one matched
    ],
)
async def test_a_json_body_the_parser_refuses_is_fastapis_422_not_a_bare_400(
    raw: bytes, reason: str, position: int
) -> None:
    # FastAPI gives JSONDecodeError a 422 json_invalid and any other refusal a 400
    # "There was an error parsing the body": one answer for every unreadable body
    app = FastAPI(exception_handlers=PROBLEM_HANDLERS)

    @app.post("/projects", status_code=201)
    async def create(project: Versioned) -> dict[str, str]:
        return {"name": project.name}

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        answer = await client.post(
            "/projects", content=raw, headers={"content-type": "application/json"}
        )
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"] == "application/json"
    (error,) = answer.json()["detail"]
    assert error["type"] == "json_invalid" and error["msg"] == "JSON decode error"
    assert error["loc"] == ["body", position]
    assert error["ctx"] == {"error": reason}


async def test_other_400s_of_fastapi_stay_problems() -> None:
    app = FastAPI(exception_handlers=PROBLEM_HANDLERS)

    @app.get("/bad")
    async def bad() -> None:
        raise HTTPException(400, "There was an error parsing the body")  # no cause

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        answer = await client.get("/bad")
    assert answer.status_code == 400
    assert answer.headers["content-type"] == "application/problem+json"


class Versioned(BaseModel):
    name: str = Field(min_length=1, max_length=1)
    version: int = 1


@pytest.mark.parametrize(
    ("raw", "loc", "echoed"),
    [
        (b'{"name": NaN}', ["body", "name"], "NaN"),
        (b'{"name": Infinity}', ["body", "name"], "Infinity"),
        (b'{"name": -Infinity}', ["body", "name"], "-Infinity"),
        (b'{"name": 1e400}', ["body", "name"], "Infinity"),  # Python parses it as inf
        (b'{"name": -1e400}', ["body", "name"], "-Infinity"),
        (b'{"name": "n", "version": NaN}', ["body", "version"], "NaN"),
        (
            b'{"name": {"deep": [NaN, {"deeper": -Infinity}, 1e400, 1.5]}}',
            ["body", "name"],
            {"deep": ["NaN", {"deeper": "-Infinity"}, "Infinity", 1.5]},
        ),
        (b"NaN", ["body"], "NaN"),  # the whole body
    ],
)
async def test_a_validation_error_echoes_nan_and_infinity_as_strings(
    raw: bytes, loc: list[str], echoed: Any
) -> None:
    # Python's JSON parser accepts NaN and Infinity, and FastAPI's 422 echoes the input:
    # strict JSON cannot carry them, so json.dumps(allow_nan=False) raised and the
    # client got a plain-text 500.
    app = FastAPI(exception_handlers=PROBLEM_HANDLERS)

    @app.post("/projects", status_code=201)
    async def create(project: Versioned) -> dict[str, str]:
        return {"name": project.name}  # pragma: no cover - never valid here

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        answer = await client.post(
            "/projects", content=raw, headers={"content-type": "application/json"}
        )
    assert answer.status_code == 422
    assert answer.headers["content-type"] == "application/json"
    errors = _strict_json(answer.content)["detail"]
    assert [error["input"] for error in errors if error["loc"] == loc] == [echoed]


def _params_app() -> ASGIApp:
    app = FastAPI(exception_handlers=PROBLEM_HANDLERS)

    @app.post("/items/{number}")
    async def create(
        number: int, project: Project, limit: int = Query(1, ge=1, le=100)
    ) -> dict[str, str]:
        return {"name": project.name}

    return app


@pytest.mark.parametrize(
    ("path", "body", "places"),
    [
        ("/items/1?limit=0", b'{"name": "a"}', {"query"}),
        ("/items/x", b'{"name": "a"}', {"path"}),
        ("/items/1?limit=%ED%A0%80", b'{"name": "a"}', {"query"}),  # not UTF-8
        ("/items/1?limit=0", b'{"name": "ab"}', {"query", "body"}),  # both: a problem
    ],
)
async def test_a_parameter_validation_error_is_a_422_problem_with_fastapis_errors(
    path: str, body: bytes, places: set[str]
) -> None:
    transport = httpx.ASGITransport(app=_params_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        answer = await client.post(path, content=body, headers={"content-type": "application/json"})
    assert answer.status_code == 422
    assert answer.headers["content-type"] == "application/problem+json"
    document = _strict_json(answer.content)
    assert document["status"] == 422
    assert document["type"] == "urn:lift-asgi:problem:invalid-parameters"
    assert {error["loc"][0] for error in document["errors"]} == places
    for error in document["errors"]:
        assert {"loc", "msg", "type"} <= error.keys()
    assert "query" in document["detail"] or "path" in document["detail"]


async def test_a_body_only_validation_error_keeps_fastapis_shape() -> None:
    transport = httpx.ASGITransport(app=_params_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        answer = await client.post(
            "/items/1?limit=5",
            content=b'{"name": "ab"}',
            headers={"content-type": "application/json"},
        )
    assert answer.status_code == 422
    assert answer.headers["content-type"] == "application/json"
    assert [error["loc"] for error in answer.json()["detail"]] == [["body", "name"]]


def test_problem_handlers_name_fastapis_validation_error_once_fastapi_is_loaded() -> None:
    assert RequestValidationError in PROBLEM_HANDLERS
    assert dict(PROBLEM_HANDLERS)[RequestValidationError] is validation_exception_handler
    assert {**PROBLEM_HANDLERS}.keys() == dict(PROBLEM_HANDLERS).keys()
    assert len(PROBLEM_HANDLERS) == 4  # LiftError, HTTPException, Exception, the 422


def test_late_keys_appear_when_supplied_and_the_dicts_own_items_win() -> None:
    late: dict[str, str] = {}
    handlers = LateKeysDict({"own": "mine", "both": "mine"}, late=lambda: late)
    assert dict(handlers) == {"own": "mine", "both": "mine"} and "later" not in handlers
    late.update(later="theirs", both="theirs")
    assert dict(handlers) == {"own": "mine", "both": "mine", "later": "theirs"}
    assert {**handlers} == dict(handlers) == handlers.copy()
    assert len(handlers) == 3 and handlers["later"] == "theirs"
    assert handlers.get("later") == "theirs" and handlers.get("absent", 0) == 0
    with pytest.raises(KeyError):
        handlers["absent"]
    assert dict(copy.copy(handlers)) == dict(handlers)  # a copy keeps reading late keys
    late["after the copy"] = "theirs"
    assert "after the copy" in copy.copy(handlers)
