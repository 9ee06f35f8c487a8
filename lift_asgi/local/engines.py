"""The two local DynamoDB engines and how each one is started.

``moto``       moto's server mode (pinned, Apache-2.0) behind lift-asgi's own front
               (:mod:`lift_asgi.local.moto_front`): serialised, ClientRequestToken kept,
               every request answered; runs in this Python.
``ministack``  ministack (MIT), a DynamoDB of its own on hypercorn. It pins a botocore
               that aioboto3's aiobotocore refuses, so it usually lives in a virtualenv of
               its own: its ``ministack`` command is found through ``LIFT_ASGI_MINISTACK``
               (a path), then ``PATH``, then next to this Python, then in
               ``<this venv>/ministack/`` (where ``make install`` puts it). It cannot choose its own
               port and does not watch its parent, so it gets a free port from us and runs
               under :mod:`lift_asgi.local.watchdog`.

The engine a caller does not name comes from ``LIFT_ASGI_DYNAMODB_ENGINE``, else
:data:`DEFAULT_ENGINE` (chosen by the fidelity table in the README) when its command is
installed, else moto: ``pip install 'lift-asgi[testing]'`` alone (which cannot carry
ministack: its botocore pin) still gives a working plugin. A named engine that is
missing is an error that says how to install it.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from lift_asgi.local.wire import LocalDynamoDBError, free_port

__all__ = [
    "DEFAULT_ENGINE",
    "ENGINES",
    "ENGINE_VARIABLE",
    "MINISTACK_VARIABLE",
    "MINISTACK_VERSION",
    "MOTO_VERSION",
    "EngineName",
    "Launch",
    "launch",
    "resolve_engine",
]

log = logging.getLogger("lift_asgi.local")

EngineName = Literal["moto", "ministack"]
ENGINES: tuple[EngineName, ...] = ("moto", "ministack")
#: The engine used when none is named and ``LIFT_ASGI_DYNAMODB_ENGINE`` is unset.
DEFAULT_ENGINE: EngineName = "ministack"
ENGINE_VARIABLE = "LIFT_ASGI_DYNAMODB_ENGINE"
MINISTACK_VARIABLE = "LIFT_ASGI_MINISTACK"
#: The moto release whose internals the serialising front is written against.
MOTO_VERSION = "5.2.5"
#: The ministack release the fidelity table was measured on (``make install`` pins it).
MINISTACK_VERSION = "1.5.33"


@dataclass(frozen=True)
class Launch:
    """How to start one engine: the command, its environment, and the port if known
    before start (``None``: the child reports it on a ``READY`` line)."""

    engine: EngineName
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    port: int | None = None


def resolve_engine(name: str | None = None) -> EngineName:
    chosen = name or os.environ.get(ENGINE_VARIABLE)
    if not chosen and os.environ.get(MINISTACK_VARIABLE):
        return DEFAULT_ENGINE  # asked for by its path: a wrong path is an error at start
    if not chosen:
        try:
            ministack_command()
        except LocalDynamoDBError:
            log.info("ministack is not installed: the local DynamoDB engine is moto")
            return "moto"
        return DEFAULT_ENGINE
    if chosen not in ENGINES:
        source = "engine" if name else ENGINE_VARIABLE
        raise LocalDynamoDBError(f"{source}: one of {', '.join(ENGINES)}, not {chosen!r}")
    return chosen


def _moto(host: str, port: int, parent_pid: int, python: str) -> Launch:
    if importlib.util.find_spec("moto") is None or importlib.util.find_spec("waitress") is None:
        raise LocalDynamoDBError(
            "the moto engine needs moto's server mode and waitress: "
            f"pip install 'lift-asgi[testing]' (it pins moto[server]=={MOTO_VERSION})"
        )
    argv = [python, "-m", "lift_asgi.local.moto_child", "--host", host, "--port", str(port)]
    return Launch("moto", [*argv, "--parent-pid", str(parent_pid)])


def ministack_command() -> str:
    """The ``ministack`` executable, or a clear error saying how to install it."""
    named = os.environ.get(MINISTACK_VARIABLE)
    if named:
        if shutil.which(named) is None:
            raise LocalDynamoDBError(f"{MINISTACK_VARIABLE}={named!r} is not an executable")
        return named
    found = shutil.which("ministack")
    if found:
        return found
    # Next to this Python, or in a virtualenv named ministack inside this one (where
    # `make install` puts it).
    for candidate in (
        Path(sys.executable).with_name("ministack"),
        Path(sys.prefix) / "ministack" / "bin" / "ministack",
    ):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    raise LocalDynamoDBError(
        "the ministack engine needs the ministack command: install it in a virtualenv of "
        f"its own (python -m venv ~/.ministack && ~/.ministack/bin/pip install "
        f"ministack=={MINISTACK_VERSION}) and set {MINISTACK_VARIABLE}=~/.ministack/bin/"
        "ministack (its botocore pin conflicts with aioboto3's), or use --engine moto"
    )


def _ministack(host: str, port: int, parent_pid: int, python: str) -> Launch:
    command = ministack_command()
    port = port or free_port(host)
    env = {
        "BIND_HOST": host,
        "GATEWAY_PORT": str(port),
        "SERVICES": "dynamodb",
        "LOG_LEVEL": "WARNING",
    }
    watchdog = [python, "-m", "lift_asgi.local.watchdog", "--parent-pid", str(parent_pid)]
    return Launch("ministack", [*watchdog, "--", command], env, port)


def launch(engine: EngineName, host: str, port: int, parent_pid: int, python: str) -> Launch:
    starter = _moto if engine == "moto" else _ministack
    return starter(host, port, parent_pid, python)
