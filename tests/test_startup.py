"""Every stage's configuration mistakes are loud when the server starts.

``app.add_middleware(...)`` only records a class: Starlette builds the stack inside its
first ASGI call, which under uvicorn is the lifespan's, and uvicorn's default
``--lifespan auto`` used to read the error as "lifespan unsupported", start, and answer
every request with a plain-text 500. Each stage now fails the startup with its message.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.types import Message

from lift_asgi.dynamo import UnitOfWorkMiddleware
from lift_asgi.errors import ConfigurationError
from lift_asgi.idempotency import IdempotencyMiddleware
from lift_asgi.observe import RequestObserver
from lift_asgi.ratelimit import RateLimitMiddleware

# (middleware, options, the message uvicorn must print)
MISTAKES: list[tuple[type[Any], dict[str, Any], str]] = [
    (RateLimitMiddleware, {"limit": "10/minit"}, "ConfigurationError: limit:"),
    (UnitOfWorkMiddleware, {"table": ""}, "ConfigurationError: table:"),
    (IdempotencyMiddleware, {"header": ""}, "ConfigurationError: header:"),
    (RequestObserver, {"header": "not a header name"}, "ConfigurationError: header:"),
]
IDS = [cls.__name__ for cls, _, _ in MISTAKES]


@pytest.mark.parametrize(("cls", "options", "message"), MISTAKES, ids=IDS)
def test_direct_construction_raises_where_it_was_written(
    cls: type[Any], options: dict[str, Any], message: str
) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:  # pragma: no cover
        pass

    with pytest.raises(ConfigurationError) as raised:
        cls(app, **options)
    assert f"{type(raised.value).__name__}: {raised.value}".startswith(message)


@pytest.mark.parametrize(("cls", "options", "message"), MISTAKES, ids=IDS)
async def test_a_lazily_built_stack_fails_the_lifespan_startup(
    cls: type[Any], options: dict[str, Any], message: str
) -> None:
    app = Starlette()
    app.add_middleware(cls, **options)
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "lifespan.startup"}

    async def send(message: Message) -> None:
        sent.append(message)

    await app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, receive, send)
    assert sent[0]["type"] == "lifespan.startup.failed"
    assert sent[0]["message"].startswith(message)


_APP = """
from fastapi import FastAPI
from lift_asgi.ratelimit import RateLimitMiddleware

app = FastAPI()
app.add_middleware(RateLimitMiddleware, limit="10/minit")
"""


def test_uvicorn_with_its_defaults_prints_the_rate_limit_mistake_and_exits(
    tmp_path: Path,
) -> None:
    """The issue's own case: a typo in a limit under ``uvicorn module:app``."""
    (tmp_path / "typo_app.py").write_text(_APP)
    server = subprocess.run(
        [sys.executable, "-m", "uvicorn", "typo_app:app", "--port", "0"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert server.returncode != 0
    assert "ConfigurationError: limit:" in server.stderr
    assert "Application startup failed" in server.stderr
