"""``fraud produce`` against the real Kafka: order, keys, contract, and labels only once known."""
from __future__ import annotations

import json
from datetime import datetime

import pandas as pd
import pytest

from fraud.clients.kafka import kafka_producer, read_topic, topic_end_offsets
from fraud.producer import Pace, labels_still_due, load_history, replay
from fraud.run import last_produced
from fraud.simulator import SCENARIOS, Simulator
from fraud.testing.data import random_transactions

pytestmark = pytest.mark.services


def _consume(settings, topic, start):
    return list(read_topic(settings, topic, start=start))


def test_pace_is_a_rate_or_a_speedup():
    assert Pace(rate=100).due(50, 9999.0) == pytest.approx(0.5)
    assert Pace(speedup=3600).due(50, 7200.0) == pytest.approx(2.0)
    with pytest.raises(ValueError):
        Pace(rate=10, speedup=2)


def test_replay_sends_every_transaction_in_order_and_labels_after_the_delay(stack, data_dir, tmp_path):
    full = pd.read_parquet(data_dir / "transactions.parquet")
    sample = full[full.TX_DATETIME < "2018-04-11"].groupby(full.TX_DATETIME.dt.date).head(150)
    path = tmp_path / "sample.parquet"
    sample.sample(frac=1, random_state=0).to_parquet(path, index=False)  # shuffled on disk
    history = load_history(path)
    topics = stack.kafka.topics
    raw_start, labels_start = topic_end_offsets(stack, topics.raw), topic_end_offsets(stack, topics.labels)

    summary = replay(stack, history, Pace(rate=20_000), delay_days=7, progress=False)

    last_event = history.TX_DATETIME.max()
    known = history[history.TX_DATETIME + pd.Timedelta(days=7) <= last_event]
    assert summary["transactions"] == len(history) == 1500
    assert summary["labels"] == len(known) and summary["labels_not_yet_known"] == len(history) - len(known)
    assert 0 < len(known) < len(history)

    sent = _consume(stack, topics.raw, raw_start)
    values = [json.loads(m.value()) for m in sent]
    assert sorted(v["transaction_id"] for v in values) == sorted(history.TRANSACTION_ID)
    assert all(m.key().decode() == str(v["customer_id"]) for m, v in zip(sent, values))
    assert set(values[0]) == {"transaction_id", "tx_datetime", "customer_id", "terminal_id", "tx_amount"}
    for partition in {m.partition() for m in sent}:  # event-time order within each partition
        times = [v["tx_datetime"] for m, v in zip(sent, values) if m.partition() == partition]
        assert times == sorted(times)

    labels = [json.loads(m.value()) for m in _consume(stack, topics.labels, labels_start)]
    assert sorted(label["transaction_id"] for label in labels) == sorted(known.TRANSACTION_ID)
    frauds = dict(zip(history.TRANSACTION_ID, history.TX_FRAUD))
    assert all(label["tx_fraud"] == frauds[label["transaction_id"]] for label in labels)


def test_a_resumed_replay_also_sends_the_labels_the_earlier_one_had_not_reached(stack, data_dir, tmp_path):
    full = pd.read_parquet(data_dir / "transactions.parquet")
    path = tmp_path / "sample.parquet"
    full[full.TX_DATETIME < "2018-04-13"].groupby(full.TX_DATETIME.dt.date).head(50).to_parquet(path, index=False)
    history, due = load_history(path, "2018-04-06"), labels_still_due(path, "2018-04-06")
    assert due.TX_DATETIME.min() >= pd.Timestamp("2018-03-30") and due.TX_DATETIME.max() < pd.Timestamp("2018-04-06")
    labels_start = topic_end_offsets(stack, stack.kafka.topics.labels)

    summary = replay(stack, history, Pace(rate=20_000), progress=False, labels_due=due)

    both = pd.concat([due, history])
    known = both[both.TX_DATETIME + pd.Timedelta(days=7) <= history.TX_DATETIME.max()]
    labels = [json.loads(m.value()) for m in _consume(stack, stack.kafka.topics.labels, labels_start)]
    assert sorted(label["transaction_id"] for label in labels) == sorted(known.TRANSACTION_ID)
    assert summary["labels"] == len(known) and (known.TX_DATETIME < pd.Timestamp("2018-04-06")).any()


def test_simulator_is_deterministic_ordered_and_has_every_scenario():
    def month(seed):
        rows = []
        for row in Simulator(customers=300, terminals=600, seed=seed).transactions():
            if row.TX_DATETIME >= datetime(2026, 1, 31):
                return rows
            rows.append(row)

    rows = month(seed=3)
    assert rows == month(seed=3) and rows != month(seed=4)
    assert [r.TRANSACTION_ID for r in rows] == list(range(len(rows)))
    assert all(a.TX_DATETIME <= b.TX_DATETIME for a, b in zip(rows, rows[1:]))
    assert {r.TX_FRAUD_SCENARIO for r in rows} == set(SCENARIOS)
    assert all(r.TX_FRAUD == (r.TX_FRAUD_SCENARIO > 0) and r.TX_AMOUNT >= 0 for r in rows)
    assert all(r.TX_AMOUNT > 220 for r in rows if r.TX_FRAUD_SCENARIO == 1)
    assert all(r.TX_AMOUNT <= 3.0 for r in rows if r.TX_FRAUD_SCENARIO == 4)


def test_simulated_stream_goes_to_kafka_with_the_message_contract(stack):
    topics = stack.kafka.topics
    raw_start = topic_end_offsets(stack, topics.raw)
    stream = Simulator(customers=200, terminals=400, seed=1).transactions()  # endless
    summary = replay(stack, stream, Pace(rate=50_000), progress=False, limit=2000)
    assert summary["transactions"] == 2000
    values = [json.loads(m.value()) for m in _consume(stack, topics.raw, raw_start)]
    assert len(values) == 2000
    assert all(set(v) == {"transaction_id", "tx_datetime", "customer_id", "terminal_id", "tx_amount"}
               for v in values)


def test_a_second_run_resumes_after_the_newest_transaction_at_the_tail_of_the_raw_topic(pipeline):
    settings, _ = pipeline("resume")
    history = random_transactions(n=5, days=1).sort_values(["TX_DATETIME", "TRANSACTION_ID"])
    replay(settings, history, Pace(rate=1000), progress=False)
    producer = kafka_producer(settings)
    producer.produce(settings.kafka.topics.raw, value=b"not json")  # a broken record last: skipped
    assert producer.flush(30) == 0
    newest, third = history.iloc[-1], history.iloc[2]
    assert last_produced(settings) == (newest.TX_DATETIME, newest.TRANSACTION_ID)
    assert last_produced(settings, below=int(third.TRANSACTION_ID)) == (third.TX_DATETIME, third.TRANSACTION_ID)
