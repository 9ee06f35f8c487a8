"""What observing costs: CPU per request of the full stack with RequestObserver, against
the same stack without it, in one run.

    python -m bench.observe [--quick]

The stack is ``bench.stack``'s (Tenant with an HS256 JWT → RateLimit on ``memory://`` →
UnitOfWork on ``AiodynamoTransport`` against ``bench.clients``' instant endpoint, a child
process), on two routes: one touching no data and one doing one ``uow.get`` (one
DynamoDB call: what the cost accounting and the client span are paid on). Variants, each
the same stack under ``lift_asgi.install``:

- off: no observer (the baseline of the ratios);
- ids only: the observer with records, cost accounting and telemetry off;
- records on: one JSON request record per request through ``log_handler(json=True)`` to
  a sink that drops the text (formatting included), DynamoDB cost counted;
- + OTel API, no SDK: ``otel=True`` with the API's no-op providers;
- + OTel SDK, in-memory: a TracerProvider with a SimpleSpanProcessor into an
  InMemorySpanExporter (cleared between batches) and a MeterProvider with an
  InMemoryMetricReader.

Then CPU per GetItem on the transport alone, outside any request: its send without the
observer's hook, through ``request()`` with nothing observing (the hook's one ContextVar
get: what every user pays), and with a request's cost being counted.

CPU is ``time.process_time`` of this process over back-to-back requests called
directly (no sockets), best batch of several alternating rounds, as in ``bench.stack``.
Nothing here asserts on a time.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request

import lift_asgi
from bench.clients import TABLE, InstantEndpoint
from bench.stack import CURSOR_SECRET, NEVER, SECRET, _batch, _status, scope, token
from lift_asgi.dynamo import AiodynamoTransport, DynamoTable
from lift_asgi.observe import log_handler
from lift_asgi.tenancy import JWTResolver

__all__ = ["CallRow", "Row", "render", "render_calls", "run"]

OFF = "off (no observer)"


class _Sink:
    """A text stream that drops what it is given (the formatting is still paid)."""

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        return None


@dataclass(frozen=True)
class Row:
    route: str
    variant: str
    us_per_request: float
    ratio: float  # to "off" on the same route, same run
    added_us: float


def _app(transport: AiodynamoTransport, observe: dict[str, Any] | None) -> FastAPI:
    app = FastAPI()

    @app.get("/projects/{project_id}")
    async def project(project_id: str) -> dict[str, str]:
        return {"id": project_id}

    @app.get("/data/{project_id}")
    async def data(project_id: str, request: Request) -> dict[str, bool]:
        return {"found": await request.state.uow.get("projects", "p1") is not None}

    lift_asgi.install(
        app,
        observe=observe,
        tenant={"resolvers": [JWTResolver(key=SECRET, algorithms=["HS256"])]},
        rate_limit={"limit": NEVER, "key": "tenant", "storage": "memory://"},
        unit_of_work={
            "table": DynamoTable(TABLE, transport=transport, cursor_secret=CURSOR_SECRET)
        },
    )
    return app


def _variants() -> tuple[list[tuple[str, Callable[[], dict[str, Any] | None]]], Callable[[], None]]:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    quiet = {"log_requests": False, "dynamodb_cost": False}
    variants: list[tuple[str, Callable[[], dict[str, Any] | None]]] = [
        (OFF, lambda: None),
        ("ids only (records, cost, OTel off)", lambda: dict(quiet)),
        ("records on (JSON line, DynamoDB cost)", lambda: {}),
        ("records + OTel API, no SDK", lambda: {"otel": True}),
        (
            "records + OTel SDK, in-memory exporters",
            lambda: {
                "otel": True,
                "tracer_provider": tracer_provider,
                "meter_provider": meter_provider,
            },
        ),
    ]
    return variants, exporter.clear


async def _cpu(endpoint: str, batch: int, rounds: int) -> list[Row]:
    request_log = logging.getLogger("lift_asgi.request")
    handler = log_handler(json=True, stream=_Sink())  # type: ignore[arg-type]
    request_log.addHandler(handler)
    request_log.setLevel(logging.INFO)
    request_log.propagate = False
    transport = AiodynamoTransport.static(endpoint)
    bearer = token()
    variants, clear = _variants()
    routes = {"no data": "/projects/42", "one uow.get": "/data/42"}
    try:
        apps = []
        for route, path in routes.items():
            request = scope(path, bearer)
            for name, options in variants:
                app = _app(transport, options())
                for _ in range(100):  # warm-up, one-off checks
                    status = await _status(app, request)
                    if status != 200:
                        raise RuntimeError(f"{name} on {route}: answered {status}")
                apps.append((route, name, app, request))
        clear()
        best = {(route, name): float("inf") for route, name, _, _ in apps}
        for _ in range(rounds):
            for route, name, app, request in apps:
                count = batch if route == "no data" else max(20, batch // 4)
                best[route, name] = min(best[route, name], await _batch(app, request, count))
                clear()
    finally:
        await transport.close()
        request_log.removeHandler(handler)
        request_log.propagate = True
    rows = []
    for route, name, _, _ in apps:
        base = best[route, OFF]
        value = best[route, name]
        rows.append(Row(route, name, value * 1e6, value / base, (value - base) * 1e6))
    return rows


@dataclass(frozen=True)
class CallRow:
    variant: str
    us_per_call: float
    ratio: float  # to the transport's own send, no hook


async def _calls(endpoint: str, calls: int, rounds: int) -> list[CallRow]:
    """CPU per GetItem: the transport's send without the hook, the hook with nothing to
    report to (every call outside an observed request), and with the request's cost."""
    from lift_asgi.observe.ids import RequestIds
    from lift_asgi.stages import RequestContext, context_var

    transport = AiodynamoTransport.static(endpoint)
    payload = {"TableName": TABLE, "Key": {"pk": {"S": "x"}, "sk": {"S": "p1"}}}
    unhooked = transport._request  # what request() calls when nothing observes

    async def observed() -> None:
        # what RequestObserver sets: the cost is made on the first call
        context = RequestContext()
        context.ids = RequestIds("r1", context=context, count_cost=True)
        token = context_var.set(context)
        try:
            for _ in range(calls):
                await transport.request("GetItem", payload)
        finally:
            context_var.reset(token)

    async def plain(send: Any) -> None:
        for _ in range(calls):
            await send("GetItem", payload)

    variants: list[tuple[str, Callable[[], Any]]] = [
        ("transport send, no hook", lambda: plain(unhooked)),
        ("request(): hook, nothing observing", lambda: plain(transport.request)),
        ("request(): hook, the request's cost counted", observed),
    ]
    best = {name: float("inf") for name, _ in variants}
    try:
        for _, run_variant in variants:
            await run_variant()  # warm-up
        for _ in range(rounds):
            for name, run_variant in variants:
                start = time.process_time()
                await run_variant()
                best[name] = min(best[name], (time.process_time() - start) / calls)
    finally:
        await transport.close()
    base = best[variants[0][0]]
    return [CallRow(name, best[name] * 1e6, best[name] / base) for name, _ in variants]


def run(batch: int = 1000, rounds: int = 20, calls: int = 2000) -> tuple[list[Row], list[CallRow]]:
    with InstantEndpoint() as endpoint:
        return (
            asyncio.run(_cpu(endpoint, batch, rounds)),
            asyncio.run(_calls(endpoint, calls, rounds)),
        )


def render_calls(rows: list[CallRow]) -> str:
    width = max(len(row.variant) for row in rows)
    lines = [f"{'per GetItem':<{width}}  {'µs/call':>8}  {'ratio':>6}"]
    lines.append("-" * len(lines[0]))
    lines += [f"{r.variant:<{width}}  {r.us_per_call:>8.1f}  {r.ratio:>6.3f}" for r in rows]
    return "\n".join(lines)


def render(rows: list[Row]) -> str:
    width = max(len(row.variant) for row in rows)
    lines = [f"{'route':<12} {'variant':<{width}}  {'µs/req':>8}  {'+µs':>7}  {'ratio':>6}"]
    lines.append("-" * len(lines[0]))
    lines += [
        f"{row.route:<12} {row.variant:<{width}}  {row.us_per_request:>8.1f}  "
        f"{row.added_us:>+7.1f}  {row.ratio:>6.2f}"
        for row in rows
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer requests (a smoke run)")
    args = parser.parse_args(argv)
    rows, calls = run(batch=200, rounds=3, calls=300) if args.quick else run()
    print("CPU per request in process, best batch; ratios to the same stack without observer")
    print(render(rows))
    print()
    print("CPU per DynamoDB call (AiodynamoTransport, instant endpoint), best of rounds")
    print(render_calls(calls))


if __name__ == "__main__":
    main()
