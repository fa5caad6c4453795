"""The stream's wiring: its two queries, their sources, checkpoints and scheduling; start, run, stop.

- **decision** (``fraud.stream.decisions``): ``transactions.raw`` and ``transactions.labels`` ->
  ``transactions.scored`` and ``transactions.deadletter``, micro-batch after micro-batch
  (trigger ``stream.trigger_seconds``, 0 = at once), its card and terminal state under
  ``<checkpoint_dir>/decision-state``.
- **delivery** (``fraud.stream.delivery``): those four topics -> MySQL, Elasticsearch and
  Delta, every ``stream.delivery_trigger_seconds``; only when one of them is a sink.

Both keep their checkpoints under ``stream.checkpoint_dir`` and report each
micro-batch to MySQL ``stream_progress``. ``fraud stream`` runs the delivery query in
a second process (``DeliveryProcess``, at CPU niceness ``stream.delivery_nice``): a
Delta commit or an Elasticsearch bulk write never holds a decision's micro-batch
(measured at 2,000 tx/s with every sink: decision batches of 2.2 s beside it, against
10-20 s when both queries shared one JVM). A niceness above 0 starves the sinks on
two cores, where the decision query's micro-batches run back to back (at niceness 10 and
500 tx/s, MySQL held no row after 2.5 minutes): 0 is the default. Under ``spark-submit`` both
run in the submitted application (``--queries`` splits them into two submissions).
"""
from __future__ import annotations

import functools
import json
import logging
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Callable

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming import StreamingQuery

from fraud.config import Settings
from fraud.process import Child
from fraud.sinks import check_sinks, require_text_ids
from fraud.sources import stream_source
from fraud.stream.decisions import decision_plan
from fraud.stream.delivery import DEDUPLICATION_WINDOW, DeliveryBatches
from fraud.stream.progress import ProgressToMysql
from fraud.stream.serving import ModelRuns, batch_ids, served_model, unservable
from training.artifacts import METADATA_FILE
from udfs.scoring import score_column

log = logging.getLogger(__name__)
DECISION, DELIVERY = "decision", "delivery"
DELIVERED = ("delta", "mysql", "elasticsearch")  # the sinks the delivery query writes; the decision query: Kafka
MODEL_CHECK_S = 2.0  # how often the stream looks for a newer model (and for a failed query)
KAFKA_PATIENCE_S = 20.0  # a query asking Kafka for offsets this long is told in the log (Kafka down, unreachable)
FETCH_MAX_WAIT_MS = 20
# Failures whose cause is an operational event (README, Operations): a phrase of Spark's message -> the way on.
RECOVERIES = {
    "data may have been lost": "Kafka no longer holds records the stream had not read (deleted by its retention, or "
                               "the topic was recreated). Resend them if the producer can, or start once with "
                               "FRAUD_STREAM_ON_DATA_LOSS=skip to go on without them (README: Operations)",
}


class StreamStopped(RuntimeError):
    """A query stopped by itself: the message is its error's first lines and, for a known cause, what to do."""


def explained(failure: Exception) -> StreamStopped:
    """``failure`` (a query's error) as a StreamStopped: for a known cause (RECOVERIES), the lines of the error up to
    the one naming it, then what to do; otherwise the whole error."""
    message = str(failure).strip()
    lines = message.splitlines()
    for phrase, way_on in RECOVERIES.items():
        at = next((i for i, line in enumerate(lines) if phrase in line.lower()), None)
        if at is not None:
            return StreamStopped("\n".join([*(line.strip() for line in lines[max(0, at - 2):at + 1]), way_on]))
    return StreamStopped(message)


def check_checkpoint(folder: Path, recovery: str) -> None:
    """Raise StreamStopped naming the file and ``recovery`` (what to do besides restoring a backup), when the newest
    entries of the offset or commit log of a query's checkpoint ``folder`` are not what Spark writes: a version line
    (``v1``) then JSON lines (``-`` for a source without offsets). Spark would only say "Unexpected end-of-input"."""
    for log_name in ("offsets", "commits"):
        for entry in (folder / log_name / str(batch) for batch in batch_ids(folder / log_name)[-2:]):
            # what a restart reads: the last micro-batch and the one before
            lines = entry.read_text(errors="replace").splitlines()
            try:
                readable = len(lines) > 1 and lines[0].startswith("v") and all(
                    line == "-" or json.loads(line) is not None for line in lines[1:])
            except ValueError:
                readable = False
            if not readable:
                raise StreamStopped(
                    f"the checkpoint is damaged: {entry} is not a Spark {log_name} log entry. Restore {folder} "
                    f"from a backup; {recovery} (README: Operations)")


def check_checkpoints(settings: Settings) -> None:
    """``check_checkpoint`` of the decision and the delivery query's checkpoints, before either starts."""
    root = settings.checkpoint_dir
    check_checkpoint(root / DECISION, f"or remove it and {state_folder(settings)}, run `fraud warm-start` and start "
                                      "again: the ids the archive holds are not decided twice")
    check_checkpoint(root / DELIVERY, "removing it instead delivers again what Kafka still holds: MySQL, "
                                      "Elasticsearch and the labels are keyed by id, the Delta scored table and "
                                      "archive get those rows twice")


def state_folder(settings: Settings) -> Path:
    """Where the decision query keeps its card and terminal state (beside its checkpoint)."""
    return settings.checkpoint_dir / f"{DECISION}-state"


def kafka_source(spark: SparkSession, settings: Settings, topics: list[str], max_offsets: int) -> DataFrame:
    """The streaming Kafka source over ``topics``."""
    return (spark.readStream.format("kafka").options(**settings.kafka.spark_options())
            .option("subscribe", ",".join(topics))
            .option("startingOffsets", settings.stream.starting_offsets)
            .option("maxOffsetsPerTrigger", str(max_offsets))
            # a fetch at the end of a partition's range otherwise waits up to 500 ms for bytes that are not coming
            # (measured: one micro-batch in five took 0.5 s longer)
            .option("kafka.fetch.max.wait.ms", str(FETCH_MAX_WAIT_MS))
            # records of aborted transactions (a transactional producer) are never read
            .option("kafka.isolation.level", "read_committed")
            .option("failOnDataLoss", str(settings.stream.on_data_loss == "stop").lower())
            .load())


@functools.cache
def checkpoint_query_id(checkpoint: Path) -> str:
    """The id of the query a checkpoint belongs to, stable across restarts (written when the query starts)."""
    return json.loads((checkpoint / "metadata").read_text())["id"]


def decision_query(spark: SparkSession, settings: Settings, transactions: DataFrame, labels: DataFrame,
                   model: Path, publish: Callable[[DataFrame, int], None] | None = None) -> StreamingQuery:
    """Start the decision query over the records of the transaction and label topics (streaming DataFrames with
    the Kafka source's columns), serving ``model``, publishing to Kafka (or, in the in-process tests, with
    ``publish``, a foreachBatch function).

    Raises FileNotFoundError when ``model`` is not a model folder.
    """
    root = settings.checkpoint_dir
    score = score_column(spark, served_model(model, settings))
    writer = (decision_plan(transactions, labels, settings, state_folder(settings), score).writeStream
              .queryName(f"fraud-{DECISION}")
              .option("checkpointLocation", str(root / DECISION))
              .trigger(processingTime=f"{settings.stream.trigger_seconds} seconds"))
    writer = (writer.foreachBatch(publish) if publish else
              writer.format("kafka").options(**settings.kafka.spark_options()))
    query = writer.start()
    log.info("decision query: serving model %s from %s", json.loads((model / METADATA_FILE).read_text())["version"],
             model)
    return query


def delivery_query(spark: SparkSession, settings: Settings, sinks: tuple[str, ...],
                   stop: threading.Event | None = None) -> StreamingQuery:
    """Start the delivery query: the result topic deduplicated by transaction id, with the labels and dead-letter
    topics, and the transactions topic's records counted only (the batch log's arrivals; its archive is what was
    decided, from the result topic: kept in the subscription so that a checkpoint of an earlier version stays
    valid). ``stop``: the stream's stop event (a sink retrying gives up when it is set).

    Raises SinkError when a Delta table it writes has ids that are not text (``require_text_ids``)."""
    topics, conf, root = settings.kafka.topics, settings.stream, settings.checkpoint_dir
    if "delta" in sinks:
        require_text_ids(spark, [settings.scored_table, settings.raw_table, settings.labels_table])
    scored = (kafka_source(spark, settings, [topics.scored], conf.max_offsets_per_trigger)
              .withColumn("transaction_id", F.col("key").cast("string"))
              .withWatermark("timestamp", DEDUPLICATION_WINDOW).dropDuplicatesWithinWatermark(["transaction_id"]))
    others = (kafka_source(spark, settings, [topics.raw, topics.labels, topics.deadletter],
                           conf.max_offsets_per_trigger)
              .withColumn("transaction_id", F.lit(None).cast("string"))
              .withColumn("value", F.when(F.col("topic") != topics.raw, F.col("value"))))
    return (scored.unionByName(others).writeStream.queryName(f"fraud-{DELIVERY}")
            .foreachBatch(DeliveryBatches(settings, sinks, lambda: checkpoint_query_id(root / DELIVERY), stop))
            .option("checkpointLocation", str(root / DELIVERY))
            .trigger(processingTime=f"{conf.delivery_trigger_seconds} seconds").start())


class Stream:
    """The running queries: the decision query (restarted when a newer model is published) and, when MySQL,
    Elasticsearch or Delta is a sink, the delivery query."""

    def __init__(self, spark: SparkSession, settings: Settings, sinks: tuple[str, ...],
                 model: str | Path | None = None, parts: tuple[str, ...] = (DECISION, DELIVERY),
                 stop: threading.Event | None = None):
        check_sinks(sinks)
        self.spark, self.settings, self.sinks = spark, settings, sinks
        self.models = ModelRuns(settings.checkpoint_dir / "model-runs.jsonl", model or settings.stream.model)
        topics = settings.kafka.topics
        spark.conf.set("spark.sql.shuffle.partitions", str(settings.stream.shuffle_partitions))
        spark.streams.addListener(ProgressToMysql(settings, {f"fraud-{DECISION}": state_folder(settings)}))
        self.decision: StreamingQuery | None = None
        self.delivery: StreamingQuery | None = None
        self.refused: Path | None = None  # a newer model the stream cannot serve (``unservable``), warned once
        self.asking_kafka: dict[str, float] = {}  # query name -> since when it has been asking Kafka for offsets
        if DECISION in parts:
            transactions, labels = (kafka_source(spark, settings, [topic], settings.stream.max_offsets_per_trigger)
                                    for topic in (topics.raw, topics.labels))
            self.sources = transactions, labels
            self.serving = self.models.model_for_start(settings.checkpoint_dir / DECISION)
            self.decision = decision_query(spark, settings, *self.sources, self.serving)
        delivered = tuple(sink for sink in sinks if sink in DELIVERED)
        if DELIVERY in parts and delivered:
            self.delivery = delivery_query(spark, settings, delivered, stop)

    @property
    def queries(self) -> list[StreamingQuery]:
        return [q for q in (self.decision, self.delivery) if q is not None]

    def reload_model(self) -> None:
        """Serve the newest published model, if it is not the one served: the decision query stops between
        micro-batches and starts again from its checkpoint with it. A model the stream cannot serve
        (``unservable``) is not: a warning says why and the served one goes on."""
        if self.decision is None:
            return
        newer = self.models.newer_than(self.serving)
        if newer is None or newer == self.refused:
            return
        if (why := unservable(newer, stream_source(self.settings))) is not None:
            log.warning("a newer model was published but is not served (the stream goes on with %s): %s",
                        self.serving, why)
            self.refused = newer
            return
        log.info("a newer model was published: %s; restarting the decision query with it", newer)
        stop_between_batches(self.decision)
        self.serving = self.models.model_for_start(self.settings.checkpoint_dir / DECISION)
        self.decision = decision_query(self.spark, self.settings, *self.sources, self.serving)

    def watch_kafka(self) -> None:
        """Warn once a query has been asking Kafka for offsets for KAFKA_PATIENCE_S seconds (Kafka down or
        unreachable: Spark itself only logs its client's retries), and again each time it happens anew."""
        now = time.monotonic()
        for query in self.queries:
            if not query.status["message"].startswith("Getting offsets"):
                self.asking_kafka.pop(query.name, None)
            elif now - self.asking_kafka.setdefault(query.name, now) >= KAFKA_PATIENCE_S:
                log.warning("query %s has waited %.0fs for Kafka (%s) to give its offsets: is Kafka reachable? "
                            "(it goes on asking)", query.name, now - self.asking_kafka[query.name],
                            self.settings.kafka.bootstrap_servers)
                self.asking_kafka[query.name] = float("inf")  # told: not again until it asks anew

    def failure(self) -> Exception | None:
        """The error of a query that stopped by itself, if any."""
        for query in self.queries:
            if not query.isActive:
                return query.exception() or RuntimeError(f"query {query.name} stopped")
        return None

    def stop(self) -> None:
        for query in self.queries:
            stop_between_batches(query)


class DeliveryProcess:
    """The delivery query in a process of its own (CPU niceness ``stream.delivery_nice``), so its Delta commits
    and bulk writes never hold a decision's micro-batch. It is in the stream's process group: a
    kill of the group takes it too. ``start`` starts it (``run_stream`` does once the decision query has
    reported its first progress: a restart's JVM start and replayed micro-batch get both cores)."""

    def __init__(self, command: list[str], nice: int):
        self.argv, self.nice = [sys.executable, "-m", "fraud.cli", *command], nice
        self.child: Child | None = None

    def start(self) -> None:
        if self.child is None:
            self.child = Child(self.argv, nice=self.nice, own_group=False)

    def failure(self) -> Exception | None:
        if self.child is None or self.child.poll() is None:
            return None
        return RuntimeError(f"the delivery process stopped (exit {self.child.returncode}); see its log above")

    def stop(self, patience_s: float = 120.0) -> None:
        if self.child is not None:
            self.child.stop(signal.SIGTERM, patience_s)  # it stops its query between micro-batches


def run_stream(spark: SparkSession, settings: Settings, sinks: tuple[str, ...], stop: threading.Event,
               model: str | Path | None = None, parts: tuple[str, ...] = (DECISION, DELIVERY),
               delivery: DeliveryProcess | None = None) -> None:
    """Run the queries named in ``parts`` until ``stop`` is set (see ``stop_on_signals``): a clean stop; or until
    one fails: its error is raised, the others are stopped. ``delivery``: the delivery query's own process, started
    once the decision query has reported its first progress (a micro-batch, or Spark's idle report) and watched (its
    caller stops it, whatever happens here). A newer model published meanwhile is served within MODEL_CHECK_S
    seconds.

    Raises ValueError for an unknown sink, FileNotFoundError when there is no model, and the error of a failed
    query.
    """
    if stop.is_set():
        return
    stream = Stream(spark, settings, sinks, model, parts, stop)
    log.info("stream running: checkpoints in %s; Ctrl-C stops it", settings.checkpoint_dir)
    try:
        while not stop.wait(MODEL_CHECK_S):
            if delivery is not None and (stream.decision is None or stream.decision.lastProgress is not None):
                delivery.start()
            failure = stream.failure() or (delivery.failure() if delivery else None)
            if failure is not None:
                raise explained(failure) from failure
            stream.reload_model()
            stream.watch_kafka()
        log.info("stopping the stream once the micro-batches in progress are written")
    finally:
        stream.stop()


PROCESSING = "Processing new data"  # Spark's status message while a micro-batch runs (MicroBatchExecution)
STOP_TIMEOUT_S = 10  # spark.sql.streaming.stopTimeout of the stream's session (fraud stream)


def stop_between_batches(query: StreamingQuery, patience_s: float = 120.0) -> None:
    """Stop ``query`` once the micro-batch it is processing is done (one interrupted anyway is redone at the next
    start from the checkpoint); a query not processing one (waiting for a trigger, or for Kafka's offsets while
    Kafka is down: Spark's Kafka calls do not yield to an interrupt) is stopped at once. When its thread has not
    ended ``spark.sql.streaming.stopTimeout`` after the stop, a warning says so and the stop goes on."""
    deadline = time.monotonic() + patience_s
    running = (query.lastProgress or {}).get("batchId")
    while (query.isActive and query.status["message"] == PROCESSING and time.monotonic() < deadline
           and (query.lastProgress or {}).get("batchId") == running):
        time.sleep(0.1)
    try:
        query.stop()
    except Exception as error:  # Spark's TimeoutException, through Py4J
        log.warning("query %s did not stop in time (%s); going on (a micro-batch it had begun is redone at the next "
                    "start)", query.name, str(error).splitlines()[0][:200])
