"""Leased rate-limit budgets, for ``python -m bench``: see ``bench/ratelimit.py --leases``.

One key at 1, 10, 100 and 1,000 requests/s in total, shared by 1, 2 and 4 worker
processes on one table of the local DynamoDB server; rate-limit calls per admitted
request, over-admission (must be 0) and under-admission (units leased but unspent).
"""

from __future__ import annotations

from bench.ratelimit import LeaseRow, lease_rows

__all__ = ["markdown", "run"]


def run(seconds: float = 8.0) -> list[LeaseRow]:
    return lease_rows(seconds=seconds)


def markdown(rows: list[LeaseRow]) -> list[str]:
    head = (
        "| req/s | processes | leases | sent | limit | admitted | calls/admitted "
        "| over-admitted | unspent % of limit | p50 ms | CPU µs/req |"
    )
    lines = [head, "| ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        lines.append(
            f"| {r.rate} | {r.processes} | {'on' if r.horizon else 'off'} | {r.sent} "
            f"| {r.limit} | {r.admitted} | {r.calls_per_admitted:.3f} "
            f"| {max(0, r.admitted - r.limit)} | {r.stranded_pct:.1f} | {r.p50_ms:.2f} "
            f"| {r.cpu_us:.0f} |"
        )
    return ["\n".join(lines)]
