"""The example's settings beyond its routes: the API docs are served without a token only
with ``SAAS_ENV=dev`` (otherwise they do not exist, and like every route but ``/health``
the paths need a token: 401); ``SAAS_RATE_TIMEOUT`` is checked when the app starts."""

from __future__ import annotations

import httpx
import pytest

from examples.saas.app import create_app
from examples.saas.settings import Settings, SettingsError


@pytest.mark.parametrize("env", ["dev", "prod"])
async def test_the_docs_are_served_only_in_development(env: str) -> None:
    settings = Settings.from_env(
        {"SAAS_ENV": env, "SAAS_JWT_SECRET": "docs-test-secret-0123456789abcdef0123"}
    )
    transport = httpx.ASGITransport(create_app(settings))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        statuses = [(await http.get(p)).status_code for p in ("/docs", "/openapi.json")]
        redoc_status = (await http.get("/redoc")).status_code
    if env == "dev":
        assert statuses == [200, 200]
    else:
        assert statuses == [401, 401]
    assert redoc_status == 401  # never served: a page without a token is only /docs in dev


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "soon"])
def test_a_bad_rate_limit_timeout_stops_the_app(value: str) -> None:
    with pytest.raises(SettingsError, match="SAAS_RATE_TIMEOUT"):
        Settings.from_env({"SAAS_ENV": "dev", "SAAS_RATE_TIMEOUT": value})


def test_the_rate_limit_timeout_defaults_to_one_second_and_is_read() -> None:
    assert Settings.from_env({"SAAS_ENV": "dev"}).rate_timeout == 1.0
    assert Settings.from_env({"SAAS_ENV": "dev", "SAAS_RATE_TIMEOUT": "2.5"}).rate_timeout == 2.5
