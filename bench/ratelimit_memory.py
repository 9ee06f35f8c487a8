"""``memory://``: bytes held per active key, and what a new key costs as the store grows.

    python bench/ratelimit_memory.py [--keys 1000000]

The rows of ``python bench/ratelimit.py --memory`` (see that module), as a section of
``python -m bench``, so that the README's ``memory://`` figures come from
``bench/RESULTS.md`` like the others.
"""

from __future__ import annotations

import argparse

try:
    from bench.ratelimit import MemoryRow, memory_rows
except ImportError:  # run as a script: python bench/ratelimit_memory.py
    from ratelimit import MemoryRow, memory_rows  # type: ignore[no-redef,import-not-found]

__all__ = ["run"]


def run(keys: int = 1_000_000) -> list[MemoryRow]:
    """Bytes per key for one fixed window, a sliding window and two windows; CPU per new
    key in an empty store, among ``keys`` live keys, and at a cap of ``keys``."""
    return memory_rows(keys)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--keys", type=int, default=1_000_000)
    args = parser.parse_args()
    for row in run(args.keys):
        ratio = f"  ({row.ratio:.2f}x)" if row.ratio is not None else ""
        print(f"{row.name:55} {row.value:10.1f} {row.unit}{ratio}")


if __name__ == "__main__":
    main()
