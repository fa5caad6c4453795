"""The one results table (benchmark, measure, figure, target, met?) and the files it is written to."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Row:
    benchmark: str
    measure: str
    figure: str
    target: str = ""
    met: bool | None = None  # None: no target, or nothing measured


@dataclass
class Outcome:
    """What one benchmark hands back: details for results.json, rows for the table."""
    details: dict[str, Any]
    rows: list[Row] = field(default_factory=list)


def markdown_table(rows: list[Row]) -> str:
    verdict = {True: "yes", False: "**no**", None: ""}
    lines = ["| benchmark | measure | figure | target | met? |", "|---|---|---|---|---|"]
    lines += [f"| {r.benchmark} | {r.measure} | {r.figure} | {r.target} | {verdict[r.met]} |" for r in rows]
    return "\n".join(lines)


def write_results(folder: Path, header: dict[str, Any], outcomes: dict[str, Outcome]) -> str:
    """Write results.json (header + every benchmark's details and rows) and results.md; returns the table."""
    rows = [row for outcome in outcomes.values() for row in outcome.rows]
    table = markdown_table(rows)
    results = {**header, "benchmarks": {name: {**outcome.details, "rows": [asdict(r) for r in outcome.rows]}
                                        for name, outcome in outcomes.items()}}
    (folder / "results.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    (folder / "results.md").write_text(f"# Benchmarks {header['started']}{' (quick)' if header['quick'] else ''}\n\n"
                                       f"{table}\n\n{header['machine']}\n")
    return table


def rate(value: float | None, unit: str = "/s") -> str:
    return "-" if value is None else f"{value:,.0f}{unit}"
