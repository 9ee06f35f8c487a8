"""One trusted-proxy object for the Lambda handler and the rate limiter's ``"ip"`` key.

The handler reads an ALB event's ``X-Forwarded-For`` once, into ``scope["client"]``;
the ``"ip"`` key takes that client (it walks the header again only when its own list
trusts the hop the handler stopped at). Each case runs real Mangum through
:class:`~lift_asgi.aws.LambdaHandler` in front of a real rate limiter.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import lift_asgi._net as net
from lift_asgi._net import TrustedProxies
from lift_asgi.aws import LambdaHandler
from lift_asgi.errors import ConfigurationError
from lift_asgi.ratelimit import ClientIP, RateLimitMiddleware
from lift_asgi.testing import alb_event, api_gateway_v2_event

CDN = "10.0.0.0/8"


def _app(trusted: Any) -> Starlette:
    async def client(request: Request) -> JSONResponse:
        return JSONResponse({"client": request.client.host if request.client else None})

    return Starlette(
        routes=[Route("/", client)],
        middleware=[
            Middleware(RateLimitMiddleware, limit="1/minute", key="ip", trusted_proxies=trusted)
        ],
    )


@pytest.fixture
def walks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every ``X-Forwarded-For`` value a TrustedProxies walks."""
    seen: list[str] = []
    real = net.forwarded_client

    def counting(forwarded: str, trusts: Callable[[str], bool]) -> str | None:
        seen.append(forwarded)
        return real(forwarded, trusts)

    monkeypatch.setattr(net, "forwarded_client", counting)
    return seen


@pytest.fixture
def lambda_app() -> Iterator[Callable[..., Callable[[dict[str, Any]], dict[str, Any]]]]:
    handlers: list[LambdaHandler] = []

    def build(handler_trusts: Any, limiter_trusts: Any) -> Callable[[dict[str, Any]], Any]:
        handler = LambdaHandler(_app(limiter_trusts), trusted_proxies=handler_trusts)
        handlers.append(handler)
        return lambda event: handler(event, None)

    yield build
    for handler in handlers:
        handler.close()


def test_one_list_is_one_object() -> None:
    one = TrustedProxies.of([CDN, "192.0.2.1"])
    assert TrustedProxies.of(" 192.0.2.1 , 10.0.0.0/8") is one  # any order or spelling
    assert TrustedProxies.of(one) is one
    assert TrustedProxies.of([CDN]) is not one
    assert TrustedProxies.of("*") is TrustedProxies.of(["*"])
    assert ClientIP([CDN, "192.0.2.1"]).proxies is one
    handler = LambdaHandler(_app(()), trusted_proxies=("192.0.2.1", CDN))
    try:
        assert handler._proxies is one
    finally:
        handler.close()


def test_a_bad_list_still_names_its_option() -> None:
    with pytest.raises(ConfigurationError, match="trusted_proxies"):
        TrustedProxies.of(["not-an-address"])
    with pytest.raises(ConfigurationError, match="trusted_proxies"):
        LambdaHandler(_app(()), trusted_proxies=["10.0.0.0/33"])


def test_the_same_list_walks_the_header_once(lambda_app: Any, walks: list[str]) -> None:
    invoke = lambda_app([CDN], [CDN])
    answer = invoke(alb_event("GET", "/", forwarded_for="6.6.6.6, 203.0.113.7, 10.0.0.5"))
    assert answer["statusCode"] == 200
    assert walks == ["6.6.6.6, 203.0.113.7, 10.0.0.5"], "the handler's walk, and no other"
    again = invoke(alb_event("GET", "/", forwarded_for="7.7.7.7, 203.0.113.7, 10.0.0.9"))
    assert again["statusCode"] == 429, "the same client behind a new made-up prefix"


def test_the_limiter_keys_the_client_the_handler_read(lambda_app: Any, walks: list[str]) -> None:
    """Only the handler names the CDN: the limiter keys the client behind it, not the CDN
    hop (every client would share the CDN's budget)."""
    invoke = lambda_app([CDN], ())
    first = invoke(alb_event("GET", "/", forwarded_for="203.0.113.7, 10.0.0.5"))
    assert first["statusCode"] == 200
    assert invoke(alb_event("GET", "/", forwarded_for="203.0.113.8, 10.0.0.5"))["statusCode"] == 200
    assert invoke(alb_event("GET", "/", forwarded_for="203.0.113.7, 10.0.0.6"))["statusCode"] == 429
    assert len(walks) == 3, "one walk per request"


def test_a_wider_limiter_list_walks_further(lambda_app: Any, walks: list[str]) -> None:
    """Only the limiter names the CDN: the handler stops at the CDN hop, which the limiter
    trusts, so it reads the header with its own list (as it did before the handler)."""
    invoke = lambda_app((), [CDN])
    first = invoke(alb_event("GET", "/", forwarded_for="203.0.113.7, 10.0.0.5"))
    assert first["statusCode"] == 200
    assert invoke(alb_event("GET", "/", forwarded_for="203.0.113.8, 10.0.0.5"))["statusCode"] == 200
    assert invoke(alb_event("GET", "/", forwarded_for="6.6.6.6, 203.0.113.7"))["statusCode"] == 429


def test_api_gateway_events_keep_their_source_ip(lambda_app: Any, walks: list[str]) -> None:
    """No ALB, no walk: the source IP API Gateway saw is the client, whatever the header
    says, even under ``"*"``."""
    invoke = lambda_app("*", "*")
    for spoofed in ("6.6.6.6", "7.7.7.7"):
        event = api_gateway_v2_event(
            "GET", "/", source_ip="192.0.2.44", headers={"x-forwarded-for": spoofed}
        )
        status = invoke(event)["statusCode"]
        assert status == (200 if spoofed == "6.6.6.6" else 429)
    assert walks == []
