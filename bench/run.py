"""``make bench``: run the benchmarks in sequence, write bench-results/<UTC time>/ and print the table.

    python bench/run.py [--only scoring,backfill,stream] [--quick]

results.json holds every figure and how it was measured, results.md the table
(benchmark, measure, figure, target, met?), the PNGs the streaming plots. Targets
are reported, never enforced: the exit status is 1 only when a benchmark failed.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path

if __package__ in (None, ""):  # run as a script: import the benchmarks as the ``bench`` package
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from bench import backfill, scoring, stream  # noqa: E402
from bench.report import Outcome, Row, write_results  # noqa: E402
from fraud.config import PROJECT_ROOT  # noqa: E402

BENCHMARKS = {"scoring": scoring.run, "backfill": backfill.run, "stream": stream.run}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(BENCHMARKS),
                        help=f"comma-separated benchmarks to run (default: all of {','.join(BENCHMARKS)})")
    parser.add_argument("--quick", action="store_true", help="small sizes and short steps, for development")
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "bench-results", help="results parent folder")
    args = parser.parse_args(argv)
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(chosen) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; choose from {list(BENCHMARKS)}")

    started = datetime.now(timezone.utc)
    folder = args.out / started.strftime("%Y%m%dT%H%M%SZ")
    folder.mkdir(parents=True)
    header = {"started": started.isoformat(timespec="seconds"), "quick": args.quick, "benchmarks_run": chosen,
              "machine": f"{platform.node()}: {os.cpu_count()} cores, Python {platform.python_version()}, "
                         f"load average at start {', '.join(f'{x:.2f}' for x in os.getloadavg())}"}
    outcomes: dict[str, Outcome] = {}
    failed = False
    for name in chosen:
        print(f"== {name}{' (quick)' if args.quick else ''}", flush=True)
        began = time.monotonic()
        try:
            outcomes[name] = BENCHMARKS[name](folder, args.quick)
        except Exception as exc:  # noqa: BLE001 - one failed benchmark is reported; the others still run
            traceback.print_exc()
            failed = True
            outcomes[name] = Outcome({"error": repr(exc)}, [Row(name, "benchmark", f"failed: {exc}"[:200])])
        outcomes[name].details["wall_seconds"] = round(time.monotonic() - began, 1)
        print(f"== {name}: {outcomes[name].details['wall_seconds']:.0f} s", flush=True)
        write_results(folder, {**header, "wall_seconds": round((datetime.now(timezone.utc) - started)
                                                               .total_seconds(), 1)}, outcomes)
    table = (folder / "results.md").read_text()
    print(f"\n{table}\nwritten to {folder}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
