"""The README's benchmark tables are copied from bench/RESULTS.md, not typed from memory:
every number in a table of the README's Benchmarks section, and in a table elsewhere that
follows the marker ``<!-- figures: bench/RESULTS.md ... -->``, is found in RESULTS.md (the
file `make bench` writes), so a figure cannot outlive the run it came from.

The check is by number, not by row: a figure copied into the wrong row passes when the
run has it elsewhere. Read the rows against RESULTS.md when copying them."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
RESULTS = (ROOT / "bench" / "RESULTS.md").read_text()
# a number, with its thousands separators; what follows it (x, µs, ms, %) is not part of it
_NUMBER = re.compile(r"(?<![\w.])[-+]?\d[\d,]*(?:\.\d+)?(?![\d.])")


def _section() -> str:
    start = README.index("## Benchmarks")
    return README[start : README.index("\n## ", start + 1)]


def _numbers(text: str) -> set[str]:
    return {n.replace(",", "").lstrip("+") for n in _NUMBER.findall(text)}


def _table_cells(section: str) -> list[str]:
    cells = []
    for line in section.splitlines():
        if line.startswith("|") and not re.fullmatch(r"\|[-:| ]+\|", line):
            cells += [cell.strip() for cell in line.strip("|").split("|")][1:]
    return cells


def test_every_benchmark_table_figure_is_in_the_results_file() -> None:
    known = _numbers(RESULTS)
    cells = _table_cells(_section())
    assert cells, "the Benchmarks section has tables"
    missing = sorted({n for cell in cells for n in _numbers(cell)} - known, key=float)
    assert missing == [], f"README benchmark figures not in bench/RESULTS.md: {missing}"


_MARKER = "<!-- figures: bench/RESULTS.md"


def _marked_tables() -> list[str]:
    """The table right after each marker, outside the Benchmarks section."""
    tables = []
    for part in README.split(_MARKER)[1:]:
        lines = part.splitlines()[1:]  # the marker's own line ends the comment
        table = []
        for line in lines:
            if not line.startswith("|"):
                if table:
                    break
                continue
            table.append(line)
        tables.append("\n".join(table))
    return tables


def test_every_marked_table_figure_elsewhere_is_in_the_results_file() -> None:
    known = _numbers(RESULTS)
    tables = _marked_tables()
    assert len(tables) >= 3, "the leases, idempotency and memory:// tables are marked"
    for marked in tables:
        cells = _table_cells(marked)
        assert cells, marked
        missing = sorted({n for cell in cells for n in _numbers(cell)} - known, key=float)
        assert missing == [], f"README figures not in bench/RESULTS.md: {missing}\n{marked}"


def test_the_section_names_the_run_it_was_copied_from() -> None:
    generated = re.search(r"on (\d{4}-\d{2}-\d{2} \d{2}:\d{2}) UTC", RESULTS)
    assert generated is not None
    assert generated.group(1) in _section()
