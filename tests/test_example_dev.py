"""`make run` (``python -m examples.saas.dev``): a local engine, the tables, the app; the
curl lines it prints work; Ctrl-C stops the app and the database server."""

from __future__ import annotations

import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import httpx


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_make_run_serves_the_app_its_curl_lines_work_and_ctrl_c_stops_both() -> None:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SAAS_", "AWS_"))}
    child = subprocess.Popen(
        [sys.executable, "-m", "examples.saas.dev", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    assert child.stdout is not None
    try:
        lines: queue.Queue[str] = queue.Queue()
        stdout = child.stdout
        threading.Thread(target=lambda: [lines.put(line) for line in stdout], daemon=True).start()
        printed: list[str] = []
        while not any("curl -s http" in line for line in printed):
            try:  # a child that hangs fails the test instead of hanging it
                printed.append(lines.get(timeout=60))
            except queue.Empty:
                raise AssertionError(f"nothing more in 60 s: {''.join(printed)}") from None
        text = "".join(printed)
        endpoint = re.search(r"DynamoDB \(local, \w+\): (\S+)", text)
        token = re.search(r"Authorization: Bearer ([\w.-]+)", text)
        assert endpoint and token, text
        headers = {"authorization": f"Bearer {token[1]}"}
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:  # uvicorn starts after the lines are printed
            try:
                health = httpx.get(f"{base}/health")
                break
            except httpx.ConnectError:
                assert time.monotonic() < deadline, "the app did not start"
                time.sleep(0.1)
        assert health.json() == {"status": "ok"}
        created = httpx.post(f"{base}/projects", json={"name": "First project"}, headers=headers)
        assert created.status_code == 201, created.text
        listed = httpx.get(f"{base}/projects", headers=headers).json()
        assert [p["name"] for p in listed["items"]] == ["First project"]
        assert created.headers["x-ratelimit-limit"] == "1000"  # the printed token is pro

        child.send_signal(signal.SIGINT)
        assert child.wait(timeout=30) == 0
        try:  # the database server went with it
            httpx.post(endpoint[1], timeout=2)
            raise AssertionError("the local DynamoDB server outlived make run")
        except httpx.TransportError:
            pass
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        child.stdout.close()
