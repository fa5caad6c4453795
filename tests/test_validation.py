"""Every broken record gets its reason; every valid one comes through parsed (Spark, inline rows)."""
from __future__ import annotations

import hashlib
import json
from datetime import datetime

from pyspark.sql import functions as F

from fraud.testing.data import BROKEN, BROKEN_IDS, ODD_IDS, VALID, odd_id_messages, shown, utc_us, variant
from fraud.validation import validate_records


def test_broken_records_get_their_reason_and_valid_ones_pass_interleaved(spark):
    kafka_time = datetime(2026, 11, 28, 12, 0, 0)
    valid = [variant(transaction_id=1000 + i, tx_datetime="2018-04-01 00:00:31") for i in range(3)]
    valid.append(variant(transaction_id=2000, extra_field="kept in the payload", tx_datetime="2018-04-01T02:00:00Z"))
    # valid UTF-8 with U+FFFD and an emoji in an extra field; zone offsets; nanoseconds; the oldest accepted time
    valid.append(json.dumps({**VALID, "transaction_id": 2001, "merchant": "Caf\ufffd \U0001F355",
                             "tx_datetime": "2018-04-01T07:30:31.123456789+07:30"}, ensure_ascii=False).encode())
    valid.append(variant(transaction_id=2002, tx_datetime="2018-03-31T19:00:31-0500"))
    valid.append(variant(transaction_id=2003, tx_datetime="1900-01-01T00:00:00Z"))
    records = [payload for pair in zip(valid * 6, [b for b, _ in BROKEN]) for payload in pair]
    records += [b for b, _ in BROKEN[len(valid) * 6:]]
    rows = [(value, "transactions.raw", 0, offset, kafka_time) for offset, value in enumerate(records)]
    frame = spark.createDataFrame(rows, "value binary, topic string, partition int, offset long, timestamp timestamp")

    # instants as µs since the epoch: collect() would show timestamps in the host's time zone
    out = {r.kafka_offset: r for r in validate_records(frame).withColumn("event_us", F.unix_micros("tx_datetime"))
           .collect()}

    assert len(BROKEN) >= 60 and len(out) == len(records)  # nothing lost, nothing added
    expected = {value: reason for value, reason in BROKEN}
    for offset, value in enumerate(records):
        if value in valid:
            assert out[offset].reason is None, (value, out[offset].reason)
        else:
            assert out[offset].reason == expected[value], (value, out[offset].reason)
            assert shown(out[offset].payload) == shown(value)
            assert out[offset].payload_bytes == len(value or b"")
            assert out[offset].payload_sha256 == hashlib.sha256(value or b"").hexdigest() if value else True
    parsed = {r.transaction_id: r for r in out.values() if r.reason is None}
    assert (parsed["2000"].event_us, parsed["2000"].customer_id, parsed["2000"].terminal_id,
            parsed["2000"].tx_amount) == (utc_us(2018, 4, 1, 2), "596", "3156", 57.16)
    assert "extra_field" in parsed["2000"].payload
    assert parsed["2001"].payload == valid[-3].decode() and "Caf\ufffd \U0001F355" in parsed["2001"].payload
    assert parsed["2001"].event_us == utc_us(2018, 4, 1, 0, 0, 31, 123456)  # UTC, to the microsecond
    assert parsed["2002"].event_us == utc_us(2018, 4, 1, 0, 0, 31)
    assert parsed["2003"].event_us == utc_us(1900, 1, 1)
    assert all(r.payload_sha256 is None for r in parsed.values())
    assert len(set(expected.values())) >= 40
    # every id field refused for each kind: 3 fields x 8 kinds of reason
    assert len({reason for _, reason in BROKEN_IDS}) == 24


def test_ids_of_every_kind_come_out_as_their_exact_text(spark):
    """A UUID transaction id, a 19-digit card number above 2^63, a merchant name with a comma and an apostrophe,
    a PaySim id, 12345678901234567890123 sent as a JSON integer, ...: each comes out exactly, as text."""
    messages = odd_id_messages()
    # the same ids as labels: a label's ids follow the same rule
    rows = [(json.dumps(message, ensure_ascii=False).encode(), topic, 0, offset, datetime(2026, 11, 28))
            for topic in ("transactions.raw", "transactions.labels")
            for offset, (message, _) in enumerate(messages)]
    rows = [(value if topic == "transactions.raw" else
             json.dumps({**json.loads(value), "tx_fraud": 1}, ensure_ascii=False).encode(), topic, p, o, t)
            for value, topic, p, o, t in rows]
    frame = spark.createDataFrame(rows, "value binary, topic string, partition int, offset long, timestamp timestamp")
    out = validate_records(frame, labels_topic="transactions.labels").collect()

    assert len(out) == 2 * len(ODD_IDS) == 30
    expected = {(topic, offset): ids for topic in ("transactions.raw", "transactions.labels")
                for offset, (_, ids) in enumerate(messages)}
    for row in out:
        assert row.reason is None, (row.payload, row.reason)
        assert (row.transaction_id, row.customer_id, row.terminal_id) == expected[(row.kafka_topic, row.kafka_offset)]
    by_id = {row.transaction_id for row in out}
    assert {"6c0b3a0e-8f4e-4b6a-9a53-2f1e7d1f0a11", "9876543210987654321", "fraud_Kirlin and Sons, O'Hara",
            "C1231006815", "12345678901234567890123"} <= by_id
    assert 9876543210987654321 > 2 ** 63


def test_labels_are_checked_against_the_label_contract(spark):
    label = {"transaction_id": 7, "tx_datetime": "2018-04-01T00:00:31", "customer_id": 596, "terminal_id": 3156}
    cases = [({**label, "tx_fraud": 1}, None), ({**label, "tx_fraud": 0, "extra": "x"}, None),
             (label, "missing tx_fraud"), ({**label, "tx_fraud": 2}, "tx_fraud is not 0 or 1"),
             ({**label, "tx_fraud": "yes"}, "tx_fraud is not an integer"),
             ({**VALID, "tx_fraud": 1, "tx_amount": ...}, None)]  # a label needs no amount
    rows = [(json.dumps({k: v for k, v in message.items() if v is not ...}).encode(), "transactions.labels", 0,
             offset, datetime(2026, 11, 28)) for offset, (message, _) in enumerate(cases)]
    rows.append((variant(), "transactions.raw", 0, len(rows), datetime(2026, 11, 28)))  # no tx_fraud needed here
    frame = spark.createDataFrame(rows, "value binary, topic string, partition int, offset long, timestamp timestamp")
    out = {r.kafka_offset: r for r in validate_records(frame, labels_topic="transactions.labels").collect()}
    assert [out[i].reason for i in range(len(rows))] == [reason for _, reason in cases] + [None]
    assert out[0].tx_fraud == 1 and out[0].tx_amount is None
