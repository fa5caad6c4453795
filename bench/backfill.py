"""Backfill: the full dataset through Spark versus a straightforward pandas computation of the handbook features.

In the same run, on the same rows (``--quick``: the first QUICK_DAYS days only):

- Spark ``local[2]``: the product's backfill (``fraud.backfill``: every feature, the
  scoring UDF, Delta) into a new table, then the same backfill again into it;
- pandas, one process: the handbook's own computation of its 14 features alone
  (``bench.handbook``: per-key groupby with time-based rolling windows), the issue's
  baseline; and the product's numpy features (``fraud.features_pandas``: every feature, plus
  scoring) in one process, for reference.

Targets: the new-table backfill at least 2x faster than the handbook features, the
rerun 1.5x.
"""
from __future__ import annotations

import resource
import shutil
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from bench import CORES, MODEL
from bench.handbook import handbook_features
from bench.report import Outcome, Row, rate
from fraud.backfill import backfill
from fraud.config import load_settings
from fraud.data import dataset_path
from fraud.features_pandas import add_all_features_pandas
from fraud.schemas import HANDBOOK_COLUMNS, LABEL_COLUMN
from fraud.spark import build_spark_session
from training.artifacts import load_model
from udfs.scoring import score_features

COLUMNS = [*HANDBOOK_COLUMNS, LABEL_COLUMN]
QUICK_DAYS = 10
TARGET_SPEEDUP = 2.0
TARGET_RERUN_SPEEDUP = 1.5


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_handbook(source: Path) -> tuple[float, int]:
    """Wall seconds of the handbook's pandas features (reading included), rows."""
    began = time.perf_counter()
    features = handbook_features(pd.read_parquet(source, columns=COLUMNS))
    return time.perf_counter() - began, len(features)


def run_pandas(source: Path, target: Path) -> tuple[float, float, int]:
    """The product's numpy features and scoring in one process, Parquet out: wall seconds, CPU seconds, rows."""
    began, cpu_began = time.perf_counter(), cpu_seconds()
    artifact = load_model(MODEL)
    transactions = pd.read_parquet(source)
    features = add_all_features_pandas(transactions)
    scored = pd.concat([features[list(HANDBOOK_COLUMNS)],
                        score_features(artifact, features)], axis=1)
    scored.to_parquet(target, index=False)
    return time.perf_counter() - began, cpu_seconds() - cpu_began, len(scored)


def run_spark(source: Path, work: Path) -> tuple[float, float, float, int]:
    """Seconds for the first backfill (creates the table), session start, and a rerun into the same table, rows."""
    began = time.perf_counter()
    settings = load_settings().model_copy(update={"delta_dir": work})
    spark = build_spark_session(settings, "bench-backfill", master=f"local[{CORES}]", ui=False)
    started = time.perf_counter()
    try:
        report = backfill(spark, settings, source, MODEL, ("delta",))
        first = time.perf_counter()
        backfill(spark, settings, source, MODEL, ("delta",))
        rerun = time.perf_counter() - first
    finally:
        spark.stop()
    return first - started, started - began, rerun, report["rows"]


def first_days(source: Path, days: int, target: Path) -> Path:
    """The transactions of the first ``days`` days of ``source``, as Parquet (same column types)."""
    first = pq.read_table(source, columns=["TX_DATETIME"]).column("TX_DATETIME").to_pandas().min()
    end = pd.Timestamp(first).normalize() + pd.Timedelta(days=days)
    pq.write_table(pq.read_table(source, filters=[("TX_DATETIME", "<", end.to_pydatetime())]), target)
    return target


def run(out: Path, quick: bool) -> Outcome:
    work = out / "work-backfill"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        source = dataset_path(load_settings())
        if quick:
            source = first_days(source, QUICK_DAYS, work / "subset.parquet")
        spark_s, session_s, rerun_s, spark_rows = run_spark(source, work / "delta")
        handbook_s, handbook_rows = run_handbook(source)
        pandas_s, pandas_cpu_s, pandas_rows = run_pandas(source, work / "pandas.parquet")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    speedup, rerun_speedup = handbook_s / spark_s, handbook_s / rerun_s
    details = {
        "input": f"first {QUICK_DAYS} days" if quick else "full dataset", "rows": spark_rows, "cores": CORES,
        "spark_seconds": round(spark_s, 1), "spark_session_start_seconds": round(session_s, 1),
        "spark_tx_per_s": round(spark_rows / spark_s), "spark_rerun_seconds": round(rerun_s, 1),
        "handbook_pandas_seconds": round(handbook_s, 1), "handbook_rows": handbook_rows,
        "twin_pandas_seconds": round(pandas_s, 1), "twin_pandas_cpu_seconds": round(pandas_cpu_s, 1),
        "twin_rows": pandas_rows, "speedup_over_handbook": round(speedup, 2),
        "rerun_speedup_over_handbook": round(rerun_speedup, 2), "target_speedup": TARGET_SPEEDUP,
        "target_rerun_speedup": TARGET_RERUN_SPEEDUP,
    }
    name = f"backfill ({spark_rows:,} tx{', quick subset' if quick else ''})"
    return Outcome(details, [
        Row(name, "Spark local[2]: every feature + scoring UDF + Delta, new table",
            f"{rate(spark_rows / spark_s, ' tx/s')} ({spark_s:.1f} s + {session_s:.1f} s session start)"),
        Row(name, "Spark local[2]: the same again into that table", f"{rate(spark_rows / rerun_s, ' tx/s')} "
                                                                     f"({rerun_s:.1f} s)"),
        Row(name, "pandas, one process: the handbook's 14 features alone (its groupby + rolling code)",
            f"{rate(handbook_rows / handbook_s, ' tx/s')} ({handbook_s:.1f} s)"),
        Row(name, "new table, speed over the handbook's pandas features", f"{speedup:.2f}x",
            f">= {TARGET_SPEEDUP:g}x", speedup >= TARGET_SPEEDUP),
        Row(name, "rerun, speed over the handbook's pandas features", f"{rerun_speedup:.2f}x",
            f">= {TARGET_RERUN_SPEEDUP:g}x", rerun_speedup >= TARGET_RERUN_SPEEDUP),
        Row(name, "for reference: pandas, one process: the product's features + scoring, Parquet out",
            f"{rate(pandas_rows / pandas_s, ' tx/s')} ({pandas_s:.1f} s, {pandas_cpu_s:.1f} CPU s)"),
    ])
