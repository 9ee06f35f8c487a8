"""Options the rate limiter used to accept and then ignore or misread: each is refused
where it is written, naming the option."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.applications import Starlette

from lift_asgi.errors import ConfigurationError
from lift_asgi.ratelimit import MemoryBackend, RateLimitMiddleware


@pytest.mark.parametrize(
    ("options", "option"),
    [
        ({"limit": "10 per 0 second"}, "limit"),  # limits reads the 0 as 1 second
        ({"limit": "10/0 minutes"}, "limit"),
        ({"ipv6_prefix": True}, "ipv6_prefix"),
        ({"methods": ["GET POST"]}, "methods"),
        ({"methods": [1]}, "methods"),
        ({"routes": ["/p/{id"]}, "routes"),  # an unclosed parameter matched nothing
        ({"routes": ["/p/{id:nope}"]}, "routes"),
        ({"storage": "memory://?max_key=5"}, "storage"),
        ({"storage": "memory://?max_keys=x"}, "storage"),
        ({"router": 42}, "router"),
        ({"headers": "no"}, "headers"),  # was read as True
        # past 38 digits every DynamoDB update failed: counted in process forever, or 503s
        ({"limit": "1" + "0" * 38 + "/second"}, "limit"),
        ({"limit": {"pro": "1" + "0" * 40 + "/day", "default": "10/day"}}, "limit"),
        ({"methods": 5}, "methods"),  # TypeError: 'int' object is not iterable
        ({"routes": 5}, "routes"),
        ({"timeout": 10**400}, "timeout"),  # OverflowError
        ({"warn_interval": 10**400}, "warn_interval"),
    ],
)
def test_a_bad_option_is_refused_naming_it(options: dict[str, Any], option: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        RateLimitMiddleware(Starlette(), **{"limit": "10/minute", **options})
    assert caught.value.option == option


def test_memory_uri_takes_max_keys() -> None:
    limiter = RateLimitMiddleware(Starlette(), limit="10/minute", storage="memory://?max_keys=5")
    assert isinstance(limiter.backend, MemoryBackend)
    assert limiter.backend.max_keys == 5


@pytest.mark.parametrize(
    "options",
    [
        {"methods": ["propfind", "POST"]},  # extension methods are methods too
        {"routes": ["/p/{id}", "/q/{id:int}/r"]},
        {"limit": "10 per 10 seconds"},
        {"limit": "0/minute"},  # a limit of 0 refuses everything, on purpose
        {"limit": "9" * 38 + "/second"},  # the largest count DynamoDB stores
    ],
)
def test_good_options_stay_accepted(options: dict[str, Any]) -> None:
    RateLimitMiddleware(Starlette(), **{"limit": "10/minute", **options})
