"""Instructions per request, counted by valgrind's callgrind: the stack's cost without the
shared machine's noise.

    python -m bench.instructions [--requests N]

CPU time per request on this shared machine moves by several µs from run to run, as much
as a stage costs (see ``bench/stack.py``). The number of instructions a request runs does
not. Each variant runs in its own process under callgrind: the child builds its app,
answers 300 warm-up requests (checking they are 200s), then calls ``os.getppid()``, where
callgrind zeroes its counters (``--zero-before=getppid``), answers ``requests`` more, and
calls ``os.getpgrp()``, where callgrind writes them out (``--dump-before=getpgrp``). So
imports, building and warm-up are not counted; the requests are the same as in
``bench/stack.py`` (one prebuilt scope with a bearer token, no-op ``receive``/``send``,
the route touches no data, the unit of work on a stub transport).

Instructions are not time. Cache misses are not in them (FastAPI's working set makes the
code around it miss more; ``bench/stack.py``'s rows show that), and hashing and other C
code run more instructions per nanosecond than the interpreter. Read them beside the CPU
rows: they say how much work each variant does, on any machine with this Python, within
about 0.5 % from run to run (the garbage collector and dict resizes fall differently).

Skipped, with a line saying so, where valgrind is not installed (``apt-get install
valgrind``). About 20 s per variant, two at a time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Row", "render", "run"]

ROOT = Path(__file__).resolve().parent.parent
BARE = "FastAPI (bare)"
TENANT = "FastAPI + TenantMiddleware alone (HS256 JWT, cached)"
THREE = "FastAPI + install(tenant, rate limit, unit of work)"
FULL = "FastAPI + full stack (every stage, installed)"
FLOOR = "FastAPI + one hand-fused middleware doing the same work, no checks (the floor)"
VARIANTS = (BARE, TENANT, THREE, FULL, FLOOR)
WARMUP = 300


@dataclass(frozen=True)
class Row:
    name: str
    instructions: int  # per request
    ratio: float  # to bare FastAPI
    added: int  # instructions per request over bare FastAPI


def _builders() -> dict[str, Callable[[], Any]]:
    from bench.stack import STAGES, _fastapi, _floor, _installed, _tenant_middleware
    from bench.uow import StubTransport

    def tenant_only() -> Any:
        app = _fastapi()
        _tenant_middleware(app)
        return app

    return {
        BARE: _fastapi,
        TENANT: tenant_only,
        THREE: lambda: _installed(StubTransport(), ("tenant", "rate_limit", "unit_of_work")),
        FULL: lambda: _installed(StubTransport(), STAGES),
        FLOOR: _floor,
    }


async def _child(name: str, requests: int) -> None:
    """What runs under callgrind: warm up, mark, ``requests`` requests, mark."""
    from bench.stack import _discard, _receive, _status, scope, token

    app = _builders()[name]()
    request = scope("/projects/42", token())
    for _ in range(WARMUP):
        status = await _status(app, request)
        if status != 200:
            raise RuntimeError(f"{name}: answered {status}, not 200")
    receive, send = _receive, _discard
    os.getppid()  # callgrind zeroes its counters here
    for _ in range(requests):
        await app(dict(request), receive, send)
    os.getpgrp()  # and writes them out here


def _count(name: str, requests: int, workdir: str) -> float:
    """Instructions per request of one variant, in a fresh process under callgrind."""
    out = Path(workdir) / f"callgrind.{VARIANTS.index(name)}"
    command = [
        "valgrind",
        "--tool=callgrind",
        "--zero-before=getppid",
        "--dump-before=getpgrp",
        f"--callgrind-out-file={out}",
        sys.executable,
        "-m",
        "bench.instructions",
        "--child",
        name,
        "--requests",
        str(requests),
    ]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{name}: callgrind run failed: {done.stderr[-2000:]}")
    dump = Path(f"{out}.1")  # the first dump: the one --dump-before wrote
    for line in dump.read_text().splitlines():
        if line.startswith("summary:"):
            return int(line.split()[1]) / requests
    raise RuntimeError(f"{name}: no summary in {dump}")


def run(requests: int = 2000) -> list[Row]:
    if shutil.which("valgrind") is None:
        raise RuntimeError("valgrind is not installed (apt-get install valgrind)")
    with tempfile.TemporaryDirectory() as workdir, ThreadPoolExecutor(2) as pool:
        counts = dict(
            zip(
                VARIANTS,
                pool.map(lambda name: _count(name, requests, workdir), VARIANTS),
                strict=True,
            )
        )
    bare = counts[BARE]
    return [Row(name, round(n), n / bare, round(n - bare)) for name, n in counts.items()]


def render(rows: list[Row]) -> str:
    lines = [f"{'variant':80} {'instr/req':>10} {'+instr':>9} {'ratio':>6}", "-" * 108]
    for row in rows:
        lines.append(
            f"{row.name:80} {row.instructions:>10,.0f} {row.added:>+9,.0f} {row.ratio:>6.3f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        asyncio.run(_child(args.child, args.requests))
        return
    print(render(run(args.requests)))


if __name__ == "__main__":
    main()
