"""The example's API docs: served without a token only with ``SAAS_ENV=dev``; otherwise
they do not exist, and like every route but ``/health`` the paths need a token (401)."""

from __future__ import annotations

import httpx
import pytest

from examples.saas.app import create_app
from examples.saas.settings import Settings


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
