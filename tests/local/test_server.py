"""The local DynamoDB runner (default engine): start, tables, clear errors, no orphaned
process; the moto front's lock."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from lift_asgi.dynamo.tables import TableSpec
from lift_asgi.dynamo.transport import AiodynamoTransport
from lift_asgi.errors import ConditionFailed
from lift_asgi.local import LocalDynamoDB, LocalDynamoDBError, dynamodb_request, engines
from lift_asgi.local.moto_front import serialised


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purposes.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


def _wait_dead(pid: int, limit: float = 10.0) -> bool:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.1)
    return not _alive(pid)


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except (FileNotFoundError, ProcessLookupError, IndexError):
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def test_start_create_tables_and_stop_leaves_no_process() -> None:
    server = LocalDynamoDB().start()
    pid = server.pid
    assert pid is not None and _alive(pid)
    server.create_tables(["one", "two"])
    server.create_tables(["one"])  # idempotent
    assert dynamodb_request(server.endpoint, "ListTables", {})["TableNames"] == ["one", "two"]
    described = dynamodb_request(server.endpoint, "DescribeTable", {"TableName": "one"})["Table"]
    assert [k["AttributeName"] for k in described["KeySchema"]] == ["pk", "sk"]
    assert described["GlobalSecondaryIndexes"][0]["IndexName"] == "gsi1"
    ttl = dynamodb_request(server.endpoint, "DescribeTimeToLive", {"TableName": "one"})
    assert ttl["TimeToLiveDescription"]["AttributeName"] == "ttl"
    server.stop()
    assert _wait_dead(pid)
    assert not server.running
    with pytest.raises(LocalDynamoDBError, match="not running"):
        _ = server.endpoint


async def test_async_context_manager() -> None:
    async with LocalDynamoDB() as server:
        pid = server.pid
        assert pid is not None
        transport = AiodynamoTransport.static(server.endpoint)
        assert await transport.request("ListTables", {}) == {"TableNames": []}
        await transport.close()
    assert _wait_dead(pid)


def test_port_in_use_is_named(dynamodb_server: LocalDynamoDB) -> None:
    port = int(dynamodb_server.endpoint.rsplit(":", 1)[1])
    with pytest.raises(LocalDynamoDBError, match=f"port {port} .* already in use"):
        LocalDynamoDB(port=port).start()


def test_server_dying_on_start_shows_its_last_lines(tmp_path: Path) -> None:
    fake_python = tmp_path / "python"
    fake_python.write_text("#!/bin/sh\necho 'first line'\necho 'boom: cannot start'\nexit 3\n")
    fake_python.chmod(0o755)
    with pytest.raises(LocalDynamoDBError) as caught:
        LocalDynamoDB(python=str(fake_python)).start()
    message = str(caught.value)
    assert "exited with code 3" in message
    assert "boom: cannot start" in message


def test_missing_moto_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    real = engines.importlib.util.find_spec

    def find_spec(name: str, *args: object) -> object:
        return None if name == "moto" else real(name)

    monkeypatch.setattr(engines.importlib.util, "find_spec", find_spec)
    with pytest.raises(LocalDynamoDBError, match=r"lift-asgi\[testing\]"):
        LocalDynamoDB(engine="moto").start()


def test_server_stops_when_its_parent_is_killed(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import os, signal, sys
        from lift_asgi.local import LocalDynamoDB
        server = LocalDynamoDB().start()
        print(server.pid, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)  # no atexit, no cleanup
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == -signal.SIGKILL
    child = int(result.stdout.strip())
    assert _wait_dead(child), "the server outlived its killed parent"


def test_cli_runs_until_ctrl_c_and_takes_its_server_down() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "lift_asgi.local", "--port", "0", "--tables", "saas-data"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    lines = []
    try:
        for line in process.stdout:
            lines.append(line)
            if line.startswith("export AWS_ENDPOINT_URL_DYNAMODB="):
                break
        endpoint = lines[-1].strip().split("=", 1)[1]
        assert dynamodb_request(endpoint, "ListTables", {})["TableNames"] == ["saas-data"]
        children = _children(process.pid)
        assert children, "the CLI should run the server as its child"
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=15) == 0
        for child in children:
            assert _wait_dead(child)
    finally:
        if process.poll() is None:
            process.kill()
        process.stdout.close()


def test_port_in_use_from_the_cli(dynamodb_server: LocalDynamoDB) -> None:
    port = dynamodb_server.endpoint.rsplit(":", 1)[1]
    result = subprocess.run(
        [sys.executable, "-m", "lift_asgi.local", "--port", port],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert f"port {port}" in result.stderr and "already in use" in result.stderr


async def test_concurrent_conditional_increments_admit_exactly_the_limit(
    dynamodb_endpoint: str, dynamodb_table: TableSpec
) -> None:
    """40 concurrent conditional increments against a limit of 10 admit exactly 10, in
    every one of many bursts: the serialised server is atomic per item, as DynamoDB is
    (moto's own threaded server over-admits or loses updates here)."""
    transport = AiodynamoTransport.static(dynamodb_endpoint, max_connections=64)
    limit, concurrency, bursts = 10, 40, 25

    async def increment(key: str) -> bool:
        try:
            await transport.request(
                "UpdateItem",
                {
                    "TableName": dynamodb_table.name,
                    "Key": {"pk": {"S": key}, "sk": {"S": "counter"}},
                    "UpdateExpression": "ADD #n :one",
                    "ConditionExpression": "attribute_not_exists(#n) OR #n < :limit",
                    "ExpressionAttributeNames": {"#n": "n"},
                    "ExpressionAttributeValues": {
                        ":one": {"N": "1"},
                        ":limit": {"N": str(limit)},
                    },
                },
            )
        except ConditionFailed:
            return False
        return True

    try:
        for burst in range(bursts):
            key = f"burst-{burst}"
            admitted = await asyncio.gather(*(increment(key) for _ in range(concurrency)))
            stored = await transport.request(
                "GetItem",
                {
                    "TableName": dynamodb_table.name,
                    "Key": {"pk": {"S": key}, "sk": {"S": "counter"}},
                    "ConsistentRead": True,
                },
            )
            assert sum(admitted) == limit, f"burst {burst} admitted {sum(admitted)}"
            assert stored["Item"]["n"] == {"N": str(limit)}, f"burst {burst} lost an update"
    finally:
        await transport.close()


def test_serialised_wrapper_runs_one_request_at_a_time() -> None:
    """The mechanism behind the atomicity above: the WSGI wrapper never lets two requests
    (bodies included) overlap, however many server threads call it."""
    import threading

    active = 0
    most = 0
    guard = threading.Lock()

    def slow_app(environ: dict[str, object], start_response: Any) -> object:
        nonlocal active, most
        start_response("200 OK", [])
        with guard:
            active += 1
            most = max(most, active)

        def body() -> object:
            nonlocal active
            time.sleep(0.005)
            yield b"chunk"
            with guard:
                active -= 1

        return body()

    app = serialised(slow_app)
    results: list[object] = []
    threads = [
        threading.Thread(target=lambda: results.append(app({}, lambda *a: None))) for _ in range(20)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert most == 1
    assert results == [[b"chunk"]] * 20
