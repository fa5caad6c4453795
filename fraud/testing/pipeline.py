"""An isolated pipeline on the test stack (own topics, MySQL database, Elasticsearch index, Delta folder and
checkpoints; removed afterwards), the stream as a real process, and readers of every sink: what the streaming tests
and the benchmarks run on."""
from __future__ import annotations

import json
import signal
import sys
import threading
import time
import uuid
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import pandas as pd
import psutil

from fraud.bootstrap import bootstrap
from fraud.clients.elasticsearch import SCORED, elasticsearch_client
from fraud.clients.kafka import kafka_admin, read_topic, topic_end_offsets
from fraud.clients.mysql import connect
from fraud.config import PROJECT_ROOT, Settings
from fraud.process import Child
from fraud.producer import Pace, replay
from fraud.schemas import ID_FIELDS
from fraud.stack.manager import SERVICES, create_database_and_user
from fraud.stack.mariadb import admin_sql
from fraud.testing.stack import TEST_ENV, stack_settings

DEFAULT_MODEL = PROJECT_ROOT / "models" / "default"


@contextmanager
def isolated_pipeline(stack: Settings, folder: Path, name: str,
                      **overrides: str) -> Iterator[tuple[Settings, dict[str, str]]]:
    """Settings (and the environment that gives them to a subprocess) with their own topics, MySQL database,
    Elasticsearch index, and Delta folder and checkpoints under ``folder``, on the running test stack; removed
    (``discard``) when the block ends: stop any stream on it first. ``overrides``: more FRAUD_* variables
    (FRAUD_KAFKA_PARTITIONS=1, say)."""
    tag = f"{name}-{uuid.uuid4().hex[:6]}".lower()
    env = {**TEST_ENV, "FRAUD_MYSQL_PASSWORD": stack.mysql.password.get_secret_value(),
           **{f"FRAUD_KAFKA_TOPICS_{kind.upper()}": f"{tag}.{kind}" for kind in ("raw", "labels", "scored",
                                                                                  "deadletter")},
           "FRAUD_MYSQL_DATABASE": f"fraud_{tag.replace('-', '_')}", "FRAUD_ELASTICSEARCH_INDEX": f"scored-{tag}",
           "FRAUD_DELTA_DIR": str(folder / "delta"), "FRAUD_STREAM_CHECKPOINT_DIR": str(folder / "checkpoints"),
           **overrides}
    settings = stack_settings(**env)
    create_database_and_user(settings)
    bootstrap(settings)
    try:
        yield settings, env
    finally:
        discard(settings)


def discard(settings: Settings) -> None:
    """Delete a pipeline's topics, MySQL database and Elasticsearch index (its folder is the caller's)."""
    admin = kafka_admin(settings)  # kept until the futures are done
    for future in admin.delete_topics(list(vars(settings.kafka.topics).values()), operation_timeout=30).values():
        future.result(60)
    admin_sql(settings, f"DROP DATABASE IF EXISTS `{settings.mysql.database}`")
    es, alias = elasticsearch_client(settings), settings.elasticsearch.index
    for index in es.indices.get_alias(name=alias):
        es.indices.delete(index=index)
    es.indices.delete_index_template(name=alias)


class StreamProcess:
    """``fraud stream`` (or ``command``: python's arguments) in its own process group (``fraud.process.Child``), so a
    kill -9 takes its JVM and Python workers too. ``proc``: the running process (psutil.Popen) once started."""

    def __init__(self, env: dict[str, str], log_file: Path, *args: str, command: list[str] | None = None):
        self.env, self.log_file = env, log_file
        self.argv = [sys.executable, *(command or ["-m", "fraud.cli", "stream", "--model", str(DEFAULT_MODEL),
                                                   *args])]
        self.child: Child | None = None

    def start(self) -> "StreamProcess":
        self.child = Child(self.argv, self.log_file, env=self.env, cwd=PROJECT_ROOT)
        return self

    @property
    def proc(self) -> psutil.Popen | None:
        return self.child.proc if self.child else None

    def _started(self) -> Child:
        if self.child is None:
            raise RuntimeError("the stream process was not started")
        return self.child

    def kill(self) -> None:
        """kill -9 of the whole process group."""
        self._started().kill()

    def stop(self) -> int | None:
        """A clean stop: SIGTERM to the driver only (it stops the queries, then its JVM); killed after 2 minutes."""
        return self._started().stop(signal.SIGTERM, patience_s=120)

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])

    def wait_for(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        """Poll ``condition`` until true; fail with the stream's log if it times out or the stream died."""
        deadline = time.monotonic() + timeout
        while not condition():
            if (proc := self._started()).poll() is not None:
                raise AssertionError(f"the stream exited ({proc.returncode}) before {what}:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}:\n{self.log_tail()}")
            time.sleep(2)


def mysql_scored(settings: Settings, columns: str = "transaction_id") -> list[tuple]:
    with connect(settings) as conn, conn.cursor() as cur:
        cur.execute(f"SELECT {columns} FROM scored_transactions")
        return cur.fetchall()


def mysql_count(settings: Settings, table: str = "scored_transactions") -> int:
    with connect(settings) as conn, conn.cursor() as cur:
        cur.execute(f"SELECT COUNT(*) FROM {table}")
        return cur.fetchone()[0]


def es_scored_count(settings: Settings) -> int:
    """Scored documents in the Elasticsearch index (a label alone can create a document before its score)."""
    es = elasticsearch_client(settings)
    es.indices.refresh(index=settings.elasticsearch.index)
    return es.count(index=settings.elasticsearch.index, query=SCORED)["count"]


def es_ids(settings: Settings) -> list[str]:
    """The transaction ids of every document in the index; each document's id is its transaction id
    (AssertionError if not)."""
    es = elasticsearch_client(settings)
    index = settings.elasticsearch.index
    es.indices.refresh(index=index)
    # the client's stubs type search's source as bool or a mapping; Elasticsearch takes a list of fields too
    ids, page = [], es.search(index=index, query={"match_all": {}}, size=5000, sort=["transaction_id"],
                             source=["transaction_id"])  # type: ignore[arg-type]
    while page["hits"]["hits"]:
        hits = page["hits"]["hits"]
        assert all(hit["_id"] == hit["_source"]["transaction_id"] for hit in hits), hits[0]
        ids += [hit["_id"] for hit in hits]
        page = es.search(index=index, query={"match_all": {}}, size=5000, sort=["transaction_id"],
                         source=["transaction_id"], search_after=hits[-1]["sort"])  # type: ignore[arg-type]
    return ids


def topic_records(settings: Settings, topic: str) -> list[tuple[bytes | None, bytes | None]]:
    """Every (key, value) in ``topic``, read from the beginning to its current end (None: a null key or value)."""
    return [(message.key(), message.value()) for message in read_topic(settings, topic)]


@contextmanager
def service_down(settings: Settings, service: str) -> Iterator[None]:
    """One service of the test stack stopped for the block; afterwards started again and healthy."""
    factory, start, timeout = SERVICES[service]
    process = factory(settings)
    assert process.stop(), f"{service} was not running"
    try:
        yield
    finally:
        start(settings, process)
        process.wait_healthy(timeout)


def restart_after(settings: Settings, service: str, seconds: float) -> None:
    """Stop one service of the test stack, keep it down ``seconds``, start it again and wait until healthy."""
    with service_down(settings, service):
        time.sleep(seconds)


def delta_ids(spark, path: str) -> list[str]:
    return [row[0] for row in spark.read.format("delta").load(path).select("transaction_id").collect()]


def produce_in_background(settings: Settings, frame: pd.DataFrame, rate: float) -> threading.Thread:
    """``replay`` of ``frame`` at ``rate`` transactions a second (labels after the delay) in a daemon thread."""
    thread = threading.Thread(target=replay, args=(settings, frame, Pace(rate=rate)), kwargs={"progress": False},
                              daemon=True)
    thread.start()
    return thread


def decisions(settings: Settings) -> int:
    """Records on the result topic (decisions, repeats included)."""
    return sum(topic_end_offsets(settings, settings.kafka.topics.scored).values())


def ids_in_sinks(spark, settings: Settings) -> dict[str, list[tuple[str, str, str]]]:
    """The (transaction id, card, terminal) of every scored row in each sink: MySQL, Elasticsearch (the transaction
    id its document id), the Delta scored table and the result topic (its JSON), each list sorted."""
    with connect(settings) as conn, conn.cursor() as cur:
        cur.execute("SELECT transaction_id, customer_id, terminal_id FROM scored_transactions")
        mysql = sorted(tuple(row) for row in cur.fetchall())
    es = elasticsearch_client(settings)
    es.indices.refresh(index=settings.elasticsearch.index)
    hits = es.search(index=settings.elasticsearch.index, query=SCORED, size=10_000,
                     source=["customer_id", "terminal_id"])["hits"]["hits"]  # type: ignore[arg-type]
    delta = spark.read.format("delta").load(settings.scored_table).select(*ID_FIELDS).collect()
    results = [json.loads(value or b"") for _, value in topic_records(settings, settings.kafka.topics.scored)]
    return {"mysql": mysql,
            "elasticsearch": sorted((h["_id"], h["_source"]["customer_id"], h["_source"]["terminal_id"]) for h in hits),
            "delta": sorted(tuple(row) for row in delta),
            "kafka": sorted({tuple(r[name] for name in ID_FIELDS) for r in results})}


def assert_exactly_once_everywhere(spark, settings: Settings, expected: list) -> None:
    """MySQL, Elasticsearch (as document ids too), the Delta scored table and transactions archive hold exactly
    ``expected`` (transaction ids: text, an integer standing for its decimal text), once each; the result topic
    holds each of them (JSON strings), every repeat identical to the first."""
    expected = sorted(str(tid) for tid in expected)
    assert sorted(row[0] for row in mysql_scored(settings)) == expected
    assert sorted(es_ids(settings)) == expected
    assert sorted(delta_ids(spark, settings.scored_table)) == expected
    assert sorted(delta_ids(spark, settings.raw_table)) == expected
    by_id = defaultdict(set)
    for _, value in topic_records(settings, settings.kafka.topics.scored):
        by_id[json.loads(value or b"")["transaction_id"]].add(value)
    assert sorted(by_id) == expected
    assert all(len(copies) == 1 for copies in by_id.values()), "a repeated result differs from the first"
