"""The decision query: Kafka records in; scored transactions and dead letters out, one Spark job a micro-batch.

Its plan (``decision_plan``, built once when the query starts) takes each micro-batch's records and:

1. validates every record (``fraud.validation``); the ones that do not fit become dead letters;
2. sends them to their card's shard (``repartition`` by card), where a pandas function
   (``mapInPandas``) reads the touched cards' histories from the shard's store,
   computes the valid transactions' card features and writes the histories back
   (``fraud.stream.state``, ``fraud.stream.store``);
3. sends them on to their terminal's shard, which does the same for the terminal
   features after taking in the micro-batch's labels;
4. scores the transactions with the broadcast model's pandas UDF (``udfs.scoring``);
5. hands the query's Kafka sink each scored transaction with its features for the
   result topic, and each dead letter for the dead-letter topic.

Nothing waits for a watermark: a transaction is scored in the micro-batch that
reads it. The state is touched only for the keys in the batch. A shard is a hash
partition of the keys, so a route's shards run as parallel tasks, on a cluster on
several executors; a task learns its micro-batch and query from Spark's task
context. A micro-batch replayed after a crash reads the same records (the offset
log), finds the state as it was before it (the store's undo), gets the same time
(the offset log) and model (``fraud.stream.serving``), so it publishes the same
records again: the result topic is at least once with identical repeats; the
delivery query makes every other sink exactly once.
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd
from pyspark import TaskContext
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import DoubleType, StructField, StructType

from fraud.config import Settings
from fraud.features import CUSTOMER_FEATURES, DAY_US, TERMINAL_FEATURES
from fraud.features_spark import add_calendar_features
from fraud.schemas import FEATURES_COLUMN, JSON_OPTIONS, OWN_FEATURES_COLUMN, OWN_PREFIX, SCORED_ROW
from fraud.scoring import scored_columns
from fraud.sources import SourceMapping, stream_source
from fraud.stream.state import (
    CARD,
    FEATURES,
    TERMINAL,
    card_reach_us,
    card_step,
    repeated_ids,
    terminal_reach_us,
    terminal_step,
)
from fraud.stream.store import shard_batch, shard_path
from fraud.validation import in_sink_range, validate_records

# what travels with a transaction through the state stages besides ROW_COLUMNS (times as numbers: pandas cannot hold
# every timestamp Spark can)
PASSED_ON = ["customer_id", "terminal_id"]
BATCH_ID, QUERY_ID = "streaming.sql.batchId", "sql.streaming.queryId"  # Spark's task-context properties
LETTER = "_dead_letter"
# a dead letter keeps this much of its payload (with the payload's size and SHA-256; the record stays in Kafka at its
# position): JSON-escaped, even control characters (6 characters each) keep it far below Kafka's 1 MB record limit
LETTER_PAYLOAD_CHARS = 10_000


def _stage(frames: Iterator[pd.DataFrame], *, route: str, folder: str, shards: int,
           delay_days: int, duplicate_days: int) -> Iterator[pd.DataFrame]:
    """mapInPandas body: a partition's rows through ``state_stage``, in the micro-batch and query of its task."""
    nonempty = [frame for frame in frames if len(frame)]
    if not nonempty:
        return
    context = TaskContext.get()
    assert context is not None  # a mapInPandas body runs in a Spark task
    batch, owner = context.getLocalProperty(BATCH_ID), context.getLocalProperty(QUERY_ID)
    assert batch is not None  # set on every task of a streaming micro-batch
    yield from state_stage(pd.concat(nonempty, ignore_index=True), route=route, batch_id=int(batch), owner=owner,
                           folder=folder, shards=shards, delay_days=delay_days, duplicate_days=duplicate_days)


def state_stage(rows: pd.DataFrame, *, route: str, batch_id: int, owner: str | None, folder: str, shards: int,
                delay_days: int, duplicate_days: int) -> Iterator[pd.DataFrame]:
    """Rows (``_state_rows``' columns with ``key`` and ``shard``), shard by shard, through the route's state step
    in micro-batch ``batch_id`` of query ``owner`` (``fraud.stream.store.shard_batch``). Yields the scored
    transactions with the route's features added, and the rows the route does not take as they came (features
    null): the dead letters, those the card stage makes of a used transaction id given to another transaction
    (``repeated_ids``), and the labels at the terminal stage. A transaction sent again is not yielded."""
    valid = rows["reason"].isna()
    passing = rows[~valid]
    if len(passing):
        yield passing.assign(**{name: np.nan for name in FEATURES[route]})
    step = card_step if route == CARD else functools.partial(terminal_step, delay_days=delay_days)
    reach = card_reach_us() if route == CARD else terminal_reach_us(delay_days)
    for shard, part in rows[valid].groupby("shard", sort=True):
        with shard_batch(shard_path(Path(folder), route, int(shard)), owner, batch_id, shards) as store:
            if route == CARD:
                decided = store.decided(part["id_hash"].unique().tolist())
                repeat, conflict = repeated_ids(part, decided)
                if conflict.any():
                    yield _used_id_letters(part[conflict], decided).assign(**{name: np.nan for name in FEATURES[route]})
                part = part[~repeat]
            outcome = step(part, store.get(list(part["key"].unique())), batch_id)
            store.put(outcome.updates)
            transactions = part[~part["is_label"]]
            newest = store.newest_seen(int(transactions["event_us"].max()) if len(transactions) else None)
            if newest is not None:
                store.expire(newest - reach)
            if route == CARD:
                scored = part.loc[outcome.features.index]
                store.decide(scored["id_hash"].tolist(), scored["event_us"].tolist(), batch_id)
                if newest is not None:
                    store.forget_decided(newest - duplicate_days * DAY_US)
        yield part.loc[outcome.features.index].join(outcome.features)


def _used_id_letters(rows: pd.DataFrame, first: dict[int, int]) -> pd.DataFrame:
    """Dead letters of transactions given an id a different transaction has (another event time); ``first``: the
    ids decided in earlier micro-batches -> event time (µs)."""
    return rows.assign(reason=[
        f"transaction_id {tid} is already used by the transaction at "
        f"{pd.Timestamp(first[h], unit='us').isoformat() if h in first else 'an earlier position in this batch'}"
        f"; a transaction id is decided once (the first one's decision stands)"
        for tid, h in zip(rows["transaction_id"], rows["id_hash"])])


def _with_features(schema: StructType, names: list[str]) -> StructType:
    return StructType([*schema.fields, *(StructField(name, DoubleType()) for name in names)])


def id_hash(transaction_id: Column) -> Column:
    """The 64-bit hash of a transaction id (text) the state keeps (histories, decided ids): xxhash64 of its UTF-8
    bytes. One definition for the stream and the warm start, whose ids must match; an integer id stored before ids
    were text (bigint) hashed its decimal text, the same value."""
    return F.xxhash64(transaction_id)


def keyed_by(rows: DataFrame, key: str, shards: int) -> DataFrame:
    """``rows`` with ``key`` (an id: text) as the state key, hash-partitioned into ``shards`` partitions; ``shard`` =
    the partition (``repartition`` puts a row in pmod(murmur3(key), n), which is what ``hash`` computes)."""
    keyed = rows.withColumn("key", F.col(key))
    return keyed.withColumn("shard", F.pmod(F.hash("key"), F.lit(shards))).repartition(shards, "key")


def _state_rows(records: DataFrame, labels_topic: str | None, mapping: SourceMapping | None) -> DataFrame:
    """Kafka records -> the rows the state stages take (ROW_COLUMNS but key, PASSED_ON, the Kafka position, and
    reason and payload for the dead letters), then the own features of a source ``mapping`` (``OWN_*``).
    ``labels_topic``: the records are labels (None: transactions)."""
    validated = validate_records(records, labels_topic, mapping)
    own = mapping.own_columns if mapping is not None else []
    valid = F.col("reason").isNull()
    number = lambda column: F.when(valid, column).otherwise(0)  # noqa: E731  (pandas gets int64, not float64)
    return validated.select(
        *PASSED_ON, number(id_hash(F.col("transaction_id"))).alias("id_hash"),
        number(F.unix_micros("tx_datetime")).alias("event_us"), "tx_amount",
        F.col("tx_fraud").cast("double").alias("tx_fraud"), F.lit(labels_topic is not None).alias("is_label"),
        F.unix_millis("kafka_timestamp").alias("kafka_ms"), "transaction_id", "kafka_topic", "kafka_partition",
        "kafka_offset", "reason", F.when(~valid, F.substring("payload", 1, LETTER_PAYLOAD_CHARS)).alias("payload"),
        "payload_bytes", "payload_sha256", *own)


def transaction_features(transactions: DataFrame, labels: DataFrame, settings: Settings,
                         state_dir: Path) -> DataFrame:
    """Kafka records of the transaction and label topics (two streaming DataFrames: value, topic, partition,
    offset, timestamp) -> one row per transaction scored, in handbook names (TRANSACTION_ID, TX_DATETIME, ...)
    with every card and terminal feature, the calendar ones, the own features of the source mapping
    ``stream.source`` (``OWN_*``; the records are then the user's own messages, ``fraud.sources``) and
    _KAFKA_TIMESTAMP (LETTER null); and one per dead letter (LETTER: DEAD_LETTER's fields but received_at).
    Raises SourceError when that mapping does not fit (before any job).

    Each micro-batch reads and writes the state under ``state_dir`` (the keys it touches only). Transactions,
    dead letters among them, go to the card stage, then with the labels to the terminal stage, so each topic is
    read once and nothing filters the validated records before the stages.
    """
    conf = settings.stream
    mapping = stream_source(settings)
    stage = functools.partial(_stage, folder=str(state_dir), shards=conf.state_shards, delay_days=conf.delay_days,
                              duplicate_days=conf.duplicate_days)
    by_card = keyed_by(_state_rows(transactions, None, mapping), "customer_id", conf.state_shards)
    cards = by_card.mapInPandas(functools.partial(stage, route=CARD), _with_features(by_card.schema,
                                                                                      CUSTOMER_FEATURES))
    label_rows = _state_rows(labels, settings.kafka.topics.labels, mapping).select(
        "*", *(F.lit(None).cast("double").alias(name) for name in CUSTOMER_FEATURES))
    by_terminal = keyed_by(cards.drop("key", "shard").unionByName(label_rows), "terminal_id", conf.state_shards)
    terminals = by_terminal.mapInPandas(functools.partial(stage, route=TERMINAL),
                                        _with_features(by_terminal.schema, TERMINAL_FEATURES))
    return handbook_rows(terminals, mapping)


def handbook_rows(rows: DataFrame, mapping: SourceMapping | None) -> DataFrame:
    """The state stages' output (``_state_rows``' columns with every card and terminal feature) -> the rows
    ``transaction_features`` describes: handbook names, calendar features, own features, LETTER."""
    letter = F.struct(F.col("kafka_topic").alias("source_topic"), F.col("kafka_partition").alias("source_partition"),
                      F.col("kafka_offset").alias("source_offset"), F.substring("reason", 1, 512).alias("reason"),
                      "payload", "payload_bytes", "payload_sha256",
                      in_sink_range(F.timestamp_millis("kafka_ms")).alias("kafka_timestamp"))
    return rows.select(
        F.col("transaction_id").alias("TRANSACTION_ID"), F.timestamp_micros("event_us").alias("TX_DATETIME"),
        F.col("customer_id").alias("CUSTOMER_ID"), F.col("terminal_id").alias("TERMINAL_ID"),
        F.col("tx_amount").alias("TX_AMOUNT"), F.timestamp_millis("kafka_ms").alias("_KAFKA_TIMESTAMP"),
        *CUSTOMER_FEATURES, *TERMINAL_FEATURES, *(mapping.own_columns if mapping is not None else []),
        F.when(F.col("reason").isNotNull(), letter).alias(LETTER)).transform(add_calendar_features)


def outgoing_records(plan: DataFrame, settings: Settings, score: Column) -> DataFrame:
    """Rows of ``transaction_features`` (below) -> (topic, key, value): a scored transaction (SCORED_ROW's fields
    and the features object, then the own features of a source mapping as the object OWN_FEATURES_COLUMN, by their names
    in the mapping, as JSON keyed by transaction id) to the result topic; a dead letter (DEAD_LETTER,
    keyed by the record's Kafka position) to the dead-letter topic. ``score``: the model's pandas UDF column.

    ``scored_at`` and the letters' ``received_at`` are the micro-batch's time (``current_timestamp`` in a streaming
    query: kept in the offset log, so a replayed micro-batch gets the same).
    """
    topics = settings.kafka.topics
    is_letter = F.col(LETTER).isNotNull()
    now = F.current_timestamp()
    own = [name for name in plan.columns if name.startswith(OWN_PREFIX)]
    published = [*SCORED_ROW.fieldNames(), FEATURES_COLUMN, *([OWN_FEATURES_COLUMN] if own else [])]
    scored = plan.withColumn("_score", score).select(
        LETTER, *scored_columns(F.col("_KAFKA_TIMESTAMP"), now),
        *([F.struct(*(F.col(name).alias(name[len(OWN_PREFIX):]) for name in own)).alias(OWN_FEATURES_COLUMN)]
          if own else []))
    letter = F.struct(f"{LETTER}.*", now.alias("received_at"))
    return scored.select(
        F.when(is_letter, F.lit(topics.deadletter)).otherwise(F.lit(topics.scored)).alias("topic"),
        F.when(is_letter, F.concat_ws(":", *(F.col(f"{LETTER}.source_{part}") for part in ("topic", "partition",
                                                                                        "offset"))))
        .otherwise(F.col("transaction_id")).alias("key"),
        F.when(is_letter, F.to_json(letter, JSON_OPTIONS))
        .otherwise(F.to_json(F.struct(*published), JSON_OPTIONS)).alias("value"))


def decision_plan(transactions: DataFrame, labels: DataFrame, settings: Settings, state_dir: Path,
                  score: Column) -> DataFrame:
    """The decision query's plan: Kafka records of the transaction and label topics (two streaming DataFrames)
    -> the (topic, key, value) records to publish (``outgoing_records``)."""
    return outgoing_records(transaction_features(transactions, labels, settings, state_dir), settings, score)
