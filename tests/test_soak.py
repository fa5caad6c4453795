"""Soak: the stream at 500 transactions a second for SOAK_MINUTES (30 by default) with 1% poison drawn from every
broken kind, an Elasticsearch outage, a MariaDB outage and a kill -9 on the way. Afterwards every valid transaction
is in every sink exactly once, every poison record is a dead letter with its reason, and no decision came more than
a minute after its transaction was sent.

Not in the default run (``make soak``; ``SOAK_MINUTES=5 make soak`` for a shorter one). It prints the figures.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import os
import threading
import time

import numpy as np
import pytest

from fraud.clients.kafka import kafka_producer, read_topic
from fraud.clients.mysql import connect
from fraud.producer import load_history
from fraud.testing.data import BROKEN
from fraud.testing.pipeline import (
    StreamProcess,
    assert_exactly_once_everywhere,
    es_scored_count,
    mysql_count,
    produce_in_background,
    restart_after,
)

pytestmark = [pytest.mark.services, pytest.mark.soak]
MINUTES = float(os.environ.get("SOAK_MINUTES", "30"))
RATE = 500  # transactions a second
POISON_SHARE = 0.01
MAX_DELAY_S = 60.0


def _poison_in_background(settings, stop: threading.Event, sent: list[bytes | None]) -> threading.Thread:
    """One broken record every 1 / (RATE * POISON_SHARE) seconds, the kinds in turn, until ``stop``."""
    kinds = itertools.cycle([value for value, _ in BROKEN if b"2027-01-01" not in (value or b"")])  # no time bomb

    def send() -> None:
        producer = kafka_producer(settings)
        while not stop.wait(1 / (RATE * POISON_SHARE)):
            value = next(kinds)
            producer.produce(settings.kafka.topics.raw, key=b"poison", value=value)
            sent.append(value)
            producer.poll(0)
        assert producer.flush(30) == 0

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    return thread


def test_half_an_hour_of_traffic_with_poison_outages_and_a_crash(pipeline, stack, spark, data_dir, tmp_path):
    settings, env = pipeline("soak")
    history = load_history(data_dir / "transactions.parquet").iloc[:int(MINUTES * 60 * RATE)]
    stream = StreamProcess(env, tmp_path / "stream.log").start()
    stream.wait_for(lambda: "decision query: serving model" in stream.log_file.read_text(), 300,
                    "the decision query to start")  # the first start's JVM and session are not the stream's delay
    stop_poison, poison = threading.Event(), []
    began = time.monotonic()
    producer = produce_in_background(settings, history, RATE)
    poisoner = _poison_in_background(settings, stop_poison, poison)
    killed_at = 0.0
    try:
        for share, event in ((0.25, "elasticsearch"), (0.5, "mariadb"), (0.75, "kill -9")):
            time.sleep(max(0.0, began + share * MINUTES * 60 - time.monotonic()))
            print(f"{time.monotonic() - began:.0f}s: {event}", flush=True)
            if event == "kill -9":
                killed_at = time.time()
                stream.kill()
                stream.start()
            else:
                restart_after(stack, event, 30)
        producer.join()
        stop_poison.set()
        poisoner.join(60)
        print(f"{time.monotonic() - began:.0f}s: sent {len(history):,} transactions and {len(poison):,} poison",
              flush=True)
        stream.wait_for(lambda: mysql_count(settings) == len(history) and es_scored_count(settings) == len(history)
                        and mysql_count(settings, "dead_letters") >= len(poison), 1800,
                        "every transaction in MySQL and Elasticsearch, every poison record a dead letter")
        time.sleep(3 * settings.stream.delivery_trigger_seconds)  # the Delta writes of the last delivery batch
    finally:
        stop_poison.set()
        stopped = stream.stop()
    assert stopped == 0, stream.log_tail()
    assert_exactly_once_everywhere(spark, settings, list(history.TRANSACTION_ID))

    expected = {hashlib.sha256(value).hexdigest() if value is not None else None: reason
                for value, reason in BROKEN}
    with connect(settings) as conn, conn.cursor() as cur:
        cur.execute("SELECT payload_sha256, reason FROM dead_letters")
        letters = cur.fetchall()
    assert len(letters) == len(poison) and len(poison) >= 0.9 * POISON_SHARE * len(history)
    assert all(reason == expected[sha] for sha, reason in letters)
    assert {sha for sha, _ in letters} == {hashlib.sha256(v).hexdigest() if v is not None else None for v in poison}

    sent, published = np.array([(_sent_at(message.value()), message.timestamp()[1] / 1000)
                                for message in read_topic(settings, settings.kafka.topics.scored)]).T
    delays = published - sent
    after_kill = (sent >= killed_at - 5) & (sent < killed_at + 120)
    print(f"soak {MINUTES:g} min at {RATE}/s: {len(history):,} transactions, {len(poison):,} poison; decision delay "
          f"p50 {np.percentile(delays, 50):.2f}s p99 {np.percentile(delays, 99):.2f}s max {delays.max():.2f}s; "
          f"sent in the 2 minutes after the kill -9: max {delays[after_kill].max():.2f}s, "
          f"otherwise max {delays[~after_kill].max():.2f}s")
    assert delays.max() <= MAX_DELAY_S


def _sent_at(value: bytes | None) -> float:
    """The Kafka timestamp (seconds since the epoch) of the transaction a result record decides."""
    sent = json.loads(value or b"")["kafka_timestamp"]
    return np.datetime64(sent.replace("Z", "").split("+")[0]).astype("datetime64[us]").astype(np.int64) / 1e6
