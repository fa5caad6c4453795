"""The streaming scorer against the real services: bad input, and stream/batch parity over 45 days."""
from __future__ import annotations

import hashlib
import json
import signal
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest
from pyspark.sql import functions as F

from fraud.clients.kafka import kafka_producer
from fraud.clients.mysql import connect
from fraud.config import PROJECT_ROOT
from fraud.features import EXTRA_FEATURES, HANDBOOK_FEATURES
from fraud.process import Child
from fraud.producer import Pace, load_history, replay
from fraud.testing.data import BROKEN, odd_id_messages, shown
from fraud.testing.pipeline import (
    StreamProcess,
    delta_ids,
    es_ids,
    es_scored_count,
    ids_in_sinks,
    mysql_count,
    mysql_scored,
    topic_records,
)

pytestmark = pytest.mark.services


def _send(settings, topic: str, values: list[bytes | None]) -> None:
    producer = kafka_producer(settings)
    for i, value in enumerate(values):
        producer.produce(topic, key=str(i % 7), value=value)
    assert producer.flush(30) == 0


def _send_aborted(settings, topic: str, values: list[bytes]) -> None:
    """``values`` in a Kafka transaction that is aborted: no consumer reading committed records sees them."""
    producer = kafka_producer(settings, **{"transactional.id": f"aborted-{topic}"})
    producer.init_transactions(30)
    producer.begin_transaction()
    for value in values:
        producer.produce(topic, key="1", value=value)
    producer.flush(30)
    producer.abort_transaction(30)


def test_broken_records_go_to_the_dead_letters_and_the_query_keeps_scoring(pipeline, spark, tmp_path):
    settings, env = pipeline("badinput")
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    valid = [json.dumps({"transaction_id": 900_000 + i, "tx_datetime": (now - timedelta(minutes=30 - i)).isoformat(),
                         "customer_id": i % 5, "terminal_id": i % 3, "tx_amount": 10.0 + i,
                         **({"channel": "web"} if i % 2 else {})}).encode() for i in range(30)]
    # ids of every kind (a UUID, a card number above 2^63, a merchant name with a comma and an apostrophe, a PaySim
    # id, 23 digits as a JSON integer, ...) as transaction, card and terminal: exactly so in every sink
    odd = odd_id_messages((now - timedelta(minutes=45)).isoformat())
    valid += [json.dumps(message, ensure_ascii=False).encode() for message, _ in odd]
    expected_ids = sorted([(str(900_000 + i), str(i % 5), str(i % 3)) for i in range(30)] + [ids for _, ids in odd])
    # valid UTF-8 with U+FFFD and an emoji, written as such (not escaped): scored, not refused
    valid[3] = json.dumps({**json.loads(valid[3]), "merchant": "Caf\ufffd \U0001F355"}, ensure_ascii=False).encode()
    broken = {value: reason for value, reason in BROKEN if b"2027-01-01" not in (value or b"")}
    broken[json.dumps({**json.loads(valid[0]), "tx_datetime": "2099-01-01T00:00:00"}).encode()] = (
        "tx_datetime is more than 1 day ahead of its Kafka timestamp")
    # a payload whose dead letter, escaped in full, would be over Kafka's 1 MB: the letter keeps a bounded prefix
    huge = b'{"transaction_id": 880061, "x": "' + b"\x01" * 300_000 + b'"}'
    broken[huge] = f"payload of {len(huge)} bytes exceeds 10000"
    emoji = json.dumps({"transaction_id": 880072, "note": "\U0001F355 caf\u00e9"}, ensure_ascii=False).encode()
    broken[emoji] = "missing tx_datetime"
    records = [r for pair in zip(valid, list(broken)) for r in pair] + valid[len(broken):]  # interleaved
    records += list(broken)[len(valid):]
    stream = StreamProcess(env, tmp_path / "stream.log").start()
    try:
        _send(settings, settings.kafka.topics.raw, records[: len(records) // 2])
        _send(settings, settings.kafka.topics.labels, [b'{"transaction_id": 1, "tx_fraud": 1}'])  # no time, no card
        _send_aborted(settings, settings.kafka.topics.raw, [json.dumps({**json.loads(valid[1]), "transaction_id": i})
                                                            .encode() for i in range(990_000, 990_005)])
        _send(settings, settings.kafka.topics.raw, records[len(records) // 2:])
        stream.wait_for(lambda: mysql_count(settings) == len(valid)
                        and mysql_count(settings, "dead_letters") == len(broken) + 1, 240, "every record handled")
        # sent again, once as it was and once with another time: decided once, archived once, the other refused
        conflict = json.dumps({**json.loads(valid[6]), "tx_datetime": "2026-01-01T00:00:00Z"}).encode()
        _send(settings, settings.kafka.topics.raw, [valid[5], conflict])
        # labels: one sent twice, one relabelled (a chargeback reversed): one row each, the last label kept
        label = lambda i, fraud: json.dumps({**json.loads(valid[i]), "tx_fraud": fraud}).encode()  # noqa: E731
        for labels in ([label(5, 1), label(7, 1)], [label(5, 1), label(7, 0)]):
            _send(settings, settings.kafka.topics.labels, labels)
            time.sleep(3)  # in separate delivery micro-batches
        stream.wait_for(lambda: mysql_count(settings, "dead_letters") == len(broken) + 2
                        and Path(settings.raw_table).exists()
                        and len(delta_ids(spark, settings.raw_table)) >= len(valid)
                        and Path(settings.labels_table).exists()
                        and spark.read.format("delta").load(settings.labels_table).where("tx_fraud = 0").count() == 1,
                        240, "the resends handled")
    finally:
        stopped = stream.stop()
    assert stopped == 0, stream.log_tail()

    sinks = ("mysql", "elasticsearch", "delta", "kafka")
    assert ids_in_sinks(spark, settings) == {sink: expected_ids for sink in sinks}  # ids exactly as text
    assert sorted(delta_ids(spark, settings.raw_table)) == sorted(tid for tid, _, _ in expected_ids)
    labels = spark.read.format("delta").load(settings.labels_table).select("transaction_id", "tx_fraud").collect()
    assert sorted((r.transaction_id, r.tx_fraud) for r in labels) == [("900005", 1), ("900007", 0)]
    assert sorted(es_ids(settings)) == sorted(tid for tid, _, _ in expected_ids)
    letters = [json.loads(value) for _, value in topic_records(settings, settings.kafka.topics.deadletter)]
    assert len(letters) >= len(broken) + 1
    used = [letter for letter in letters if letter["reason"].startswith("transaction_id 900006")]
    by_hash = {letter.get("payload_sha256"): letter for letter in letters if letter not in used}
    for value, reason in broken.items():
        letter = by_hash[hashlib.sha256(value).hexdigest() if value is not None else None]
        assert letter["reason"] == reason
        assert shown(letter.get("payload")) == (shown(value[:10_000]) if value is not None else None)
        assert letter["payload_bytes"] == len(value or b"")
    assert by_hash[hashlib.sha256(b'{"transaction_id": 1, "tx_fraud": 1}').hexdigest()]["reason"] == (
        "missing tx_datetime")
    first_time = json.loads(valid[6])["tx_datetime"]
    assert [letter["reason"] for letter in used] == [
        f"transaction_id 900006 is already used by the transaction at {first_time}; a transaction id is decided "
        f"once (the first one's decision stands)"]  # the record stays in Kafka at the letter's position
    assert used[0]["payload_bytes"] == len(conflict)
    assert len(set(broken.values())) >= 15
    with connect(settings) as conn, conn.cursor() as cur:  # text kept losslessly (utf8mb4), sizes and hashes too
        cur.execute("SELECT payload, payload_bytes, payload_sha256 FROM dead_letters WHERE payload_sha256 IN (%s, %s)",
                    [hashlib.sha256(emoji).hexdigest(), hashlib.sha256(huge).hexdigest()])
        stored = {sha: (payload, size) for payload, size, sha in cur.fetchall()}
    assert stored[hashlib.sha256(emoji).hexdigest()] == (emoji.decode(), len(emoji))
    assert stored[hashlib.sha256(huge).hexdigest()] == (huge.decode()[:10_000], len(huge))


@pytest.fixture(scope="module")
def slice_45_days(data_dir, tmp_path_factory):
    history = load_history(data_dir / "transactions.parquet")
    # 45 days of every 16th card (all their transactions, and the labels; about 27,000): 30-day windows and the label
    # delay are exercised, in a sixteenth of the time the whole population would take
    history = history[(history.TX_DATETIME >= "2018-04-01") & (history.TX_DATETIME < "2018-05-16")
                      & (history.CUSTOMER_ID % 16 == 0)]
    path = tmp_path_factory.mktemp("slice") / "slice.parquet"
    history.to_parquet(path, index=False)
    return path, history


def test_stream_features_and_scores_equal_the_backfill_over_45_days(pipeline, spark, slice_45_days, tmp_path):
    path, history = slice_45_days
    # one partition: delivery in the order sent (with several, Kafka orders records within a partition only)
    settings, env = pipeline("parity", FRAUD_KAFKA_PARTITIONS="1")
    stream = StreamProcess(env, tmp_path / "stream.log").start()
    # meanwhile a backfill of the same slice upserts the same ids into the same MySQL table (README: Operations),
    # and into a Delta folder of its own: the batch side of the comparison
    batch_dir = tmp_path / "backfill"
    backfilling = Child([sys.executable, "-m", "fraud.cli", "backfill", "--input", str(path), "--sinks", "mysql,delta"],
                        tmp_path / "backfill.log", env={**env, "FRAUD_DELTA_DIR": str(batch_dir)}, cwd=PROJECT_ROOT)
    try:  # paced like live traffic: the stream reads it in many micro-batches, the state carries over
        summary = replay(settings, history, Pace(rate=2000), progress=False)
        assert summary["transactions"] == len(history)
        assert backfilling.wait(900) == 0, (tmp_path / "backfill.log").read_text()[-3000:]
        stream.wait_for(lambda: es_scored_count(settings) == len(history), 1500, "every transaction delivered")
        time.sleep(3 * settings.stream.delivery_trigger_seconds)  # the Delta writes of the last delivery batch
    finally:
        backfilling.stop(signal.SIGTERM, patience_s=30)
        stopped = stream.stop()
    assert stopped == 0, stream.log_tail()

    names = [*HANDBOOK_FEATURES, *EXTRA_FEATURES]
    columns = ["transaction_id", "fraud_score", "decision", *(F.col(f"features.{n}").alias(n) for n in names)]
    streamed = spark.read.format("delta").load(settings.scored_table).select(*columns).toPandas()
    batch = spark.read.format("delta").load(str(batch_dir / "scored_transactions")).select(*columns).toPandas()
    assert len(streamed) == streamed.transaction_id.nunique() == len(history)
    streamed, batch = streamed.set_index("transaction_id").sort_index(), batch.set_index("transaction_id").sort_index()
    assert (streamed.index == batch.index).all()
    difference = (streamed[names + ["fraud_score"]] - batch[names + ["fraud_score"]]).abs()
    worst = difference.max().sort_values(ascending=False)
    assert worst.iloc[0] <= 1e-6, f"largest differences:\n{worst.head()}\n{difference.idxmax().loc[worst.index[:3]]}"
    assert (streamed.decision == batch.decision).all()
    assert sorted(es_ids(settings)) == sorted(str(tid) for tid in history.TRANSACTION_ID)
    upserted = pd.DataFrame(mysql_scored(settings, "transaction_id, fraud_score, decision"),
                            columns=["transaction_id", "fraud_score", "decision"]).set_index("transaction_id")
    assert upserted.index.is_unique and (upserted.sort_index().index == batch.index).all()
    assert (upserted.sort_index().fraud_score - batch.fraud_score).abs().max() <= 1e-6
    assert (upserted.sort_index().decision == batch.decision).all()
