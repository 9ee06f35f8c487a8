"""The pytest plugin as a user meets it: installed, no configuration, fixtures work,
tables are removed and no server process survives the session."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import pytest

from lift_asgi.dynamo.tables import TableSpec
from lift_asgi.local import LocalDynamoDB, dynamodb_request


def test_fresh_table_has_the_standard_schema(
    dynamodb_endpoint: str, dynamodb_table: TableSpec
) -> None:
    table = dynamodb_request(dynamodb_endpoint, "DescribeTable", {"TableName": dynamodb_table.name})
    keys = {k["AttributeName"]: k["KeyType"] for k in table["Table"]["KeySchema"]}
    assert keys == {"pk": "HASH", "sk": "RANGE"}
    gsi = table["Table"]["GlobalSecondaryIndexes"][0]
    assert gsi["IndexName"] == "gsi1"
    assert [k["AttributeName"] for k in gsi["KeySchema"]] == ["gsi1pk", "gsi1sk"]
    ttl = dynamodb_request(
        dynamodb_endpoint, "DescribeTimeToLive", {"TableName": dynamodb_table.name}
    )
    assert ttl["TimeToLiveDescription"]["TimeToLiveStatus"] == "ENABLED"


def test_each_test_gets_its_own_table(dynamodb_table_factory: object) -> None:
    assert callable(dynamodb_table_factory)
    first = dynamodb_table_factory()
    second = dynamodb_table_factory(sk=None, gsis=())
    assert first.name != second.name
    assert second.sk is None


def test_env_fixture_points_the_sdk_variable_at_the_server(
    dynamodb_env: str, dynamodb_endpoint: str
) -> None:
    assert os.environ["AWS_ENDPOINT_URL_DYNAMODB"] == dynamodb_endpoint == dynamodb_env


def test_a_user_suite_gets_the_fixtures_and_leaves_nothing_behind(
    pytester: pytest.Pytester, dynamodb_endpoint: str, tmp_path: Path
) -> None:
    record = tmp_path / "record.txt"
    pytester.makepyfile(
        f"""
        from lift_asgi.local import dynamodb_request

        def test_uses_fixtures(dynamodb_server, dynamodb_table, dynamodb_fault_proxy):
            dynamodb_request(dynamodb_fault_proxy.endpoint, "PutItem", {{
                "TableName": dynamodb_table.name,
                "Item": {{"pk": {{"S": "a"}}, "sk": {{"S": "b"}}}},
            }})
            assert dynamodb_fault_proxy.operations() == ["PutItem"]
            with open({str(record)!r}, "w") as out:
                server, table = dynamodb_server, dynamodb_table
                out.write(f"{{server.pid}} {{server.endpoint}} {{table.name}}")
        """
    )
    # A subprocess, like a user's own `pytest` run; the plugin comes from the entry point.
    env_endpoint = os.environ.pop("LIFT_ASGI_DYNAMODB_ENDPOINT", None)
    try:
        result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")
    finally:
        if env_endpoint is not None:
            os.environ["LIFT_ASGI_DYNAMODB_ENDPOINT"] = env_endpoint
    result.assert_outcomes(passed=1)
    pid_text, endpoint, _table = record.read_text().split()
    assert endpoint != dynamodb_endpoint, "the inner session started its own server"
    pid = int(pid_text)
    deadline = time.monotonic() + 10
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not Path(f"/proc/{pid}").exists(), "the inner session left its server running"


def test_an_endpoint_from_the_environment_gives_the_same_server_type_and_api(
    pytester: pytest.Pytester, dynamodb_server: LocalDynamoDB, tmp_path: Path
) -> None:
    """``LIFT_ASGI_DYNAMODB_ENDPOINT`` attaches to a running server: ``dynamodb_server`` is
    still a LocalDynamoDB (create_tables and all), and the session leaves that server
    running (before, it was another type, without create_tables)."""
    name = f"attached-{uuid.uuid4().hex[:8]}"
    pytester.makepyfile(
        f"""
        from lift_asgi.local import LocalDynamoDB

        def test_attached(dynamodb_server, dynamodb_endpoint):
            assert type(dynamodb_server) is LocalDynamoDB
            assert dynamodb_server.engine == "external"
            assert dynamodb_endpoint == dynamodb_server.endpoint == {dynamodb_server.endpoint!r}
            dynamodb_server.create_tables([{name!r}])
            dynamodb_server.stop()
            assert dynamodb_server.running
        """
    )
    previous = os.environ.get("LIFT_ASGI_DYNAMODB_ENDPOINT")
    os.environ["LIFT_ASGI_DYNAMODB_ENDPOINT"] = dynamodb_server.endpoint
    try:
        result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")
    finally:
        if previous is None:
            del os.environ["LIFT_ASGI_DYNAMODB_ENDPOINT"]
        else:
            os.environ["LIFT_ASGI_DYNAMODB_ENDPOINT"] = previous
    result.assert_outcomes(passed=1)
    try:
        tables = dynamodb_request(dynamodb_server.endpoint, "ListTables", {})["TableNames"]
        assert name in tables, "the outer server is still up and got the table"
    finally:
        dynamodb_server.delete_table(name)


@pytest.mark.parametrize("engine", ["moto", "ministack"])
def test_the_engine_variable_chooses_the_plugins_engine(
    pytester: pytest.Pytester, engine: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same fixtures, same table helpers, either engine."""
    pytester.makepyfile(
        f"""
        from lift_asgi.local import dynamodb_request

        def test_engine(dynamodb_server, dynamodb_table):
            assert dynamodb_server.engine == {engine!r}
            assert dynamodb_server.endpoint.startswith("http://127.0.0.1:")
            names = dynamodb_request(dynamodb_server.endpoint, "ListTables", {{}})["TableNames"]
            assert names == [dynamodb_table.name]
        """
    )
    monkeypatch.delenv("LIFT_ASGI_DYNAMODB_ENDPOINT", raising=False)
    monkeypatch.setenv("LIFT_ASGI_DYNAMODB_ENGINE", engine)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")
    result.assert_outcomes(passed=1)


def test_a_failed_test_shows_what_the_server_logged_while_it_ran(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """moto raising inside a request logs its traceback; a failed test's report carries
    the lines logged during that test only (not an earlier test's), and a test during
    which the server logged nothing gets no such section."""
    pytester.makepyfile(
        """
        import pytest
        from lift_asgi.local import dynamodb_request

        def crash(endpoint, marker):
            with pytest.raises(Exception):  # a PutItem without TableName: moto raises
                dynamodb_request(endpoint, "PutItem", {"Item": {"pk": {"S": marker}}})

        def test_passes_after_a_crash(dynamodb_endpoint):
            crash(dynamodb_endpoint, "first")

        def test_fails_quietly(dynamodb_server):
            assert False, "no server error here"

        def test_fails_after_a_crash(dynamodb_endpoint):
            crash(dynamodb_endpoint, "second")
            assert False, "after a server error"
        """
    )
    monkeypatch.delenv("LIFT_ASGI_DYNAMODB_ENDPOINT", raising=False)
    monkeypatch.setenv("LIFT_ASGI_DYNAMODB_ENGINE", "moto")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")
    result.assert_outcomes(passed=1, failed=2)
    output = result.stdout.str()
    quiet, _, crashed = output.partition("test_fails_after_a_crash")
    assert "the local DynamoDB server's log" not in quiet
    assert "the local DynamoDB server's log" in crashed
    assert "Traceback" in crashed
