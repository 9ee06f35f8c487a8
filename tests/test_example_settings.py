"""The example's settings beyond its routes: no API docs are served (like every route but
``/health`` their paths need a token: 401, then 404), the OpenAPI document is printed by
``python -m examples.saas.openapi``; ``SAAS_RATE_TIMEOUT`` is checked when the app starts."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import httpx
import pytest

from examples.saas.app import create_app
from examples.saas.settings import Settings, SettingsError

SECRET = "docs-test-secret-0123456789abcdef0123"


@pytest.mark.parametrize("env", ["dev", "prod"])
async def test_no_docs_are_served_and_their_paths_need_a_token(env: str) -> None:
    settings = Settings.from_env({"SAAS_ENV": env, "SAAS_JWT_SECRET": SECRET})
    transport = httpx.ASGITransport(create_app(settings))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        statuses = [(await http.get(p)).status_code for p in ("/docs", "/openapi.json", "/redoc")]
    assert statuses == [401, 401, 401]  # with a token, a 404 problem (tests/e2e)


def test_the_openapi_document_is_printed_without_a_server() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "examples.saas.openapi"],
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if not k.startswith("SAAS_")},
        check=True,
    )
    document = json.loads(done.stdout)
    assert document["info"]["title"] == "lift-asgi SaaS example"
    assert {"/health", "/projects", "/imports/tasks"} <= document["paths"].keys()


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "soon"])
def test_a_bad_rate_limit_timeout_stops_the_app(value: str) -> None:
    with pytest.raises(SettingsError, match="SAAS_RATE_TIMEOUT"):
        Settings.from_env({"SAAS_ENV": "dev", "SAAS_RATE_TIMEOUT": value})


def test_the_rate_limit_timeout_defaults_to_one_second_and_is_read() -> None:
    assert Settings.from_env({"SAAS_ENV": "dev"}).rate_timeout == 1.0
    assert Settings.from_env({"SAAS_ENV": "dev", "SAAS_RATE_TIMEOUT": "2.5"}).rate_timeout == 2.5
