"""The stream through crashes and sink outages: afterwards every transaction is in every sink exactly once."""
from __future__ import annotations

import random
import re
import signal
import time
import uuid

import pandas as pd
import pytest

from fraud.clients.elasticsearch import elasticsearch_client
from fraud.producer import Pace, load_history, replay
from fraud.testing.pipeline import (
    StreamProcess,
    assert_exactly_once_everywhere,
    decisions,
    es_ids,
    mysql_count,
    produce_in_background,
    restart_after,
    service_down,
)

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


def test_each_sink_down_for_30_seconds_loses_and_duplicates_nothing(pipeline, stack, spark, history, tmp_path):
    settings, env = pipeline("outages")
    frame = history.iloc[:6000]
    stream = StreamProcess(env, tmp_path / "stream.log").start()
    producer = produce_in_background(settings, frame, rate=50)  # 120 s: both outages come while it sends
    try:
        stream.wait_for(lambda: mysql_count(settings) > 0, 600, "the first scored transactions")
        for service in ("elasticsearch", "mariadb"):
            restart_after(stack, service, 30)
        producer.join(120)
        stream.wait_for(lambda: mysql_count(settings) == len(frame) and len(es_ids(settings)) == len(frame), 900,
                        "every transaction in MySQL and Elasticsearch")
    finally:
        stopped = stream.stop()
    assert stopped == 0, stream.log_tail()
    log = stream.log_file.read_text()
    assert all(re.search(rf"{sink} [a-z ]+ unavailable", log) for sink in ("elasticsearch", "mysql")), \
        "an outage went unnoticed"
    assert_exactly_once_everywhere(spark, settings, list(frame.TRANSACTION_ID))


def test_sigterm_while_a_sink_is_retried_stops_the_stream_and_the_batch_is_redone(pipeline, stack, spark, history,
                                                                                   tmp_path):
    settings, env = pipeline("stop-retrying")
    frame = history.iloc[:400]
    stream = StreamProcess(env, tmp_path / "stream.log").start()
    try:
        replay(settings, frame.iloc[:200], Pace(rate=1000), progress=False)
        stream.wait_for(lambda: len(es_ids(settings)) == 200, 600, "the first transactions in Elasticsearch")
        with service_down(stack, "elasticsearch"):
            replay(settings, frame.iloc[200:], Pace(rate=1000), progress=False)
            stream.wait_for(lambda: "elasticsearch scored unavailable" in stream.log_file.read_text(), 300,
                            "a retry of the Elasticsearch write")
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
    stream = StreamProcess(env, tmp_path / "stream.log").start()  # the interrupted micro-batch is redone
    try:
        stream.wait_for(lambda: len(es_ids(settings)) == len(frame), 600, "every transaction in Elasticsearch")
    finally:
        assert stream.stop() == 0, stream.log_tail()
    assert_exactly_once_everywhere(spark, settings, list(frame.TRANSACTION_ID))


def test_an_index_that_refuses_writes_stops_the_stream_once_naming_the_cause(pipeline, spark, history, tmp_path):
    settings, env = pipeline("read-only")
    frame = history.iloc[:300]
    es = elasticsearch_client(settings)
    es.indices.put_settings(index=settings.elasticsearch.index, settings={"index.blocks.write": True})
    stream = StreamProcess(env, tmp_path / "stream.log").start()
    try:
        replay(settings, frame, Pace(rate=1000), progress=False)
        stream.proc.wait(600)  # by itself: the write block is not an error that goes away
    finally:
        if stream.proc.poll() is None:
            stream.kill()
    log = stream.log_file.read_text()
    assert stream.proc.returncode != 0, stream.log_tail()
    assert "cluster_block_exception" in log and "not an error that goes away" in log, stream.log_tail()
    assert "unavailable (" not in log, "a write block was retried"
    es.indices.put_settings(index=settings.elasticsearch.index, settings={"index.blocks.write": None})
    stream = StreamProcess(env, tmp_path / "stream.log").start()
    try:
        stream.wait_for(lambda: len(es_ids(settings)) == len(frame), 600, "every transaction in Elasticsearch")
    finally:
        assert stream.stop() == 0, stream.log_tail()
    assert_exactly_once_everywhere(spark, settings, list(frame.TRANSACTION_ID))

