"""Backfill: the full dataset through Spark versus a single-process pandas baseline.

Both sides do the same work on the same rows, in the same run: read the history,
compute every feature, score with the default model, write the scored rows
(Spark ``local[2]``: the product's backfill into a new Delta table, then the same
backfill again, a MERGE into that table; pandas: ``fraud.features_pandas`` +
``udfs.scoring.score_features``, written to Parquet). ``--quick`` runs both on the
first QUICK_DAYS days only (a Parquet subset in the work folder).

The pandas run's CPU time (user + system of this process: scikit-learn scores on
CORES OpenMP threads) bounds what any engine can reach on CORES cores: doing the
same work with no overhead at all, it cannot take less than that CPU time / CORES.
"""
from __future__ import annotations

import dataclasses
import resource
import shutil
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from bench import CORES, MODEL
from bench.report import Outcome, Row, rate
from fraud.backfill import backfill
from fraud.config import load_settings
from fraud.data import dataset_path
from fraud.features_pandas import add_all_features_pandas
from fraud.spark import build_spark_session
from training.artifacts import load_model
from udfs.scoring import score_features

QUICK_DAYS = 10
TARGET_SPEEDUP = 2.0


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_pandas(source: Path, target: Path) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds, rows."""
    began, cpu_began = time.perf_counter(), cpu_seconds()
    artifact = load_model(MODEL)
    transactions = pd.read_parquet(source)
    features = add_all_features_pandas(transactions)
    scored = pd.concat([features[["TRANSACTION_ID", "TX_DATETIME", "CUSTOMER_ID", "TERMINAL_ID", "TX_AMOUNT"]],
                        score_features(artifact, features)], axis=1)
    scored.to_parquet(target, index=False)
    return time.perf_counter() - began, cpu_seconds() - cpu_began, len(scored)


def run_spark(source: Path, work: Path) -> tuple[float, float, float, int]:
    """Seconds for the first backfill (creates the table), session start, and a rerun (MERGE), rows."""
    began = time.perf_counter()
    settings = dataclasses.replace(load_settings(), delta_dir=work)
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
        pandas_s, pandas_cpu_s, pandas_rows = run_pandas(source, work / "pandas.parquet")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    speedup, bound = pandas_s / spark_s, pandas_s / (pandas_cpu_s / CORES)
    details = {
        "input": f"first {QUICK_DAYS} days" if quick else "full dataset", "rows": spark_rows,
        "pandas_rows": pandas_rows, "cores": CORES,
        "spark_seconds": round(spark_s, 1), "spark_session_start_seconds": round(session_s, 1),
        "spark_tx_per_s": round(spark_rows / spark_s), "spark_rerun_merge_seconds": round(rerun_s, 1),
        "spark_rerun_tx_per_s": round(spark_rows / rerun_s),
        "pandas_seconds": round(pandas_s, 1), "pandas_tx_per_s": round(pandas_rows / pandas_s),
        "pandas_cpu_seconds": round(pandas_cpu_s, 1), "max_speedup_on_cores": round(bound, 2),
        "spark_speedup_over_pandas": round(speedup, 2), "target_speedup": TARGET_SPEEDUP,
    }
    name = f"backfill ({spark_rows:,} tx{', quick subset' if quick else ''})"
    return Outcome(details, [
        Row(name, "Spark local[2]: features + scoring UDF + Delta, new table",
            f"{rate(spark_rows / spark_s, ' tx/s')} ({spark_s:.1f} s + {session_s:.1f} s session start)"),
        Row(name, "Spark local[2]: the same rerun, Delta MERGE", f"{rate(spark_rows / rerun_s, ' tx/s')} "
                                                                  f"({rerun_s:.1f} s)"),
        Row(name, "pandas, one process: same features + scoring, Parquet out",
            f"{rate(pandas_rows / pandas_s, ' tx/s')} ({pandas_s:.1f} s)"),
        Row(name, "Spark (new table) / pandas speed", f"{speedup:.2f}x", f">= {TARGET_SPEEDUP:g}x",
            speedup >= TARGET_SPEEDUP),
        Row(name, f"bound: pandas wall / (its CPU time / {CORES} cores), any engine, zero overhead",
            f"{bound:.2f}x ({pandas_cpu_s:.1f} CPU s)"),
    ])
