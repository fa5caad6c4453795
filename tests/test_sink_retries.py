"""Which sink errors are retried, and that a stop ends the retries at once (no services: fast)."""
from __future__ import annotations

import threading
import time

import pytest

from fraud.sinks import SinkError, transient, with_retries

REFUSED = ("An error occurred while calling o123.save.\n: java.sql.SQLNonTransientConnectionException: Socket fail "
           "to connect to address=(host=127.0.0.1)(port=13306)(type=primary). Connection refused")
ES_DOWN = ("org.elasticsearch.hadoop.rest.EsHadoopNoNodesLeftException: Connection error (check network and/or "
           "proxy settings)- all nodes failed; tried [[127.0.0.1:19200]]")
READ_ONLY = ("org.elasticsearch.hadoop.rest.EsHadoopRemoteException: cluster_block_exception: index [scored] "
             "blocked by: [FORBIDDEN/8/index write (api)];")
ANCIENT = "[INCONSISTENT_BEHAVIOR_CROSS_VERSION.WRITE_ANCIENT_DATETIME] You may get a different result"


class Failing:
    """A write that fails with ``errors`` in turn, then succeeds."""

    def __init__(self, *errors: str):
        self.errors, self.calls = list(errors), 0

    def __call__(self) -> None:
        self.calls += 1
        if self.errors:
            raise RuntimeError(self.errors.pop(0))


@pytest.mark.parametrize("message, expected", [
    (REFUSED, True), (ES_DOWN, True), ("HTTP 429 Too Many Requests", True), ("503 Service Unavailable", True),
    ("2003 (HY000): Can't connect to MySQL server on '127.0.0.1:13306' (111)", True),
    ("1213 (40001): Deadlock found when trying to get lock; try restarting transaction", True),
    (READ_ONLY, False), (ANCIENT, False), ("Duplicate entry '7' for key 'PRIMARY'", False),
    ("Column 'tx_amount' cannot be null", False),
    (READ_ONLY + "\n\tat org.elasticsearch.hadoop.rest.RestClient.bulk(RestClient.java:503)", False)])
def test_only_errors_that_go_away_are_transient(message, expected):
    assert transient(RuntimeError(message)) is expected


def test_a_transient_error_is_retried_until_the_write_succeeds():
    write = Failing(REFUSED, ES_DOWN)
    with_retries(write, "mysql", patience_s=30)
    assert write.calls == 3


def test_a_deterministic_error_fails_at_once_naming_the_sink_and_the_cause():
    write = Failing(READ_ONLY)
    began = time.monotonic()
    with pytest.raises(SinkError, match=r"^elasticsearch: .*index write \(api\).*not an error that goes away"):
        with_retries(write, "elasticsearch")
    assert write.calls == 1 and time.monotonic() - began < 1


def test_a_stop_ends_the_retries_at_once():
    stop = threading.Event()
    write = Failing(*[REFUSED] * 1000)
    threading.Timer(0.5, stop.set).start()
    began = time.monotonic()
    with pytest.raises(SinkError, match="the stream is stopping"):
        with_retries(write, "mysql", stop)
    assert time.monotonic() - began < 3  # the first pause alone is 1 s; unstopped, retries go on for 10 minutes


def test_the_patience_is_bounded():
    with pytest.raises(SinkError, match=r"still failing after 2s"):
        with_retries(Failing(*[REFUSED] * 1000), "mysql", patience_s=2)
