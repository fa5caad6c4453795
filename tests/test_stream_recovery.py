"""The stream through crashes, sink outages, a stop mid-retry, a write block and a hot reload: afterwards every
transaction is in every sink exactly once."""
from __future__ import annotations

import json
import random
import re
import shutil
import signal
import time
import uuid

import numpy as np
import pandas as pd
import pytest

from fraud.clients.elasticsearch import elasticsearch_client
from fraud.producer import Pace, load_history, replay
from fraud.testing.pipeline import (
    DEFAULT_MODEL,
    StreamProcess,
    assert_exactly_once_everywhere,
    decisions,
    es_ids,
    mysql_count,
    mysql_scored,
    produce_in_background,
    service_down,
)
from training.artifacts import METADATA_FILE

pytestmark = pytest.mark.services


@pytest.fixture(scope="module")
def history(data_dir):
    """12,000 transactions of the dataset with ids as real users send them: every third transaction id a UUID,
    every third one above 2^64 (a JSON integer), card numbers of 19 digits above 2^63 (JSON integers), terminals
    named like merchants (spaces, a comma, an apostrophe)."""
    frame = load_history(data_dir / "transactions.parquet", start="2018-06-01").iloc[:12_000]
    ids = [str(uuid.UUID(int=int(tid))) if tid % 3 == 0 else int(tid) + 10 ** 22 if tid % 3 == 1 else int(tid)
           for tid in frame.TRANSACTION_ID]
    return frame.assign(TRANSACTION_ID=pd.Series(ids, index=frame.index, dtype=object),
                        CUSTOMER_ID=pd.Series([9_300_000_000_000_000_000 + int(c) for c in frame.CUSTOMER_ID],
                                              index=frame.index, dtype=object),
                        TERMINAL_ID=[f"fraud_Kirlin and Sons, O'Hara #{t}" for t in frame.TERMINAL_ID])


def test_kill_9_twice_loses_and_duplicates_nothing(pipeline, spark, history, tmp_path):
    settings, env = pipeline("crash")
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    print(f"kill moments drawn with seed {seed}")
    stream = StreamProcess(env, tmp_path / "stream.log").start()
    producer = produce_in_background(settings, history, rate=300)  # 40 s of traffic: the kills land mid-stream
    try:
        for kill, share in enumerate((0.2, 0.5)):  # mid-stream: the decisions are ahead of the other sinks
            stream.wait_for(lambda: decisions(settings) >= share * len(history), 600,
                            f"{share:.0%} of the decisions before kill {kill + 1}")
            time.sleep(rng.uniform(0, 6))
            stream.kill()
            with stream.log_file.open("a") as log:
                log.write(f"\n==== kill -9 number {kill + 1} ====\n")
            stream.start()
        producer.join(120)
        stream.wait_for(lambda: mysql_count(settings) == len(history), 900, "every transaction scored")
    finally:
        stopped = stream.stop()
    assert stopped == 0, stream.log_tail()
    assert_exactly_once_everywhere(spark, settings, list(history.TRANSACTION_ID))


def test_outages_a_sigterm_mid_retry_a_write_block_and_a_new_model_lose_and_duplicate_nothing(
        pipeline, stack, spark, history, tmp_path):
    """One stream through 800 transactions in 4 waves of 200, each wave sent while something is wrong, and each
    step waits for the log line proving the stream met it (nothing rests on timing): Elasticsearch down; a model
    published (the hot reload); MariaDB down and SIGTERM while its write is retried; an index refusing writes."""
    settings, env = pipeline("outages")
    waves = np.array_split(history.iloc[:800], 4)
    models = tmp_path / "models"
    shutil.copytree(DEFAULT_MODEL, models / "first")
    stream = StreamProcess(env, tmp_path / "stream.log", "--model", str(models)).start()

    def send(wave: int) -> None:
        replay(settings, waves[wave], Pace(rate=1000), progress=False)

    def retries(sink: str) -> int:
        return len(re.findall(rf"{sink} [a-z ]+ unavailable \(", stream.log_file.read_text(errors="replace")))

    def sent_while_down(wave: int, sink: str) -> None:
        """Send ``wave``; return once ``sink``'s write was retried."""
        before = retries(sink)
        send(wave)
        stream.wait_for(lambda: retries(sink) > before, 300, f"a retry of the {sink} write")

    try:
        send(0)
        stream.wait_for(lambda: mysql_count(settings) == 200 and len(es_ids(settings)) == 200, 600,
                        "the first wave in MySQL and Elasticsearch")
        with service_down(stack, "elasticsearch"):
            sent_while_down(1, "elasticsearch")
        metadata = json.loads((DEFAULT_MODEL / METADATA_FILE).read_text())
        shutil.copytree(DEFAULT_MODEL, models / "second", ignore=shutil.ignore_patterns(METADATA_FILE))
        (models / "second" / METADATA_FILE).write_text(json.dumps({**metadata, "version": "second-1"}))
        stream.wait_for(lambda: "serving model second-1" in stream.log_file.read_text(), 120, "the new model served")
        with service_down(stack, "mariadb"):
            sent_while_down(2, "mysql")
            began = time.monotonic()
            stream.proc.send_signal(signal.SIGTERM)
            stream.proc.wait(120)
            stopped_in = time.monotonic() - began
    finally:
        if stream.proc.poll() is None:
            stream.kill()
    assert stopped_in < 60, f"the stream took {stopped_in:.0f}s to stop (retries go on for 10 minutes):\n" \
                            f"{stream.log_tail()}"
    assert "the stream is stopping" in stream.log_file.read_text(), stream.log_tail()
    assert len(es_ids(settings)) >= 400  # the Elasticsearch outage is over: its wave went in before the next

    # an index that answers but refuses writes: the stream stops by itself, once, naming the cause; no retry
    es = elasticsearch_client(settings)
    es.indices.put_settings(index=settings.elasticsearch.index, settings={"index.blocks.write": True})
    stream.log_file = tmp_path / "write-block.log"
    stream.start()
    try:
        send(3)
        stream.proc.wait(600)
    finally:
        if stream.proc.poll() is None:
            stream.kill()
    log = stream.log_file.read_text()
    assert stream.proc.returncode != 0, stream.log_tail()
    assert "cluster_block_exception" in log and "not an error that goes away" in log, stream.log_tail()
    assert "unavailable (" not in log, "a write block was retried"
    es.indices.put_settings(index=settings.elasticsearch.index, settings={"index.blocks.write": None})

    stream.log_file = tmp_path / "recovered.log"  # the interrupted micro-batches are redone
    stream.start()
    try:
        stream.wait_for(lambda: mysql_count(settings) == 800 and len(es_ids(settings)) == 800, 600,
                        "every wave in MySQL and Elasticsearch")
    finally:
        assert stream.stop() == 0, stream.log_tail()
    assert_exactly_once_everywhere(spark, settings, [tid for wave in waves for tid in wave.TRANSACTION_ID])
    versions = dict(mysql_scored(settings, "transaction_id, model_version"))
    assert [{versions[str(tid)] for tid in wave.TRANSACTION_ID} for wave in waves] == [
        {metadata["version"]}] * 2 + [{"second-1"}] * 2
