"""AWS Lambda: the Mangum handler.

``handler = lift_asgi.aws.handler(app)`` is the whole deployment story: the same app
that runs under uvicorn runs on Lambda (see :class:`LambdaHandler`). The resolvers that
read what API Gateway and Lambda hand to the function live with the other resolvers, in
:mod:`lift_asgi.tenancy.aws`; ``lift_asgi.aws.AuthorizerResolver`` and
``LambdaTenantResolver`` remain importable from here.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
import warnings
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lift_asgi._net import FORWARDED_BY, TrustedProxies
from lift_asgi._startup import build_stack
from lift_asgi.errors import ConfigurationError

if TYPE_CHECKING:  # the resolvers live in lift_asgi.tenancy.aws; these names stay importable
    from lift_asgi.tenancy.aws import AuthorizerResolver, LambdaTenantResolver

__all__ = [
    "TEXT_MIME_TYPES",
    "AuthorizerResolver",
    "LambdaHandler",
    "LambdaTenantResolver",
    "handler",
]

log = logging.getLogger("lift_asgi.aws")


# -- the Lambda handler ---------------------------------------------------------------

_LAMBDA_LIFESPAN = ("auto", "on", "off")

#: Content types whose bodies the handler returns as text, not base64. Mangum matches
#: each entry as a substring of ``Content-Type``, and its own list knows
#: ``application/json`` but not ``application/problem+json``: every error the suite
#: sends came back base64-encoded, which a REST API without binary media types hands to
#: the client as is. ``+json``/``+xml`` cover every structured-syntax suffix type
#: (RFC 6839: ``problem+json``, ``ld+json``, ``svg+xml``, ...). A body that is not valid
#: UTF-8 is still sent as base64 (Mangum tries to decode it first).
TEXT_MIME_TYPES: tuple[str, ...] = (
    "text/",
    "application/json",
    "+json",
    "application/x-ndjson",
    "application/xml",
    "+xml",
    "application/javascript",
    "application/x-www-form-urlencoded",
    "application/vnd.oai.openapi",
)


@dataclass(slots=True)
class _Lifespan:
    """The lifespan the handler runs once per container (shared with its finalizer)."""

    task: asyncio.Task[None] | None = None
    queue: asyncio.Queue[Message] | None = None
    shutdown_done: asyncio.Future[None] | None = None


def _current_loop() -> asyncio.AbstractEventLoop | None:
    """The thread's current event loop, if one is set, without creating one.

    ``asyncio.get_event_loop()`` creates a loop (and warns, on 3.12+) when none is set;
    the policy's thread-local slot is what it would return.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        policy = asyncio.get_event_loop_policy()
    local = getattr(policy, "_local", None)
    loop = getattr(local, "_loop", None)
    return loop if isinstance(loop, asyncio.AbstractEventLoop) else None


def _close(loop: asyncio.AbstractEventLoop, lifespan: _Lifespan) -> None:
    """Run the lifespan shutdown if it is pending, finish every task, close the loop.

    Runs from :meth:`LambdaHandler.close`, or when the handler is garbage collected or
    the interpreter exits (a ``weakref.finalize``): a handler used as documented, at
    module level, leaves no pending task ("Task was destroyed but it is pending!") and
    no loop for another library to close under it ("Event loop is closed").
    """
    if loop.is_closed():
        return
    if asyncio._get_running_loop() is not None:
        # Collected inside another loop (an async test): run ours in a thread.
        worker = threading.Thread(target=_close, args=(loop, lifespan), daemon=True)
        worker.start()
        worker.join()
        return
    previous = _current_loop()
    asyncio.set_event_loop(loop)
    try:
        task, queue, done = lifespan.task, lifespan.queue, lifespan.shutdown_done
        lifespan.task = None
        if task is not None and queue is not None and done is not None and not task.done():
            queue.put_nowait({"type": "lifespan.shutdown"})
            loop.run_until_complete(asyncio.wait({done, task}, timeout=5))
        pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for leftover in pending:
            leftover.cancel()
        if pending:
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.run_until_complete(loop.shutdown_default_executor())
    finally:
        loop.close()
        asyncio.set_event_loop(previous)


class LambdaHandler:
    """An AWS Lambda handler for an ASGI app, built on Mangum, that stays warm.

    Mangum runs the app's lifespan startup and shutdown around *every* invocation and
    uses whatever event loop ``asyncio.get_event_loop()`` returns. This handler instead:

    - owns one event loop per container and sets it before each invocation (so it works
      on Python 3.11-3.13+, where ``get_event_loop()`` no longer creates one), keeping the
      DynamoDB session, caches and anything the app built bound to a live loop;
    - runs lifespan startup once per container, on the first invocation, and passes its
      state (``scope["state"]``) to every request; shutdown runs on :meth:`shutdown` (or
      on SIGTERM with ``shutdown_on_sigterm=True``, which Lambda sends when an extension
      is registered). A startup the app answers with ``lifespan.startup.failed`` is
      raised from the invocation in every mode (no request is served without it) and
      tried again on the next one; under ``lifespan="auto"`` only an app that raises
      without answering at all is run without a lifespan;
    - gives the app a client address it can trust: API Gateway's and function URLs'
      ``sourceIp`` (as Mangum does), and for ALB events the right-most
      ``X-Forwarded-For`` hop that is not one of ``trusted_proxies`` (Mangum passes the
      raw header, which any client can prefix). The rate limiter's ``"ip"`` key takes
      that client as its own, so ``trusted_proxies`` is given here, once (a limiter's
      own list can only walk further left, when it trusts the hop this one stopped at);
    - builds a Starlette (or FastAPI) app's middleware stack when it is created, so a
      middleware's :class:`~lift_asgi.errors.ConfigurationError` is raised where the
      handler is created (at import, in Lambda's init phase), with its message;
    - returns every text type as text, not base64 (:data:`TEXT_MIME_TYPES`, used unless
      ``text_mime_types`` is given);
    - leaves nothing behind: its loop is the thread's current loop only during an
      invocation, and :meth:`close` (also run when the handler is collected or the
      process exits) runs the lifespan shutdown, finishes every task and closes the loop.

    Every other Mangum option (``api_gateway_base_path``, ``text_mime_types``,
    ``exclude_headers``, ``custom_handlers``) passes through unchanged.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        lifespan: str = "auto",
        trusted_proxies: str | Iterable[str] = (),
        shutdown_on_sigterm: bool = False,
        **mangum_options: Any,
    ) -> None:
        from mangum import Mangum

        if lifespan not in _LAMBDA_LIFESPAN:
            raise ConfigurationError("lifespan", f"one of {_LAMBDA_LIFESPAN}, not {lifespan!r}")
        if "lifespan" in mangum_options:  # pragma: no cover - guarded by the signature
            raise ConfigurationError("lifespan", "pass it once")
        if not isinstance(shutdown_on_sigterm, bool):
            raise ConfigurationError("shutdown_on_sigterm", "True or False")
        # The rate limiter's "ip" key gets this same object for the same list. On ALB
        # events the header is read here, once, into scope["client"], and the scope
        # names the object that read it (FORWARDED_BY): the "ip" key starts from there.
        self._proxies = TrustedProxies.of(trusted_proxies)
        build_stack(app)  # a configuration error is raised here, not on the first event
        self.app = app
        self.lifespan = lifespan
        self.state: dict[str, Any] = {}
        self.startups = 0
        self._loop = asyncio.new_event_loop()
        self._started = lifespan == "off"
        self._lifespan = _Lifespan()
        mangum_options.setdefault("text_mime_types", list(TEXT_MIME_TYPES))
        previous = _current_loop()
        asyncio.set_event_loop(self._loop)  # Mangum() looks for a current loop
        try:
            self._mangum = Mangum(self._asgi, lifespan="off", **mangum_options)
        finally:
            asyncio.set_event_loop(previous)
        self._finalizer = weakref.finalize(self, _close, self._loop, self._lifespan)
        if shutdown_on_sigterm:
            signal.signal(signal.SIGTERM, self._on_sigterm)

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        # Mangum runs the event on asyncio.get_event_loop(): ours, for this call only,
        # so no test runner or other library adopts (and closes) it in between.
        previous = _current_loop()
        asyncio.set_event_loop(self._loop)
        try:
            if not self._started:
                self._loop.run_until_complete(self._startup())
            result: dict[str, Any] = self._mangum(event, context)
        finally:
            asyncio.set_event_loop(previous)
        return result

    # -- the app, as Mangum calls it --------------------------------------------------

    async def _asgi(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope["state"] = {**self.state, **scope.get("state", {})}
            event = scope.get("aws.event") or {}
            if "elb" in event.get("requestContext", {}):
                scope["client"] = (self._alb_client(scope), 0)
                scope[FORWARDED_BY] = self._proxies
        await self.app(scope, receive, send)

    def _alb_client(self, scope: Scope) -> str:
        values = [
            bytes(value).decode("latin-1")
            for name, value in scope.get("headers", ())
            if bytes(name).lower() == b"x-forwarded-for"
        ]
        return self._proxies.client(",".join(values)) or ""

    # -- lifespan, once per container ---------------------------------------------------

    async def _startup(self) -> None:
        queue: asyncio.Queue[Message] = asyncio.Queue()
        started: asyncio.Future[None] = self._loop.create_future()
        shutdown_done: asyncio.Future[None] = self._loop.create_future()
        lifespan = self._lifespan
        lifespan.queue, lifespan.shutdown_done = queue, shutdown_done
        # Set once the app answered the startup itself: then it speaks the lifespan
        # protocol, and a failure it reports is one, whatever the mode.
        answered = False

        async def send(message: Message) -> None:
            nonlocal answered
            kind = message["type"]
            if kind == "lifespan.startup.complete" and not started.done():
                answered = True
                started.set_result(None)
            elif kind == "lifespan.startup.failed" and not started.done():
                answered = True
                started.set_exception(
                    RuntimeError(f"lifespan startup failed: {message.get('message', '')}")
                )
            elif kind.startswith("lifespan.shutdown.") and not shutdown_done.done():
                shutdown_done.set_result(None)

        async def run() -> None:
            scope = {
                "type": "lifespan",
                "asgi": {"version": "3.0", "spec_version": "2.0"},
                "state": self.state,
            }
            try:
                await self.app(scope, queue.get, send)
            except BaseException as exc:
                if not started.done():
                    started.set_exception(exc)
                raise
            finally:
                if not started.done():
                    started.set_exception(RuntimeError("the app returned during lifespan"))
                if not shutdown_done.done():
                    shutdown_done.set_result(None)

        task = lifespan.task = self._loop.create_task(run())
        await queue.put({"type": "lifespan.startup"})
        try:
            await started
        except BaseException:
            # The app's own exception is raised here (or logged): not again by asyncio
            # as "Task exception was never retrieved" when the task is collected.
            task.add_done_callback(_retrieve)
            lifespan.task = None
            # lifespan.startup.failed stops the handler in every mode, as it stops
            # uvicorn and Mangum: the app said it cannot serve. The next invocation
            # tries the startup again. Only an app that raised (or returned) without
            # answering is taken, under "auto", as one without lifespan support.
            if answered or self.lifespan == "on":
                raise
            log.info("lifespan not supported by the app; running without it")
        else:
            self.startups += 1
        self._started = True

    def shutdown(self) -> None:
        """Run the app's lifespan shutdown (once); the handler stays usable."""
        lifespan = self._lifespan
        task, queue, done = lifespan.task, lifespan.queue, lifespan.shutdown_done
        lifespan.task = None
        if task is None or queue is None or done is None or task.done():
            return
        previous = _current_loop()
        asyncio.set_event_loop(self._loop)
        try:
            queue.put_nowait({"type": "lifespan.shutdown"})
            self._loop.run_until_complete(asyncio.wait({done, task}, timeout=5))
        finally:
            asyncio.set_event_loop(previous)

    def close(self) -> None:
        """:meth:`shutdown`, then finish every task and close the loop (idempotent).

        Also runs when the handler is garbage collected or the interpreter exits.
        """
        self._finalizer()

    def _on_sigterm(self, signum: int, frame: Any) -> None:  # pragma: no cover - signal
        self.close()
        raise SystemExit(0)


def _retrieve(task: asyncio.Task[None]) -> None:
    """Mark a finished lifespan task's exception as seen (it was raised or logged)."""
    if not task.cancelled():
        task.exception()


def handler(app: ASGIApp, **options: Any) -> LambdaHandler:
    """``handler = lift_asgi.aws.handler(app)``: see :class:`LambdaHandler`."""
    return LambdaHandler(app, **options)


def __getattr__(name: str) -> object:
    """``lift_asgi.aws.AuthorizerResolver`` and ``LambdaTenantResolver``: aliases of the
    resolvers in :mod:`lift_asgi.tenancy.aws`, imported on first use."""
    if name in ("AuthorizerResolver", "LambdaTenantResolver"):
        from lift_asgi.tenancy import aws as resolvers

        return getattr(resolvers, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
