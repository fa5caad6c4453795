"""Benchmark (not a test): the full-dataset backfill, Spark versus a single-process pandas baseline.

Both sides do the same work on the same rows, in the same run: read the history,
compute every feature, score with the default model, write the scored rows
(Spark: the product's backfill into Delta; pandas: fraud.features_pandas +
udfs.scoring.score_features, written to Parquet). Prints a table and writes
bench-results/backfill.json and .md.
"""
from __future__ import annotations

import dataclasses
import json
import shutil
import sys
import time
from pathlib import Path

import pandas as pd

from fraud.backfill import backfill
from fraud.config import PROJECT_ROOT, load_settings
from fraud.data import dataset_path
from fraud.features_pandas import add_all_features_pandas
from fraud.spark import build_spark_session
from training.artifacts import load_model
from udfs.scoring import score_features

OUT = PROJECT_ROOT / "bench-results"
MODEL = PROJECT_ROOT / "models" / "default"


def run_pandas(source: Path, target: Path) -> tuple[float, int]:
    began = time.perf_counter()
    artifact = load_model(MODEL)
    transactions = pd.read_parquet(source)
    features = add_all_features_pandas(transactions)
    scored = pd.concat([features[["TRANSACTION_ID", "TX_DATETIME", "CUSTOMER_ID", "TERMINAL_ID", "TX_AMOUNT"]],
                        score_features(artifact, features)], axis=1)
    scored.to_parquet(target, index=False)
    return time.perf_counter() - began, len(scored)


def run_spark(source: Path, work: Path) -> tuple[float, float, float, int]:
    """Seconds for the first backfill (creates the table), session start, and a rerun (MERGE), rows."""
    began = time.perf_counter()
    settings = dataclasses.replace(load_settings(), delta_dir=work)
    spark = build_spark_session(settings, "bench-backfill")
    started = time.perf_counter()
    report = backfill(spark, settings, source, MODEL, ("delta",))
    first = time.perf_counter()
    backfill(spark, settings, source, MODEL, ("delta",))
    rerun = time.perf_counter() - first
    spark.stop()
    return first - started, started - began, rerun, report["rows"]


def main() -> int:
    source = dataset_path(load_settings())
    OUT.mkdir(exist_ok=True)
    work = OUT / "work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    spark_seconds, session_seconds, rerun_seconds, spark_rows = run_spark(source, work / "delta")
    pandas_seconds, pandas_rows = run_pandas(source, work / "pandas.parquet")
    shutil.rmtree(work)
    result = {
        "rows": spark_rows, "pandas_rows": pandas_rows,
        "spark_seconds": round(spark_seconds, 1), "spark_session_start_seconds": round(session_seconds, 1),
        "spark_tx_per_s": round(spark_rows / spark_seconds), "spark_rerun_merge_seconds": round(rerun_seconds, 1),
        "pandas_seconds": round(pandas_seconds, 1),
        "pandas_tx_per_s": round(pandas_rows / pandas_seconds),
        "spark_speedup_over_pandas": round(pandas_seconds / spark_seconds, 2),
        "target_speedup": 2.0, "cores": 2,
    }
    table = "\n".join([
        "| backfill of the full dataset | rows | seconds | transactions/s |",
        "|---|---|---|---|",
        f"| Spark local[2]: features + scoring + Delta (new table) | {spark_rows:,} | {spark_seconds:.1f} "
        f"(+{session_seconds:.1f} session start) | {result['spark_tx_per_s']:,} |",
        f"| Spark local[2]: the same rerun, Delta MERGE into the table | {spark_rows:,} | {rerun_seconds:.1f} | "
        f"{round(spark_rows / rerun_seconds):,} |",
        f"| pandas, one process: same features + scoring + Parquet | {pandas_rows:,} | {pandas_seconds:.1f} | "
        f"{result['pandas_tx_per_s']:,} |",
        f"| Spark / pandas speed ratio (target >= 2) | | {result['spark_speedup_over_pandas']} | |",
    ])
    (OUT / "backfill.json").write_text(json.dumps(result, indent=2) + "\n")
    (OUT / "backfill.md").write_text(table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
