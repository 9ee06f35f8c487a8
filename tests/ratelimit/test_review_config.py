"""Options that must be refused when the middleware or the storage is built, naming the
option."""

from __future__ import annotations

import math
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from lift_asgi.errors import ConfigurationError
from lift_asgi.ratelimit import AsyncDynamoDBStorage, RateLimitMiddleware


async def _ok(request: Any) -> JSONResponse:
    return JSONResponse({"ok": True})


def _app(**options: Any) -> RateLimitMiddleware:
    options.setdefault("limit", "10/minute")
    return RateLimitMiddleware(Starlette(routes=[Route("/a", _ok)]), **options)


@pytest.mark.parametrize(
    ("query", "option"),
    [
        ("lease_max=abc", "lease_max"),
        ("lease_max=1.5", "lease_max"),
        ("lease_horizon=abc", "lease_horizon"),
        ("lease_horizon=nan", "lease_horizon"),
        ("lease_horizon=inf", "lease_horizon"),
    ],
)
def test_a_bad_lease_option_in_the_uri_is_named(query: str, option: str) -> None:
    uri = f"async+dynamodb://t?{query}&endpoint_url=http://127.0.0.1:1"
    with pytest.raises(ConfigurationError) as info:
        AsyncDynamoDBStorage(uri, transport=object())  # type: ignore[arg-type]
    assert info.value.option == option
    with pytest.raises(ConfigurationError) as through:  # the middleware names its storage
        _app(storage=uri)
    assert through.value.option == "storage"
    assert str(through.value).startswith(f"storage: {option}: ")


@pytest.mark.parametrize(
    ("options", "option"),
    [
        ({"lease_max": 1.5}, "lease_max"),
        ({"lease_max": True}, "lease_max"),
        ({"lease_horizon": math.nan}, "lease_horizon"),
        ({"lease_horizon": math.inf}, "lease_horizon"),
        ({"lease_horizon": True}, "lease_horizon"),
    ],
)
def test_a_bad_lease_option_as_an_argument_is_named(options: dict[str, Any], option: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        AsyncDynamoDBStorage(table="t", transport=object(), **options)  # type: ignore[arg-type]
    assert info.value.option == option


@pytest.mark.parametrize(
    ("options", "option"),
    [
        ({"timeout": math.nan}, "timeout"),
        ({"timeout": math.inf}, "timeout"),
        ({"timeout": -math.inf}, "timeout"),
        ({"warn_interval": math.nan}, "warn_interval"),
        ({"warn_interval": math.inf}, "warn_interval"),
        ({"unavailable_retry_after": True}, "unavailable_retry_after"),
        ({"blocked_cache_size": True}, "blocked_cache_size"),
    ],
)
def test_numbers_that_are_not_finite_seconds_are_refused(
    options: dict[str, Any], option: str
) -> None:
    with pytest.raises(ConfigurationError) as info:
        _app(**options)
    assert info.value.option == option


def test_finite_seconds_are_still_accepted() -> None:
    limiter = _app(timeout=0.25, warn_interval=0, unavailable_retry_after=1)
    assert limiter.stats.admitted == 0
    AsyncDynamoDBStorage(
        "async+dynamodb://t?lease_horizon=0.5&lease_max=7",
        transport=object(),  # type: ignore[arg-type]
    )
