"""End to end against the real services: Kafka -> Spark -> MySQL, Elasticsearch, Delta, result topic."""
from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
from pyspark.sql import functions as F

from fraud.clients.elasticsearch import elasticsearch_client
from fraud.clients.kafka import read_topic, topic_end_offsets
from fraud.clients.mysql import connect
from fraud.roundtrip import (
    count_in_sinks,
    new_first_id,
    parse_transactions,
    produce_events,
    run_roundtrip,
    synthetic_events,
    write_all_sinks,
)
from fraud.schemas import FEATURES_COLUMN
from fraud.scoring import FEATURES_TYPE

pytestmark = pytest.mark.services
EVENTS = 1000


def _mysql_rows(settings, first, last):
    with connect(settings) as conn, conn.cursor(dictionary=True) as cur:
        cur.execute("SELECT transaction_id, tx_datetime, customer_id, terminal_id, tx_amount, kafka_timestamp "
                    "FROM scored_transactions WHERE transaction_id BETWEEN %s AND %s ORDER BY transaction_id",
                    (first, last))
        return cur.fetchall()


def _es_docs(settings, first, last):
    es = elasticsearch_client(settings)
    es.indices.refresh(index=settings.elasticsearch.index)
    hits = es.search(index=settings.elasticsearch.index, size=EVENTS * 2, sort=[{"transaction_id": "asc"}],
                     query={"range": {"transaction_id": {"gte": first, "lte": last}}})["hits"]["hits"]
    return hits


def _result_topic_records(settings, start_offsets, first, last):
    records = [(message.key().decode(), json.loads(message.value()))
               for message in read_topic(settings, settings.kafka.topics.scored, start=start_offsets)]
    return [(key, value) for key, value in records if first <= value["transaction_id"] <= last]


@pytest.fixture()
def settings(stack, tmp_path):
    """The test stack with a Delta folder of this test's own."""
    return stack.model_copy(update={"delta_dir": tmp_path / "delta"})


def test_events_reach_every_sink_with_their_values_and_a_replay_adds_no_duplicate(settings, spark, tmp_path):
    stack = settings
    events = synthetic_events(new_first_id(), EVENTS, seed=7)
    first, last = events[0]["transaction_id"], events[-1]["transaction_id"]
    expected = {e["transaction_id"]: e for e in events}
    scored_start = topic_end_offsets(stack, stack.kafka.topics.scored)
    trip = produce_events(stack, events)
    delta_path = stack.scored_table

    assert run_roundtrip(spark, stack, trip, str(tmp_path / "checkpoint-1")) == EVENTS

    rows = _mysql_rows(stack, first, last)
    assert [r["transaction_id"] for r in rows] == sorted(expected)
    for row in rows:
        event = expected[row["transaction_id"]]
        assert row["tx_datetime"] == datetime.fromisoformat(event["tx_datetime"])
        assert (row["customer_id"], row["terminal_id"], row["tx_amount"]) == (
            event["customer_id"], event["terminal_id"], event["tx_amount"])
        assert row["kafka_timestamp"] is not None

    docs = _es_docs(stack, first, last)
    assert [int(d["_id"]) for d in docs] == sorted(expected)
    for doc in docs:
        source, event = doc["_source"], expected[doc["_source"]["transaction_id"]]
        assert datetime.fromtimestamp(source["tx_datetime"] / 1000, timezone.utc).replace(tzinfo=None) == \
            datetime.fromisoformat(event["tx_datetime"])
        assert (source["customer_id"], source["terminal_id"], source["tx_amount"]) == (
            event["customer_id"], event["terminal_id"], event["tx_amount"])

    delta = {r["transaction_id"]: r for r in spark.read.format("delta").load(delta_path).collect()}
    assert sorted(delta) == sorted(expected)
    for transaction_id, row in delta.items():
        event = expected[transaction_id]
        assert row["tx_datetime"] == datetime.fromisoformat(event["tx_datetime"])
        assert (row["customer_id"], row["terminal_id"], row["tx_amount"]) == (
            event["customer_id"], event["terminal_id"], event["tx_amount"])

    published = _result_topic_records(stack, scored_start, first, last)
    assert sorted(v["transaction_id"] for _, v in published) == sorted(expected)
    assert all(key == str(value["transaction_id"]) for key, value in published)

    # The same events again, from a fresh checkpoint: every keyed sink still holds one row each.
    assert run_roundtrip(spark, stack, trip, str(tmp_path / "checkpoint-2")) == EVENTS
    assert count_in_sinks(spark, stack, trip) == {"mysql": EVENTS, "elasticsearch": EVENTS,
                                                              "delta": EVENTS}
    assert len(_mysql_rows(stack, first, last)) == EVENTS
    assert spark.read.format("delta").load(delta_path).select("transaction_id").distinct().count() == EVENTS


def test_writing_one_batch_twice_keeps_one_row_per_transaction(settings, spark):
    stack = settings
    events = synthetic_events(new_first_id(), 50, seed=3)
    raw = spark.createDataFrame(
        [(json.dumps(e).encode(), datetime(2026, 1, 1, 12, 0, 0, 123000)) for e in events + events[:10]],
        "value binary, timestamp timestamp")
    batch = parse_transactions(raw)
    delta_path = stack.scored_table
    for _ in range(2):
        write_all_sinks(batch, 0, stack)
    first, last = events[0]["transaction_id"], events[-1]["transaction_id"]
    rows = _mysql_rows(stack, first, last)
    assert len(rows) == 50
    assert rows[0]["kafka_timestamp"] == datetime(2026, 1, 1, 12, 0, 0, 123000)  # milliseconds survive JDBC
    assert len(_es_docs(stack, first, last)) == 50
    assert spark.read.format("delta").load(delta_path).count() == 50
    assert spark.read.format("delta").load(delta_path).where(F.col("tx_amount").isNull()).count() == 0
    # the stream and the backfill append to this table too: same columns, same feature struct
    assert spark.read.format("delta").load(delta_path).schema[FEATURES_COLUMN].dataType == FEATURES_TYPE
