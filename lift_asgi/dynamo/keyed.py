"""A request under an ``Idempotency-Key``, run by the unit of work.

The idempotency stage (:mod:`lift_asgi.idempotency`) validates the key and fingerprints
the request; the unit of work, which holds the tenant scope and the transaction, runs
it here:

1. claim the key (one conditional ``PutItem``; a duplicate is answered from the failed
   write: a replay, a 409, a 422), and renew the claim while the app runs;
2. run the app with its whole response held (up to the record's cap);
3. when the body is complete, inside the app's last ``send``: the record's completion
   joins the app's writes in one commit (a 5xx, a response too large or a refused
   record releases the claim instead), and the answer is sent;
4. a commit that seemed to fail is settled by reading the record (``recover``).

What runs after the app's last ``send`` (a ``BackgroundTask``) runs after the commit,
as on the plain path, which commits at the response's start.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lift_asgi.dynamo.uow import UnitOfWork
from lift_asgi.errors import ConditionFailed, LiftError, send_problem
from lift_asgi.stages import IdempotentRequest, RequestContext

__all__ = ["commit_answer", "run_keyed"]

log = logging.getLogger("lift_asgi.dynamo")


async def run_keyed(
    app: ASGIApp,
    request: IdempotentRequest,
    ctx: RequestContext,
    uow: UnitOfWork,
    scope: Scope,
    receive: Receive,
    send: Send,
) -> None:
    """Claim, run the app with its whole response held (up to the record's cap), then
    commit the app's writes and the record's completion together, and send the answer.

    That happens when the response is complete, inside the app's last ``send``, as
    the plain path commits at the response's start: what runs after it (a
    ``BackgroundTask``) runs after the commit, with or without a key. An exception it
    raises cannot undo a commit already made and an answer already sent."""
    if not await request.claim(uow, send):
        ctx.commit = "none"
        return
    # the claim renewed while the app runs, so a slow request keeps its key
    stop_renewing = request.keep_alive(uow)
    try:
        await _held(app, request, ctx, uow, scope, receive, send, stop_renewing)
    finally:
        stop_renewing()


async def _held(
    app: ASGIApp,
    request: IdempotentRequest,
    ctx: RequestContext,
    uow: UnitOfWork,
    scope: Scope,
    receive: Receive,
    send: Send,
    stop_renewing: Callable[[], None],
) -> None:
    """The app under its claim (see :func:`run_keyed`); the claim's renewals are
    stopped once the response is complete, before the commit."""
    cap = request.max_response_bytes
    start: Message | None = None
    chunks: list[bytes] = []
    size = 0
    complete = False
    unfit: str | None = None  # why the response cannot be remembered

    async def hold(message: Message) -> None:
        nonlocal start, size, complete, unfit
        kind = message["type"]
        if complete:
            return
        if kind == "http.response.start":
            start = message
            return
        if kind == "http.response.body":
            body = message.get("body", b"")
            size += len(body)
            if size > cap:
                unfit = f"its body is larger than max_response_bytes={cap}"
                chunks.clear()
            elif body:
                chunks.append(body)
            if message.get("more_body", False):
                return
        else:  # http.response.pathsend, trailers...: not something a record can replay
            unfit = f"it uses {kind}"
        complete = True
        stop_renewing()  # the commit decides the claim now
        if start is not None:
            await _finish(request, ctx, uow, scope, send, start, chunks, unfit)

    try:
        await app(scope, receive, hold)
    except LiftError as error:
        if complete:
            raise
        if start is not None:
            await _give_up(request, ctx, uow)
            raise
        log.debug("%s raised before responding: %s", scope.get("path"), error.detail)
        # the handler's own answer, as if it had returned it
        await send_problem(hold, error)
    except BaseException:
        # Complete: answered (Starlette's ServerErrorMiddleware sends its 500, then
        # re-raises; a background task raises after the commit).
        if not complete:
            await _give_up(request, ctx, uow)
        raise
    if not complete or start is None:
        await _give_up(request, ctx, uow)
        if start is not None:
            await _forward(send, start, chunks)


async def _finish(
    request: IdempotentRequest,
    ctx: RequestContext,
    uow: UnitOfWork,
    scope: Scope,
    send: Send,
    start: Message,
    chunks: list[bytes],
    unfit: str | None,
) -> None:
    """The held, complete response: remembered and committed with the app's writes,
    then sent; or, when it cannot be (too large, a 5xx, a refused record), the key
    released and the writes discarded."""
    status = start["status"]
    if unfit is not None:
        await _give_up(request, ctx, uow)
        log.error("%s: the response cannot be remembered: %s", scope.get("path"), unfit)
        await send_problem(
            send,
            LiftError(
                f"The response to this idempotent request cannot be remembered ({unfit}); "
                "nothing was written."
            ),
        )
        return
    if status >= 500:
        await _give_up(request, ctx, uow)
        await _forward(send, start, chunks)
        return
    if status >= 400 and uow.discard():
        ctx.commit = "discarded"
    body = b"".join(chunks)
    try:
        request.complete(uow, status, list(start.get("headers", ())), body)
    except LiftError as error:
        await _give_up(request, ctx, uow)
        log.error("%s: the idempotency record was refused: %s", scope.get("path"), error)
        await send_problem(send, error)
        return
    failure = await commit_answer(uow, ctx)
    if failure is not None:
        answer = await request.recover(uow, failure)
        if answer is not None:
            await send_problem(send, answer if isinstance(answer, LiftError) else failure)
            return
        log.info("%s: the commit's answer was lost, but it landed", scope.get("path"))
        ctx.commit = "committed"
    await _forward(send, start, [body])


async def _give_up(request: IdempotentRequest, ctx: RequestContext, uow: UnitOfWork) -> None:
    if uow.discard():
        ctx.commit = "discarded"
    await request.release(uow)


async def _forward(send: Send, start: Message, chunks: list[bytes]) -> None:
    await send(start)
    await send({"type": "http.response.body", "body": b"".join(chunks)})


async def commit_answer(uow: UnitOfWork, ctx: RequestContext) -> LiftError | None:
    """Commit ``uow``; the error to answer with instead of the app's response, if any
    (the plain path's commit too: the outcome goes to ``ctx.commit``)."""
    try:
        await uow.commit()
    except ConditionFailed as error:
        log.info("commit refused: %s", error.detail)
        ctx.commit = "conflict"
        return error
    except LiftError as error:
        log.warning("commit failed (%s): %s", error.status, error.detail)
        ctx.commit = "failed"
        return error
    except Exception:
        log.exception("commit failed")
        ctx.commit = "failed"
        return LiftError("The request could not be completed.")
    ctx.commit = "committed"
    return None
