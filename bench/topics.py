"""What the streaming benchmark reads from Kafka: end offsets over time, and record timestamps afterwards."""
from __future__ import annotations

import json
import threading
import time
from typing import Any

import numpy as np
import pandas as pd
from confluent_kafka import Message

from fraud.clients.kafka import end_offsets, kafka_consumer, read_topic
from fraud.config import Settings


class OffsetSampler(threading.Thread):
    """Every ``every_s`` seconds, (epoch seconds, records in ``produced``, records in ``processed``): how many
    transactions were sent and scored so far. Stop it with ``halt()``."""

    def __init__(self, settings: Settings, produced: str, processed: str, every_s: float = 1.0):
        super().__init__(daemon=True)
        self.settings, self.topics, self.every_s = settings, (produced, processed), every_s
        self.samples: list[tuple[float, int, int]] = []
        self._halt = threading.Event()

    def run(self) -> None:
        consumer = kafka_consumer(self.settings, "bench")
        try:
            while not self._halt.is_set():
                now = time.time()
                produced, processed = (sum(end_offsets(consumer, topic).values()) for topic in self.topics)
                self.samples.append((now, produced, processed))
                self._halt.wait(max(0.0, now + self.every_s - time.time()))
        finally:
            consumer.close()

    def latest(self) -> tuple[float, int, int] | None:
        return self.samples[-1] if self.samples else None

    def halt(self) -> list[tuple[float, int, int]]:
        self._halt.set()
        self.join(30)
        return self.samples


def _json_value(message: Message) -> Any:
    """The record's value parsed from JSON (the result topic's records always have one)."""
    value = message.value()
    if value is None:
        raise ValueError(f"{message.topic()} [{message.partition()}] @{message.offset()}: a record without a value")
    return json.loads(value)


def record_times_ms(settings: Settings, topic: str) -> np.ndarray:
    """The Kafka timestamp (ms) of every record of ``topic``: for the raw topic, when the producer sent it."""
    return np.asarray([message.timestamp()[1] for message in read_topic(settings, topic)], dtype=np.int64)


def scored_times_ms(settings: Settings, topic: str) -> pd.DataFrame:
    """One row per scored transaction (its first record): ``sent_ms``, the raw record's timestamp (the row's
    ``kafka_timestamp``), and ``scored_ms``, the result record's timestamp."""
    rows = [(row["transaction_id"], row["kafka_timestamp"], message.timestamp()[1])
            for message in read_topic(settings, topic) for row in [_json_value(message)]]
    frame = pd.DataFrame(rows, columns=["transaction_id", "kafka_timestamp", "scored_ms"])
    sent = pd.to_datetime(frame.kafka_timestamp, utc=True, format="ISO8601")
    frame["sent_ms"] = (sent - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(milliseconds=1)
    return (frame.sort_values("scored_ms").drop_duplicates("transaction_id")[["sent_ms", "scored_ms"]]
            .reset_index(drop=True))


def scored_features(settings: Settings, topic: str) -> pd.DataFrame:
    """One row per scored transaction (its first record), indexed by transaction id: ``fraud_score`` and every
    feature of the record's ``features`` object."""
    rows: dict[int, dict[str, float | None]] = {}
    for message in read_topic(settings, topic):
        row = _json_value(message)
        rows.setdefault(row["transaction_id"], {"fraud_score": row["fraud_score"], **row["features"]})
    return pd.DataFrame.from_dict(rows, orient="index")

