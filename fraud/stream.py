"""The streaming scorer: Kafka in; dead letters, archives and scored transactions out.

Two Structured Streaming queries read ``transactions.raw`` and ``transactions.labels``
and validate every record (``fraud.validation``):

- **intake**: records that do not fit go to ``transactions.deadletter`` and MySQL
  ``dead_letters`` with their reason and payload; valid transactions and labels are
  archived in Delta (``transactions_raw``, ``labels``), the source for backfills and
  retraining; labels are also added to their transaction's Elasticsearch document
  (``tx_fraud``), which the dashboards' model performance reads.
- **scoring**: valid records go through the per-card and per-terminal state
  (``fraud.stream_state``, one ``applyInPandasWithState`` operator releasing
  transactions in Kafka-time order); each micro-batch joins the two halves of every released
  transaction, adds the calendar features, scores them with the broadcast model in
  a pandas UDF and writes them to the result topic, MySQL, Elasticsearch and Delta
  (``fraud.sinks``: idempotent, keyed by transaction id).

Both queries keep their checkpoints under ``stream.checkpoint_dir`` and report each
micro-batch to MySQL ``stream_progress`` (``fraud.stream_progress``). A micro-batch
replayed after a crash holds the same records and state, and the batch log pins
its model and scoring time, so it produces identical rows; the sinks absorb the
repeat (upserts, document ids, idempotent Delta appends; the result topic may
carry the same record twice).
"""
from __future__ import annotations

import json
import logging
import signal
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming import StreamingQuery
from pyspark.sql.streaming.state import GroupState, GroupStateTimeout

from fraud.config import PROJECT_ROOT, Settings
from fraud.features import add_calendar_features
from fraud.scoring import scored_rows
from fraud.sinks import (write_concurrently, write_dead_letters, write_to_delta, write_to_elasticsearch,
                         write_to_sinks)
from fraud.stream_progress import ProgressToMysql
from fraud.stream_state import (BUCKETS, CUSTOMER, CUSTOMER_FEATURES, INPUT_COLUMNS, OUTPUT_SCHEMA, STATE_SCHEMA,
                                TERMINAL, TERMINAL_FEATURES, KeyState, advance)
from fraud.validation import validate_records
from training.artifacts import METADATA_FILE, ModelArtifact, load_model
from udfs.scoring import score_column

log = logging.getLogger(__name__)
INTAKE, SCORING = "intake", "scoring"


def kafka_records(spark: SparkSession, settings: Settings) -> DataFrame:
    """The streaming Kafka source over the transaction and label topics."""
    topics, conf = settings.kafka.topics, settings.stream
    return (spark.readStream.format("kafka").options(**settings.kafka.spark_options())
            .option("subscribe", f"{topics.raw},{topics.labels}")
            .option("startingOffsets", conf.starting_offsets)
            .option("maxOffsetsPerTrigger", str(conf.max_offsets_per_trigger))
            .load())


def _keyed_step(delay_days: int):
    empty = pd.DataFrame({name: pd.Series(dtype="object") for name in INPUT_COLUMNS})

    def step(key: tuple, frames, state: GroupState):
        route, _ = key  # (route, bucket)
        frames = list(frames)
        rows = empty if not frames else frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
        current = KeyState.from_row(state.get) if state.exists else KeyState.empty()
        updated, released = advance(route, current, rows, state.getCurrentWatermarkMs() * 1000, delay_days)
        if updated.is_empty:
            state.remove()
        else:
            state.update(updated.to_row())
        if updated.buffered:  # come back when the watermark has passed them (the next micro-batch)
            state.setTimeoutTimestamp(int(updated.b_release.max()) // 1000 + 1)
        yield released

    return step


def released_halves(validated: DataFrame, settings: Settings) -> DataFrame:
    """Valid records -> the card and terminal halves (fraud.stream_state.OUTPUT_SCHEMA) of released transactions;
    a terminal half has null base columns (event_us, ...)."""
    is_tx = F.col("kafka_topic") == settings.kafka.topics.raw
    route = lambda name, key: F.struct(F.lit(name).alias("route"),  # noqa: E731
                                       F.pmod(key, F.lit(BUCKETS)).alias("bucket"), F.col(key).alias("key"))
    rows = validated.where(F.col("reason").isNull()).withColumn("_arrival", F.current_timestamp()).select(
        F.explode(F.when(is_tx, F.array(route(CUSTOMER, "customer_id"), route(TERMINAL, "terminal_id")))
                  .otherwise(F.array(route(TERMINAL, "terminal_id")))).alias("_to"),
        "transaction_id", F.unix_micros("tx_datetime").alias("event_us"), "customer_id", "terminal_id",
        "tx_amount", F.unix_micros("kafka_timestamp").alias("kafka_us"), F.col("tx_fraud").cast("double"),
        F.unix_micros("_arrival").alias("arrival_us"), "_arrival")
    return (rows.select("_to.route", "_to.bucket", "_to.key", *rows.columns[1:])
            .withWatermark("_arrival", settings.stream.lateness)  # the micro-batch time: no row is ever late
            .groupBy("route", "bucket")
            .applyInPandasWithState(_keyed_step(settings.stream.delay_days), OUTPUT_SCHEMA, STATE_SCHEMA, "append",
                                    GroupStateTimeout.EventTimeTimeout))


@dataclass(frozen=True)
class ServedModel:
    artifact: ModelArtifact
    score: Column
    scored_at: datetime


class ModelServer:
    """Which model scores each micro-batch.

    ``source`` is a model folder or a folder of them; the newest (by its
    metadata.json) is served, and a newer one published there is picked up at the
    next micro-batch without restarting. The batch log pins, per batch id, the
    model folder and the scoring time, so a batch replayed after a crash is scored
    the same way.
    """

    def __init__(self, spark: SparkSession, settings: Settings, source: str | Path, log_dir: Path):
        self.spark, self.settings, self.log_dir = spark, settings, log_dir
        self.source = Path(source) if Path(source).is_absolute() else PROJECT_ROOT / source
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._loaded: tuple[tuple[str, float], ModelArtifact, Column] | None = None  # (folder, mtime), model, UDF

    def newest(self) -> Path:
        if (self.source / METADATA_FILE).exists():
            return self.source
        candidates = [p.parent for p in self.source.glob(f"*/{METADATA_FILE}")]
        if not candidates:
            raise FileNotFoundError(f"no model under {self.source} (a folder with {METADATA_FILE})")
        return max(candidates, key=lambda folder: ((folder / METADATA_FILE).stat().st_mtime, folder.name))

    def for_batch(self, batch_id: int) -> ServedModel:
        record_file = self.log_dir / f"{batch_id}.json"
        if record_file.exists():
            record = json.loads(record_file.read_text())
        else:
            record = {"model": str(self.newest()), "scored_at": datetime.now(timezone.utc).isoformat()}
            partial = record_file.with_suffix(".tmp")
            partial.write_text(json.dumps(record))
            partial.rename(record_file)
            for old in self.log_dir.glob("*.json"):  # keep the log short: only the last batches can replay
                if old.stem.isdigit() and int(old.stem) < batch_id - 100:
                    old.unlink()
        artifact, score = self._load(Path(record["model"]))
        return ServedModel(artifact, score, datetime.fromisoformat(record["scored_at"]).replace(tzinfo=None))

    def _load(self, folder: Path) -> tuple[ModelArtifact, Column]:
        """The model in ``folder`` and its scoring UDF, reloaded only when its metadata.json changed."""
        stamp = (str(folder), (folder / METADATA_FILE).stat().st_mtime)
        if self._loaded is None or self._loaded[0] != stamp:
            artifact = self._with_configured_thresholds(load_model(folder))
            previous = self._loaded[1].version if self._loaded else None
            log.info("serving model %s from %s%s", artifact.version, folder,
                     f" (was {previous})" if previous else "")
            self._loaded = (stamp, artifact, score_column(self.spark, artifact))
        return self._loaded[1], self._loaded[2]

    def _with_configured_thresholds(self, artifact: ModelArtifact) -> ModelArtifact:
        conf = self.settings.stream
        thresholds = dict(artifact.metadata["thresholds"])
        for name, value in (("review", conf.review_threshold), ("block", conf.block_threshold)):
            if value is not None:
                thresholds[name] = {"value": value, "how": f"configured (stream.{name}_threshold)"}
        return ModelArtifact(artifact.model, {**artifact.metadata, "thresholds": thresholds})


def query_id(checkpoint: Path) -> str:
    """The query's id, stable across restarts from the same checkpoint."""
    return json.loads((checkpoint / "metadata").read_text())["id"]


class ScoringBatches:
    """foreachBatch of the scoring query: join halves, score, write every sink."""

    def __init__(self, settings: Settings, models: ModelServer, sinks: tuple[str, ...], checkpoint: Path):
        self.settings, self.models, self.sinks, self.checkpoint = settings, models, sinks, checkpoint
        self.scored = 0

    def __call__(self, halves: DataFrame, batch_id: int) -> None:
        began = time.monotonic()
        halves = halves.persist(StorageLevel.MEMORY_AND_DISK)  # runs the stateful operator exactly once
        try:
            is_card = F.col("event_us").isNotNull()
            counts = {r["card"]: r["count"] for r in halves.groupBy(is_card.alias("card")).count().collect()}
            if not counts:
                return
            if counts.get(True, 0) != counts.get(False, 0):
                log.warning("batch %d: %s card and %s terminal halves; a transaction id reused with another card "
                            "or terminal keeps its first version", batch_id, counts.get(True, 0), counts.get(False, 0))
            long = lambda name: F.col(name).cast("long")  # noqa: E731  (the operator hands back doubles)
            cards = halves.where(is_card).drop(*TERMINAL_FEATURES)
            terminals = halves.where(~is_card).select("transaction_id", *TERMINAL_FEATURES)
            features = cards.join(terminals, "transaction_id").select(  # ids below 2^53: exact as doubles
                long("transaction_id").alias("TRANSACTION_ID"),
                F.timestamp_micros(long("event_us")).alias("TX_DATETIME"),
                long("customer_id").alias("CUSTOMER_ID"), long("terminal_id").alias("TERMINAL_ID"),
                F.col("tx_amount").alias("TX_AMOUNT"), F.timestamp_micros(long("kafka_us")).alias("_KAFKA_TIMESTAMP"),
                *CUSTOMER_FEATURES, *TERMINAL_FEATURES).transform(add_calendar_features)
            model = self.models.for_batch(batch_id)
            rows = scored_rows(features, model.score, F.col("_KAFKA_TIMESTAMP"), F.lit(model.scored_at))
            decisions = write_to_sinks(rows, self.settings, self.sinks, stage_tag=f"stream_{batch_id}",
                                       batch=(f"fraud-{SCORING}-{query_id(self.checkpoint)}", batch_id))
        finally:
            halves.unpersist()
        self.scored += sum(decisions.values())
        log.info("scoring batch %d: %d transactions (%s) with %s in %.1fs; %d scored since start", batch_id,
                 sum(decisions.values()), ", ".join(f"{k} {v}" for k, v in sorted(decisions.items())),
                 model.artifact.version, time.monotonic() - began, self.scored)


class IntakeBatches:
    """foreachBatch of the intake query: dead letters out, valid transactions and labels archived, labels
    added to their Elasticsearch documents (when Elasticsearch is one of the sinks)."""

    def __init__(self, settings: Settings, sinks: tuple[str, ...], checkpoint: Path):
        self.settings, self.sinks, self.checkpoint = settings, sinks, checkpoint

    def __call__(self, validated: DataFrame, batch_id: int) -> None:
        began = time.monotonic()
        topics = self.settings.kafka.topics
        rows = validated.persist(StorageLevel.MEMORY_AND_DISK)
        try:
            kind = (F.when(F.col("reason").isNotNull(), "dead letter")
                    .when(F.col("kafka_topic") == topics.raw, "transaction").otherwise("label"))
            counts = {r["kind"]: r["count"] for r in rows.groupBy(kind.alias("kind")).count().collect()}
            batch = (f"fraud-{INTAKE}-{query_id(self.checkpoint)}", batch_id)
            valid = rows.where(F.col("reason").isNull())
            transactions, labels = (valid.where(F.col("kafka_topic") == topic) for topic in (topics.raw, topics.labels))
            archive = ["transaction_id", "tx_datetime", "customer_id", "terminal_id"]
            kafka = ["kafka_topic", "kafka_partition", "kafka_offset", "kafka_timestamp"]
            writes = {}
            if counts.get("dead letter"):
                writes["dead letters"] = lambda: write_dead_letters(rows.where(F.col("reason").isNotNull()),
                                                                    self.settings, stage_tag=f"intake_{batch_id}")
            if counts.get("transaction"):
                writes["delta transactions"] = lambda: write_to_delta(
                    transactions.select(*archive, "tx_amount", "payload", *kafka), self.settings.raw_table, batch)
            if counts.get("label"):
                writes["delta labels"] = lambda: write_to_delta(
                    labels.select(*archive, "tx_fraud", *kafka), self.settings.labels_table, batch)
                if "elasticsearch" in self.sinks:
                    writes["elasticsearch labels"] = lambda: write_to_elasticsearch(
                        labels.select(*archive, F.col("tx_fraud").cast("byte")), self.settings)
            write_concurrently(writes)
        finally:
            rows.unpersist()
        if counts:
            log.info("intake batch %d: %s in %.1fs", batch_id,
                     ", ".join(f"{v} {k}s" for k, v in sorted(counts.items())), time.monotonic() - began)


def start_stream(spark: SparkSession, settings: Settings, sinks: tuple[str, ...],
                 model: str | Path | None = None) -> list[StreamingQuery]:
    """Start the intake and scoring queries (each with its checkpoint under stream.checkpoint_dir)."""
    spark.conf.set("spark.sql.shuffle.partitions", str(settings.stream.shuffle_partitions))
    validated = validate_records(kafka_records(spark, settings), settings.kafka.topics.labels)
    trigger = {"processingTime": f"{settings.stream.trigger_seconds} seconds"}
    root = settings.checkpoint_dir
    models = ModelServer(spark, settings, model or settings.stream.model, root / "batch-log")
    models.newest()  # fail now, not in the first batch, when there is no model
    spark.streams.addListener(ProgressToMysql(settings))
    intake = (validated.writeStream.queryName(f"fraud-{INTAKE}")
              .foreachBatch(IntakeBatches(settings, sinks, root / INTAKE))
              .option("checkpointLocation", str(root / INTAKE)).trigger(**trigger).start())
    scoring = (released_halves(validated, settings).writeStream.queryName(f"fraud-{SCORING}")
               .foreachBatch(ScoringBatches(settings, models, sinks, root / SCORING))
               .option("checkpointLocation", str(root / SCORING)).trigger(**trigger).start())
    return [intake, scoring]


def run_stream(spark: SparkSession, settings: Settings, sinks: tuple[str, ...], stop: threading.Event,
               model: str | Path | None = None) -> None:
    """Run both queries until ``stop`` is set (see ``stop_on_signals``): a clean stop; or until one fails:
    its error is raised, the other query is stopped."""
    queries = []
    try:
        if not stop.is_set():
            queries = start_stream(spark, settings, sinks, model)
            log.info("stream running: checkpoints in %s; Ctrl-C stops it", settings.checkpoint_dir)
        while not stop.is_set() and not spark.streams.awaitAnyTermination(1):
            pass
        if stop.is_set():
            log.info("stopping the stream once the micro-batches in progress are written")
    finally:
        for query in queries:
            _stop_between_batches(query)


def stop_on_signals() -> threading.Event:
    """An event set by Ctrl-C or SIGTERM (a service manager, ``kill``): the stream stops between
    micro-batches instead of being interrupted inside a call to the JVM."""
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    return stop


def _stop_between_batches(query: StreamingQuery, patience_s: float = 120.0) -> None:
    """Stop ``query`` once the micro-batch in progress is done (one interrupted anyway is redone at the next
    start from the checkpoint)."""
    deadline = time.monotonic() + patience_s
    running = (query.lastProgress or {}).get("batchId")
    while (query.isActive and query.status["isTriggerActive"] and time.monotonic() < deadline
           and (query.lastProgress or {}).get("batchId") == running):
        time.sleep(0.1)
    query.stop()
