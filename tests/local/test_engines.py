"""Both engines start from the same runner, on a loopback port, and never outlive their
parent; a wrong or missing engine is named with the way out."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from lift_asgi.local import ENGINE_VARIABLE, LocalDynamoDB, LocalDynamoDBError, dynamodb_request
from lift_asgi.local.engines import MINISTACK_VARIABLE


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except (FileNotFoundError, ProcessLookupError, IndexError):
                continue
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _dead(pid: int, limit: float = 15.0) -> bool:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            if Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z":
                return True
        except FileNotFoundError:
            return True
        time.sleep(0.1)
    return False


@pytest.mark.parametrize("engine", ["moto", "ministack"])
def test_each_engine_starts_on_loopback_answers_and_stops(engine: str) -> None:
    with LocalDynamoDB(engine=engine) as server:  # type: ignore[arg-type]
        assert server.engine == engine
        assert server.endpoint.startswith("http://127.0.0.1:")
        server.create_tables(["one"])
        assert dynamodb_request(server.endpoint, "ListTables", {})["TableNames"] == ["one"]
        assert server.pid is not None
        processes = [server.pid, *_descendants(server.pid)]
    assert all(_dead(pid) for pid in processes)


@pytest.mark.parametrize("engine", ["moto", "ministack"])
def test_each_engine_dies_with_its_killed_parent(engine: str) -> None:
    script = textwrap.dedent(
        f"""
        import os, signal, time
        from lift_asgi.local import LocalDynamoDB
        server = LocalDynamoDB(engine={engine!r}).start()
        print(server.pid, flush=True)
        time.sleep(0.5)  # let ministack's own children start
        os.kill(os.getpid(), signal.SIGKILL)  # no atexit, no cleanup
        """
    )
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    child = int(process.stdout.readline())
    processes = [child, *_descendants(child)]
    process.stdout.close()
    assert process.wait(timeout=60) == -signal.SIGKILL
    assert all(_dead(pid) for pid in processes), "an engine process outlived its parent"


def test_an_unknown_engine_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(LocalDynamoDBError, match="one of moto, ministack, not 'dynalite'"):
        LocalDynamoDB(engine="dynalite")  # type: ignore[arg-type]
    monkeypatch.setenv(ENGINE_VARIABLE, "dynalite")
    with pytest.raises(LocalDynamoDBError, match=ENGINE_VARIABLE):
        LocalDynamoDB()


def test_the_engine_variable_chooses_the_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    for engine in ("moto", "ministack"):
        monkeypatch.setenv(ENGINE_VARIABLE, engine)
        assert LocalDynamoDB().engine == engine


def test_a_missing_ministack_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(MINISTACK_VARIABLE, str(tmp_path / "nowhere" / "ministack"))
    with pytest.raises(LocalDynamoDBError, match=f"{MINISTACK_VARIABLE}=.* is not an executable"):
        LocalDynamoDB(engine="ministack").start()
    monkeypatch.delenv(MINISTACK_VARIABLE)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setattr(sys, "prefix", str(tmp_path))
    with pytest.raises(LocalDynamoDBError, match=r"pip install ministack==.*--engine moto"):
        LocalDynamoDB(engine="ministack").start()


def test_without_ministack_installed_the_default_engine_is_moto(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`pip install 'lift-asgi[testing]'` alone cannot bring ministack (its botocore pin):
    the plugin and the runner still work, on moto; ministack named explicitly is an error."""
    monkeypatch.delenv(ENGINE_VARIABLE, raising=False)
    assert LocalDynamoDB().engine == "ministack"  # installed here by `make install`
    monkeypatch.delenv(MINISTACK_VARIABLE, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setattr(sys, "prefix", str(tmp_path))
    assert LocalDynamoDB().engine == "moto"
    with pytest.raises(LocalDynamoDBError, match="needs the ministack command"):
        LocalDynamoDB(engine="ministack").start()
