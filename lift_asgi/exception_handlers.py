"""The exception handlers a Starlette or FastAPI app registers: ``PROBLEM_HANDLERS``.

``app = FastAPI(exception_handlers=PROBLEM_HANDLERS)`` gives the app's own errors the
suite's problem+json shape (rendered by :mod:`lift_asgi.errors`): a raised
:class:`~lift_asgi.errors.LiftError`, Starlette's ``HTTPException`` (an unknown route's
404, a 405), an exception nothing handled (a 500 with no internals), and FastAPI's
request validation errors, whose echo of the input is repaired so that it cannot fail.
FastAPI is never imported here: its 422 handler is a late key of the dict.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import Response

from lift_asgi._body_parse import json_invalid
from lift_asgi._json import strict_encoder
from lift_asgi._late_keys import LateKeysDict
from lift_asgi.errors import HTTPProblem, InvalidParameters, LiftError, problem_response

__all__ = [
    "PROBLEM_HANDLERS",
    "internal_error_handler",
    "problem_exception_handler",
    "validation_exception_handler",
]

_echo_json = strict_encoder(ensure_ascii=False)


async def problem_exception_handler(request: Request, exc: Exception) -> Response:
    """Answer a :class:`LiftError` or Starlette's ``HTTPException`` as problem+json.

    Register it for both (or pass :data:`PROBLEM_HANDLERS` as the app's
    ``exception_handlers``) so that every error the app itself produces, an unknown
    route's 404 and a 405 included, has the suite's shape::

        app = FastAPI(exception_handlers=PROBLEM_HANDLERS)

    FastAPI's request validation errors (422) keep FastAPI's own shape (see
    :func:`validation_exception_handler`), and so does a JSON body FastAPI's parser
    refused without a ``JSONDecodeError`` (see :mod:`lift_asgi._body_parse`).
    """
    if isinstance(exc, LiftError):
        return problem_response(exc)
    if isinstance(exc, StarletteHTTPException):
        unreadable = json_invalid(exc)
        if unreadable is not None:  # FastAPI's 400 for a refused JSON body: its 422
            body = json.dumps({"detail": unreadable}).encode()
            return Response(content=body, status_code=422, media_type="application/json")
        detail = exc.detail if isinstance(exc.detail, str) else None
        return problem_response(HTTPProblem(exc.status_code, detail, headers=exc.headers))
    raise exc  # pragma: no cover - registered only for the two types above


async def validation_exception_handler(request: Request, exc: Exception) -> Response:
    """FastAPI's ``RequestValidationError``, rendered so that it cannot fail.

    Errors in the body keep FastAPI's 422 and its shape (``{"detail": [...]}``), which
    clients and generated SDKs read. Any other (a query parameter, a path parameter, a
    header or a cookie, alone or besides body errors) is a 422 problem+json like every
    other error of the suite, :class:`InvalidParameters`, whose ``errors`` member is the
    same list.

    FastAPI's handler echoes the offending input, and two kinds of input broke its
    response, so the client got a plain-text 500 (and the server's log the error):

    - a JSON string holding a lone surrogate (``"\\ud800x"``, valid JSON) cannot be
      encoded as UTF-8: here such characters become U+FFFD in the echo;
    - Python's JSON parser accepts ``NaN``, ``Infinity`` and ``-Infinity`` (and ``1e400``
      parses as infinity), which strict JSON cannot carry back: here they are echoed as
      the strings ``"NaN"``, ``"Infinity"`` and ``"-Infinity"``, nested ones included.
    """
    from fastapi.encoders import jsonable_encoder

    errors_of = getattr(exc, "errors", None)
    errors = jsonable_encoder((errors_of() if callable(errors_of) else None) or [])
    places = {_place(error) for error in errors}
    if places <= {"body"}:
        body = _echo_json({"detail": errors}).encode()
        return Response(content=body, status_code=422, media_type="application/json")
    named = ", ".join(sorted(places - {"body"}))
    return problem_response(
        InvalidParameters(
            f"The request's {named} parameters are not valid; see errors.",
            errors=json.loads(_echo_json(errors)),  # the echo repaired, as in the body's
        )
    )


def _place(error: Any) -> str:
    """Where FastAPI found the error (``body``, ``query``, ``path``, ``header``,
    ``cookie``), from the first element of its ``loc``."""
    loc = error.get("loc") if isinstance(error, dict) else None
    return str(loc[0]) if isinstance(loc, list | tuple) and loc else "request"


def _fastapi_handlers() -> dict[Any, Any]:
    """FastAPI's validation error, when FastAPI is in use (imported), never imported here:
    PROBLEM_HANDLERS's late keys (see lift_asgi._late_keys)."""
    exceptions = sys.modules.get("fastapi.exceptions")
    if exceptions is None:
        return {}
    return {exceptions.RequestValidationError: validation_exception_handler}


async def internal_error_handler(request: Request, exc: Exception) -> Response:
    """The 500 of an exception nothing handled, as a problem document with no internals.

    Registered under ``Exception``, it is the handler of Starlette's outermost
    ``ServerErrorMiddleware``, which answers with it (unless ``debug`` is on, or the
    response already started) and then re-raises ``exc``, so the server still logs it.
    """
    return problem_response(LiftError())


#: ``exception_handlers=`` for Starlette and FastAPI apps: problem+json for the suite's
#: errors, for Starlette's HTTPException (unknown routes, wrong methods) and for an
#: exception nothing handled (:func:`internal_error_handler`), and FastAPI's 422
#: rendered safely (:func:`validation_exception_handler`).
PROBLEM_HANDLERS: dict[Any, Any] = LateKeysDict(
    {
        LiftError: problem_exception_handler,
        StarletteHTTPException: problem_exception_handler,
        Exception: internal_error_handler,
    },
    late=_fastapi_handlers,
)
