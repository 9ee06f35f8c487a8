"""The Lambda resolvers: API Gateway authorizer context (v1, v2) and Lambda's tenant_id.

Driven two ways: with a scope that carries ``aws.event``/``aws.context`` directly, and
end to end through Mangum with real API Gateway event shapes.
"""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace
from typing import Any

import pytest
from mangum import Mangum
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Message

from lift_asgi.aws import AuthorizerResolver, LambdaTenantResolver
from lift_asgi.errors import ConfigurationError
from lift_asgi.tenancy import HeaderResolver, Tenant, TenantMiddleware, current_tenant


async def whoami(request: Request) -> JSONResponse:
    tenant = request.state.tenant
    ambient = current_tenant()
    return JSONResponse(
        {
            "id": tenant.id,
            "user": tenant.user,
            "plan": tenant.plan,
            "source": tenant.source,
            "claims": dict(tenant.claims),
            "context": ambient.id if ambient else None,
        }
    )


def make_app(**options: Any) -> Starlette:
    options.setdefault("resolvers", [AuthorizerResolver(), LambdaTenantResolver()])
    return Starlette(
        routes=[Route("/whoami", whoami)], middleware=[Middleware(TenantMiddleware, **options)]
    )


async def call(app: ASGIApp, event: Any = None, context: Any = None) -> tuple[int, Any]:
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "https",
        "path": "/whoami",
        "raw_path": None,
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"api.example.com")],
        "client": ("10.0.0.1", 0),
        "server": ("api.example.com", 443),
    }
    if event is not None:
        scope["aws.event"] = event
    if context is not None:
        scope["aws.context"] = context
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    status = sent[0]["status"]
    headers = dict(sent[0]["headers"])
    body = json.loads(b"".join(m.get("body", b"") for m in sent[1:]))
    if status >= 400:
        assert headers[b"content-type"] == b"application/problem+json"
        assert body["status"] == status
    return status, body


async def run_mangum(app: ASGIApp, event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Invoke ``Mangum(app)`` as Lambda would: in its own thread with its own event loop."""

    def invoke() -> dict[str, Any]:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            result: dict[str, Any] = Mangum(app, lifespan="off")(event, context)
            return result
        finally:
            asyncio.set_event_loop(None)
            loop.close()

    return await asyncio.to_thread(invoke)


def v1_event(authorizer: dict[str, Any]) -> dict[str, Any]:
    return {
        "resource": "/{proxy+}",
        "path": "/whoami",
        "httpMethod": "GET",
        "headers": {"Host": "api.example.com", "X-Forwarded-Proto": "https"},
        "multiValueHeaders": {
            "Host": ["api.example.com"],
            "X-Forwarded-Proto": ["https"],
        },
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": {"proxy": "whoami"},
        "stageVariables": None,
        "requestContext": {
            "resourcePath": "/{proxy+}",
            "httpMethod": "GET",
            "path": "/prod/whoami",
            "stage": "prod",
            "requestId": "req-1",
            "identity": {"sourceIp": "203.0.113.7"},
            "authorizer": authorizer,
        },
        "body": None,
        "isBase64Encoded": False,
    }


def v2_event(authorizer: dict[str, Any] | None) -> dict[str, Any]:
    context: dict[str, Any] = {
        "accountId": "123456789012",
        "apiId": "api-id",
        "domainName": "api.example.com",
        "http": {
            "method": "GET",
            "path": "/whoami",
            "protocol": "HTTP/1.1",
            "sourceIp": "203.0.113.7",
            "userAgent": "test",
        },
        "requestId": "req-2",
        "routeKey": "$default",
        "stage": "$default",
        "timeEpoch": 0,
    }
    if authorizer is not None:
        context["authorizer"] = authorizer
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": "/whoami",
        "rawQueryString": "",
        "headers": {"host": "api.example.com", "x-forwarded-proto": "https"},
        "requestContext": context,
        "isBase64Encoded": False,
    }


V1_LAMBDA = {"principalId": "user-9", "tenant_id": "acme", "plan": "pro", "integrationLatency": 5}
V1_COGNITO = {"claims": {"sub": "user-1", "tenant_id": "acme", "email": "a@b.c"}}
V2_JWT = {"jwt": {"claims": {"sub": "user-2", "tenant_id": "acme", "plan": "team"}, "scopes": []}}
V2_LAMBDA = {"lambda": {"tenant_id": "acme", "sub": "user-3", "plan": "free"}}

CASES = [
    pytest.param(v1_event(V1_LAMBDA), "user-9", "pro", id="v1-lambda-authorizer"),
    pytest.param(v1_event(V1_COGNITO), "user-1", None, id="v1-cognito-claims"),
    pytest.param(v2_event(V2_JWT), "user-2", "team", id="v2-jwt-claims"),
    pytest.param(v2_event(V2_LAMBDA), "user-3", "free", id="v2-lambda-context"),
]


@pytest.mark.parametrize(("event", "user", "plan"), CASES)
async def test_authorizer_context_from_scope(
    event: dict[str, Any], user: str, plan: str | None
) -> None:
    status, body = await call(make_app(), event)
    assert status == 200, body
    assert (body["id"], body["user"], body["plan"]) == ("acme", user, plan)
    assert body["source"] == "authorizer"
    assert body["context"] == "acme"
    assert body["claims"]["tenant_id"] == "acme"


@pytest.mark.parametrize(("event", "user", "plan"), CASES)
async def test_authorizer_context_through_mangum(
    event: dict[str, Any], user: str, plan: str | None
) -> None:
    result = await run_mangum(make_app(), event, SimpleNamespace())
    assert result["statusCode"] == 200, result
    body = json.loads(result["body"])
    assert (body["id"], body["user"], body["plan"]) == ("acme", user, plan)


@pytest.mark.parametrize(
    "event",
    [
        pytest.param(v1_event({"claims": {"tenant_id": "a#b"}}), id="v1-claims"),
        pytest.param(v1_event({"principalId": "u", "tenant_id": "a/b"}), id="v1-lambda"),
        pytest.param(v2_event({"jwt": {"claims": {"tenant_id": "tënant"}}}), id="v2-jwt"),
        pytest.param(v2_event({"lambda": {"tenant_id": ""}}), id="v2-lambda-empty"),
        pytest.param(v2_event({"lambda": {"tenant_id": ["acme"]}}), id="v2-lambda-list"),
    ],
)
async def test_malformed_authorizer_tenant_is_400(event: dict[str, Any]) -> None:
    status, _ = await call(make_app(), event)
    assert status == 400


@pytest.mark.parametrize(
    "event",
    [
        pytest.param(None, id="no-event"),
        pytest.param(v2_event(None), id="no-authorizer"),
        pytest.param(v2_event({"jwt": {"claims": {"sub": "u"}}}), id="no-tenant-claim"),
        pytest.param(v1_event({"principalId": "u"}), id="v1-without-tenant"),
        pytest.param(v2_event({"iam": {"accessKey": "AKIA"}}), id="iam-authorizer"),
    ],
)
async def test_no_authorizer_tenant_is_401(event: dict[str, Any] | None) -> None:
    status, body = await call(make_app(), event)
    assert status == 401
    assert body["title"] == "Unauthorized"


async def test_custom_authorizer_claim_names() -> None:
    resolver = AuthorizerResolver(tenant_claim="custom:org", user_claim="email", plan_claim=None)
    event = v1_event({"claims": {"custom:org": "globex", "email": "a@b.c", "plan": "x"}})
    status, body = await call(make_app(resolvers=[resolver]), event)
    assert status == 200
    assert (body["id"], body["user"], body["plan"]) == ("globex", "a@b.c", None)


async def test_lambda_tenant_isolation_context() -> None:
    app = make_app(resolvers=[LambdaTenantResolver()])
    status, body = await call(app, v2_event(None), SimpleNamespace(tenant_id="acme"))
    assert status == 200
    assert (body["id"], body["source"]) == ("acme", "lambda-tenant")

    status, _ = await call(app, v2_event(None), SimpleNamespace(tenant_id="a#b"))
    assert status == 400
    for context in (SimpleNamespace(), SimpleNamespace(tenant_id=None), None):
        status, _ = await call(app, v2_event(None), context)
        assert status == 401


async def test_lambda_tenant_through_mangum() -> None:
    app = make_app(resolvers=[LambdaTenantResolver()])
    result = await run_mangum(app, v2_event(None), SimpleNamespace(tenant_id="acme"))
    assert result["statusCode"] == 200, result
    assert json.loads(result["body"])["id"] == "acme"


async def test_authorizer_and_lambda_tenant_must_agree_in_consistency_mode() -> None:
    app = make_app(require_consistent=True)
    event = v2_event(V2_JWT)
    status, body = await call(app, event, SimpleNamespace(tenant_id="globex"))
    assert status == 403
    assert body["type"].endswith("tenant-mismatch")
    status, _ = await call(app, event, SimpleNamespace(tenant_id="acme"))
    assert status == 200


async def test_authorizer_first_then_header_fallback_locally() -> None:
    """Under uvicorn there is no aws.event: the next resolver answers."""
    app = make_app(resolvers=[AuthorizerResolver(), HeaderResolver()])
    resolver = AuthorizerResolver()
    assert await resolver.resolve({"type": "http", "headers": []}) is None
    assert await HeaderResolver().resolve(
        {"type": "http", "headers": [(b"x-tenant-id", b"acme")]}
    ) == Tenant("acme", source="header")
    status, _ = await call(app, v2_event(V2_JWT))
    assert status == 200


@pytest.mark.parametrize("option", ["tenant_claim", "user_claim", "plan_claim"])
def test_authorizer_configuration_errors(option: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        AuthorizerResolver(**{option: ""})
    assert caught.value.option == option


@pytest.mark.parametrize("make", [AuthorizerResolver, LambdaTenantResolver])
@pytest.mark.parametrize("name", [None, "", 3])
def test_a_resolver_name_is_a_non_empty_string(make: Any, name: Any) -> None:
    # it becomes Tenant.source and the logs' source: None or 3 was taken as it was
    with pytest.raises(ConfigurationError) as caught:
        make(name=name)
    assert caught.value.option == "name"
