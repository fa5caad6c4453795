"""Scoring efficiency: the model inside the product's pandas UDF versus plain scikit-learn, same rows, same cores.

The rows are real features: the whole dataset through the package's feature code
(``fraud.features_pandas``), the last N transactions kept (the ones with the most
history). Three timings on those rows, each the median of a few repeats after a
warm-up:

- scikit-learn ``predict_proba`` on the pandas frame, CORES threads (the model is a
  HistGradientBoosting, whose predict runs on OpenMP threads), and with 1 thread:
  OpenMP threads spin while they wait, so on a busy machine 2 threads can be far
  slower than 1;
- ``udfs.scoring.score_features``: the product's whole pandas scoring (probability,
  decision, reason codes, version), the same threads;
- the product's pandas UDF (``udfs.scoring.score_column``) in Spark ``local[CORES]``
  over the same rows cached in Spark, forced by an aggregate over the score (a sum
  Spark cannot get without running the UDF). Its sum must equal scikit-learn's.
  Spark starts its Python workers with OMP_NUM_THREADS = spark.task.cpus (1), so
  the model runs one thread per task, CORES tasks at a time.

The target is UDF rows/s >= 0.6 x predict_proba rows/s.
"""
from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Callable, TypeVar

import pandas as pd
from pyspark.sql import functions as F
from threadpoolctl import threadpool_limits

from bench import CORES, MODEL
from bench.report import Outcome, Row, rate
from fraud.config import load_settings
from fraud.data import dataset_path
from fraud.features_pandas import add_all_features_pandas
from fraud.spark import spark_session
from training.artifacts import load_model
from udfs.scoring import score_column, score_features

ROWS = {False: 500_000, True: 50_000}  # full, quick
REPEATS = 3
TARGET_RATIO = 0.6
T = TypeVar("T")


def feature_rows(rows: int) -> pd.DataFrame:
    """The last ``rows`` transactions of the dataset with every feature, computed over the whole history."""
    transactions = pd.read_parquet(dataset_path(load_settings()))
    return add_all_features_pandas(transactions).tail(rows).reset_index(drop=True)


def median_seconds(work: Callable[[], T], repeats: int = REPEATS) -> tuple[float, T]:
    """Median wall-clock seconds of ``work`` over ``repeats`` runs after one warm-up run; and its last result."""
    result = work()
    seconds = []
    for _ in range(repeats):
        began = time.perf_counter()
        result = work()
        seconds.append(time.perf_counter() - began)
    return statistics.median(seconds), result


def run(out: Path, quick: bool) -> Outcome:
    artifact = load_model(MODEL)
    features = feature_rows(ROWS[quick])
    n = len(features)
    predict = lambda: artifact.model.predict_proba(artifact.inputs(features))[:, 1]  # noqa: E731
    with threadpool_limits(limits=1):
        one_thread_s, _ = median_seconds(predict)
    with threadpool_limits(limits=CORES):
        sklearn_s, probabilities = median_seconds(predict)
        pandas_s, _ = median_seconds(lambda: score_features(artifact, features))
    settings = load_settings()
    with spark_session(settings, "bench-scoring", master=f"local[{CORES}]", ui=False) as spark:
        cached = spark.createDataFrame(features[["TRANSACTION_ID", *artifact.features]]).cache()
        partitions, cached_rows = cached.rdd.getNumPartitions(), cached.count()
        score = score_column(spark, artifact)
        # a new DataFrame each time: collecting the same one again would reuse its shuffle output, skipping the UDF
        udf_s, result = median_seconds(lambda: cached.select(score.alias("s")).agg(
            F.count(F.lit(1)).alias("rows"), F.sum("s.fraud_score").alias("total")).collect()[0])
        cached.unpersist()
    if cached_rows != n or result["rows"] != n or abs(result["total"] - probabilities.sum()) > 1e-6 * n:
        raise AssertionError(f"the UDF did not score the same rows: {result} vs {n} rows, sum {probabilities.sum()}")
    speeds = {"predict_proba": n / sklearn_s, "predict_proba_1_thread": n / one_thread_s,
              "score_features": n / pandas_s, "pandas_udf": n / udf_s}
    ratio = speeds["pandas_udf"] / speeds["predict_proba"]
    details = {
        "rows": n, "cores": CORES, "repeats": REPEATS, "model": artifact.version, "spark_partitions": partitions,
        "seconds": {"predict_proba": round(sklearn_s, 3), "predict_proba_1_thread": round(one_thread_s, 3),
                    "score_features": round(pandas_s, 3), "pandas_udf": round(udf_s, 3)},
        "rows_per_s": {name: round(value) for name, value in speeds.items()},
        "udf_over_predict_proba": round(ratio, 3), "target_ratio": TARGET_RATIO,
        "score_features_over_predict_proba": round(speeds["score_features"] / speeds["predict_proba"], 3),
    }
    name = f"scoring ({n:,} rows, {CORES} cores)"
    return Outcome(details, [
        Row(name, f"scikit-learn predict_proba, pandas frame, {CORES} OpenMP threads",
            rate(speeds["predict_proba"], " rows/s")),
        Row(name, "the same, 1 thread", rate(speeds["predict_proba_1_thread"], " rows/s")),
        Row(name, "score_features (probability + decision + reasons), pandas", rate(speeds["score_features"],
                                                                                    " rows/s")),
        Row(name, f"pandas UDF in Spark local[{CORES}], rows cached", rate(speeds["pandas_udf"], " rows/s")),
        Row(name, "UDF / predict_proba throughput", f"{ratio:.2f}", f">= {TARGET_RATIO}", ratio >= TARGET_RATIO),
    ])
