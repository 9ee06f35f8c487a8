"""The example's settings beyond its routes: no API docs are served (like every route but
``/health`` their paths need a token: 401, then 404), the OpenAPI document is printed by
``python -m examples.saas.openapi``; ``SAAS_RATE_TIMEOUT`` is checked when the app starts."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import httpx
import jwt
import pytest

from examples.saas.app import create_app
from examples.saas.settings import DEV_SECRET, Settings, SettingsError
from examples.saas.token import main as token_main

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


def test_the_settings_defaults_are_the_documented_ones() -> None:
    settings = Settings.from_env({"SAAS_ENV": "dev"})
    assert (settings.table, settings.rate_table) == ("saas-data", "saas-rate-limits")
    assert settings.rates == {
        "free": "100/minute",
        "pro": "1000/minute",
        "enterprise": "10000/minute",
    }
    assert settings.log_format == "text" and settings.env == "dev"
    assert settings.jwt_secret == DEV_SECRET  # dev only: elsewhere it is required
    with pytest.raises(SettingsError, match="SAAS_JWT_SECRET"):
        Settings.from_env({})
    custom = Settings.from_env(
        {
            "SAAS_ENV": "dev",
            "SAAS_TABLE": "t1",
            "SAAS_RATE_TABLE": "t2",
            "SAAS_RATE_FREE": "5/second",
            "SAAS_RATE_PRO": "7/second",
            "SAAS_RATE_ENTERPRISE": "9/second",
        }
    )
    assert (custom.table, custom.rate_table) == ("t1", "t2")
    assert custom.rates == {"free": "5/second", "pro": "7/second", "enterprise": "9/second"}


def test_a_token_lives_for_its_ttl(capsys: pytest.CaptureFixture[str]) -> None:
    assert token_main(["--tenant", "acme", "--plan", "pro", "--ttl", "90"]) == 0
    printed = capsys.readouterr().out.strip()
    claims = jwt.decode(printed, DEV_SECRET, algorithms=["HS256"])
    assert claims["exp"] - claims["iat"] == 90
    assert (claims["tenant_id"], claims["plan"]) == ("acme", "pro")


def test_json_request_logs_go_to_standard_error_not_standard_output() -> None:
    script = (
        "import asyncio, httpx\n"
        "from examples.saas.app import create_app\n"
        "from examples.saas.settings import Settings\n"
        "app = create_app(Settings.from_env({'SAAS_ENV': 'dev', 'SAAS_LOG_FORMAT': 'json'}))\n"
        "async def main():\n"
        "    transport = httpx.ASGITransport(app=app)\n"
        "    async with httpx.AsyncClient(transport=transport, base_url='http://t') as http:\n"
        "        assert (await http.get('/health')).status_code == 200\n"
        "asyncio.run(main())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if not k.startswith("SAAS_")},
        check=True,
    )
    assert done.stdout == ""
    (line,) = [json.loads(text) for text in done.stderr.splitlines() if '"route"' in text]
    assert (line["route"], line["status"], line["tenant"]) == ("/health", 200, None)


async def test_the_health_check_answers_head_too() -> None:
    settings = Settings.from_env({"SAAS_ENV": "prod", "SAAS_JWT_SECRET": SECRET})
    transport = httpx.ASGITransport(create_app(settings))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        head = await http.head("/health")
        get = await http.get("/health")
    assert (head.status_code, get.status_code) == (200, 200)
    assert head.content == b"" and get.json() == {"status": "ok"}
