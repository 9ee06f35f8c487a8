"""Configuration errors that surface when the server starts, not as a 500 on every request.

A middleware checks its options in ``__init__`` and raises
:class:`~lift_asgi.errors.ConfigurationError`. Written directly
(``TenantMiddleware(app, ...)``) that error reaches the user at once, on the line they
wrote. But ``app.add_middleware(TenantMiddleware, ...)`` (and ``middleware=[...]``) only
records the class: Starlette builds the stack lazily, inside the first ASGI call it
gets, which under uvicorn is the lifespan's. There the error is lost:

- uvicorn's default ``--lifespan auto`` reads an exception raised by the lifespan call
  as "this app does not support lifespan", logs it at a level nobody reads, and starts
  serving;
- every request then rebuilds the stack, raises again, and is a plain-text 500.

So a middleware whose class uses the :class:`LoudStartup` metaclass is built as usual,
except when its constructor raises a ``ConfigurationError`` *while a Starlette app is
building its stack from inside its own* ``__call__`` (see :func:`building_lazily`).
Then construction returns a :class:`StartupFailure` in its place, which

- answers the lifespan's ``lifespan.startup`` with ``lifespan.startup.failed`` and the
  error's message (:func:`lift_asgi.stages.fail_startup`): uvicorn prints it and exits
  non-zero, whatever its ``--lifespan`` mode;
- answers any HTTP request with a 500 problem+json (the message is logged, never sent)
  and closes any WebSocket with 1011, for servers that run no lifespan.

Built anywhere else (directly, by ``lift_asgi.aws.handler``, which builds a Starlette
stack eagerly, by an installer) the error is raised, unchanged.
"""

from __future__ import annotations

import logging
import sys
from types import FrameType
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from lift_asgi.errors import ConfigurationError, LiftError, send_problem
from lift_asgi.stages import fail_startup

__all__ = ["LoudStartup", "StartupFailure", "build_stack", "building_lazily"]

logger = logging.getLogger("lift_asgi.startup")

_MISCONFIGURED = LiftError("The server is misconfigured; its log says how.")


class StartupFailure:
    """Stands in for a middleware whose options were refused while Starlette built its
    stack lazily: fails the lifespan startup with the error, 500s every request."""

    def __init__(self, app: ASGIApp, error: ConfigurationError, middleware: str) -> None:
        self.app = app
        self.error = error
        self.middleware = middleware

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await fail_startup(receive, send, self.error)
            return
        logger.error(
            "%s refused its configuration (the server should not have started): %s",
            self.middleware,
            self.error,
        )
        if kind == "http":
            await send_problem(send, _MISCONFIGURED)
        elif kind == "websocket":
            message = await receive()
            if message["type"] == "websocket.connect":
                await send({"type": "websocket.close", "code": 1011})
        else:  # an extension's scope type: nothing sensible to answer
            raise self.error


class LoudStartup(type):
    """Metaclass of the suite's middlewares: see the module docstring.

    ``class TenantMiddleware(metaclass=LoudStartup)``; nothing else changes. A
    successful construction costs one ``try``; the stack is only inspected once a
    ``ConfigurationError`` was raised.
    """

    def __call__(cls, app: ASGIApp, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().__call__(app, *args, **kwargs)
        except ConfigurationError as error:
            if not building_lazily():
                raise
            logger.error("%s refused its configuration: %s", cls.__name__, error)
            return StartupFailure(app, error, cls.__name__)


def building_lazily() -> bool:
    """Whether the caller runs inside a Starlette app's ``build_middleware_stack`` that
    was called from that app's own ``__call__`` (the lazy build of the first ASGI call).

    Read from the frames, not from a flag Starlette would have to set: any Starlette
    subclass (FastAPI overrides ``build_middleware_stack``), any version that builds
    lazily. An eager build (``lift_asgi.aws.handler``, :func:`build_stack`, a test that
    calls it) has no ``__call__`` of the same app above it, so it raises.
    """
    applications = sys.modules.get("starlette.applications")
    if applications is None:
        return False
    starlette_type = applications.Starlette
    frame: FrameType | None = sys._getframe(1)
    builder: object = None
    while frame is not None:
        name = frame.f_code.co_name
        owner = frame.f_locals.get("self")
        if builder is None:
            if name == "build_middleware_stack" and isinstance(owner, starlette_type):
                builder = owner
        elif name == "__call__" and owner is builder:
            return True
        frame = frame.f_back
    return False


def build_stack(app: Any) -> None:
    """Build every not-yet-built Starlette stack in ``app`` and the apps it wraps, now.

    For hosts without a lifespan to fail (Lambda): a configuration error is raised here,
    where the handler is created, instead of on the first event.
    """
    applications = sys.modules.get("starlette.applications")
    if applications is None:
        return
    seen: set[int] = set()
    while app is not None and id(app) not in seen:
        seen.add(id(app))
        if isinstance(app, applications.Starlette) and app.middleware_stack is None:
            app.middleware_stack = app.build_middleware_stack()
        app = getattr(app, "app", None)
