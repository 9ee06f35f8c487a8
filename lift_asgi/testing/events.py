"""Lambda event builders and a fake context, for unit-testing a Lambda handler.

Each builder returns the event AWS sends for one HTTP request, in the shape Mangum reads::

    event = api_gateway_v2_event("POST", "/projects", json_body={"name": "x"},
                                 headers={"authorization": f"Bearer {token}"})
    response = handler(event, lambda_context(tenant_id="acme"))

- :func:`api_gateway_v1_event`: API Gateway REST API (payload format 1.0), with
  ``multiValueHeaders`` / ``multiValueQueryStringParameters``, ``identity.sourceIp`` and
  an optional authorizer context (``claims`` for Cognito/JWT authorizers, or flat keys
  for a Lambda authorizer).
- :func:`api_gateway_v2_event`: API Gateway HTTP API (payload format 2.0), with
  ``cookies``, ``http.sourceIp`` and ``authorizer.jwt.claims`` or ``authorizer.lambda``.
- :func:`function_url_event`: a Lambda function URL (payload format 2.0).
- :func:`alb_event`: an Application Load Balancer target event, optionally with
  multi-value headers enabled; the client address arrives only in ``X-Forwarded-For``.
- :func:`lambda_context`: a context object with the attributes Lambda provides,
  ``tenant_id`` included (Lambda tenant isolation mode).
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

__all__ = [
    "FakeLambdaContext",
    "alb_event",
    "api_gateway_v1_event",
    "api_gateway_v2_event",
    "function_url_event",
    "lambda_context",
]

QueryValue = str | Sequence[str]


@dataclass
class FakeLambdaContext:
    """What a Python Lambda handler receives as ``context``."""

    function_name: str = "lift-asgi-test"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 512
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_group_name: str = "/aws/lambda/lift-asgi-test"
    log_stream_name: str = "2026/01/01/[$LATEST]test"
    tenant_id: str | None = None
    deadline_ms: int = field(default_factory=lambda: int(time.time() * 1000) + 30_000)

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:us-east-1:123456789012:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self.deadline_ms - int(time.time() * 1000))


def lambda_context(*, tenant_id: str | None = None, **fields: Any) -> FakeLambdaContext:
    return FakeLambdaContext(tenant_id=tenant_id, **fields)


def _body(
    body: str | bytes | None, json_body: Any, base64_encode: bool
) -> tuple[str | None, bool, dict[str, str]]:
    extra: dict[str, str] = {}
    if json_body is not None:
        if body is not None:
            raise ValueError("pass body or json_body, not both")
        body = json.dumps(json_body)
        extra["content-type"] = "application/json"
    if body is None:
        return None, False, extra
    if isinstance(body, bytes) or base64_encode:
        raw = body if isinstance(body, bytes) else body.encode()
        return base64.b64encode(raw).decode(), True, extra
    return body, False, extra


def _headers(headers: Mapping[str, str] | None, extra: Mapping[str, str]) -> dict[str, str]:
    merged = {"host": "api.example.com", "user-agent": "lift-asgi-tests"}
    merged.update(extra)
    merged.update({k.lower(): v for k, v in (headers or {}).items()})
    return merged


def _query_lists(query: Mapping[str, QueryValue] | None) -> dict[str, list[str]]:
    return {k: [v] if isinstance(v, str) else list(v) for k, v in (query or {}).items()}


def api_gateway_v1_event(
    method: str = "GET",
    path: str = "/",
    *,
    query: Mapping[str, QueryValue] | None = None,
    headers: Mapping[str, str] | None = None,
    body: str | bytes | None = None,
    json_body: Any = None,
    base64_encode: bool = False,
    source_ip: str = "198.51.100.10",
    authorizer: Mapping[str, Any] | None = None,
    claims: Mapping[str, Any] | None = None,
    stage: str = "prod",
) -> dict[str, Any]:
    """A REST API (v1) proxy event. ``claims`` go to ``authorizer.claims`` (Cognito or
    JWT authorizers); ``authorizer`` is the flat context of a Lambda authorizer."""
    text, is_b64, extra = _body(body, json_body, base64_encode)
    all_headers = _headers(headers, extra)
    lists = _query_lists(query)
    context_authorizer: dict[str, Any] | None = None
    if authorizer is not None or claims is not None:
        context_authorizer = dict(authorizer or {})
        if claims is not None:
            context_authorizer["claims"] = dict(claims)
    return {
        "resource": "/{proxy+}",
        "path": path,
        "httpMethod": method.upper(),
        "headers": all_headers,
        "multiValueHeaders": {k: [v] for k, v in all_headers.items()},
        "queryStringParameters": {k: v[-1] for k, v in lists.items()} or None,
        "multiValueQueryStringParameters": lists or None,
        "pathParameters": {"proxy": path.lstrip("/")},
        "stageVariables": None,
        "requestContext": {
            "resourceId": "abc123",
            "resourcePath": "/{proxy+}",
            "httpMethod": method.upper(),
            "path": f"/{stage}{path}",
            "stage": stage,
            "requestId": str(uuid.uuid4()),
            "accountId": "123456789012",
            "apiId": "api1234567",
            "protocol": "HTTP/1.1",
            "requestTimeEpoch": int(time.time() * 1000),
            "identity": {"sourceIp": source_ip, "userAgent": all_headers["user-agent"]},
            **({"authorizer": context_authorizer} if context_authorizer is not None else {}),
        },
        "body": text,
        "isBase64Encoded": is_b64,
    }


def _v2(
    method: str,
    path: str,
    *,
    query: Mapping[str, QueryValue] | None,
    headers: Mapping[str, str] | None,
    cookies: Sequence[str] | None,
    body: str | bytes | None,
    json_body: Any,
    base64_encode: bool,
    source_ip: str,
    authorizer: Mapping[str, Any] | None,
    domain: str,
    route_key: str,
) -> dict[str, Any]:
    text, is_b64, extra = _body(body, json_body, base64_encode)
    all_headers = _headers(headers, extra)
    all_headers["host"] = domain
    lists = _query_lists(query)
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": path,
        "rawQueryString": urlencode([(k, v) for k, vs in lists.items() for v in vs]),
        "headers": all_headers,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": domain.split(".")[0],
            "domainName": domain,
            "domainPrefix": domain.split(".")[0],
            "http": {
                "method": method.upper(),
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": all_headers["user-agent"],
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": route_key,
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime()),
            "timeEpoch": int(time.time() * 1000),
        },
        "isBase64Encoded": is_b64,
    }
    if lists:
        event["queryStringParameters"] = {k: ",".join(v) for k, v in lists.items()}
    if cookies:
        event["cookies"] = list(cookies)
    if text is not None:
        event["body"] = text
    if authorizer is not None:
        event["requestContext"]["authorizer"] = dict(authorizer)
    return event


def api_gateway_v2_event(
    method: str = "GET",
    path: str = "/",
    *,
    query: Mapping[str, QueryValue] | None = None,
    headers: Mapping[str, str] | None = None,
    cookies: Sequence[str] | None = None,
    body: str | bytes | None = None,
    json_body: Any = None,
    base64_encode: bool = False,
    source_ip: str = "198.51.100.10",
    jwt_claims: Mapping[str, Any] | None = None,
    lambda_authorizer: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """An HTTP API (v2) event. ``jwt_claims`` → ``authorizer.jwt.claims`` (JWT
    authorizer); ``lambda_authorizer`` → ``authorizer.lambda`` (Lambda authorizer)."""
    authorizer: dict[str, Any] | None = None
    if jwt_claims is not None:
        authorizer = {"jwt": {"claims": dict(jwt_claims), "scopes": None}}
    if lambda_authorizer is not None:
        authorizer = {**(authorizer or {}), "lambda": dict(lambda_authorizer)}
    return _v2(
        method,
        path,
        query=query,
        headers=headers,
        cookies=cookies,
        body=body,
        json_body=json_body,
        base64_encode=base64_encode,
        source_ip=source_ip,
        authorizer=authorizer,
        domain="api1234567.execute-api.us-east-1.amazonaws.com",
        route_key="$default",
    )


def function_url_event(
    method: str = "GET",
    path: str = "/",
    *,
    query: Mapping[str, QueryValue] | None = None,
    headers: Mapping[str, str] | None = None,
    cookies: Sequence[str] | None = None,
    body: str | bytes | None = None,
    json_body: Any = None,
    base64_encode: bool = False,
    source_ip: str = "198.51.100.10",
) -> dict[str, Any]:
    """A Lambda function URL event (payload 2.0, no authorizer context)."""
    return _v2(
        method,
        path,
        query=query,
        headers=headers,
        cookies=cookies,
        body=body,
        json_body=json_body,
        base64_encode=base64_encode,
        source_ip=source_ip,
        authorizer=None,
        domain="abcdefghij.lambda-url.us-east-1.on.aws",
        route_key="$default",
    )


def alb_event(
    method: str = "GET",
    path: str = "/",
    *,
    query: Mapping[str, QueryValue] | None = None,
    headers: Mapping[str, str] | None = None,
    body: str | bytes | None = None,
    json_body: Any = None,
    base64_encode: bool = False,
    forwarded_for: str = "198.51.100.10",
    multi_value: bool = False,
) -> dict[str, Any]:
    """An ALB target event. The ALB appends the peer it saw to ``X-Forwarded-For``, so
    the right-most entry is the one it vouches for; pass the whole chain."""
    text, is_b64, extra = _body(body, json_body, base64_encode)
    all_headers = _headers(
        headers, {**extra, "x-forwarded-for": forwarded_for, "x-forwarded-proto": "https"}
    )
    lists = _query_lists(query)
    event: dict[str, Any] = {
        "requestContext": {
            "elb": {
                "targetGroupArn": "arn:aws:elasticloadbalancing:us-east-1:123456789012:"
                "targetgroup/lift-asgi/0123456789abcdef"
            }
        },
        "httpMethod": method.upper(),
        "path": path,
        "body": text or "",
        "isBase64Encoded": is_b64,
    }
    if multi_value:
        event["multiValueHeaders"] = {k: [v] for k, v in all_headers.items()}
        event["multiValueQueryStringParameters"] = lists
    else:
        event["headers"] = all_headers
        event["queryStringParameters"] = {k: v[-1] for k, v in lists.items()}
    return event
