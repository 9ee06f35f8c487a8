"""The multi-tenant SaaS example: projects, tasks, imports and analytics.

Built only from lift_asgi's public API. The request path is
RequestObserver (request id, request record) → TenantMiddleware (who) →
RateLimitMiddleware (may they, now) → IdempotencyMiddleware (seen this request before?)
→ UnitOfWorkMiddleware (a tenant-scoped unit of work, committed atomically when the
response is a success, with the idempotency record in the same transaction).

Data, in one table (every partition key is stored as ``{tenant}#{key}`` by the unit of
work; handlers never see that prefix):

==========================  ===================  =========================================
item                        pk / sk              indexes
==========================  ===================  =========================================
project                     ``projects`` /       —
                            ``project#{id}``
task                        ``project#{pid}`` /  gsi1 ``tasks#{pid}#{status}`` (by status),
                            ``task#{tid}``       gsi2 ``tasks#{pid}`` (all), both sorted
                                                 by ``{created_at}#{tid}``
analytics counters          ``analytics`` /      —
                            ``summary``
==========================  ===================  =========================================

Every write that changes a count changes the counter in the same transaction.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TypeVar

from fastapi import Depends, FastAPI, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

import lift_asgi
from examples.saas.settings import Settings
from examples.saas.setup import data_table_spec
from lift_asgi import PROBLEM_HANDLERS, SK, Attr, JWTResolver, LiftError, UnitOfWork, get_uow
from lift_asgi.aws import AuthorizerResolver
from lift_asgi.dynamo.limits import MAX_TRANSACTION_ITEMS
from lift_asgi.errors import (
    ConditionFailed,
    Conflict,
    DynamoDBError,
    DynamoDBThrottled,
    DynamoDBUnavailable,
    NotFound,
)
from lift_asgi.idempotency import retry_seed
from lift_asgi.observe import configure_logging

Status = Literal["open", "in_progress", "done"]
STATUSES: tuple[str, ...] = ("open", "in_progress", "done")
TaskId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
#: Every id the example stores: new_id()'s 22 hex digits, or a task's own TaskId. A path
#: id outside it names nothing that can exist: a 404 without a read (an id past the key's
#: byte limit would otherwise be the key check's 400, naming the key attribute).
STORED_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
Title = Annotated[str, Field(min_length=1, max_length=500)]
Uow = Annotated[UnitOfWork, Depends(get_uow)]
Endpoint = TypeVar("Endpoint", bound=Callable[..., Awaitable[Any]])

ANALYTICS = {"pk": "analytics", "sk": "summary"}

#: The tasks of one transaction of a keyed import: the rest of its 100 items are the
#: project's count, the analytics and (in the last one) the idempotency record.
RESUMABLE_CHUNK = MAX_TRANSACTION_ITEMS - 3

log = logging.getLogger("examples.saas")


# -- bodies -------------------------------------------------------------------------


class NewProject(BaseModel):
    name: str = Field(min_length=1, max_length=200)


class ProjectPatch(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    version: int = Field(ge=1)


class NewTask(BaseModel):
    title: Title
    status: Status = "open"
    id: TaskId | None = None


class BulkTasks(BaseModel):
    tasks: list[NewTask] = Field(min_length=1, max_length=50)


class TaskPatch(BaseModel):
    title: Title | None = None
    status: Status | None = None
    version: int = Field(ge=1)


class ImportTask(BaseModel):
    title: Title
    status: Status = "open"


class TaskImport(BaseModel):
    project_id: str = Field(min_length=1, max_length=64)
    tasks: list[ImportTask] = Field(min_length=1, max_length=5000)


# -- helpers ------------------------------------------------------------------------


def new_id() -> str:
    """Time-ordered and unguessable: 12 hex digits of milliseconds, 10 random."""
    return f"{int(time.time() * 1000):012x}{secrets.token_hex(5)}"


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def project_key(project_id: str) -> dict[str, str]:
    return {"pk": "projects", "sk": f"project#{project_id}"}


def task_key(project_id: str, task_id: str) -> dict[str, str]:
    return {"pk": f"project#{project_id}", "sk": f"task#{task_id}"}


def project_out(item: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": item["id"],
        "name": item["name"],
        "created_at": item["created_at"],
        "version": int(item["version"]),
    }


def task_out(item: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": item["id"],
        "project_id": item["project_id"],
        "title": item["title"],
        "status": item["status"],
        "created_at": item["created_at"],
        "version": int(item["version"]),
    }


def task_item(project_id: str, task_id: str, title: str, status: str) -> dict[str, Any]:
    created = now()
    order = f"{created}#{task_id}"
    return {
        **task_key(project_id, task_id),
        "gsi1pk": f"tasks#{project_id}#{status}",
        "gsi1sk": order,
        "gsi2pk": f"tasks#{project_id}",
        "gsi2sk": order,
        "id": task_id,
        "project_id": project_id,
        "title": title,
        "status": status,
        "created_at": created,
        "version": 1,
    }


def count_tasks(uow: UnitOfWork, statuses: Counter[str]) -> None:
    """Buffer the analytics counter updates for tasks added, by status."""
    changes = {f"tasks_{status}": n for status, n in statuses.items() if n}
    if changes:
        uow.update(ANALYTICS, add=changes)


def claim_project(uow: UnitOfWork, project_id: str, tasks: int) -> None:
    """Count ``tasks`` more on the project, only while it exists: committed with the
    tasks, a project deleted meanwhile cancels the whole transaction (409), so no task
    is ever left in a deleted project (and the delete, which needs a count of 0, waits
    for nothing: it fails once tasks are counted)."""
    uow.update(project_key(project_id), add={"task_count": tasks}, if_exists=True)


async def existing_project(uow: UnitOfWork, project_id: str) -> dict[str, Any]:
    if STORED_ID.fullmatch(project_id) is None:
        raise NotFound("No such project.")
    return await uow.get_or_404(project_key(project_id), detail="No such project.")


def import_failed(
    failure: LiftError,
    stored: int,
    assumed: int,
    total: int,
    *,
    keyed: bool = False,
    overcounted: int = 0,
) -> LiftError:
    """The answer of an import that stopped: the write's error, reporting the whole
    import as it is now counted (``written`` tasks stored, and ``outcome_unknown`` more
    that could not be read back and are counted as stored), not the last call's view."""
    if keyed:  # an earlier attempt's tasks past this one's stop are not seen: at least
        detail = f"The import stopped: at least {stored} of {total} tasks are stored"
        if assumed:
            detail += f", {assumed} more may be"
        detail += (
            "; the project's count and the analytics count exactly what is stored. Send"
            " the request again with the same Idempotency-Key to import the rest: no task"
            " is imported twice."
        )
    else:
        detail = f"The import stopped: {stored} of {total} tasks are stored"
        if assumed:
            detail += f", {assumed} more may be"
        if overcounted:
            detail += (
                f"; correcting the counts failed too, so the project's count and the"
                f" analytics count {overcounted} tasks that are not stored."
            )
        else:
            detail += "; the project's count and the analytics count them."
    counts: dict[str, Any] = {"written": stored, "outcome_unknown": assumed}
    if overcounted:
        counts["overcounted"] = overcounted
    if isinstance(failure, DynamoDBUnavailable):
        return type(failure)(
            detail, aws_code=failure.aws_code, retry_after=failure.retry_after, **counts
        )
    if isinstance(failure, DynamoDBError):
        return DynamoDBError(detail, aws_code=failure.aws_code, **counts)
    failure.extra.update(counts)
    return failure


async def has_tasks(uow: UnitOfWork, project_id: str) -> bool:
    """Whether any task of the project is stored (one consistent read of one item)."""
    page = await uow.query(
        f"project#{project_id}", sk=SK.begins_with("task#"), limit=1, consistent=True
    )
    return bool(page.items)


async def stored_of(
    uow: UnitOfWork, items: list[dict[str, Any]], failure: LiftError
) -> tuple[int, int]:
    """How many of ``items`` a failed ``bulk_put`` left stored, and how many of those
    are only assumed stored.

    The items it knows landed (``written``), and, when some calls' outcome is unknown
    (an answer lost, a call slower than the timeout), those a consistent read of every
    key finds. If that read fails too they count as stored (and as unknown): the
    project's count then refuses its deletion rather than letting a task outlive it."""
    written = int(failure.extra.get("written", 0))
    unknown = int(failure.extra.get("outcome_unknown", 0))
    if not unknown:
        return written, 0
    keys = [task_key(item["project_id"], item["id"]) for item in items]
    try:
        found = await uow.batch_get(keys, consistent=True)
    except LiftError:
        log.warning("import: %d task(s) of unknown outcome counted as stored", unknown)
        return written + unknown, unknown
    return sum(item is not None for item in found), 0


def derived_id(secret: bytes, seed: bytes, index: int) -> str:
    """The id of a keyed import's ``index``-th task: the same on every retry of the
    request (``seed``), unguessable without the server's secret, so no client can
    create a task under it first; 22 hex digits, like :func:`new_id`."""
    return hmac.new(secret, seed + b"%d" % index, hashlib.sha256).hexdigest()[:22]


async def import_resumable(uow: UnitOfWork, project_id: str, items: list[dict[str, Any]]) -> None:
    """A keyed import: each task written only if absent, in transactions with its
    counts, so that a retry of an import that stopped midway resumes it.

    Every chunk but the last is committed here, and a task already stored (by an
    earlier attempt, its ids being the same) is dropped from its chunk, which is sent
    again without it; the counts are exact at every moment. The last chunk is left in
    the unit of work, which commits it in one transaction with the idempotency record:
    the record never exists without every task, and an import of up to
    :data:`RESUMABLE_CHUNK` tasks is one transaction, record included. Its tasks are
    read first (one consistent BatchGetItem) and those already stored left out: a
    retry never finds them stored, as their transaction is the one that remembers the
    response, but the same key sent again once the record has expired (24 h) does.
    """
    stored = 0
    last = (len(items) - 1) // RESUMABLE_CHUNK * RESUMABLE_CHUNK  # the last chunk's start
    for start in range(0, last, RESUMABLE_CHUNK):
        chunk = items[start : start + RESUMABLE_CHUNK]
        while chunk:
            buffer_tasks(uow, project_id, chunk)
            try:
                await uow.commit()
            except ConditionFailed as failed:
                taken = {entry["number"] for entry in failed.extra.get("failed", ())}
                if not taken or max(taken) > len(chunk):  # the project's count: it is gone
                    raise
                stored += len(taken)
                chunk = [item for n, item in enumerate(chunk, 1) if n not in taken]
                continue
            except LiftError as failure:
                raise import_failed(
                    failure, stored, _maybe_applied(failure, chunk), len(items), keyed=True
                ) from None
            stored += len(chunk)
            break
    chunk = items[last:]
    try:
        found = await uow.batch_get(
            [task_key(project_id, item["id"]) for item in chunk], consistent=True
        )
    except LiftError as failure:
        raise import_failed(failure, stored, 0, len(items), keyed=True) from None
    buffer_tasks(
        uow, project_id, [item for item, there in zip(chunk, found, strict=True) if there is None]
    )


def buffer_tasks(uow: UnitOfWork, project_id: str, tasks: list[dict[str, Any]]) -> None:
    """Buffer ``tasks``, each only if absent, with their counts (nothing when empty)."""
    if not tasks:
        return
    for item in tasks:
        uow.put(item, if_absent=True)
    claim_project(uow, project_id, len(tasks))
    count_tasks(uow, Counter(item["status"] for item in tasks))


def _maybe_applied(failure: LiftError, chunk: list[dict[str, Any]]) -> int:
    """How many of ``chunk`` a failed transaction may have stored: all of it when its
    outcome is unknown (not a throttle, which DynamoDB did not apply), else none."""
    unknown = isinstance(failure, DynamoDBUnavailable) and not isinstance(
        failure, DynamoDBThrottled
    )
    return len(chunk) if unknown else 0


# -- the app ------------------------------------------------------------------------


def readable(app: FastAPI, path: str) -> Callable[[Endpoint], Endpoint]:
    """Register ``endpoint`` for GET and HEAD on ``path``: RFC 9110 (9.1) asks every
    general-purpose server to support both, and FastAPI's ``@app.get`` answers HEAD with
    a 405. The HEAD route stays out of the OpenAPI document, which then lists one
    operation per route (one route for both would give them the same operation id)."""

    def register(endpoint: Endpoint) -> Endpoint:
        app.add_api_route(path, endpoint, methods=["HEAD"], include_in_schema=False)
        return app.get(path)(endpoint)

    return register


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings.from_env()
    if settings.log_format == "json":
        # one JSON object per line on standard error, uvicorn's own lines included
        configure_logging(json=True)
    # No API docs served: every route but /health needs a token (the contract), and a
    # browser cannot send one to /docs. `python -m examples.saas.openapi` prints the
    # OpenAPI document instead.
    # problem+json for the suite's errors and for Starlette's (unknown route, 405)
    app = FastAPI(
        title="lift-asgi SaaS example",
        version="1.0",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        exception_handlers=PROBLEM_HANDLERS,
        # No trailing-slash redirects: Starlette builds them from the request's Host
        # header, which the client chooses. `/projects/` is a 404 problem, like any
        # other unknown path.
        redirect_slashes=False,
    )

    # The request path, built here (a wrong option raises on this line, before serving):
    # observe → tenant → rate limit → idempotency → unit of work → routes.
    lift_asgi.install(
        app,
        # X-Request-ID on every response (401s and 429s included) and one request
        # record per request, with its DynamoDB calls and capacity.
        observe={},
        tenant={
            "resolvers": [
                AuthorizerResolver(),
                # issued by this service's own clock: an expired token is refused at once
                JWTResolver(key=settings.jwt_secret, algorithms=["HS256"], leeway=0),
            ],
            "default_plan": "free",
        },
        rate_limit={
            "limit": {**settings.rates, "default": "free"},
            "key": "tenant",
            # Leased budgets: a busy tenant's units are leased a short horizon's worth at
            # a time (counted in DynamoDB when leased, so never past the plan's number),
            # and a data request on a hot tenant makes one DynamoDB call in total.
            "storage": f"async+dynamodb://{settings.rate_table}?lease_horizon=0.5"
            + (f"&endpoint_url={settings.endpoint}" if settings.endpoint else ""),
            # The contract: never past the plan's number, even when the rate-limit table
            # cannot answer (slow past `timeout`, throttled, unreachable): then a limited
            # route answers 503 problem+json with Retry-After, not an uncounted 200.
            "on_failure": "refuse",
            "timeout": settings.rate_timeout,
        },
        # Idempotency-Key on the write routes (POST, PATCH); the unit of work commits
        # each key's record with the request's own writes. The largest valid import
        # (5000 titles of 500 characters, each \u-escaped as a surrogate pair) is about
        # 30 MB: the default cap (6 MiB, Lambda's payload limit) would refuse it with a
        # key under uvicorn, where the route takes it without.
        idempotency={"max_request_bytes": 32 * 1024 * 1024},
        unit_of_work={
            "table": data_table_spec(settings.table),
            "endpoint": settings.endpoint,
            "region": settings.region,
            # its own key, derived from the deployment's secret: every container agrees
            "cursor_secret": hashlib.sha256(
                b"lift-asgi cursors:" + settings.jwt_secret.encode()
            ).digest(),
        },
        # no tenant, no rate limit: the health check only
        exempt=["/health"],
    )

    # HEAD too, on every GET route (see readable): load balancers and uptime checks ask with it
    @readable(app, "/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    # -- projects -----------------------------------------------------------------

    @app.post("/projects", status_code=201)
    async def create_project(body: NewProject, uow: Uow) -> dict[str, Any]:
        project_id = new_id()
        item = {
            **project_key(project_id),
            "id": project_id,
            "name": body.name,
            "created_at": now(),
            "version": 1,
            "task_count": 0,
        }
        uow.put(item, if_absent=True)
        uow.update(ANALYTICS, add={"projects": 1})
        return project_out(item)

    @readable(app, "/projects")
    async def list_projects(
        uow: Uow,
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
        cursor: str | None = None,
    ) -> dict[str, Any]:
        page = await uow.query(
            "projects",
            sk=SK.begins_with("project#"),
            limit=limit,
            cursor=cursor,
            scan_forward=False,
        )
        return {"items": [project_out(i) for i in page.items], "next_cursor": page.next_cursor}

    @readable(app, "/projects/{project_id}")
    async def get_project(project_id: str, uow: Uow) -> dict[str, Any]:
        return project_out(await existing_project(uow, project_id))

    @app.patch("/projects/{project_id}")
    async def patch_project(project_id: str, body: ProjectPatch, uow: Uow) -> dict[str, Any]:
        item = await existing_project(uow, project_id)
        if int(item["version"]) != body.version:
            raise Conflict(f"Stale version {body.version}; the project is at {item['version']}.")
        uow.update(project_key(project_id), set={"name": body.name}, expect_version=body.version)
        return project_out({**item, "name": body.name, "version": body.version + 1})

    @app.delete("/projects/{project_id}", status_code=204)
    async def delete_project(project_id: str, uow: Uow) -> Response:
        item = await existing_project(uow, project_id)
        # The count (committed with every task write) guards against concurrent creates;
        # the read guards against a task that landed uncounted: an import's batch write
        # DynamoDB applied after the import had given up on it and settled its counts.
        if int(item.get("task_count", 0)) or await has_tasks(uow, project_id):
            raise Conflict("The project still has tasks.")
        uow.delete(project_key(project_id), condition=Attr("task_count").eq(0))
        uow.update(ANALYTICS, add={"projects": -1})
        return Response(status_code=204)

    # -- tasks --------------------------------------------------------------------

    @app.post("/projects/{project_id}/tasks", status_code=201)
    async def create_task(project_id: str, body: NewTask, uow: Uow) -> dict[str, Any]:
        await existing_project(uow, project_id)
        item = task_item(project_id, body.id or new_id(), body.title, body.status)
        uow.put(item, if_absent=True)
        claim_project(uow, project_id, 1)
        count_tasks(uow, Counter({body.status: 1}))
        return task_out(item)

    @app.post("/projects/{project_id}/tasks:bulk", status_code=201)
    async def create_tasks(project_id: str, body: BulkTasks, uow: Uow) -> dict[str, Any]:
        await existing_project(uow, project_id)
        ids = [task.id or new_id() for task in body.tasks]
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        if repeated:
            raise Conflict(f"Task id {repeated[0]!r} appears more than once in the batch.")
        items = [
            task_item(project_id, task_id, task.title, task.status)
            for task_id, task in zip(ids, body.tasks, strict=True)
        ]
        for item in items:
            uow.put(item, if_absent=True)
        claim_project(uow, project_id, len(items))
        count_tasks(uow, Counter(task.status for task in body.tasks))
        return {"items": [task_out(i) for i in items]}

    @readable(app, "/projects/{project_id}/tasks")
    async def list_tasks(
        project_id: str,
        uow: Uow,
        status: Status | None = None,
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
        cursor: str | None = None,
    ) -> dict[str, Any]:
        await existing_project(uow, project_id)
        if status is None:
            index, partition = "gsi2", f"tasks#{project_id}"
        else:
            index, partition = "gsi1", f"tasks#{project_id}#{status}"
        page = await uow.query(
            partition, index=index, limit=limit, cursor=cursor, scan_forward=False
        )
        return {"items": [task_out(i) for i in page.items], "next_cursor": page.next_cursor}

    @app.patch("/projects/{project_id}/tasks/{task_id}")
    async def patch_task(
        project_id: str, task_id: str, body: TaskPatch, uow: Uow
    ) -> dict[str, Any]:
        if STORED_ID.fullmatch(project_id) is None or STORED_ID.fullmatch(task_id) is None:
            raise NotFound("No such task.")
        item = await uow.get_or_404(task_key(project_id, task_id), detail="No such task.")
        if int(item["version"]) != body.version:
            raise Conflict(f"Stale version {body.version}; the task is at {item['version']}.")
        changes: dict[str, Any] = {}
        if body.title is not None:
            changes["title"] = body.title
        if body.status is not None and body.status != item["status"]:
            changes["status"] = body.status
            changes["gsi1pk"] = f"tasks#{project_id}#{body.status}"
            uow.update(ANALYTICS, add={f"tasks_{item['status']}": -1, f"tasks_{body.status}": 1})
        uow.update(
            task_key(project_id, task_id),
            set=changes or {"title": item["title"]},
            expect_version=body.version,
        )
        return task_out({**item, **changes, "version": body.version + 1})

    # -- imports and analytics -----------------------------------------------------

    # the keyed import's ids: a key of the deployment's secret, like the cursors'
    import_secret = hashlib.sha256(b"lift-asgi imports:" + settings.jwt_secret.encode()).digest()

    @app.post("/imports/tasks")
    async def import_tasks(body: TaskImport, uow: Uow, request: Request) -> dict[str, Any]:
        """Not atomic: batch writes of 25, unprocessed items retried.

        With an ``Idempotency-Key``, transactions of 97 tasks with their counts instead,
        resumed on a retry (see :func:`import_resumable`).

        The counts (the project's and the analytics) are claimed first, in one
        transaction that is safe to retry and fails with a 409 if the project is gone,
        so a concurrent delete cannot leave imported tasks behind. A successful import
        then writes nothing more; one that fails midway settles the counts from what is
        stored (what the batch writes confirmed, and a consistent read of the tasks whose
        calls had an unknown outcome) and gives back the rest, so the counters are exact
        once the import has returned.
        """
        project_id = body.project_id
        await existing_project(uow, project_id)
        seed = retry_seed(request)
        if seed is not None:
            items = [
                task_item(project_id, derived_id(import_secret, seed, i), task.title, task.status)
                for i, task in enumerate(body.tasks)
            ]
            await import_resumable(uow, project_id, items)
            return {"imported": len(items)}
        planned: Counter[str] = Counter(task.status for task in body.tasks)
        claim_project(uow, project_id, len(body.tasks))
        count_tasks(uow, planned)
        await uow.commit()
        by_status: dict[str, list[dict[str, Any]]] = {}
        for task in body.tasks:
            item = task_item(project_id, new_id(), task.title, task.status)
            by_status.setdefault(task.status, []).append(item)
        written: Counter[str] = Counter()
        failure: LiftError | None = None
        assumed = 0
        for status, items in by_status.items():
            try:
                written[status] += (await uow.bulk_put(items)).written
            except LiftError as exc:  # says how many of this batch are known written
                stored, assumed = await stored_of(uow, items, exc)
                written[status] += stored
                failure = exc
                break
        if failure is not None:
            unwritten = len(body.tasks) - sum(written.values())
            if not unwritten and not assumed:  # every call unheard had in fact landed
                log.info("import: the batch writes failed, yet every task is stored")
                return {"imported": len(body.tasks)}
            if unwritten:
                uow.update(project_key(project_id), add={"task_count": -unwritten})
                uow.update(
                    ANALYTICS,
                    add={
                        f"tasks_{s}": written[s] - n for s, n in planned.items() if written[s] != n
                    },
                )
                try:
                    await uow.commit()  # before the error response, which would discard it
                except LiftError as unsettled:
                    # Where "exact once it has returned" stops: the claim stands, over by
                    # the tasks not stored (never under: no delete under a task).
                    log.error(
                        "import: the counts could not be settled (%s); they count %d "
                        "task(s) of project %s that are not stored",
                        unsettled.detail,
                        unwritten,
                        project_id,
                    )
                    raise import_failed(
                        failure,
                        sum(written.values()) - assumed,
                        assumed,
                        len(body.tasks),
                        overcounted=unwritten,
                    ) from None
            raise import_failed(failure, sum(written.values()) - assumed, assumed, len(body.tasks))
        return {"imported": sum(written.values())}

    @readable(app, "/analytics/summary")
    async def analytics(uow: Uow) -> dict[str, Any]:
        item = await uow.get(ANALYTICS) or {}
        return {
            "projects": int(item.get("projects", 0)),
            "tasks": {status: int(item.get(f"tasks_{status}", 0)) for status in STATUSES},
        }

    return app


_app: FastAPI | None = None


def __getattr__(name: str) -> Any:
    """``examples.saas.app:app`` is built from the environment on first use (uvicorn,
    the Lambda handler), so importing this module for ``create_app`` needs no secret."""
    global _app
    if name == "app":
        if _app is None:
            _app = create_app()
        return _app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
