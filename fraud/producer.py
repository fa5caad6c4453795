"""``fraud produce``: replay a transaction history (or the simulator's stream) to Kafka in event-time order.

Transactions go to ``transactions.raw`` as JSON keyed by customer (the message
contract: transaction_id, tx_datetime ISO-8601, customer_id, terminal_id,
tx_amount). Each label goes to ``transactions.labels``, keyed by terminal, only
once the replay's event clock has passed the transaction time plus the label
delay, the way labels reach a production system. Labels still in the future
when the replay ends are not sent.
"""
from __future__ import annotations

import itertools
import json
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd
from pyspark.sql import SparkSession
from tqdm import tqdm

from fraud.clients.kafka import kafka_producer
from fraud.config import Settings
from fraud.features import LABEL_DELAY_DAYS, id_order
from fraud.schemas import HANDBOOK_COLUMNS, LABEL_COLUMN, LABEL_FIELDS, TRANSACTION_FIELDS
from fraud.sources import MESSAGE_COLUMN, SourceMapping, read_history

COLUMNS = [*HANDBOOK_COLUMNS, LABEL_COLUMN]


@dataclass(frozen=True)
class Pace:
    """Either a fixed wall-clock rate (events/s) or event time running ``speedup`` times real time."""
    rate: float | None = None
    speedup: float | None = None

    def __post_init__(self) -> None:
        if (self.rate is None) == (self.speedup is None):
            raise ValueError("give exactly one of rate (events/s) or speedup")
        if any(pace is not None and pace <= 0 for pace in (self.rate, self.speedup)):
            raise ValueError("rate and speedup must be positive")

    def due(self, index: int, event_seconds: float) -> float:
        """Seconds after the start at which event number ``index`` (event time offset given) is due."""
        if self.rate is not None:
            return index / self.rate
        assert self.speedup is not None  # exactly one of them is given (__post_init__)
        return event_seconds / self.speedup


def mapped_history(spark: SparkSession, path: str | Path, source: SourceMapping, as_sent: bool = False) -> pd.DataFrame:
    """The transactions at ``path`` in the handbook columns, read with the source mapping ``source``
    (``fraud.sources.read_history``), as one pandas frame for ``load_history``; ``as_sent``: with MESSAGE_COLUMN,
    each row's own columns as JSON, the message ``replay`` sends. Raises InputError, SourceError."""
    columns = [*COLUMNS, *([MESSAGE_COLUMN] if as_sent else [])]
    return read_history(spark, path, source, as_sent).select(*columns).toPandas()


def load_history(history: str | Path | pd.DataFrame, start: str | None = None) -> pd.DataFrame:
    """Transactions in event-time order (ties by id, ``fraud.features.id_order``), from ``start`` on: from a Parquet
    or CSV file in the handbook columns, or a frame of them (``mapped_history``)."""
    if isinstance(history, pd.DataFrame):
        frame = history
    else:
        path = Path(history)
        frame = pd.read_csv(path, parse_dates=["TX_DATETIME"]) if path.suffix == ".csv" else pd.read_parquet(path)
    frame = frame[[c for c in [*COLUMNS, MESSAGE_COLUMN] if c in frame.columns]]
    if start:
        frame = frame[frame.TX_DATETIME >= pd.Timestamp(start)]
    return frame.iloc[np.lexsort((id_order(frame["TRANSACTION_ID"].to_numpy()), frame["TX_DATETIME"].to_numpy()))]


def labels_still_due(history: str | Path | pd.DataFrame, start: str,
                     delay_days: int = LABEL_DELAY_DAYS) -> pd.DataFrame:
    """Transactions before ``start`` whose labels are due at or after it (event time + delay >= start): what a
    replay resumed at ``start`` must still publish, because the replay before it stopped first."""
    frame = load_history(history, str(pd.Timestamp(start) - pd.Timedelta(days=delay_days)))
    return frame[frame.TX_DATETIME < pd.Timestamp(start)]


def _message(row, fields: list[str]) -> bytes:
    """A row in handbook columns (a named tuple: ``itertuples()``) as the JSON message of ``fields`` (fraud.schemas):
    the time as ISO-8601 text, the amount a number, the label an integer, ids as they are (text, or integers)."""
    def value(field: str):
        column = getattr(row, field.upper())
        if field == "tx_datetime":
            return column.isoformat()
        return float(column) if field == "tx_amount" else column if isinstance(column, str) else int(column)
    return json.dumps({field: value(field) for field in fields}).encode()


def transaction_message(row) -> bytes:
    """The ``transactions.raw`` message of a handbook row (TRANSACTION_FIELDS)."""
    return _message(row, TRANSACTION_FIELDS)


def label_message(row) -> bytes:
    """The ``transactions.labels`` message of a handbook row (LABEL_FIELDS)."""
    return _message(row, LABEL_FIELDS)


def replay(settings: Settings, history: pd.DataFrame | Iterable, pace: Pace, delay_days: int = LABEL_DELAY_DAYS,
           progress: bool = True, limit: int | None = None,
           labels_due: pd.DataFrame | None = None) -> dict[str, object]:
    """Send ``history`` at ``pace``; returns a summary.

    ``history`` is a frame from load_history, or any iterable of rows with the same
    fields in event-time order (the simulator's endless stream), cut at ``limit``.
    A row with MESSAGE_COLUMN (``mapped_history(as_sent=True)``) is sent as that message, its label as the same.
    ``labels_due`` (from ``labels_still_due``) are earlier transactions whose labels
    are still to be sent when their time comes. Ctrl-C stops the replay cleanly:
    what was sent is flushed and summarised.

    Raises RuntimeError when Kafka has not acknowledged every message 60 s after the last was sent.
    """
    if isinstance(history, pd.DataFrame):
        history = history.itertuples(index=False)
    rows = itertools.islice(history, limit)
    topics = settings.kafka.topics
    producer = kafka_producer(settings, **{"linger.ms": 5, "compression.type": "lz4"})
    delay = pd.Timedelta(days=delay_days)
    # labels in event-time order, waiting for event time + delay
    pending: deque = deque(labels_due.itertuples(index=False) if labels_due is not None else ())
    first_event = last_event = None
    sent = labels = 0
    began = time.monotonic()
    with tqdm(total=limit, unit="tx", desc="replaying", disable=not progress) as bar:
        try:
            for index, row in enumerate(rows):
                first_event = first_event or row.TX_DATETIME
                wait = began + pace.due(index, (row.TX_DATETIME - first_event).total_seconds()) - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                while pending and pending[0].TX_DATETIME + delay <= row.TX_DATETIME:
                    label = pending.popleft()
                    producer.produce(topics.labels, key=str(label.TERMINAL_ID), value=getattr(
                        label, MESSAGE_COLUMN, None) or label_message(label))
                    labels += 1
                producer.produce(topics.raw, key=str(row.CUSTOMER_ID),
                                 value=getattr(row, MESSAGE_COLUMN, None) or transaction_message(row))
                producer.poll(0)
                sent, last_event = sent + 1, row.TX_DATETIME
                if pd.notna(getattr(row, "TX_FRAUD", None)):  # a label to send once it is known
                    pending.append(row)
                bar.update()
        except KeyboardInterrupt:
            pass
    if producer.flush(60) != 0:
        raise RuntimeError("Kafka did not acknowledge every message within 60 s")
    seconds = time.monotonic() - began
    return {"transactions": sent, "labels": labels, "labels_not_yet_known": len(pending),
            "seconds": round(seconds, 2), "events_per_s": round(sent / seconds) if seconds else None,
            "first_event": str(first_event), "last_event": str(last_event)}
