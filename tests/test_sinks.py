"""The sinks against the real services: rows written twice are held once, with their values (MySQL, Elasticsearch,
Delta)."""
from __future__ import annotations

from datetime import datetime

import pandas as pd
import pytest
from pyspark.sql import functions as F

from fraud.clients.mysql import connect
from fraud.schemas import DEAD_LETTER, FEATURES_COLUMN
from fraud.scoring import FEATURES_TYPE, score_transactions
from fraud.sinks import SINKS, write_dead_letters, write_to_sinks
from fraud.testing.data import random_transactions
from fraud.testing.pipeline import DEFAULT_MODEL, es_ids, mysql_scored
from training.artifacts import load_model

pytestmark = pytest.mark.services


def test_rows_written_twice_are_held_once_with_their_values(pipeline, spark):
    settings, _ = pipeline("sinks")
    transactions = random_transactions(n=300, days=10)
    transactions["TX_DATETIME"] += pd.Timedelta(microseconds=123456)  # event times keep microseconds in every sink
    rows = score_transactions(spark.createDataFrame(transactions), load_model(DEFAULT_MODEL)).withColumn(
        "kafka_timestamp", F.lit(datetime(2026, 1, 1, 12, 0, 0, 123000)))  # Kafka's own are milliseconds
    for _ in range(2):
        decisions = write_to_sinks(rows, settings, tuple(s for s in SINKS if s != "kafka"), "twice")
    assert sum(decisions.values()) == len(transactions)
    expected = sorted(str(tid) for tid in transactions.TRANSACTION_ID)  # ids are text in every sink
    assert sorted(row[0] for row in mysql_scored(settings)) == expected
    assert sorted(es_ids(settings)) == expected
    delta = spark.read.format("delta").load(settings.scored_table)
    assert sorted(r[0] for r in delta.select("transaction_id").collect()) == expected
    # the stream and the backfill write this table too: the same feature struct
    assert delta.schema[FEATURES_COLUMN].dataType == FEATURES_TYPE
    with connect(settings) as conn, conn.cursor(dictionary=True) as cur:
        cur.execute("SELECT transaction_id, tx_datetime, tx_amount, kafka_timestamp FROM scored_transactions")
        stored = pd.DataFrame(cur.fetchall()).set_index("transaction_id").sort_index()
    sent = transactions.set_index(transactions.TRANSACTION_ID.astype(str)).sort_index()
    assert (stored.kafka_timestamp == datetime(2026, 1, 1, 12, 0, 0, 123000)).all()
    assert (stored.tx_datetime.to_numpy() == sent.TX_DATETIME.to_numpy()).all()
    assert (stored.tx_amount.to_numpy() == sent.TX_AMOUNT.to_numpy()).all()
    times = delta.select("transaction_id", F.unix_micros("tx_datetime").alias("us")).toPandas().set_index(
        "transaction_id").sort_index()
    assert (times.us.to_numpy() == sent.TX_DATETIME.to_numpy("datetime64[us]").view("int64")).all()


def test_dead_letters_published_twice_in_one_batch_are_held_once(pipeline, spark):
    """A micro-batch replayed after a crash publishes its dead letters again; the delivery may read both copies in
    one batch (found by the soak test: the stage table's primary key refused the second copy)."""
    settings, _ = pipeline("letters")
    letter = {"source_topic": settings.kafka.topics.raw, "source_partition": 1, "source_offset": 37244,
              "reason": "malformed JSON", "payload": "{", "payload_bytes": 1, "payload_sha256": "x" * 64,
              "kafka_timestamp": datetime(2026, 1, 1, 12), "received_at": datetime(2026, 1, 1, 12, 0, 1)}
    letters = spark.createDataFrame([letter, letter, {**letter, "source_offset": 37245}], DEAD_LETTER)
    write_dead_letters(letters, settings, "twice")
    with connect(settings) as conn, conn.cursor() as cur:
        cur.execute("SELECT source_offset, reason FROM dead_letters ORDER BY source_offset")
        assert cur.fetchall() == [(37244, "malformed JSON"), (37245, "malformed JSON")]
