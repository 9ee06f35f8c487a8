"""create_table as the README shows it: no transport to find, nothing left open, an
idempotent re-run that is not logged as an error."""

from __future__ import annotations

import gc
import importlib
import logging
import re
import uuid
import warnings
from pathlib import Path
from typing import Any

import pytest

from lift_asgi.dynamo.tables import TableSpec, create_table, delete_table
from lift_asgi.dynamo.transport import AiodynamoTransport
from lift_asgi.testing.plugin import delete_local_table

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


async def test_create_table_from_the_environment_twice_quietly(
    dynamodb_env: str, caplog: pytest.LogCaptureFixture
) -> None:
    name = f"readme-{uuid.uuid4().hex[:10]}"
    caplog.set_level(logging.INFO)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert await create_table(TableSpec.standard(name)) is True
            assert await create_table(TableSpec.standard(name)) is False  # exists: fine
            gc.collect()
        unclosed = [w for w in caught if "nclosed" in str(w.message)]
        assert unclosed == []
        assert [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO] == []
        check = AiodynamoTransport.static(dynamodb_env)
        try:
            described = await check.request("DescribeTable", {"TableName": name})
            ttl = await check.request("DescribeTimeToLive", {"TableName": name})
        finally:
            await check.close()
        assert described["Table"]["TableStatus"] == "ACTIVE"
        assert [i["IndexName"] for i in described["Table"]["GlobalSecondaryIndexes"]] == ["gsi1"]
        assert ttl["TimeToLiveDescription"]["TimeToLiveStatus"] in {"ENABLED", "ENABLING"}
        assert await delete_table(None, name) is True
        assert await delete_table(None, name) is False
    finally:
        delete_local_table(dynamodb_env, name)


async def test_create_table_with_a_name_an_endpoint_or_your_transport(
    dynamodb_endpoint: str,
) -> None:
    name = f"readme-{uuid.uuid4().hex[:10]}"
    transport = AiodynamoTransport.static(dynamodb_endpoint)
    try:
        assert await create_table(name, endpoint=dynamodb_endpoint) is True
        assert await create_table(TableSpec.standard(name), transport=transport) is False
        assert await create_table(transport, TableSpec.standard(name)) is False  # the old form
        assert transport.calls > 0
        # your transport stays open for you
        await transport.request("DescribeTable", {"TableName": name})
        with pytest.raises(TypeError):
            await create_table(transport)  # type: ignore[call-overload]
        with pytest.raises(TypeError):
            await create_table(name, transport=transport, endpoint=dynamodb_endpoint)
    finally:
        await transport.close()
        delete_local_table(dynamodb_endpoint, name)


async def test_the_readme_sentence_runs_as_written(dynamodb_env: str) -> None:
    found = re.search(r"Create the\s+tables once", README)
    assert found is not None
    sentence = README[found.start() :][:600]
    calls = re.findall(r"`(await [^`]+)`", sentence)
    assert len(calls) == 2, calls
    namespace: dict[str, Any] = {
        "lift_asgi": importlib.import_module("lift_asgi"),
        "TableSpec": TableSpec,
        "create_table": create_table,
    }
    importlib.import_module("lift_asgi.dynamo")
    importlib.import_module("lift_asgi.ratelimit")
    try:
        for call in calls:
            code = compile(f"async def _run():\n    return {call}\n", "README.md", "exec")
            exec(code, namespace)
            assert await namespace["_run"]() in (True, False)
        check = AiodynamoTransport.static(dynamodb_env)
        try:
            for name in ("app-data", "app-rate-limits"):
                described = await check.request("DescribeTable", {"TableName": name})
                assert described["Table"]["TableStatus"] == "ACTIVE"
        finally:
            await check.close()
    finally:
        for name in ("app-data", "app-rate-limits"):
            delete_local_table(dynamodb_env, name)
