"""Run a command and stop it with its parent: how an engine that does not watch its
parent (ministack) still never outlives the test run or the CLI that started it.

``python -m lift_asgi.local.watchdog --parent-pid N -- COMMAND...`` starts COMMAND, then
stops it (SIGTERM, then SIGKILL) when the parent process is gone or when the watchdog
itself gets SIGTERM/SIGINT, and exits with COMMAND's code when COMMAND exits first.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from typing import Any

__all__ = ["main"]


def _stop(child: subprocess.Popen[bytes]) -> None:
    if child.poll() is None:
        child.terminate()
        try:
            child.wait(5)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(5)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lift_asgi.local.watchdog")
    parser.add_argument("--parent-pid", type=int, required=True)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    opts = parser.parse_args(argv)
    command = opts.command[1:] if opts.command[:1] == ["--"] else opts.command
    if not command:
        parser.error("a command to run is required after --")
    child = subprocess.Popen(command, stdin=subprocess.DEVNULL)
    stopping = threading.Event()

    def _on_signal(signum: int, frame: Any) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    while child.poll() is None:
        if stopping.is_set() or os.getppid() != opts.parent_pid:
            _stop(child)
            return 0
        stopping.wait(0.3)
    return child.returncode if child.returncode >= 0 else 128 - child.returncode


if __name__ == "__main__":
    sys.exit(main())
