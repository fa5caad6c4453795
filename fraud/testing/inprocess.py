"""The decision query in-process: records in as files shaped like Kafka's, published records kept in memory.

Like Spark's own streaming tests (a file source, ``processAllAvailable``, ``stop`` in
``finally``): a change to the stream is checked in seconds on the shared local
session, with no service running. Each ``send`` + ``process`` is a micro-batch.
"""
from __future__ import annotations

import json
import uuid
from collections import defaultdict
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from pyspark.sql import SparkSession
from pyspark.sql.streaming import StreamingQuery
from pyspark.sql.types import BinaryType, IntegerType, LongType, StringType, StructField, StructType, TimestampType

from fraud.config import PROJECT_ROOT, Settings
from fraud.stream.queries import decision_query
from fraud.testing.stack import stack_settings

KAFKA_RECORD = StructType([StructField("key", BinaryType()), StructField("value", BinaryType()),
                           StructField("topic", StringType()), StructField("partition", IntegerType()),
                           StructField("offset", LongType()), StructField("timestamp", TimestampType()),
                           StructField("timestampType", IntegerType())])
DEFAULT_MODEL = PROJECT_ROOT / "models" / "default"


class InProcessStream:
    """The decision query over a folder of Parquet files of Kafka-shaped records (one file per ``send``); what it
    would publish to Kafka is kept in ``published`` (topic, key, value)."""

    def __init__(self, spark: SparkSession, folder: Path, model: Path = DEFAULT_MODEL, **env: str):
        self.spark, self.folder, self.model = spark, folder, model
        self.inbox = folder / "inbox"  # a folder per topic
        self.settings: Settings = stack_settings(FRAUD_STREAM_CHECKPOINT_DIR=str(folder / "checkpoints"), **env)
        for topic in (self.settings.kafka.topics.raw, self.settings.kafka.topics.labels):
            (self.inbox / topic).mkdir(parents=True, exist_ok=True)
        self.published: list[dict] = []  # every record published, by every run of the query (replays again)
        self.offsets: dict[tuple[str, int], int] = defaultdict(int)
        self.query: StreamingQuery | None = None

    def start(self) -> "InProcessStream":
        topics = self.settings.kafka.topics
        transactions, labels = (self.spark.readStream.schema(KAFKA_RECORD).parquet(str(self.inbox / topic))
                                for topic in (topics.raw, topics.labels))
        self.query = decision_query(self.spark, self.settings, transactions, labels, self.model, self._keep)
        return self

    def _keep(self, records, batch_id: int) -> None:
        self.published += [row.asDict() for row in records.collect()]

    def send(self, topic: str, values: list[bytes | str | dict | None], partitions: int | list[int] = 0,
             timestamps: list[pd.Timestamp] | None = None) -> None:
        """Records for ``topic`` (dicts are sent as JSON) in one file, so in one micro-batch, in this order; Kafka
        time now unless given; offsets counting on in each partition."""
        now = pd.Timestamp.now(tz="UTC")
        partitions = [partitions] * len(values) if isinstance(partitions, int) else partitions
        offsets = []
        for partition in partitions:
            offsets.append(self.offsets[topic, partition])
            self.offsets[topic, partition] += 1
        encoded = [json.dumps(v).encode() if isinstance(v, dict) else v.encode() if isinstance(v, str) else v
                   for v in values]
        table = pa.table({"key": pa.array([None] * len(values), pa.binary()), "value": pa.array(encoded, pa.binary()),
                          "topic": [topic] * len(values), "partition": pa.array(partitions, pa.int32()),
                          "offset": pa.array(offsets, pa.int64()),
                          "timestamp": pa.array(timestamps or [now] * len(values), pa.timestamp("us", "UTC")),
                          "timestampType": pa.array([0] * len(values), pa.int32())})
        partial = self.folder / f"{uuid.uuid4().hex}.parquet"
        pq.write_table(table, partial)
        partial.rename(self.inbox / topic / partial.name)  # whole files only: the source lists the folder

    def process(self) -> list[dict]:
        """Run micro-batches until every file sent is read; returns the records published meanwhile."""
        assert self.query is not None, "start() first"
        before = len(self.published)
        self.query.processAllAvailable()
        return self.published[before:]

    def results(self, topic: str | None = None) -> list[dict]:
        """Every published record of ``topic`` (default: the result topic), values parsed from JSON."""
        topic = topic or self.settings.kafka.topics.scored
        return [json.loads(record["value"]) for record in self.published if record["topic"] == topic]

    def stop(self) -> None:
        if self.query is not None:
            self.query.stop()
            self.query = None
