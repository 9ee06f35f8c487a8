"""FastAPI's 400 for a JSON body its parser refused, as the 422 it gives unparseable JSON.

FastAPI answers a body that is not JSON (``json.JSONDecodeError``) with a 422
``json_invalid`` validation error, but a body the parser refuses another way with a bare
``HTTPException(400, "There was an error parsing the body")``: bytes that are not UTF-8,
arrays or objects nested past the parser's recursion limit, an integer of more digits
than Python converts (``sys.get_int_max_str_digits()``). Each is a body that cannot be
read as JSON, so :func:`lift_asgi.exception_handlers.problem_exception_handler` answers them as
FastAPI answers any such body: the same 422, the same shape, a reason a client can act on.
"""

from __future__ import annotations

from typing import Any

__all__ = ["PARSE_FAILED", "json_invalid"]

#: FastAPI's detail for a body that raised something other than ``JSONDecodeError``
PARSE_FAILED = "There was an error parsing the body"


def json_invalid(exc: BaseException) -> list[dict[str, Any]] | None:
    """FastAPI's ``json_invalid`` errors for ``exc`` when it is FastAPI's 400 for a JSON
    body its parser refused, else ``None`` (any other 400, a form's included)."""
    if getattr(exc, "status_code", None) != 400 or getattr(exc, "detail", None) != PARSE_FAILED:
        return None
    cause = exc.__cause__
    position = 0
    if isinstance(cause, UnicodeDecodeError):
        reason, position = "Invalid UTF-8", cause.start
    elif isinstance(cause, RecursionError):
        reason = "Nested too deeply"
    elif isinstance(cause, ValueError) and "integer string conversion" in str(cause):
        reason = "Number too long"
    else:
        return None
    return [
        {
            "type": "json_invalid",
            "loc": ["body", position],
            "msg": "JSON decode error",
            "input": {},
            "ctx": {"error": reason},
        }
    ]
