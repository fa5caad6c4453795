"""The decision query in-process: records in as files shaped like Kafka's, published records kept in memory.

Like Spark's own streaming tests (a file source, ``processAllAvailable``, ``stop`` in
``finally``): a change to the stream is checked in seconds on the shared local
session, with no service running. Each ``send`` + ``process`` is a micro-batch.
"""
from __future__ import annotations

import json
import uuid
import zlib
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from pyspark.sql import SparkSession
from pyspark.sql.streaming import StreamingQuery
from pyspark.sql.types import BinaryType, IntegerType, LongType, StringType, StructField, StructType, TimestampType

from fraud.config import PROJECT_ROOT, Settings
from fraud.features import LABEL_DELAY_DAYS
from fraud.producer import label_message, transaction_message
from fraud.sources import MESSAGE_COLUMN
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

    def send_in_order(self, transactions: pd.DataFrame, batches: int,
                      label_delay_days: int = LABEL_DELAY_DAYS) -> None:
        """``transactions`` (handbook columns) in ``batches`` micro-batches in event-time order (keyed by card:
        partition = CRC-32 of the card mod 3), each after the labels known by its end (a label arriving before its
        transaction waits for it in the state). Rows with MESSAGE_COLUMN (``fraud.producer.mapped_history``) are
        sent as that message, their labels too; others as the message contract's."""
        transactions = transactions.sort_values(["TX_DATETIME", "TRANSACTION_ID"])
        known_at = (transactions.TX_DATETIME + pd.Timedelta(days=label_delay_days)).to_numpy()
        cuts = np.linspace(0, len(transactions), batches + 1).astype(int)
        topics = self.settings.kafka.topics
        as_sent = lambda row, message: getattr(row, MESSAGE_COLUMN, None) or message(row)  # noqa: E731
        labelled = 0
        for low, high in zip(cuts[:-1], cuts[1:]):
            chunk = transactions.iloc[low:high]
            due = len(transactions) if high == len(transactions) else int(np.searchsorted(
                known_at, chunk.TX_DATETIME.max().to_datetime64(), side="right"))
            if due > labelled:
                self.send(topics.labels, [as_sent(row, label_message)
                                          for row in transactions.iloc[labelled:due].itertuples()])
            labelled = due
            self.send(topics.raw, [as_sent(row, transaction_message) for row in chunk.itertuples()],
                      [zlib.crc32(str(card).encode()) % 3 for card in chunk.CUSTOMER_ID])
            self.process()

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
