"""What the streaming benchmark reads from Kafka: end offsets over time, and record timestamps afterwards."""
from __future__ import annotations

import json
import threading
import time
import uuid
from typing import Callable

import numpy as np
import pandas as pd
from confluent_kafka import Consumer, Message, TopicPartition

from fraud.config import Settings


def _consumer(settings: Settings) -> Consumer:
    return Consumer({**settings.kafka.client_config(), "group.id": f"bench-{uuid.uuid4().hex}",
                     "enable.auto.commit": False})


def end_offsets(consumer: Consumer, topic: str) -> dict[int, int]:
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in partitions}


class OffsetSampler(threading.Thread):
    """Every ``every_s`` seconds, (epoch seconds, records in ``produced``, records in ``processed``): how many
    transactions were sent and scored so far. Stop it with ``halt()``."""

    def __init__(self, settings: Settings, produced: str, processed: str, every_s: float = 1.0):
        super().__init__(daemon=True)
        self.settings, self.topics, self.every_s = settings, (produced, processed), every_s
        self.samples: list[tuple[float, int, int]] = []
        self._halt = threading.Event()

    def run(self) -> None:
        consumer = _consumer(self.settings)
        try:
            while not self._halt.is_set():
                now = time.time()
                counts = [sum(end_offsets(consumer, topic).values()) for topic in self.topics]
                self.samples.append((now, *counts))
                self._halt.wait(max(0.0, now + self.every_s - time.time()))
        finally:
            consumer.close()

    def latest(self) -> tuple[float, int, int] | None:
        return self.samples[-1] if self.samples else None

    def halt(self) -> list[tuple[float, int, int]]:
        self._halt.set()
        self.join(30)
        return self.samples


def _read(settings: Settings, topic: str, take: Callable[[Message], None], patience_s: float = 30.0) -> None:
    """Hand every record of ``topic``, from the beginning to its end offsets of now, to ``take``."""
    consumer = _consumer(settings)
    try:
        ends = {p: end for p, end in end_offsets(consumer, topic).items() if end > 0}
        consumer.assign([TopicPartition(topic, p, 0) for p in ends])
        position = dict.fromkeys(ends, 0)
        deadline = time.monotonic() + patience_s
        while any(position[p] < end for p, end in ends.items()):
            messages = consumer.consume(num_messages=10_000, timeout=1)
            if not messages and time.monotonic() > deadline:
                raise TimeoutError(f"{topic}: nothing read for {patience_s:.0f}s at {position} (ends {ends})")
            for message in messages:
                if message.error() or message.offset() >= ends[message.partition()]:
                    continue
                position[message.partition()] = message.offset() + 1
                take(message)
            if messages:
                deadline = time.monotonic() + patience_s
    finally:
        consumer.close()


def record_times_ms(settings: Settings, topic: str) -> np.ndarray:
    """The Kafka timestamp (ms) of every record of ``topic``: for the raw topic, when the producer sent it."""
    stamps: list[int] = []
    _read(settings, topic, lambda message: stamps.append(message.timestamp()[1]))
    return np.asarray(stamps, dtype=np.int64)


def scored_times_ms(settings: Settings, topic: str) -> pd.DataFrame:
    """One row per scored transaction (its first record): ``sent_ms``, the raw record's timestamp (the row's
    ``kafka_timestamp``), and ``scored_ms``, the result record's timestamp."""
    rows: list[tuple[int, str, int]] = []

    def take(message: Message) -> None:
        row = json.loads(message.value())
        rows.append((row["transaction_id"], row["kafka_timestamp"], message.timestamp()[1]))

    _read(settings, topic, take)
    frame = pd.DataFrame(rows, columns=["transaction_id", "kafka_timestamp", "scored_ms"])
    sent = pd.to_datetime(frame.kafka_timestamp, utc=True, format="ISO8601")
    frame["sent_ms"] = (sent - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(milliseconds=1)
    return (frame.sort_values("scored_ms").drop_duplicates("transaction_id")[["sent_ms", "scored_ms"]]
            .reset_index(drop=True))
