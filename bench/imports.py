"""``import lift_asgi`` in fresh processes, today's tree against the baseline commit.

    python -m bench.imports [--runs N] [--baseline COMMIT]

The baseline is ``lift_asgi/`` as of ``BASELINE`` (61e1243, before the lazy public face),
extracted with ``git archive`` into a temporary directory and put first on
``PYTHONPATH``; today's is this checkout's. Each row is the median, over ``runs`` fresh
interpreters started in alternation, of the time ``import`` takes inside the child
(``perf_counter`` around the statement, so interpreter start-up is not counted; the
child prints where the package came from, so a row cannot silently measure the other
tree). Rows:

- ``import lift_asgi``, baseline and today (the target: today ≤ 40 % of the baseline);
- today, ``from lift_asgi import install, TenantMiddleware``: the tenant stage's path;
- today, every public name resolved: what a service using every stage imports.

Nothing here asserts on a time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

__all__ = ["BASELINE", "TARGET_RATIO", "Row", "render", "run"]

ROOT = Path(__file__).resolve().parent.parent
BASELINE = "61e1243"
TARGET_RATIO = 0.40

_CHILD = """
import time, sys
t = time.perf_counter()
{statement}
elapsed = time.perf_counter() - t
print(elapsed, sys.modules["lift_asgi"].__file__)
"""


@dataclass(frozen=True)
class Row:
    name: str
    ms: float  # median import time in a fresh process
    ratio: float  # to the baseline's ``import lift_asgi``
    modules: int  # modules in sys.modules after the import, for scale


def _once(statement: str, pythonpath: str, expect: str) -> tuple[float, int]:
    code = _CHILD.format(statement=statement) + "print(len(sys.modules))\n"
    env = {**os.environ, "PYTHONPATH": pythonpath, "PYTHONDONTWRITEBYTECODE": "1"}
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env=env,
        cwd=tempfile.gettempdir(),  # not the checkout: only PYTHONPATH decides
        timeout=120,
    ).stdout.split()
    seconds, where, modules = float(out[0]), out[1], int(out[2])
    if not where.startswith(expect):
        raise RuntimeError(f"{statement!r} imported {where}, expected under {expect}")
    return seconds, modules


def _extract(commit: str, into: Path) -> None:
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", commit, "lift_asgi"],
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True, timeout=60)


def run(runs: int = 15, baseline: str = BASELINE) -> list[Row]:
    """Rows in order; the first is the baseline."""
    import lift_asgi

    everything = "import lift_asgi\n" + "".join(
        f"lift_asgi.{name}\n" for name in lift_asgi.__all__ if name != "__version__"
    )
    with tempfile.TemporaryDirectory(prefix="lift-baseline-") as old:
        _extract(baseline, Path(old))
        # Compile both trees once, so no row pays for writing bytecode.
        for tree in (old, str(ROOT)):
            subprocess.run(
                [sys.executable, "-m", "compileall", "-q", f"{tree}/lift_asgi"],
                check=True,
                timeout=120,
            )
        cases = [
            (f"{baseline}: import lift_asgi", "import lift_asgi", old),
            ("today: import lift_asgi", "import lift_asgi", str(ROOT)),
            (
                "today: from lift_asgi import install, TenantMiddleware",
                "from lift_asgi import install, TenantMiddleware",
                str(ROOT),
            ),
            ("today: every public name resolved", everything, str(ROOT)),
        ]
        times: dict[str, list[float]] = {name: [] for name, _, _ in cases}
        modules: dict[str, int] = {}
        for _ in range(runs):  # alternate, so background load hits every case alike
            for name, statement, path in cases:
                seconds, count = _once(statement, path, path)
                times[name].append(seconds)
                modules[name] = count
    base = statistics.median(times[cases[0][0]])
    return [
        Row(name, statistics.median(times[name]) * 1e3, statistics.median(times[name]) / base,
            modules[name])
        for name, _, _ in cases
    ]  # fmt: skip


def render(rows: list[Row]) -> str:
    width = max(len(row.name) for row in rows)
    lines = [f"{'import':<{width}}  {'ms':>7}  {'ratio':>6}  {'modules':>7}"]
    lines.append("-" * len(lines[0]))
    lines += [
        f"{row.name:<{width}}  {row.ms:>7.1f}  {row.ratio:>6.2f}  {row.modules:>7}" for row in rows
    ]
    today = rows[1]
    verdict = "met" if today.ratio <= TARGET_RATIO else "missed"
    lines.append(
        f"import lift_asgi: {today.ratio:.2f}x the baseline's "
        f"(target ≤ {TARGET_RATIO:.2f}x: {verdict})"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=15, help="fresh processes per row")
    parser.add_argument("--baseline", default=BASELINE, help="the commit to compare with")
    args = parser.parse_args(argv)
    print(render(run(args.runs, args.baseline)))


if __name__ == "__main__":
    main()
