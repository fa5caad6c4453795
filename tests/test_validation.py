"""Every broken record gets its reason; every valid one comes through parsed (Spark, inline rows)."""
from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime, timedelta, timezone

from pyspark.sql import functions as F

from fraud.validation import MAX_PAYLOAD_BYTES, validate_records

NOT_ISO = "tx_datetime is not an ISO-8601 date-time with seconds (and Z or a numeric offset, or none for UTC)"
OUT_OF_RANGE = "tx_datetime is outside 1900-01-01 to 9999-12-31 (UTC), what the sinks store"

VALID = {"transaction_id": 7, "tx_datetime": "2018-04-01T00:00:31", "customer_id": 596, "terminal_id": 3156,
         "tx_amount": 57.16}


def utc_us(*moment: int) -> int:
    """µs since the epoch of a UTC date-time given as datetime's arguments."""
    return (datetime(*moment, tzinfo=timezone.utc) - datetime(1970, 1, 1, tzinfo=timezone.utc)) // timedelta(
        microseconds=1)


def shown(value: bytes | str | None) -> str | None:
    """A payload as text, each run of bytes that is not UTF-8 as one U+FFFD (Java's decoder and Python's may split
    such a run into a different number of them): compare ``shown(sent) == shown(dead letter's payload)``."""
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    return None if text is None else re.sub("\ufffd+", "\ufffd", text)


def variant(**changes) -> bytes:
    message = {**VALID, **changes}
    return json.dumps({k: v for k, v in message.items() if v is not ...}, allow_nan=True).encode()


BROKEN = [
    (b"", "empty payload"),
    (None, "empty payload"),
    (b"{" + b" " * MAX_PAYLOAD_BYTES + b"}", f"payload of {MAX_PAYLOAD_BYTES + 2} bytes exceeds {MAX_PAYLOAD_BYTES}"),
    (b'{"transaction_id": 7, "x": "\xff\xfe"}', "payload is not valid UTF-8"),
    (b'{"transaction_id": 7, "x": "\xed\xa0\x80"}', "payload is not valid UTF-8"),  # an encoded UTF-16 surrogate
    (b'{"transaction_id": 7, "x": "\xc0\xaf"}', "payload is not valid UTF-8"),  # an overlong encoding of "/"
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
    (variant(tx_datetime="yesterday"), NOT_ISO),
    (variant(tx_datetime="2018-11-04T01:30:00 America/New_York"), NOT_ISO),  # ambiguous: DST ends at 02:00
    (variant(tx_datetime="2018-03-11T02:30:00 America/New_York"), NOT_ISO),  # no such local time
    (variant(tx_datetime="2018-04-01"), NOT_ISO),
    (variant(tx_datetime="2018-04-01T00:00Z"), NOT_ISO),
    (variant(tx_datetime="2018-02-30T00:00:00Z"), NOT_ISO),
    (variant(tx_datetime="0001-01-01T00:00:00Z"), OUT_OF_RANGE),
    (variant(tx_datetime="1899-12-31T23:59:59Z"), OUT_OF_RANGE),
    (variant(tx_datetime="2027-01-01T00:00:00"), "tx_datetime is more than 1 day ahead of its Kafka timestamp"),
]


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

    assert len(out) == len(records)  # nothing lost, nothing added
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
    assert (parsed[2000].event_us, parsed[2000].customer_id, parsed[2000].terminal_id,
            parsed[2000].tx_amount) == (utc_us(2018, 4, 1, 2), 596, 3156, 57.16)
    assert "extra_field" in parsed[2000].payload
    assert parsed[2001].payload == valid[-3].decode() and "Caf\ufffd \U0001F355" in parsed[2001].payload
    assert parsed[2001].event_us == utc_us(2018, 4, 1, 0, 0, 31, 123456)  # UTC, to the microsecond
    assert parsed[2002].event_us == utc_us(2018, 4, 1, 0, 0, 31)
    assert parsed[2003].event_us == utc_us(1900, 1, 1)
    assert all(r.payload_sha256 is None for r in parsed.values())
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
