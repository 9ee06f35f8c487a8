"""OpenTelemetry for the suite: a client span per DynamoDB call, the request's span, metrics.

Imported only when :class:`~lift_asgi.observe.RequestObserver` is given ``otel=True``;
it needs ``opentelemetry-api`` alone (``pip install lift-asgi[otel]``). Without an SDK
installed every call below is the API's no-op; with one, spans and metrics go wherever
its providers send them.

Spans follow the semantic conventions for AWS SDK and DynamoDB client spans:
``DynamoDB.<Operation>`` of kind CLIENT with ``rpc.system = "aws-api"``,
``rpc.service = "DynamoDB"``, ``rpc.method``, ``db.system.name = "aws.dynamodb"``,
``aws.dynamodb.table_names``, ``aws.dynamodb.consumed_capacity`` (one JSON string per
entry), and, where the request or answer has them, ``aws.dynamodb.consistent_read``,
``aws.dynamodb.index_name``, ``aws.dynamodb.limit``, ``aws.dynamodb.projection``,
``aws.dynamodb.select``, ``aws.dynamodb.count``, ``aws.dynamodb.scanned_count``. Never a
key, an item or an expression value.

The request's span is the one already current (OpenTelemetry's ASGI instrumentation
outside, say); without one, a SERVER span ``"{method} {route}"`` is started, continuing
an incoming ``traceparent``. It gets ``lift.request_id``, ``lift.tenant.id``,
``lift.ratelimit.outcome``/``.rule``, ``lift.uow.commit`` and the request's DynamoDB
figures as attributes, and the rate-limit decision and commit as events.

Metrics (the tenant id is added as ``lift.tenant.id`` only with ``tenant_in_metrics``):

- ``lift.ratelimit.decisions`` {decision}: ``lift.ratelimit.rule``,
  ``lift.ratelimit.outcome`` (admitted, refused, blocked, degraded, ...);
- ``lift.uow.commits`` {commit}: ``lift.uow.outcome`` (committed, conflict, failed,
  discarded);
- ``lift.dynamodb.throttles``, ``lift.dynamodb.retries``, ``lift.dynamodb.cancellations``
  {call}: ``db.operation.name``;
- ``db.client.operation.duration`` (s, histogram): ``db.system.name``,
  ``db.operation.name``, ``error.type`` on failures;
- ``lift.dynamodb.consumed_capacity`` {capacity_unit}: ``db.operation.name``,
  ``lift.dynamodb.capacity`` (read, write).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

from opentelemetry import context as otel_context
from opentelemetry import metrics, propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from starlette.types import Scope

from lift_asgi.observe.cost import RequestCost, capacity, table_names
from lift_asgi.observe.ids import RequestIds, current_ids

__all__ = ["Telemetry"]

_SCOPE_NAME: Final = "lift_asgi"
_SYSTEM: Final = "aws.dynamodb"
_REQUEST_ATTRIBUTES: Final = (
    ("ConsistentRead", "aws.dynamodb.consistent_read"),
    ("IndexName", "aws.dynamodb.index_name"),
    ("Limit", "aws.dynamodb.limit"),
    ("ProjectionExpression", "aws.dynamodb.projection"),
    ("Select", "aws.dynamodb.select"),
    ("ScanIndexForward", "aws.dynamodb.scan_forward"),
)


class _RequestSpan:
    __slots__ = ("own", "span", "token")

    def __init__(self, span: Any, own: bool, token: Any) -> None:
        self.span = span
        self.own = own
        self.token = token


class Telemetry:
    """The tracer, the meter's instruments, and what they record (built once)."""

    def __init__(
        self,
        *,
        tracer_provider: Any = None,
        meter_provider: Any = None,
        tenant_in_metrics: bool = False,
    ) -> None:
        from lift_asgi._version import __version__

        self.tracer = trace.get_tracer(_SCOPE_NAME, __version__, tracer_provider=tracer_provider)
        meter = metrics.get_meter(_SCOPE_NAME, __version__, meter_provider=meter_provider)
        self.tenant_in_metrics = tenant_in_metrics
        self.decisions = meter.create_counter(
            "lift.ratelimit.decisions", unit="{decision}", description="Rate-limit decisions"
        )
        self.commits = meter.create_counter(
            "lift.uow.commits", unit="{commit}", description="Unit-of-work outcomes"
        )
        self.throttles = meter.create_counter(
            "lift.dynamodb.throttles", unit="{call}", description="DynamoDB calls throttled"
        )
        self.retries = meter.create_counter(
            "lift.dynamodb.retries", unit="{call}", description="DynamoDB calls that retried"
        )
        self.cancellations = meter.create_counter(
            "lift.dynamodb.cancellations",
            unit="{call}",
            description="DynamoDB transactions cancelled",
        )
        self.duration = meter.create_histogram(
            "db.client.operation.duration", unit="s", description="DynamoDB call duration"
        )
        self.capacity = meter.create_counter(
            "lift.dynamodb.consumed_capacity",
            unit="{capacity_unit}",
            description="DynamoDB capacity units consumed",
        )

    def _with_tenant(self, attributes: dict[str, Any], tenant: str | None) -> dict[str, Any]:
        if self.tenant_in_metrics and tenant is not None:
            attributes["lift.tenant.id"] = tenant
        return attributes

    # -- DynamoDB calls (lift_asgi.observe.cost.CallTelemetry) ----------------------------

    def call_started(self, action: str, payload: Mapping[str, Any]) -> Any:
        attributes: dict[str, Any] = {
            "rpc.system": "aws-api",
            "rpc.service": "DynamoDB",
            "rpc.method": action,
            "db.system.name": _SYSTEM,
            "db.operation.name": action,
            "aws.dynamodb.table_names": table_names(action, payload),
        }
        for field, attribute in _REQUEST_ATTRIBUTES:
            value = payload.get(field)
            if isinstance(value, str | bool | int):
                attributes[attribute] = value
        return self.tracer.start_span(
            f"DynamoDB.{action}", kind=SpanKind.CLIENT, attributes=attributes
        )

    def call_ended(
        self,
        handle: Any,
        action: str,
        seconds: float,
        answer: Mapping[str, Any] | None,
        error: BaseException | None,
        retry: bool,
    ) -> None:
        span = handle
        ids = current_ids() if self.tenant_in_metrics else None
        tenant = ids.tenant if ids is not None else None
        operation = self._with_tenant({"db.operation.name": action}, tenant)
        duration: dict[str, Any] = {"db.system.name": _SYSTEM, **operation}
        if retry:
            span.set_attribute("lift.dynamodb.retry", True)
            self.retries.add(1, operation)
        if error is not None:
            kind = getattr(error, "aws_code", None) or type(error).__name__
            duration["error.type"] = kind
            span.set_attribute("error.type", kind)
            span.set_status(Status(StatusCode.ERROR, kind))
            from lift_asgi.errors import DynamoDBThrottled, TransactionCancelled

            if isinstance(error, DynamoDBThrottled):
                self.throttles.add(1, operation)
            elif isinstance(error, TransactionCancelled):
                self.cancellations.add(1, operation)
        elif answer is not None:
            consumed = answer.get("ConsumedCapacity")
            if consumed is not None:
                entries = consumed if isinstance(consumed, list) else [consumed]
                span.set_attribute(
                    "aws.dynamodb.consumed_capacity",
                    [json.dumps(entry, separators=(",", ":")) for entry in entries],
                )
                read, write = capacity(action, consumed)
                if read:
                    self.capacity.add(read, {**operation, "lift.dynamodb.capacity": "read"})
                if write:
                    self.capacity.add(write, {**operation, "lift.dynamodb.capacity": "write"})
            for field, attribute in (
                ("Count", "aws.dynamodb.count"),
                ("ScannedCount", "aws.dynamodb.scanned_count"),
            ):
                value = answer.get(field)
                if isinstance(value, int):
                    span.set_attribute(attribute, value)
        self.duration.record(seconds, duration)
        span.end()

    # -- the request ------------------------------------------------------------------------

    def request_started(self, scope: Scope, route: str | None) -> _RequestSpan:
        current = trace.get_current_span()
        if current.is_recording():
            return _RequestSpan(current, False, None)
        carrier = {
            key.decode("latin-1"): value.decode("latin-1")
            for key, value in scope.get("headers", ())
            if key in (b"traceparent", b"tracestate")
        }
        parent = propagate.extract(carrier) if carrier else None
        method = scope["method"]
        span = self.tracer.start_span(
            f"{method} {route}" if route and route != "*" else method,
            context=parent,
            kind=SpanKind.SERVER,
            attributes={
                "http.request.method": method,
                "http.route": route or "",
                "url.scheme": scope.get("scheme", "http"),
            },
        )
        token = otel_context.attach(trace.set_span_in_context(span))
        return _RequestSpan(span, True, token)

    def request_ended(
        self,
        handle: _RequestSpan,
        ids: RequestIds,
        fields: Mapping[str, Any],
        cost: RequestCost | None,
    ) -> None:
        span = handle.span
        tenant = ids.tenant
        status = fields["status"]
        attributes: dict[str, Any] = {"lift.request_id": ids.request_id}
        if tenant is not None:
            attributes["lift.tenant.id"] = tenant
        if cost is not None:
            attributes["lift.dynamodb.calls"] = cost.calls
            attributes["lift.dynamodb.read_units"] = cost.read_units
            attributes["lift.dynamodb.write_units"] = cost.write_units
        rate_limit = fields.get("rate_limit")
        if rate_limit is not None:
            outcome, rule = rate_limit["outcome"], rate_limit["rule"]
            attributes["lift.ratelimit.outcome"] = outcome
            event = {"lift.ratelimit.outcome": outcome}
            if rule is not None:
                attributes["lift.ratelimit.rule"] = rule
                event["lift.ratelimit.rule"] = rule
            span.add_event("lift.ratelimit.decision", event)
            self.decisions.add(
                1,
                self._with_tenant(
                    {"lift.ratelimit.outcome": outcome, "lift.ratelimit.rule": rule or ""}, tenant
                ),
            )
        commit = fields.get("commit")
        if commit is not None:
            attributes["lift.uow.commit"] = commit
            if commit != "none":
                span.add_event("lift.uow.commit", {"lift.uow.outcome": commit})
                self.commits.add(1, self._with_tenant({"lift.uow.outcome": commit}, tenant))
        span.set_attributes(attributes)
        if handle.own:
            if status is not None:
                span.set_attribute("http.response.status_code", status)
            if status is None or status >= 500:
                span.set_status(Status(StatusCode.ERROR))
            otel_context.detach(handle.token)
            span.end()
