"""The floor this machine allows the design: two minimal Structured Streaming queries, run like the stream.

    python -m bench.floor stateless|stateful   (environment: the isolated pipeline's FRAUD_* variables)

- ``stateless``: Kafka ``transactions.raw`` -> JSON parse -> the served model's pandas UDF
  (``udfs.scoring``) -> the result topic, trigger 0 (as fast as possible). The features the
  model needs beyond the message's amount are zeros: the model does the same work per row.
- ``stateful``: the same with a per-card ``applyInPandasWithState`` holding a counter in between:
  one Python call per card, Spark's own answer to per-key state.

Each runs in its own process on ``local[2]`` (the stream's cores); ``bench.stream`` feeds it at
the step's rate and measures it exactly as it measures the stream.
"""
from __future__ import annotations

import sys
import threading
from typing import Iterable, Iterator

import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.streaming import StreamingQuery
from pyspark.sql.streaming.state import GroupState, GroupStateTimeout

from fraud.config import load_settings
from fraud.schemas import SCORED_ROW, TRANSACTION_MESSAGE
from fraud.spark import spark_session
from fraud.stream import stop_on_signals
from fraud.stream.serving import newest_model
from training.artifacts import load_model
from udfs.scoring import score_column

KINDS = ("stateless", "stateful")


def _count_per_card(key: tuple, frames: Iterable[pd.DataFrame], state: GroupState) -> Iterator[pd.DataFrame]:
    seen = state.get[0] if state.exists else 0
    for frame in frames:
        seen += len(frame)
        yield frame
    state.update((seen,))


def floor_query(records: DataFrame, kind: str, model) -> DataFrame:
    """Kafka records -> the result topic's (key, value), scored by ``model`` (a ModelArtifact)."""
    message = F.from_json(F.col("value").cast("string"), TRANSACTION_MESSAGE)
    rows = records.select(message.alias("m"), F.col("timestamp").alias("kafka_timestamp")).select("m.*",
                                                                                                   "kafka_timestamp")
    if kind == "stateful":
        rows = rows.groupBy("customer_id").applyInPandasWithState(
            _count_per_card, rows.schema, "seen long", "append", GroupStateTimeout.NoTimeout)
        # the model's input computed from the operator's output puts a projection (UnsafeRow output) between the
        # state operator and the pandas UDF: Spark 3.5 hands the UDF the operator's GenericInternalRows otherwise,
        # and the task fails (ClassCastException)
        rows = rows.withColumn("tx_amount", F.col("tx_amount") + 0)
    rows = rows.withColumnRenamed("tx_amount", "amount")  # TX_AMOUNT is the model's (names are case-blind)
    features = rows.select("*", *(F.lit(0.0).alias(name) for name in model.features if name != "TX_AMOUNT"),
                           F.col("amount").alias("TX_AMOUNT"))
    spark = records.sparkSession
    scored = features.withColumn("_score", score_column(spark, model)).select(
        "transaction_id", F.to_timestamp("tx_datetime").alias("tx_datetime"), "customer_id", "terminal_id",
        F.col("amount").alias("tx_amount"), "_score.*", "kafka_timestamp", F.current_timestamp().alias("scored_at"))
    return scored.select(F.col("transaction_id").cast("string").alias("key"),
                         F.to_json(F.struct(*SCORED_ROW.fieldNames())).alias("value"))


def main(kind: str) -> int:
    if kind not in KINDS:
        raise SystemExit(f"usage: python -m bench.floor {'|'.join(KINDS)}")
    settings = load_settings()
    stop = stop_on_signals()
    with spark_session(settings, f"floor-{kind}", ui=False,
                       extra_conf={"spark.sql.shuffle.partitions": str(settings.stream.state_shards)}) as spark:
        model = load_model(newest_model(settings.stream.model))
        records = (spark.readStream.format("kafka").options(**settings.kafka.spark_options())
                   .option("subscribe", settings.kafka.topics.raw).option("startingOffsets", "earliest").load())
        query = (floor_query(records, kind, model).writeStream.format("kafka")
                 .options(**settings.kafka.spark_options()).option("topic", settings.kafka.topics.scored)
                 .option("checkpointLocation", str(settings.checkpoint_dir / f"floor-{kind}"))
                 .outputMode("append").trigger(processingTime="0 seconds").start())
        return run_until_stopped(query, stop)


def run_until_stopped(query: StreamingQuery, stop: threading.Event) -> int:
    """Wait until ``stop`` is set (``stop_on_signals``: the benchmark's kill) or ``query`` ends, stop it; 0 (the
    exit status)."""
    while not stop.is_set() and query.isActive:
        query.awaitTermination(1)
    query.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else ""))
