"""The WSGI application in front of moto: one request at a time, every request answered,
ClientRequestToken kept.

- **One at a time.** moto evaluates a ConditionExpression and applies the update without
  a lock, so concurrent conditional writes on one item over-admit or lose updates; DynamoDB
  makes each item write atomic. One lock around each whole request (body included) gives
  the same guarantee at no measurable cost, since moto holds the GIL anyway.
- **Every request answered.** When moto raises (a PutItem without ``TableName``, an
  undefined ``#name`` in a FilterExpression, ...) the WSGI server would drop the
  connection and clients would see a reset, then retry. The front answers 500 with
  DynamoDB's JSON error shape and the exception's text, and logs the traceback.
- **ClientRequestToken**, see :mod:`lift_asgi.local.tokens`.
"""

from __future__ import annotations

import io
import json
import sys
import threading
import traceback
from collections.abc import Callable, Iterable
from typing import Any

from lift_asgi.local.tokens import TokenRegistry, fingerprint, mismatch_body

__all__ = ["WSGIApp", "serialised"]

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

_JSON = "application/x-amz-json-1.0"
_TRANSACT_WRITE = "DynamoDB_20120810.TransactWriteItems"


def _internal_error(exc: BaseException) -> bytes:
    return json.dumps(
        {
            "__type": "com.amazonaws.dynamodb.v20120810#InternalServerError",
            "message": f"the local DynamoDB server (moto) failed: {type(exc).__name__}: {exc}",
        }
    ).encode()


def _call(app: WSGIApp, environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes]:
    """Run ``app`` to completion; any exception becomes a 500 answer."""
    started: list[Any] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        started[:] = [status, list(headers)]
        return lambda data: None

    try:
        result = app(environ, start_response)
        try:
            body = b"".join(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        if not started:
            raise RuntimeError("the WSGI app never called start_response")
    except Exception as exc:
        traceback.print_exc(file=sys.stderr)
        return "500 Internal Server Error", [("Content-Type", _JSON)], _internal_error(exc)
    status, headers = started
    return status, headers, body


def serialised(app: WSGIApp, tokens: TokenRegistry | None = None) -> WSGIApp:
    """Wrap ``app`` (moto's) so one request at a time runs, each is answered, and
    TransactWriteItems honours ClientRequestToken (``tokens``; a fresh registry if None)."""
    lock = threading.Lock()
    registry = tokens if tokens is not None else TokenRegistry()

    def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        body = environ["wsgi.input"].read() if environ.get("wsgi.input") is not None else b""
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        token = print_ = None
        if environ.get("HTTP_X_AMZ_TARGET") == _TRANSACT_WRITE:
            try:
                payload = json.loads(body)
            except ValueError:
                payload = None
            if isinstance(payload, dict) and isinstance(payload.get("ClientRequestToken"), str):
                token, print_ = payload["ClientRequestToken"], fingerprint(payload)
        with lock:
            first = registry.lookup(token) if token is not None else None
            if first is not None and first.fingerprint == print_:
                status, headers, answer = first.status, list(first.headers), first.body
            elif first is not None:
                status, headers = "400 Bad Request", [("Content-Type", _JSON)]
                answer = mismatch_body()
            else:
                status, headers, answer = _call(app, environ)
                if token is not None and print_ is not None and status.startswith("200"):
                    registry.remember(token, print_, status, headers, answer)
        headers = [(k, v) for k, v in headers if k.lower() != "content-length"]
        start_response(status, [*headers, ("Content-Length", str(len(answer)))])
        return [answer]

    return application
