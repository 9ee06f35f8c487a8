"""``python -m lift_asgi.local`` prints every variable a fresh shell needs: with only those
exported (no AWS configuration at all), the SDKs sign, find a region and talk to it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

EXPECTED = {
    "AWS_ENDPOINT_URL_DYNAMODB",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
}


def test_the_printed_exports_are_all_a_credential_less_shell_needs(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "lift_asgi.local",
            "--engine",
            "moto",
            "--port",
            "0",
            "--tables",
            "app-data",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    exported: dict[str, str] = {}
    try:
        for line in process.stdout:
            if line.startswith("export "):
                name, _, value = line.removeprefix("export ").strip().partition("=")
                exported[name] = value
            if exported.keys() >= EXPECTED:
                break
        assert exported.keys() >= EXPECTED, f"missing: {EXPECTED - exported.keys()}"
        # A shell with no AWS configuration whatsoever: no ~/.aws, no variables.
        home = tmp_path / "home"
        home.mkdir()
        env = {"PATH": os.environ["PATH"], "HOME": str(home), **exported}
        script = textwrap.dedent(
            """
            import asyncio, boto3
            print(boto3.client("dynamodb").list_tables()["TableNames"])
            from lift_asgi.dynamo.transport import AiodynamoTransport
            async def main():
                transport = AiodynamoTransport()
                try:
                    print((await transport.request("ListTables", {}))["TableNames"])
                finally:
                    await transport.close()
            asyncio.run(main())
            """
        )
        result = subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.split("\n")[:2] == ["['app-data']", "['app-data']"]
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=15)
        process.stdout.close()
