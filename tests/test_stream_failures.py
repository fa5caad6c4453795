"""How the stream stops for an operational event it cannot get past (README, Operations): the message names the
cause and the way on; and how it stops while Kafka cannot be reached. No service (tests/test_operations.py runs the
events for real)."""
from __future__ import annotations

import pytest

from fraud.stream.queries import StreamStopped, check_checkpoint, explained


def test_a_query_stopped_by_data_loss_names_the_partition_and_the_way_on():
    spark_error = ("[STREAM_FAILED] Query [id = 1] terminated with exception: Job aborted.\n"
                   "java.lang.IllegalStateException: Cannot fetch offset 40 (GroupId: g, TopicPartition: raw-1).\n"
                   "Some data may have been lost because they are not available in Kafka any more; either the\n"
                   " data was aged out by Kafka ...\n\tat org.apache.spark.sql.kafka010.Consumer.get(Consumer.scala:9)")
    message = str(explained(RuntimeError(spark_error)))
    assert "TopicPartition: raw-1" in message and "FRAUD_STREAM_ON_DATA_LOSS=skip" in message
    assert "Consumer.scala" not in message
    other = explained(RuntimeError("[STREAM_FAILED] something else\n\tat a.b(C.scala:1)"))
    assert isinstance(other, StreamStopped) and str(other) == "[STREAM_FAILED] something else\n\tat a.b(C.scala:1)"


def _checkpoint(folder, offsets: dict[int, str], commits: dict[int, str]):
    for log_name, entries in (("offsets", offsets), ("commits", commits)):
        (folder / log_name).mkdir(parents=True)
        for batch, text in entries.items():
            (folder / log_name / str(batch)).write_text(text)
    return folder


OFFSETS = 'v1\n{"batchWatermarkMs":0,"batchTimestampMs":1}\n{"raw":{"0":12}}\n-'
COMMIT = 'v1\n{"nextBatchWatermarkMs":0}'


def test_a_checkpoint_as_spark_writes_it_passes(tmp_path):
    check_checkpoint(_checkpoint(tmp_path / "decision", {0: OFFSETS, 1: OFFSETS}, {0: COMMIT}), "remove it")
    check_checkpoint(tmp_path / "never-ran", "remove it")


@pytest.mark.parametrize("log_name, damaged", [("offsets", OFFSETS[:20]), ("offsets", ""), ("commits", "v1"),
                                                ("commits", '{"nextBatchWatermarkMs":0}')])
def test_a_damaged_entry_is_named_with_the_way_on(tmp_path, log_name, damaged):
    offsets, commits = {7: OFFSETS, 8: OFFSETS}, {7: COMMIT, 8: COMMIT}
    (offsets if log_name == "offsets" else commits)[8] = damaged
    folder = _checkpoint(tmp_path / "decision", offsets, commits)
    with pytest.raises(StreamStopped, match=f"{folder / log_name / '8'} is not a Spark {log_name} log entry.*"
                                            "remove it and warm-start"):
        check_checkpoint(folder, "remove it and warm-start")


def test_an_old_damaged_entry_a_restart_does_not_read_is_left_alone(tmp_path):
    folder = _checkpoint(tmp_path / "decision", {0: "garbage", 1: OFFSETS, 2: OFFSETS}, {0: COMMIT, 1: COMMIT})
    check_checkpoint(folder, "remove it")


def test_sigterm_while_kafka_is_unreachable_stops_the_stream_within_seconds(tmp_path):
    """A stream whose Kafka does not answer says so in its log (Spark only logs its client's retries); Spark's Kafka
    calls do not yield to an interrupt (a minute per attempt), yet SIGTERM stops it within seconds: the query waiting
    for Kafka's offsets is stopped at once and its thread given ``STOP_TIMEOUT_S``, not the 3 minutes it took."""
    import signal
    import time

    from fraud.testing.pipeline import StreamProcess
    stream = StreamProcess({"FRAUD_KAFKA_PORT": "1", "FRAUD_ELASTICSEARCH_PORT": "2", "FRAUD_MYSQL_PORT": "3",
                            "FRAUD_STATE_DIR": str(tmp_path / "state")}, tmp_path / "stream.log", "--queries",
                           "decision").start()
    try:
        stream.wait_for(lambda: "has waited" in stream.log_file.read_text(errors="replace"), 180,
                        "a warning that Kafka does not answer")
        began = time.monotonic()
        stream.proc.send_signal(signal.SIGTERM)
        code = stream.proc.wait(120)
        stopped_in = time.monotonic() - began
    finally:
        if stream.proc.poll() is None:
            stream.kill()
    assert code == 0 and stopped_in < 40, f"exit {code} after {stopped_in:.0f}s:\n{stream.log_tail()}"
