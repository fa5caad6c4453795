"""Test data: random transactions in the handbook's columns, and the catalogue of broken records with the reason
validation gives each (``BROKEN``)."""
from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd

from fraud.schemas import HANDBOOK_COLUMNS, LABEL_COLUMN
from fraud.validation import MAX_PAYLOAD_BYTES

COLUMNS = [*HANDBOOK_COLUMNS, LABEL_COLUMN]


def random_transactions(n: int = 4000, seed: int = 7, days: int = 75) -> pd.DataFrame:
    """Random rows over 75 days (more than the 60-day baseline look-back) on a 5-minute grid (so windows often
    end exactly on a transaction), with extra same-instant transactions of one customer; ids increase with time,
    row order is shuffled."""
    rng = np.random.default_rng(seed)
    slots = rng.integers(0, days * 24 * 12, n)
    customers, terminals = rng.integers(0, 20, n), rng.integers(0, 30, n)
    twins = rng.choice(n, n // 20, replace=False)
    slots[twins], customers[twins] = slots[twins - 1], customers[twins - 1]
    pdf = pd.DataFrame({
        "TX_DATETIME": pd.Timestamp("2018-04-01") + pd.to_timedelta(slots * 300, unit="s"),
        "CUSTOMER_ID": customers,
        "TERMINAL_ID": terminals,
        "TX_AMOUNT": rng.gamma(2.0, 30.0, n).round(2),
        "TX_FRAUD": (rng.random(n) < 0.1).astype("int64"),
    }).sample(frac=1, random_state=seed)
    pdf = pdf.sort_values("TX_DATETIME", kind="stable").assign(TRANSACTION_ID=np.arange(n))
    return pdf[COLUMNS].sample(frac=1, random_state=seed + 1)


NOT_ISO = "tx_datetime is not an ISO-8601 date-time with seconds (and Z or a numeric offset, or none for UTC)"
OUT_OF_RANGE = "tx_datetime is outside 1900-01-01 to 9999-12-31 (UTC), what the sinks store"

VALID = {"transaction_id": 7, "tx_datetime": "2018-04-01T00:00:31", "customer_id": 596, "terminal_id": 3156,
         "tx_amount": 57.16}


def utc_us(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0,
           microsecond: int = 0) -> int:
    """µs since the epoch of a UTC date-time given as datetime's arguments."""
    moment = datetime(year, month, day, hour, minute, second, microsecond, tzinfo=timezone.utc)
    return (moment - datetime(1970, 1, 1, tzinfo=timezone.utc)) // timedelta(microseconds=1)


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
    # more shapes of the same kinds: whitespace, other JSON values, a byte-order mark, nulls, types, times
    (b"   ", "payload is not a JSON object"),
    (b'"just a string"', "payload is not a JSON object"),
    (b"42", "payload is not a JSON object"),
    (b"\x00\x00\x00", "payload is not a JSON object"),
    (b"\xef\xbb\xbf" + json.dumps(VALID).encode(), "payload is not a JSON object"),  # a UTF-8 byte-order mark
    (b"{}", "missing transaction_id"),
    (b"{'transaction_id': 7}", "malformed JSON"),  # single quotes are not JSON
    (b'{"transaction_id": 7,}', "malformed JSON"),
    (b'{"transaction_id": 007}', "malformed JSON"),
    (json.dumps(VALID).encode() + b" trailing", "malformed JSON: content after the object"),
    (variant(transaction_id=None), "missing transaction_id"),
    (variant(transaction_id=True), "transaction_id is not an integer"),
    (variant(transaction_id=[1]), "transaction_id is not an integer"),
    (variant(transaction_id={"a": 1}), "transaction_id is not an integer"),
    (variant(transaction_id="12"), "transaction_id is not an integer"),
    (variant(transaction_id=-5), "transaction_id is negative"),
    (variant(customer_id=1.5), "customer_id is not an integer"),
    (variant(terminal_id=-1), "terminal_id is negative"),
    (variant(tx_amount=True), "tx_amount is not a number"),
    (variant(tx_amount=None), "missing tx_amount"),
    (variant(tx_amount=1e400), "tx_amount is not finite"),  # json.dumps writes Infinity
    (variant(tx_datetime=None), "missing tx_datetime"),
    (variant(tx_datetime=""), NOT_ISO),
    (variant(tx_datetime=1522540831), NOT_ISO),  # epoch seconds
    (variant(tx_datetime="2018-04-01T24:00:00Z"), NOT_ISO),
    (variant(tx_datetime="2018-04-01T23:59:60Z"), NOT_ISO),  # a leap second
    (variant(tx_datetime="2018-04-01T00:00:31+25:00"), NOT_ISO),
    (variant(tx_datetime=" 2018-04-01T00:00:31Z"), NOT_ISO),
    (variant(tx_datetime="2018-13-01T00:00:00Z"), NOT_ISO),
]
