"""How a stage calls the app inside it.

``await self.app(scope, receive, send)``, where the app is an object (the next stage,
Starlette's ``ExceptionMiddleware``), enters the object's ``async def __call__`` from C:
the interpreter goes through the type's call slot, which looks the method up and starts
a new evaluation loop for it. Calling the same ``__call__`` as a bound method from
Python is a plain Python-to-Python call, which CPython runs in the caller's loop.
Counted with ``bench/instructions.py`` on CPython 3.11: about 500 to 650 machine
instructions fewer per hop (three stages installed, three hops: 56,545 to 55,043 over
bare FastAPI; the full stack, five hops: 81,174 to 77,997).

:class:`Chained` is the base of the suite's middlewares: ``app`` stays an attribute
users and the installer may read and set, and setting it also sets ``_next``, the same
app as the stages call it.
"""

from __future__ import annotations

from types import FunctionType, MethodType

from starlette.types import ASGIApp

__all__ = ["Chained", "direct"]


def direct(app: ASGIApp) -> ASGIApp:
    """``app`` as a stage calls it: when its class defines ``__call__`` as a Python
    function, that function bound to ``app`` (what ``app(...)`` would run, looked up on
    the class as Python looks special methods up, so an instance attribute named
    ``__call__`` is ignored as it is by ``app(...)``); otherwise ``app`` itself (a
    function, ``functools.partial``, a ``__call__`` written in C).

    Looked up once, when the app is set: a class whose ``__call__`` is replaced later
    (patched in place after the stack was built) is still called through the old one.
    Instrumentation that patches classes does so before the app serves, when Starlette
    has not built its stack yet.
    """
    for klass in type(app).__mro__:
        method = klass.__dict__.get("__call__")
        if method is not None:
            if type(method) is FunctionType:
                return MethodType(method, app)
            return app
    return app


class Chained:
    """A middleware's ``app`` (the app it wraps) and ``_next`` (that app as it is
    called on the request path: see :func:`direct`)."""

    __slots__ = ("_app", "_next")

    _next: ASGIApp

    @property
    def app(self) -> ASGIApp:
        """The app this middleware calls; setting it re-points the calls."""
        return self._app

    @app.setter
    def app(self, app: ASGIApp) -> None:
        self._app = app
        self._next = direct(app)
