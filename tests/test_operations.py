"""Operational events (README, Operations): partitions added to the raw topic while the stream runs, records Kafka
deleted before the stream read them (retention), a damaged checkpoint and the recovery an operator will try. Each
either goes on losing and duplicating nothing, or stops the stream once with a message naming the cause and the
recovery."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest
from confluent_kafka import TopicPartition
from confluent_kafka.admin import NewPartitions

from fraud.clients.kafka import kafka_admin, kafka_producer, topic_end_offsets
from fraud.config import PROJECT_ROOT
from fraud.producer import Pace, load_history, replay, transaction_message
from fraud.stream.queries import DECISION, state_folder
from fraud.testing.pipeline import StreamProcess, assert_exactly_once_everywhere, mysql_count

pytestmark = pytest.mark.services


@pytest.fixture(scope="module")
def history(data_dir):
    return load_history(data_dir / "transactions.parquet", start="2018-07-01").iloc[:3000]


def _send(settings, frame) -> None:
    assert replay(settings, frame, Pace(rate=3000), progress=False)["transactions"] == len(frame)


def _exits_with(stream: StreamProcess, *phrases: str) -> str:
    """The stream, started, stops by itself (exit code not 0) and its log names every phrase; returns the log."""
    stream.start()
    assert stream._started().wait(600) != 0, stream.log_tail()
    log = stream.log_file.read_text(errors="replace")
    missing = [phrase for phrase in phrases if phrase not in log]
    assert not missing, f"{missing} not in the log:\n{stream.log_tail(60)}"
    return log


def test_added_partitions_deleted_records_and_a_damaged_checkpoint(pipeline, spark, history, tmp_path):
    settings, env = pipeline("operations")
    raw = settings.kafka.topics.raw
    first, added, deleted, skipped_to, replayed = np.array_split(history, 5)
    stream = StreamProcess(env, tmp_path / "stream.log").start()
    try:
        _send(settings, first)
        stream.wait_for(lambda: mysql_count(settings) == len(first), 600, "the first records scored")
        # partitions added while it runs: records written to them are read too
        partitions = len(topic_end_offsets(settings, raw))
        admin = kafka_admin(settings)
        admin.create_partitions([NewPartitions(raw, partitions + 2)])[raw].result(60)
        while len(admin.list_topics(raw, timeout=10).topics[raw].partitions) < partitions + 2:
            time.sleep(0.5)  # the new partitions are in the brokers' metadata
        producer = kafka_producer(settings)
        for i, row in enumerate(added.itertuples()):
            producer.produce(raw, key=str(row.CUSTOMER_ID), value=transaction_message(row),
                             partition=partitions + i % 2)
        assert producer.flush(30) == 0
        assert [topic_end_offsets(settings, raw)[p] for p in (partitions, partitions + 1)] == [
            (len(added) + 1) // 2, len(added) // 2]
        stream.wait_for(lambda: mysql_count(settings) == len(first) + len(added), 600,
                        "the records of the added partitions scored")
    finally:
        assert stream.stop() == 0, stream.log_tail()

    # retention deleted records the stream had not read: it stops, naming the cause and the way on
    _send(settings, deleted)
    ends = topic_end_offsets(settings, raw)
    for future in admin.delete_records([TopicPartition(raw, p, end) for p, end in ends.items()]).values():
        future.result(60)
    _send(settings, skipped_to)
    stream.log_file = tmp_path / "data-loss.log"
    _exits_with(stream, "Some data may have been lost", raw, "FRAUD_STREAM_ON_DATA_LOSS=skip")
    # the documented way on: once with skip; the records Kafka still holds are scored, the deleted ones are gone
    skipping = StreamProcess({**env, "FRAUD_STREAM_ON_DATA_LOSS": "skip"}, tmp_path / "skip.log").start()
    try:
        skipping.wait_for(lambda: mysql_count(settings) == len(first) + len(added) + len(skipped_to), 600,
                          "the records after the deleted ones scored")
    finally:
        assert skipping.stop() == 0, skipping.log_tail()

    # a damaged checkpoint (its newest offsets file truncated): the stream refuses to start and names the file
    offsets = settings.checkpoint_dir / DECISION / "offsets"
    newest = max((f for f in offsets.iterdir() if f.name.isdigit()), key=lambda f: int(f.name))
    newest.write_bytes(newest.read_bytes()[:20])
    stream.log_file = tmp_path / "damaged.log"
    _exits_with(stream, str(newest))
    # the recovery the README gives: remove that checkpoint and its state, seed the state from the archive, start
    # again: the raw topic is read from its start, and the ids the archive holds are not decided twice
    shutil.rmtree(settings.checkpoint_dir / DECISION)
    shutil.rmtree(state_folder(settings))
    seeded = subprocess.run([sys.executable, "-m", "fraud.cli", "warm-start"], env={**os.environ, **env},
                            cwd=PROJECT_ROOT, capture_output=True, text=True)
    assert seeded.returncode == 0, seeded.stderr[-3000:]
    _send(settings, replayed)
    stream.log_file = tmp_path / "recovered.log"
    stream.start()
    expected = [*first.TRANSACTION_ID, *added.TRANSACTION_ID, *skipped_to.TRANSACTION_ID, *replayed.TRANSACTION_ID]
    try:
        stream.wait_for(lambda: mysql_count(settings) == len(expected), 600, "the records sent after recovery")
    finally:
        assert stream.stop() == 0, stream.log_tail()
    assert_exactly_once_everywhere(spark, settings, expected)
