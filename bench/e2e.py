"""End to end over real HTTP: the SaaS example against bare FastAPI + aioboto3.

    python -m bench.e2e [--requests 400] [--rounds 4] [--concurrency 8] [--engine ENGINE]

One local DynamoDB server (:class:`~lift_asgi.local.LocalDynamoDB`, on lift-asgi's
default engine, ministack, unless ``--engine`` or ``LIFT_ASGI_DYNAMODB_ENGINE`` says
otherwise; the report names it) and two uvicorn servers in subprocesses on free loopback
ports, each with its own freshly created tables:

- ``example``: ``examples.saas.app:app`` (``SAAS_ENV=dev``): TenantMiddleware →
  RateLimitMiddleware (``async+dynamodb://``) → UnitOfWorkMiddleware → the routes;
- ``bare``: ``bench.e2e_bare:app``: FastAPI making the same DynamoDB calls by hand with
  aioboto3 (see that module).

An aiohttp client in this process keeps ``concurrency`` requests in flight with an
enterprise-plan token (the limit is never reached) on two routes: ``GET /projects/{id}``
(rate counter + GetItem) and ``POST /projects`` (rate counter + a transaction of 2). The
four (route, app) variants run in alternating batches; throughput is the best batch's,
latency percentiles are over every request, and server CPU is the uvicorn process's own
(user + system, from ``/proc``) per request. Everything shares 2 cores with the DynamoDB
server. ministack answers ~2,600 GetItem/s here (the serialised moto ~550), so on it the
two apps, not the emulator, bound the throughput as far as one machine allows; on moto
both apps mostly wait for it. The server CPU shows what the suite costs; the clients' own
cost per DynamoDB call (signing, HTTP) is most of it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parent.parent
TENANT = "bench-co"
ROUTES = ("GET /projects/{id}", "POST /projects")
APPS = ("example", "bare")

__all__ = ["Row", "render", "run"]


# -- servers ----------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Server:
    """``uvicorn APP`` in a subprocess on a free port; stopped with SIGTERM."""

    def __init__(self, target: str, env: dict[str, str]) -> None:
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self._log: IO[bytes] = tempfile.TemporaryFile(prefix="bench-uvicorn-")  # noqa: SIM115
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                target,
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--no-access-log",
                "--log-level",
                "warning",
            ],
            cwd=ROOT,
            env={**os.environ, **env},
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def output(self) -> str:
        self._log.seek(0)
        return self._log.read().decode(errors="replace")[-2000:]

    async def wait_ready(self, session: Any, within: float = 60.0) -> None:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"uvicorn exited ({self.process.returncode}):\n{self.output()}")
            with contextlib.suppress(OSError, asyncio.TimeoutError):
                async with session.get(f"{self.base}/health") as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.1)
        raise RuntimeError(f"uvicorn did not answer within {within:.0f}s:\n{self.output()}")

    def cpu_seconds(self) -> float:
        """User + system CPU of the server process so far."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self._log.close()


async def _create_tables(endpoint: str, names: dict[str, str]) -> None:
    from examples.saas.setup import data_table_spec
    from lift_asgi.dynamo import AiodynamoTransport, create_table
    from lift_asgi.ratelimit import rate_limit_table_spec

    transport = AiodynamoTransport.static(endpoint)
    try:
        for app in APPS:
            await create_table(transport, data_table_spec(names[f"{app}-data"]))
            await create_table(transport, rate_limit_table_spec(names[f"{app}-rate"]))
    finally:
        await transport.close()


# -- load -------------------------------------------------------------------------------


@dataclass
class _Tally:
    latencies: list[float]
    errors: int = 0
    best_rps: float = 0.0
    cpu: float = 0.0
    requests: int = 0


async def _batch(
    session: Any,
    method: str,
    url: str,
    body: bytes | None,
    count: int,
    concurrency: int,
    tally: _Tally,
    server: Server,
) -> None:
    remaining = count

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            start = time.perf_counter()
            async with session.request(method, url, data=body) as response:
                await response.read()
                ok = response.status < 300
            tally.latencies.append(time.perf_counter() - start)
            tally.errors += not ok

    cpu = server.cpu_seconds()
    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    tally.cpu += server.cpu_seconds() - cpu
    tally.requests += count
    tally.best_rps = max(tally.best_rps, count / elapsed)


@dataclass(frozen=True)
class Row:
    route: str
    app: str
    requests: int
    errors: int
    rps: float  # best batch
    p50_ms: float
    p99_ms: float
    server_cpu_ms: float  # uvicorn process CPU per request
    engine: str = ""  # the local DynamoDB engine the run used


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _load(
    servers: dict[str, Server], token: str, requests: int, rounds: int, concurrency: int
) -> list[Row]:
    import aiohttp

    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=concurrency * len(servers))
    async with aiohttp.ClientSession(headers=headers, connector=connector) as session:
        for server in servers.values():
            await server.wait_ready(session)
        targets: dict[tuple[str, str], tuple[str, str, bytes | None]] = {}
        for app, server in servers.items():
            async with session.post(f"{server.base}/projects", json={"name": "seed"}) as answer:
                if answer.status != 201:
                    raise RuntimeError(f"{app}: POST /projects answered {answer.status}")
                project = (await answer.json())["id"]
            targets[(ROUTES[0], app)] = ("GET", f"{server.base}/projects/{project}", None)
            body = json.dumps({"name": "Apollo"}).encode()
            targets[(ROUTES[1], app)] = ("POST", f"{server.base}/projects", body)
        tallies = {variant: _Tally([]) for variant in targets}
        for (_route, app), (method, url, body) in targets.items():  # warm-up
            await _batch(session, method, url, body, 2 * concurrency, concurrency,
                         _Tally([]), servers[app])  # fmt: skip
        per_batch = max(concurrency, requests // rounds)
        for _ in range(rounds):
            for variant, (method, url, body) in targets.items():
                server = servers[variant[1]]
                await _batch(
                    session, method, url, body, per_batch, concurrency, tallies[variant], server
                )
    return [
        Row(
            route,
            app,
            tally.requests,
            tally.errors,
            tally.best_rps,
            _percentile(tally.latencies, 0.50) * 1e3,
            _percentile(tally.latencies, 0.99) * 1e3,
            tally.cpu / tally.requests * 1e3,
        )
        for (route, app), tally in sorted(tallies.items())
    ]


def run(
    requests: int = 400, rounds: int = 4, concurrency: int = 8, engine: str | None = None
) -> list[Row]:
    """``requests`` per (route, app) in ``rounds`` alternating batches, on ``engine``
    (``None``: the default local engine)."""
    from examples.saas.settings import DEV_SECRET
    from examples.saas.token import mint
    from lift_asgi.local import LocalDynamoDB

    suffix = uuid.uuid4().hex[:8]
    names = {
        f"{app}-{kind}": f"e2e-{app}-{kind}-{suffix}" for app in APPS for kind in ("data", "rate")
    }
    servers: dict[str, Server] = {}
    with LocalDynamoDB(engine=engine) as db:  # type: ignore[arg-type]
        asyncio.run(_create_tables(db.endpoint, names))
        common = {
            "AWS_ENDPOINT_URL_DYNAMODB": db.endpoint,
            "AWS_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "SAAS_JWT_SECRET": DEV_SECRET,
        }
        try:
            servers["example"] = Server(
                "examples.saas.app:app",
                {
                    **common,
                    "SAAS_ENV": "dev",
                    "SAAS_TABLE": names["example-data"],
                    "SAAS_RATE_TABLE": names["example-rate"],
                },
            )
            servers["bare"] = Server(
                "bench.e2e_bare:app",
                {
                    **common,
                    "BARE_TABLE": names["bare-data"],
                    "BARE_RATE_TABLE": names["bare-rate"],
                },
            )
            token = mint(TENANT, plan="enterprise", secret=DEV_SECRET)
            rows = asyncio.run(_load(servers, token, requests, rounds, concurrency))
            return [dataclasses.replace(row, engine=db.engine) for row in rows]
        finally:
            for server in servers.values():
                server.stop()


def ratios(rows: list[Row]) -> dict[str, dict[str, float]]:
    """Per route: example / bare for rps, p50, p99 and server CPU."""
    by = {(row.route, row.app): row for row in rows}
    out: dict[str, dict[str, float]] = {}
    for route in ROUTES:
        ours, bare = by.get((route, "example")), by.get((route, "bare"))
        if ours and bare:
            out[route] = {
                field: getattr(ours, field) / max(getattr(bare, field), 1e-9)
                for field in ("rps", "p50_ms", "p99_ms", "server_cpu_ms")
            }
    return out


def render(rows: list[Row]) -> str:
    engines = sorted({row.engine for row in rows if row.engine})
    lines = [f"local DynamoDB engine: {', '.join(engines) or '?'}"] if engines else []
    lines += [
        f"{'route':<20} {'app':<8} {'requests':>8} {'errors':>6} {'req/s':>7} "
        f"{'p50 ms':>7} {'p99 ms':>7} {'server CPU ms/req':>17}",
    ]
    lines.append("-" * len(lines[-1]))
    lines += [
        f"{row.route:<20} {row.app:<8} {row.requests:>8} {row.errors:>6} {row.rps:>7.1f} "
        f"{row.p50_ms:>7.1f} {row.p99_ms:>7.1f} {row.server_cpu_ms:>17.2f}"
        for row in rows
    ]
    for route, ratio in ratios(rows).items():
        lines.append(
            f"{route}: example/bare req/s {ratio['rps']:.2f}, p50 {ratio['p50_ms']:.2f}, "
            f"p99 {ratio['p99_ms']:.2f}, server CPU {ratio['server_cpu_ms']:.2f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=400, help="per route and app")
    parser.add_argument("--rounds", type=int, default=4, help="alternating batches")
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight")
    parser.add_argument(
        "--engine", choices=("moto", "ministack"), default=None, help="local DynamoDB engine"
    )
    args = parser.parse_args(argv)
    print(render(run(args.requests, args.rounds, args.concurrency, args.engine)))


if __name__ == "__main__":
    main()
