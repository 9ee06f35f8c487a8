"""OpenTelemetry, through the SDK's in-memory exporters: a client span per DynamoDB call
(semantic conventions), the request's span with tenant, decision and commit, and the
metrics, on a successful commit, a conflict, a refusal and a throttle from the proxy."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from lift_asgi.dynamo.tables import TableSpec
from lift_asgi.testing import FaultProxy
from tests.observe.conftest import bearer, client


class Telemetry:
    def __init__(self) -> None:
        self.spans = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])

    def options(self, **more: Any) -> dict[str, Any]:
        return {
            "otel": True,
            "tracer_provider": self.tracer_provider,
            "meter_provider": self.meter_provider,
            **more,
        }

    def finished(self) -> list[ReadableSpan]:
        return list(self.spans.get_finished_spans())

    def server(self) -> list[ReadableSpan]:
        return [s for s in self.finished() if s.kind is SpanKind.SERVER]

    def calls(self, name: str | None = None) -> list[ReadableSpan]:
        return [
            s
            for s in self.finished()
            if s.kind is SpanKind.CLIENT and (name is None or s.name == name)
        ]

    def points(self, metric: str) -> list[tuple[dict[str, Any], Any]]:
        data = self.reader.get_metrics_data()
        found = []
        for resource in data.resource_metrics if data else ():
            for scope in resource.scope_metrics:
                for item in scope.metrics:
                    if item.name == metric:
                        for point in item.data.data_points:
                            value = getattr(point, "value", None)
                            if value is None:
                                value = point.count
                            found.append((dict(point.attributes or {}), value))
        return found

    def total(self, metric: str, **attributes: Any) -> Any:
        return sum(
            value
            for attrs, value in self.points(metric)
            if all(attrs.get(key) == want for key, want in attributes.items())
        )


@pytest.fixture
def otel() -> Telemetry:
    return Telemetry()


async def test_a_successful_commit(
    make_stack: Any, otel: Telemetry, dynamodb_table: TableSpec
) -> None:
    app, _ = make_stack(observe=otel.options())
    async with client(app) as http:
        response = await http.put("/projects/p1", json={"name": "A"}, headers=bearer())
    assert response.status_code == 200, response.text
    (server,) = otel.server()
    assert server.name == "PUT /projects/{project_id}"
    attributes = dict(server.attributes or {})
    assert attributes["http.route"] == "/projects/{project_id}"
    assert attributes["http.response.status_code"] == 200
    assert attributes["lift.tenant.id"] == "acme"
    assert attributes["lift.request_id"] == response.headers["x-request-id"]
    assert attributes["lift.uow.commit"] == "committed"
    assert [e.name for e in server.events if e.name == "lift.uow.commit"] == ["lift.uow.commit"]

    (put,) = otel.calls("DynamoDB.PutItem")
    call = dict(put.attributes or {})
    assert (call["rpc.system"], call["rpc.service"], call["rpc.method"]) == (
        "aws-api",
        "DynamoDB",
        "PutItem",
    )
    assert call["db.system.name"] == "aws.dynamodb"
    assert list(call["aws.dynamodb.table_names"]) == [dynamodb_table.name]
    consumed = [json.loads(entry) for entry in call["aws.dynamodb.consumed_capacity"]]
    assert consumed[0]["TableName"] == dynamodb_table.name
    assert put.parent is not None and put.parent.span_id == server.context.span_id
    assert put.context.trace_id == server.context.trace_id
    assert all(s.parent is not None for s in otel.calls())  # every call under the request
    assert attributes["lift.dynamodb.calls"] == len(otel.calls())
    assert otel.total("lift.uow.commits", **{"lift.uow.outcome": "committed"}) == 1
    assert otel.total("db.client.operation.duration", **{"db.operation.name": "PutItem"}) == 1
    assert otel.total("lift.dynamodb.consumed_capacity", **{"lift.dynamodb.capacity": "write"}) > 0
    # The tenant is no metric attribute unless asked for.
    for metric in ("lift.uow.commits", "db.client.operation.duration"):
        assert all("lift.tenant.id" not in attrs for attrs, _ in otel.points(metric))


async def test_a_conflict(make_stack: Any, otel: Telemetry) -> None:
    app, _ = make_stack(observe=otel.options())
    async with client(app) as http:
        await http.put("/projects/p1", json={"name": "A"}, headers=bearer())
        response = await http.put("/projects/p1", json={"name": "B"}, headers=bearer())
    assert response.status_code == 409
    second = otel.server()[-1]
    assert dict(second.attributes or {})["lift.uow.commit"] == "conflict"
    events = [e for e in second.events if e.name == "lift.uow.commit"]
    assert [dict(e.attributes or {}) for e in events] == [{"lift.uow.outcome": "conflict"}]
    failed = [s for s in otel.calls("DynamoDB.PutItem") if s.status.status_code is StatusCode.ERROR]
    assert len(failed) == 1
    assert dict(failed[0].attributes or {})["error.type"] == "ConditionalCheckFailedException"
    assert otel.total("lift.uow.commits", **{"lift.uow.outcome": "conflict"}) == 1
    assert otel.total("lift.uow.commits", **{"lift.uow.outcome": "committed"}) == 1


async def test_a_throttle_injected_by_the_proxy(
    make_stack: Any, otel: Telemetry, dynamodb_fault_proxy: FaultProxy
) -> None:
    app, _ = make_stack(dynamodb_fault_proxy.endpoint, observe=otel.options())
    dynamodb_fault_proxy.throttle(times=1, operation="PutItem")
    async with client(app) as http:
        response = await http.put("/projects/p1", json={"name": "A"}, headers=bearer())
    assert response.status_code == 200, response.text
    throttled, retried = otel.calls("DynamoDB.PutItem")
    assert throttled.status.status_code is StatusCode.ERROR
    assert dict(throttled.attributes or {})["error.type"] == (
        "ProvisionedThroughputExceededException"
    )
    assert dict(retried.attributes or {})["lift.dynamodb.retry"] is True
    assert otel.total("lift.dynamodb.throttles", **{"db.operation.name": "PutItem"}) == 1
    assert otel.total("lift.dynamodb.retries", **{"db.operation.name": "PutItem"}) == 1
    assert otel.total("lift.uow.commits", **{"lift.uow.outcome": "committed"}) == 1
    durations = otel.points("db.client.operation.duration")
    put_points = {
        a.get("error.type"): count for a, count in durations if a["db.operation.name"] == "PutItem"
    }
    assert put_points == {"ProvisionedThroughputExceededException": 1, None: 1}


async def test_a_refusal(make_stack: Any, otel: Telemetry) -> None:
    app, _ = make_stack(limit="1/minute", observe=otel.options(tenant_in_metrics=True))
    async with client(app) as http:
        admitted = await http.get("/whoami", headers=bearer("solo"))
        refused = await http.get("/whoami", headers=bearer("solo"))
    assert (admitted.status_code, refused.status_code) == (200, 429)
    first, second = otel.server()
    assert dict(second.attributes or {})["http.response.status_code"] == 429
    assert dict(second.attributes or {})["lift.tenant.id"] == "solo"
    # Asked for: the tenant is on the metrics (here the rate limiter's calls' latency).
    durations = otel.points("db.client.operation.duration")
    assert durations and all(attrs["lift.tenant.id"] == "solo" for attrs, _ in durations)
    if "lift.ratelimit.outcome" not in dict(first.attributes or {}):
        pytest.skip("the rate-limit stage does not report its decision (context.rate_limit)")
    assert dict(first.attributes or {})["lift.ratelimit.outcome"] == "admitted"
    assert dict(second.attributes or {})["lift.ratelimit.outcome"] in ("refused", "blocked")
    assert [e.name for e in second.events] == ["lift.ratelimit.decision"]
    refusals = otel.total("lift.ratelimit.decisions", **{"lift.ratelimit.outcome": "refused"})
    blocked = otel.total("lift.ratelimit.decisions", **{"lift.ratelimit.outcome": "blocked"})
    assert refusals + blocked == 1
    assert otel.total("lift.ratelimit.decisions", **{"lift.tenant.id": "solo"}) == 2


async def test_an_outer_span_is_used_not_a_new_one(make_stack: Any, otel: Telemetry) -> None:
    app, _ = make_stack(observe=otel.options())
    tracer = otel.tracer_provider.get_tracer("outer")
    async with client(app) as http:
        with tracer.start_as_current_span("outer", kind=SpanKind.SERVER):
            response = await http.get("/whoami", headers=bearer())
    assert response.status_code == 200
    (outer,) = otel.server()
    assert outer.name == "outer"
    assert dict(outer.attributes or {})["lift.tenant.id"] == "acme"
    assert all(s.parent is not None and s.parent.span_id == outer.context.span_id
               for s in otel.calls())  # fmt: skip


def test_lift_asgi_never_imports_opentelemetry_unless_asked() -> None:
    code = (
        "import sys, lift_asgi, lift_asgi.observe, lift_asgi.dynamo.transport\n"
        "from lift_asgi.observe import RequestObserver\n"
        "RequestObserver(lambda s, r, x: None)\n"
        "assert not [m for m in sys.modules if m.startswith('opentelemetry')], 'imported'\n"
        "RequestObserver(lambda s, r, x: None, otel=True)\n"
        "assert 'opentelemetry.trace' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


class _Decision:
    def __init__(self, outcome: str, rule: str) -> None:
        self.outcome, self.rule = outcome, rule


@pytest.mark.parametrize(
    "reported",
    [
        {"outcome": "degraded", "rule": "per-tenant"},
        _Decision("degraded", "per-tenant"),
    ],
)
async def test_the_decision_in_the_stage_contract_reaches_span_metrics_and_record(
    reported: Any, otel: Telemetry, records: Any
) -> None:
    from starlette.types import Receive, Scope, Send

    from lift_asgi.observe import RequestObserver
    from lift_asgi.stages import RATE_LIMIT, enter

    async def limiter(scope: Scope, receive: Receive, send: Send) -> None:
        enter(scope, RATE_LIMIT).rate_limit = reported  # what the rate-limit stage reports
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async with client(RequestObserver(limiter, **otel.options())) as http:
        assert (await http.get("/")).status_code == 200
    (server,) = otel.server()
    attributes = dict(server.attributes or {})
    assert (attributes["lift.ratelimit.outcome"], attributes["lift.ratelimit.rule"]) == (
        "degraded",
        "per-tenant",
    )
    (event,) = [e for e in server.events if e.name == "lift.ratelimit.decision"]
    assert dict(event.attributes or {})["lift.ratelimit.outcome"] == "degraded"
    assert (
        otel.total(
            "lift.ratelimit.decisions",
            **{"lift.ratelimit.outcome": "degraded", "lift.ratelimit.rule": "per-tenant"},
        )
        == 1
    )
    (line,) = records.requests()
    assert line["rate_limit"] == {"outcome": "degraded", "rule": "per-tenant"}


def test_a_bare_core_decision_reads_as_admitted_or_refused() -> None:
    from lift_asgi.observe.record import rate_limit_fields
    from lift_asgi.ratelimit.core import Decision

    assert rate_limit_fields(Decision(True, 0, 4, 60.0, 0.0, 0.0)) == ("admitted", None)
    assert rate_limit_fields(Decision(False, 0, 0, 60.0, 3.0, 0.0)) == ("refused", None)
    assert rate_limit_fields("blocked") == ("blocked", None)
    assert rate_limit_fields(None) == (None, None)
