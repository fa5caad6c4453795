"""The smoke round trip: Kafka in, MySQL + Elasticsearch + Delta + result topic out.

``fraud roundtrip`` produces N synthetic transactions to ``transactions.raw``,
reads exactly those back with a Spark query on the Kafka source (availableNow),
and writes each micro-batch to every sink with the idempotent writers of
``fraud.sinks``. It proves a fresh install end to end; the streaming scorer
replaces it as the main job.
"""
from __future__ import annotations

import json
import random
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from fraud.clients.elasticsearch import elasticsearch_client
from fraud.clients.kafka import kafka_producer, topic_end_offsets
from fraud.clients.mysql import connect
from fraud.config import Settings
from fraud.schemas import FEATURES_COLUMN, SCORED_ROW, TRANSACTION_MESSAGE
from fraud.scoring import FEATURES_TYPE
from fraud.sinks import SINKS, write_to_sinks


@dataclass(frozen=True)
class RoundTrip:
    first_id: int
    count: int
    start_offsets: dict[int, int]   # partition -> first offset of this run


def synthetic_events(first_id: int, count: int, seed: int = 0) -> list[dict]:
    """Valid transaction messages with ids first_id .. first_id + count - 1."""
    rng = random.Random(seed)
    start = datetime(2026, 1, 1)
    return [{"transaction_id": first_id + i,
             "tx_datetime": (start + timedelta(seconds=17 * i)).isoformat(),
             "customer_id": rng.randrange(5000), "terminal_id": rng.randrange(10000),
             "tx_amount": round(rng.lognormvariate(3.5, 1.0), 2)} for i in range(count)]


def produce_events(settings: Settings, events: list[dict]) -> RoundTrip:
    """Send ``events`` keyed by customer; returns where they start in the topic."""
    topic = settings.kafka.topics.raw
    offsets = topic_end_offsets(settings, topic)
    producer = kafka_producer(settings, **{"linger.ms": 20})
    for event in events:
        producer.produce(topic, key=str(event["customer_id"]), value=json.dumps(event))
        producer.poll(0)
    if producer.flush(30) != 0:
        raise RuntimeError("Kafka producer could not deliver every event within 30s")
    return RoundTrip(first_id=events[0]["transaction_id"], count=len(events), start_offsets=offsets)


def parse_transactions(raw: DataFrame) -> DataFrame:
    """Kafka records -> rows of the scored-row shape (no score, no features yet), so they share the sinks'
    tables with the stream and the backfill."""
    parsed = raw.select(F.from_json(F.col("value").cast("string"), TRANSACTION_MESSAGE).alias("m"),
                        F.col("timestamp").alias("kafka_timestamp"))
    return parsed.select(
        "m.transaction_id", F.to_timestamp("m.tx_datetime").alias("tx_datetime"), "m.customer_id",
        "m.terminal_id", "m.tx_amount",
        *(F.lit(None).cast(SCORED_ROW[name].dataType).alias(name)
          for name in ("fraud_score", "decision", "reason_codes", "model_version")),
        "kafka_timestamp", F.current_timestamp().alias("scored_at"),
        F.lit(None).cast(FEATURES_TYPE).alias(FEATURES_COLUMN))


def write_all_sinks(batch: DataFrame, batch_id: int, settings: Settings) -> None:
    write_to_sinks(batch, settings, SINKS, stage_tag=f"roundtrip_{batch_id}")


def run_roundtrip(spark: SparkSession, settings: Settings, trip: RoundTrip, checkpoint: str) -> int:
    """Read the produced events back from Kafka and write them to every sink; returns rows read."""
    topic = settings.kafka.topics.raw
    raw = (spark.readStream.format("kafka")
           .options(**settings.kafka.spark_options())
           .option("subscribe", topic)
           .option("startingOffsets", json.dumps({topic: {str(p): o for p, o in trip.start_offsets.items()}}))
           .load())
    rows = parse_transactions(raw).where(
        F.col("transaction_id").between(trip.first_id, trip.first_id + trip.count - 1))
    query = (rows.writeStream.queryName("roundtrip")
             .foreachBatch(lambda batch, batch_id: write_all_sinks(batch, batch_id, settings))
             .option("checkpointLocation", checkpoint)
             .trigger(availableNow=True).start())
    try:
        query.awaitTermination()
    finally:
        query.stop()
    return sum(p["numInputRows"] for p in query.recentProgress)


def new_first_id() -> int:
    """A transaction id range unlikely to collide with earlier smoke runs."""
    return int(time.time() * 1000) * 1000


def count_in_sinks(spark: SparkSession, settings: Settings, trip: RoundTrip) -> dict[str, int]:
    """Rows of this trip's id range found in MySQL, Elasticsearch and Delta."""
    first, last = trip.first_id, trip.first_id + trip.count - 1
    with connect(settings) as conn, conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM scored_transactions WHERE transaction_id BETWEEN %s AND %s", (first, last))
        in_mysql = cur.fetchone()[0]
    es = elasticsearch_client(settings)
    es.indices.refresh(index=settings.elasticsearch.index)
    in_es = es.count(index=settings.elasticsearch.index,
                     query={"range": {"transaction_id": {"gte": first, "lte": last}}})["count"]
    in_delta = (spark.read.format("delta").load(settings.scored_table)
                .where(F.col("transaction_id").between(first, last)).count())
    return {"mysql": in_mysql, "elasticsearch": in_es, "delta": in_delta}


def smoke_roundtrip(spark: SparkSession, settings: Settings, events: int) -> dict[str, object]:
    """Produce ``events`` new transactions, run them through every sink, report the counts found."""
    trip = produce_events(settings, synthetic_events(new_first_id(), events))
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=settings.state_dir, prefix="roundtrip-checkpoint-") as checkpoint:
        read = run_roundtrip(spark, settings, trip, checkpoint)
    counts = count_in_sinks(spark, settings, trip)
    return {"produced": trip.count, "read_by_spark": read, **counts, "delta_table": settings.scored_table}
