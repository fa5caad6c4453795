"""The delivery query: what the decision query published, and what arrived, into the slower sinks.

It reads the result topic, the dead-letter topic and the labels topic (and counts
the transactions topic's records), and in each micro-batch (``DeliveryBatches``)
writes, concurrently:

- scored transactions (SCORED_ROW and their features, from the result topic, with
  ``decided_at``: the record's Kafka timestamp, when the decision was published) to
  MySQL ``scored_transactions`` (upsert), Elasticsearch (document id = transaction id)
  and Delta ``scored_transactions``; and their transaction fields to the Delta
  archive ``transactions_raw`` (with a source mapping's own features, ``own_features``,
  in both Delta tables): what was decided, so a transaction sent twice is
  archived once (the decision query decides a transaction id once);
- dead letters to MySQL ``dead_letters`` (upsert by Kafka position);
- valid labels (``fraud.validation``) to the Delta archive ``labels`` (one row per
  transaction id: the last label to arrive, ``fraud.sinks.upsert_labels``) and to their
  transaction's Elasticsearch document (``tx_fraud``). The two archives are the
  source of backfills, warm starts and retraining.

The decision query may publish a record twice (a micro-batch replayed after a
crash publishes identical records again): the result topic's records are
deduplicated by transaction id within ``DEDUPLICATION_WINDOW`` of Kafka time,
which covers a replay, since the decision query publishes nothing newer before
the replayed batch. Delta appends are idempotent per micro-batch (``txnAppId`` =
this query's id, ``txnVersion`` = batch id), the labels' MERGE by nature; MySQL and
Elasticsearch are keyed.
So every sink holds each transaction once, and keeps the decision path free of
their latency (a Delta commit takes seconds).
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Callable

from pyspark import StorageLevel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import StructField, StructType

from fraud.config import Settings
from fraud.schemas import DEAD_LETTER, DECIDED_AT, FEATURES_COLUMN, JSON_OPTIONS, OWN_FEATURES_COLUMN, SCORED_ROW
from fraud.scoring import FEATURES_TYPE
from fraud.sinks import (
    scored_writers,
    upsert_labels,
    write_concurrently,
    write_dead_letters,
    write_to_delta,
    write_to_elasticsearch,
)
from fraud.sources import stream_source
from fraud.validation import validate_records

log = logging.getLogger(__name__)
DEDUPLICATION_WINDOW = "2 minutes"
RESULT = StructType([*SCORED_ROW.fields, StructField(FEATURES_COLUMN, FEATURES_TYPE)])
ARCHIVED = ["transaction_id", "tx_datetime", "customer_id", "terminal_id"]
KAFKA_POSITION = ["kafka_topic", "kafka_partition", "kafka_offset", "kafka_timestamp"]


class DeliveryBatches:
    """foreachBatch of the delivery query (see the module doc). ``sinks``: which of delta, mysql, elasticsearch;
    ``stop``: set when the stream stops (a sink's retries end at once, the micro-batch fails and is redone at the
    next start)."""

    def __init__(self, settings: Settings, sinks: tuple[str, ...], owner: Callable[[], str],
                 stop: threading.Event | None = None):
        self.settings, self.sinks, self.owner, self.stop = settings, sinks, owner, stop
        source = stream_source(settings)
        self.source = source  # the labels' shape: the user's own, or the contract
        own = source.own_features_type() if source is not None else None
        # what the result topic carries; a source mapping's own features too (archived with the transactions)
        self.result = RESULT if own is None else StructType([*RESULT.fields, StructField(OWN_FEATURES_COLUMN, own)])
        self.archived = [*ARCHIVED, "tx_amount", "kafka_timestamp", *([OWN_FEATURES_COLUMN] if own else [])]

    def __call__(self, records: DataFrame, batch_id: int) -> None:
        began = time.monotonic()
        topics = self.settings.kafka.topics
        records = records.persist(StorageLevel.MEMORY_AND_DISK)
        try:
            counts = {r["topic"]: r["count"] for r in records.groupBy("topic").count().collect()}
            writes = self._writes(records, counts, batch_id)
            seconds = write_concurrently(writes, self.stop)
        finally:
            records.unpersist()
        if counts:
            names = {topics.scored: "scored", topics.deadletter: "dead letters", topics.raw: "transactions",
                     topics.labels: "labels"}
            log.info("delivery batch %d: %s in %.1fs (%s)", batch_id,
                     ", ".join(f"{counts[t]} {names.get(t, t)}" for t in sorted(counts)), time.monotonic() - began,
                     ", ".join(f"{name} {s:.1f}s" for name, s in seconds.items()))

    def _writes(self, records: DataFrame, counts: dict[str, int], batch_id: int) -> dict[str, Callable[[], None]]:
        settings, topics, sinks = self.settings, self.settings.kafka.topics, self.sinks
        batch = (f"fraud-delivery-{self.owner()}", batch_id)
        tag = f"delivery_{batch_id}"
        of = lambda topic: records.where(F.col("topic") == topic)  # noqa: E731
        writes: dict[str, Callable[[], None]] = {}
        if counts.get(topics.scored):
            scored = of(topics.scored).select(F.from_json(F.col("value").cast("string"), self.result, JSON_OPTIONS)
                                              .alias("r"), F.col("timestamp").alias(DECIDED_AT)).select("r.*",
                                                                                                      DECIDED_AT)
            writes.update({f"{sink} scored": write for sink, write in
                           scored_writers(scored, settings, tuple(s for s in sinks if s != "kafka"), tag,
                                          batch).items()})
            if "delta" in sinks:
                writes["delta transactions"] = lambda: write_to_delta(
                    scored.select(*self.archived), settings.raw_table, batch)
        if counts.get(topics.deadletter) and "mysql" in sinks:
            letters = of(topics.deadletter).select(F.from_json(F.col("value").cast("string"), DEAD_LETTER,
                                                               JSON_OPTIONS).alias("d")).select("d.*")
            writes["mysql dead letters"] = lambda: write_dead_letters(letters, settings, tag)
        if counts.get(topics.labels) and ("delta" in sinks or "elasticsearch" in sinks):
            labels = validate_records(of(topics.labels), topics.labels, self.source).where(F.col("reason").isNull())
            if "delta" in sinks:
                writes["delta labels"] = lambda: upsert_labels(labels.select(*ARCHIVED, "tx_fraud", *KAFKA_POSITION),
                                                               settings.labels_table)
            if "elasticsearch" in sinks:
                writes["elasticsearch labels"] = lambda: write_to_elasticsearch(
                    labels.select(*ARCHIVED, F.col("tx_fraud").cast("byte")), settings)
        return writes
