"""Every broken record gets its reason; every valid one comes through parsed (Spark, inline rows)."""
from __future__ import annotations

import json
from datetime import datetime

from fraud.validation import MAX_PAYLOAD_BYTES, validate_records

VALID = {"transaction_id": 7, "tx_datetime": "2018-04-01T00:00:31", "customer_id": 596, "terminal_id": 3156,
         "tx_amount": 57.16}


def variant(**changes) -> bytes:
    message = {**VALID, **changes}
    return json.dumps({k: v for k, v in message.items() if v is not ...}, allow_nan=True).encode()


BROKEN = [
    (b"", "empty payload"),
    (None, "empty payload"),
    (b"{" + b" " * MAX_PAYLOAD_BYTES + b"}", f"payload of {MAX_PAYLOAD_BYTES + 2} bytes exceeds {MAX_PAYLOAD_BYTES}"),
    (b'{"transaction_id": 7, "x": "\xff\xfe"}', "payload is not valid UTF-8"),
    (b"[1, 2, 3]", "payload is not a JSON object"),
    (b"null", "payload is not a JSON object"),
    (b'{"transaction_id": 7, "tx_amount": ', "malformed JSON"),
    (variant(transaction_id=...), "missing transaction_id"),
    (variant(transaction_id="abc"), "transaction_id is not an integer"),
    (variant(transaction_id=12.5), "transaction_id is not an integer"),
    (variant(transaction_id=10**20), "transaction_id is not an integer"),
    (variant(tx_datetime=...), "missing tx_datetime"),
    (variant(customer_id=...), "missing customer_id"),
    (variant(customer_id=-3), "customer_id is negative"),
    (variant(terminal_id=2 ** 53 + 1), "terminal_id is above 2^53 (not exact as a JSON number)"),
    (variant(terminal_id="T-1"), "terminal_id is not an integer"),
    (variant(tx_amount=...), "missing tx_amount"),
    (variant(tx_amount="57.16"), "tx_amount is not a number"),
    (variant(tx_amount=-1.0), "tx_amount is negative"),
    (variant(tx_amount=float("nan")), "tx_amount is not finite"),
    (variant(tx_amount=float("inf")), "tx_amount is not finite"),
    (variant(tx_datetime="yesterday"), "tx_datetime is not an ISO-8601 timestamp"),
    (variant(tx_datetime="2027-01-01T00:00:00"), "tx_datetime is more than 1 day ahead of its Kafka timestamp"),
]


def test_broken_records_get_their_reason_and_valid_ones_pass_interleaved(spark):
    kafka_time = datetime(2026, 11, 28, 12, 0, 0)
    valid = [variant(transaction_id=1000 + i, tx_datetime="2018-04-01 00:00:31") for i in range(3)]
    valid.append(variant(transaction_id=2000, extra_field="kept in the payload", tx_datetime="2018-04-01T02:00:00Z"))
    records = [payload for pair in zip(valid * 6, [b for b, _ in BROKEN]) for payload in pair]
    records += [b for b, _ in BROKEN[len(valid) * 6:]]
    rows = [(value, "transactions.raw", 0, offset, kafka_time) for offset, value in enumerate(records)]
    frame = spark.createDataFrame(rows, "value binary, topic string, partition int, offset long, timestamp timestamp")

    out = {r.kafka_offset: r for r in validate_records(frame).collect()}

    assert len(out) == len(records)  # nothing lost, nothing added
    expected = {value: reason for value, reason in BROKEN}
    for offset, value in enumerate(records):
        if value in valid:
            assert out[offset].reason is None, (value, out[offset].reason)
        else:
            assert out[offset].reason == expected[value], (value, out[offset].reason)
            assert out[offset].payload == (value.decode("utf-8", "replace") if value is not None else None)
    parsed = next(r for r in out.values() if r.transaction_id == 2000)
    assert (parsed.tx_datetime, parsed.customer_id, parsed.terminal_id, parsed.tx_amount) == (
        datetime(2018, 4, 1, 2, 0, 0), 596, 3156, 57.16)
    assert "extra_field" in parsed.payload
    assert len(set(expected.values())) >= 15


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
