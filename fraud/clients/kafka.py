"""Kafka clients (``kafka.*`` settings): producers, the admin client, and reading topics as they are now (end
offsets, and every record up to them)."""
from __future__ import annotations

import time
import uuid
from typing import Iterator

from confluent_kafka import Consumer, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from fraud.config import Settings


def kafka_producer(settings: Settings, **config) -> Producer:
    """An idempotent producer (no duplicate from its own retries); ``config`` adds or overrides librdkafka
    properties (e.g. ``linger.ms``, ``transactional.id``)."""
    return Producer({**settings.kafka.client_config(), "enable.idempotence": True, **config})


def kafka_admin(settings: Settings) -> AdminClient:
    """The admin client (topics, configs). Keep it referenced until the futures it returned are done."""
    return AdminClient({**settings.kafka.client_config()})


def kafka_consumer(settings: Settings, purpose: str) -> Consumer:
    """A consumer of its own group (nothing committed), named after what it is for."""
    return Consumer({**settings.kafka.client_config(), "group.id": f"fraud-{purpose}-{uuid.uuid4().hex}",
                     "enable.auto.commit": False})


def watermarks(consumer: Consumer, topic: str) -> dict[int, tuple[int, int]]:
    """Partition -> (oldest offset kept, the offset the next record will get)."""
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10) for p in partitions}


def end_offsets(consumer: Consumer, topic: str) -> dict[int, int]:
    """Partition -> the offset the next record will get."""
    return {p: high for p, (_, high) in watermarks(consumer, topic).items()}


def topic_end_offsets(settings: Settings, topic: str) -> dict[int, int]:
    consumer = kafka_consumer(settings, "offsets")
    try:
        return end_offsets(consumer, topic)
    finally:
        consumer.close()


def read_topic(settings: Settings, topic: str, start: dict[int, int] | None = None,
               patience_s: float = 30.0) -> Iterator[Message]:
    """Every record of ``topic`` from ``start`` (partition -> offset; default: the oldest kept) up to the
    end offsets of when it is called.

    Raises TimeoutError when nothing arrives for ``patience_s`` before that."""
    consumer = kafka_consumer(settings, "read")
    try:
        bounds = watermarks(consumer, topic)
        position = {p: max(low, (start or {}).get(p, low)) for p, (low, _) in bounds.items()}
        ends = {p: high for p, (_, high) in bounds.items() if position[p] < high}
        consumer.assign([TopicPartition(topic, p, position[p]) for p in ends])
        deadline = time.monotonic() + patience_s
        while any(position[p] < end for p, end in ends.items()):
            messages = consumer.consume(num_messages=10_000, timeout=1)
            if not messages and time.monotonic() > deadline:
                raise TimeoutError(f"{topic}: nothing read for {patience_s:.0f}s at {position} (ends {ends})")
            for message in messages:
                partition, offset = message.partition(), message.offset()
                if message.error() or partition is None or offset is None or offset >= ends[partition]:
                    continue
                position[partition] = offset + 1
                yield message
            if messages:
                deadline = time.monotonic() + patience_s
    finally:
        consumer.close()
