"""Test data: random transactions in the handbook's columns, ids of every kind the contract takes (``ODD_IDS``), and
the catalogue of broken records with the reason validation gives each (``BROKEN``)."""
from __future__ import annotations

import json
import re
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import joblib
import numpy as np
import pandas as pd

from fraud.config import PROJECT_ROOT
from fraud.schemas import HANDBOOK_COLUMNS, ID_MAX_CHARS, LABEL_COLUMN
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


# Ids as a producer may send them (JSON) -> the text every sink holds: a UUID and a 32-hex transaction id, a 19-digit
# card number above 2^63 (as a JSON integer), a merchant name with spaces, a comma and an apostrophe, a PaySim id,
# integers above 2^53 and 2^64, a negative one, strings that read like numbers or other JSON, the longest id.
ODD_IDS = [
    ("6c0b3a0e-8f4e-4b6a-9a53-2f1e7d1f0a11", "6c0b3a0e-8f4e-4b6a-9a53-2f1e7d1f0a11"),
    (9876543210987654321, "9876543210987654321"),
    ("fraud_Kirlin and Sons, O'Hara", "fraud_Kirlin and Sons, O'Hara"),
    ("C1231006815", "C1231006815"),
    (12345678901234567890123, "12345678901234567890123"),
    ("0f6a1d2c3b4e5f60718293a4b5c6d7e8", "0f6a1d2c3b4e5f60718293a4b5c6d7e8"),
    (2 ** 53 + 1, "9007199254740993"),
    (-5, "-5"),
    ("007", "007"),
    ("1.5", "1.5"),
    ("true", "true"),
    ("[1]", "[1]"),
    ("NaN", "NaN"),
    ("Caf\u00e9 \U0001F355 \"quoted\" \\ back", "Caf\u00e9 \U0001F355 \"quoted\" \\ back"),
    ("x" * ID_MAX_CHARS, "x" * ID_MAX_CHARS),
]


def odd_id_messages(start: str | None = None) -> list[tuple[dict, tuple[str, str, str]]]:
    """One valid transaction message per ODD_IDS entry (its transaction id that entry, card and terminal the next
    entries'), with the (transaction id, card, terminal) text it must come out as. Event times one second apart
    from ``start`` (ISO-8601; default VALID's time) on."""
    out = []
    for i, (sent, text) in enumerate(ODD_IDS):
        card, terminal = ODD_IDS[(i + 1) % len(ODD_IDS)], ODD_IDS[(i + 2) % len(ODD_IDS)]
        moment = pd.Timestamp(start or VALID["tx_datetime"]) + pd.Timedelta(seconds=i)
        out.append(({**VALID, "transaction_id": sent, "customer_id": card[0], "terminal_id": terminal[0],
                     "tx_datetime": moment.isoformat()}, (text, card[1], terminal[1])))
    return out


_ID_RULE = "an id is a JSON string or integer"
# of each id field, a refused id of every kind -> its reason
BROKEN_IDS = [
    (variant(transaction_id=12.5), f"transaction_id is a number that is not an integer; {_ID_RULE}"),
    (variant(customer_id=1.5), f"customer_id is a number that is not an integer; {_ID_RULE}"),
    (variant(terminal_id=1e3), f"terminal_id is a number that is not an integer; {_ID_RULE}"),  # sent as 1000.0
    (variant(terminal_id=1.0), f"terminal_id is a number that is not an integer; {_ID_RULE}"),
    (variant(transaction_id=1e400), f"transaction_id is a number that is not an integer; {_ID_RULE}"),  # Infinity
    (variant(transaction_id=True), f"transaction_id is true or false; {_ID_RULE}"),
    (variant(customer_id=False), f"customer_id is true or false; {_ID_RULE}"),
    (variant(terminal_id=True), f"terminal_id is true or false; {_ID_RULE}"),
    (variant(transaction_id=[1]), f"transaction_id is an array; {_ID_RULE}"),
    (variant(customer_id=[]), f"customer_id is an array; {_ID_RULE}"),
    (variant(terminal_id=["3156"]), f"terminal_id is an array; {_ID_RULE}"),
    (variant(transaction_id={"a": 1}), f"transaction_id is an object; {_ID_RULE}"),
    (variant(customer_id={}), f"customer_id is an object; {_ID_RULE}"),
    (variant(terminal_id={"id": 3156}), f"terminal_id is an object; {_ID_RULE}"),
    (variant(transaction_id=""), "transaction_id is empty or only whitespace"),
    (variant(customer_id="   "), "customer_id is empty or only whitespace"),
    (variant(terminal_id="\u3000"), "terminal_id is empty or only whitespace"),  # an ideographic space
    (variant(transaction_id="9" * (ID_MAX_CHARS + 1)), f"transaction_id is longer than {ID_MAX_CHARS} characters"),
    (variant(customer_id="\u00e9" * (ID_MAX_CHARS + 1)), f"customer_id is longer than {ID_MAX_CHARS} characters"),
    (variant(terminal_id="x" * (ID_MAX_CHARS + 1)), f"terminal_id is longer than {ID_MAX_CHARS} characters"),
    (variant(transaction_id="a\x00b"), "transaction_id holds a control character (U+0000-U+001F or U+007F-U+009F)"),
    (variant(customer_id="4111\n1111"), "customer_id holds a control character (U+0000-U+001F or U+007F-U+009F)"),
    (variant(terminal_id="T\u0085"), "terminal_id holds a control character (U+0000-U+001F or U+007F-U+009F)"),
    (variant(transaction_id=" 7"), "transaction_id begins or ends with whitespace"),
    (variant(customer_id="596 "), "customer_id begins or ends with whitespace"),
    (variant(terminal_id="\u00a03156"), "terminal_id begins or ends with whitespace"),  # a no-break space
]

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
    (variant(tx_datetime=...), "missing tx_datetime"),
    (variant(customer_id=...), "missing customer_id"),
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
    *BROKEN_IDS,
]


def constant_model(folder: Path, version: str) -> Path:
    """A copy of ``models/default`` at ``folder`` whose model scores every transaction alike (scikit-learn's
    DummyClassifier, the prior of a 1% fraud rate): a served model any trained candidate beats. Returns ``folder``."""
    from sklearn.dummy import DummyClassifier

    from training.artifacts import METADATA_FILE, MODEL_FILE
    default = PROJECT_ROOT / "models" / "default"
    metadata = json.loads((default / METADATA_FILE).read_text())
    folder.mkdir(parents=True)
    shutil.copytree(default / "report", folder / "report")
    features = np.zeros((100, len(metadata["features"])))
    joblib.dump(DummyClassifier(strategy="prior").fit(features, np.arange(100) == 0), folder / MODEL_FILE)
    (folder / METADATA_FILE).write_text(json.dumps({**metadata, "version": version}))
    return folder
