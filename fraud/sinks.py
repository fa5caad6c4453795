"""Idempotent sinks keyed by ``transaction_id``: a replayed micro-batch never duplicates.

Each writer takes a (static) DataFrame, so it serves ``foreachBatch`` in the
stream and the batch backfill alike. None of them swallows errors: a batch that
did not reach every sink fails, and Spark retries it from the checkpoint.
"""
from __future__ import annotations

import logging
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import tenacity
from delta.tables import DeltaTable
from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StringType

from fraud.clients.mysql import connect
from fraud.config import Settings
from fraud.schemas import DECIDED_AT, ID_FIELDS, JSON_OPTIONS, SCORED_ROW

KEY = "transaction_id"
OUTAGE_PATIENCE_S = 600.0  # how long a sink may be down before the batch (and the query) fails
# What goes away by itself: a service down or restarting, a network blip, a server asking to slow down, a MySQL
# deadlock or lock wait (a backfill upserting the same rows). Matched in
# the error's text, since through Py4J a JVM error reaches Python as text (Java class and message). Anything else
# (a value the sink refuses, a schema mismatch, a read-only index) fails at once.
TRANSIENT = re.compile(
    r"connection refused|connection reset|connection error|connect timed out|read timed out|timed out|"
    r"broken pipe|no route to host|can't connect|could not connect|socket fail|communications link failure|"
    r"all nodes failed|no nodes left|cannot detect es version|nonodeavailable|service unavailable|"
    r"too many requests|\b(429|503)\b|deadlock found|lock wait timeout", re.IGNORECASE)
log = logging.getLogger(__name__)


class SinkError(RuntimeError):
    """A sink refused a write: a deterministic error, a transient one that outlasted OUTAGE_PATIENCE_S, or one
    met while the stream was stopping. The message names the sink and the cause."""


_STACK_FRAME = re.compile(r"^\s+(at |\.\.\. \d+ more)", re.MULTILINE)


def transient(error: BaseException) -> bool:
    """Whether ``error`` is worth retrying (TRANSIENT in its messages, a JVM error's stack frames left out: their line
    numbers would pass for HTTP statuses)."""
    text = "\n".join(line for line in f"{type(error).__name__}: {error}".splitlines()
                     if not _STACK_FRAME.match(line))
    return bool(TRANSIENT.search(text))


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0][:300]


def with_retries(write: Callable[[], None], sink: str, stop: threading.Event | None = None,
                 patience_s: float = OUTAGE_PATIENCE_S) -> None:
    """Run ``write``; retry it with growing pauses (1 s doubling to 15 s) while it fails with a transient error,
    for up to ``patience_s`` seconds, and not once ``stop`` is set (Ctrl-C, SIGTERM: the pause ends at once).

    Raises SinkError (from the write's error) on a deterministic error, when the patience is spent, or on a stop.
    """
    stop = stop or threading.Event()

    def warn(state: tenacity.RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome is not None else None
        assert error is not None  # a retry follows a failed attempt (retry_if_exception)
        log.warning("%s unavailable (%s); retrying in %.0fs (%.0fs of %.0fs patience used)", sink,
                    _first_line(error), state.upcoming_sleep, state.seconds_since_start, patience_s)

    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception(transient),
        stop=tenacity.stop_any(tenacity.stop_after_delay(patience_s), tenacity.stop_when_event_set(stop)),
        wait=tenacity.wait_exponential(multiplier=1, min=1, max=15), sleep=tenacity.sleep_using_event(stop),
        before_sleep=warn,
        reraise=True)
    try:
        retrying(write)
    except Exception as error:
        why = ("the stream is stopping" if stop.is_set() else
               f"still failing after {patience_s:.0f}s" if transient(error) else "not an error that goes away")
        raise SinkError(f"{sink}: {_first_line(error)} ({why})") from error


def write_concurrently(writes: dict[str, Callable[[], None]],
                       stop: threading.Event | None = None) -> dict[str, float]:
    """Run each named write (``with_retries``, ending on ``stop``) in its own thread, so their driver-side waits
    (Delta commits, Elasticsearch bulk replies, the MySQL merge) overlap; returns the seconds each took. Every write
    is awaited; the first failure (SinkError) is raised once all are done (a redo is idempotent)."""
    def timed(name: str) -> float:
        started = time.monotonic()
        with_retries(writes[name], name, stop)
        return time.monotonic() - started

    with ThreadPoolExecutor(max_workers=max(1, len(writes)), thread_name_prefix="sink") as pool:
        futures = {name: pool.submit(timed, name) for name in writes}
    return {name: future.result() for name, future in futures.items()}


def write_to_mysql(df: DataFrame, settings: Settings, table: str, stage_tag: str) -> None:
    """Upsert ``df`` into ``table`` by its primary key: JDBC into a stage table, then one
    ``INSERT ... SELECT ... ON DUPLICATE KEY UPDATE`` (valid on MariaDB and MySQL 8). The stage has
    the table's columns but no primary key, so rows of ``df`` that share a key (a record
    published again by a replayed micro-batch, in the same delivery batch as the first)
    are upserted too, not refused.

    ``stage_tag`` names the stage table (e.g. query name + batch id), so a retried
    batch reuses, rather than leaks, its stage.
    """
    stage = f"_stage_{table}_{re.sub(r'[^0-9A-Za-z_]', '_', stage_tag)}"[:64]
    columns = ", ".join(f"`{c}`" for c in df.columns)
    updates = ", ".join(f"`{c}` = VALUES(`{c}`)" for c in df.columns)
    with connect(settings) as conn, conn.cursor() as cur:
        cur.execute(f"DROP TABLE IF EXISTS `{stage}`")
        cur.execute(f"CREATE TABLE `{stage}` LIKE `{table}`")
        cur.execute(f"ALTER TABLE `{stage}` DROP PRIMARY KEY")
    conf = settings.mysql
    (df.write.format("jdbc")
        .option("url", conf.jdbc_url).option("driver", conf.jdbc_driver)
        .option("dbtable", stage).option("user", conf.user).option("password", conf.password.get_secret_value())
        .option("batchsize", 5000).option("isolationLevel", "READ_COMMITTED")
        .mode("append").save())
    with connect(settings) as conn, conn.cursor() as cur:
        cur.execute(f"INSERT INTO `{table}` ({columns}) SELECT {columns} FROM `{stage}` "
                    f"ON DUPLICATE KEY UPDATE {updates}")
        cur.execute(f"DROP TABLE `{stage}`")


def write_to_elasticsearch(df: DataFrame, settings: Settings) -> None:
    """Upsert ``df`` into the alias with the document id = transaction id: a rewrite replaces the fields it
    carries and keeps the others, so a score and a label arriving in either order end up in one document."""
    conf = settings.elasticsearch
    (df.write.format("org.elasticsearch.spark.sql")
        .option("es.nodes", conf.host).option("es.port", str(conf.port))
        .option("es.nodes.wan.only", "true")
        .option("es.net.ssl", str(conf.scheme == "https").lower())
        .options(**({"es.net.http.auth.user": conf.username, "es.net.http.auth.pass": conf.password.get_secret_value()}
                    if conf.username else {}))
        .option("es.mapping.id", KEY)
        .option("es.write.operation", "upsert")
        .option("es.index.auto.create", "false")
        .option("es.mapping.date.rich", "true")
        .mode("append").save(conf.index))


def require_text_ids(spark: SparkSession, paths: list[str]) -> None:
    """Raises SinkError naming each Delta table at ``paths`` whose id columns (transaction_id, customer_id,
    terminal_id) are not text: a table written before ids were text (bigint), which an append or MERGE of text ids
    would fail on. The message says how to rewrite it (README, Operations). Missing tables pass."""
    old = {}
    for path in paths:
        if DeltaTable.isDeltaTable(spark, path):
            fields = DeltaTable.forPath(spark, path).toDF().schema.fields
            old[path] = [f.name for f in fields if f.name.lower() in ID_FIELDS and f.dataType != StringType()]
    if any(old.values()):
        tables = "; ".join(f"{path} ({', '.join(names)})" for path, names in old.items() if names)
        raise SinkError(
            f"Delta tables with ids that are not text (ids are text now): {tables}. Rewrite each once, the stream "
            f"stopped: spark.read.format('delta').load(path).withColumns({{c: F.col(c).cast('string') for c in "
            f"{ID_FIELDS}}}).write.format('delta').mode('overwrite').option('overwriteSchema', 'true').save(path) "
            f"(README: Operations, ids as text)")


def write_to_delta(df: DataFrame, path: str, batch: tuple[str, int] | None = None) -> None:
    """Write ``df`` to the Delta table at ``path``, one row per transaction id.

    A stream's micro-batch (``batch`` = (query id, batch id)) is appended as an
    idempotent Delta transaction: a rerun of the same batch after a crash is
    skipped by Delta. Otherwise (a backfill) the first write creates the table
    with a plain write (much cheaper than a MERGE into nothing), which fails if
    another writer created the table meanwhile, so a retry goes on as a rewrite.
    A rewrite of rows whose time range the table holds no other transaction in
    (a re-score of a date range) overwrites that range (``replaceWhere``: about
    the cost of a new table); any other is MERGEd on transaction id (every file
    of the table is read and rewritten: about twice the cost).

    Columns the table lacks (a feature added to the ``features`` struct by a newer
    version) are added to it; older rows read them as null.
    """
    spark = df.sparkSession
    if batch is not None:
        app_id, version = batch
        (df.write.format("delta").mode("append").option("mergeSchema", "true")
            .option("txnAppId", app_id).option("txnVersion", version).save(path))
        return
    if not DeltaTable.isDeltaTable(spark, path):
        df.write.format("delta").mode("errorifexists").save(path)
        return
    replaced = _time_range_to_replace(df, path)
    if replaced is not None:
        (df.write.format("delta").mode("overwrite").option("replaceWhere", replaced).option("mergeSchema", "true")
            .save(path))
        return
    (DeltaTable.forPath(spark, path).alias("t")
        .merge(df.alias("s"), f"t.{KEY} = s.{KEY}").withSchemaEvolution()
        .whenMatchedUpdateAll().whenNotMatchedInsertAll().execute())


def upsert_labels(labels: DataFrame, path: str) -> None:
    """Labels (transaction_id, tx_datetime, ..., tx_fraud and the Kafka position) into the Delta labels archive at
    ``path``, one row per transaction id: of several labels of a transaction the last to arrive (Kafka timestamp,
    then offset) wins, as in the stream's state (a relabel: a chargeback reversed). A replayed batch changes
    nothing. The MERGE reads only the files whose tx_datetime range meets the batch's (a label carries its
    transaction's time), not the whole table."""
    spark = labels.sparkSession
    latest = (labels.groupBy(KEY).agg(F.max_by(F.struct(*labels.columns), F.struct("kafka_timestamp", "kafka_offset"))
                                      .alias("label")).select("label.*"))
    if not DeltaTable.isDeltaTable(spark, path):
        latest.write.format("delta").mode("append").save(path)
        return
    in_range = _time_range(latest, "t.")
    if in_range is None:
        return
    (DeltaTable.forPath(spark, path).alias("t")
        .merge(latest.alias("s"), f"t.{KEY} = s.{KEY} AND {in_range}")
        .whenMatchedUpdateAll(condition="t.tx_fraud <> s.tx_fraud").whenNotMatchedInsertAll().execute())


def _time_range(df: DataFrame, prefix: str = "") -> str | None:
    """The SQL predicate "``prefix``tx_datetime within ``df``'s tx_datetime range" (None when ``df`` is empty)."""
    bounds = df.agg(F.min(F.unix_micros("tx_datetime")), F.max(F.unix_micros("tx_datetime"))).first()
    assert bounds is not None  # an aggregate without grouping has one row
    if bounds[0] is None:
        return None
    return (f"{prefix}tx_datetime >= timestamp_micros({bounds[0]}) "
            f"AND {prefix}tx_datetime <= timestamp_micros({bounds[1]})")


def _time_range_to_replace(df: DataFrame, path: str) -> str | None:
    """The predicate of ``df``'s tx_datetime range, when overwriting that range of the table at ``path`` with ``df``
    leaves one row per transaction id and loses none (every transaction the table holds in the range is in ``df``,
    and none of ``df``'s is elsewhere in the table: a re-score of a date range); else None (a MERGE is needed)."""
    if "tx_datetime" not in df.columns:
        return None
    predicate = _time_range(df)
    if predicate is None:
        return None
    table = df.sparkSession.read.format("delta").load(path).select(KEY, F.expr(predicate).alias("inside"))
    rewritten = table.join(df.select(KEY, F.lit(True).alias("rewritten")), KEY, "left")
    lost_or_doubled = rewritten.where(F.col("inside") != F.col("rewritten").isNotNull()).limit(1).count()
    return predicate if lost_or_doubled == 0 else None


def write_to_kafka(df: DataFrame, settings: Settings, topic: str, key: str | Column = KEY) -> None:
    """Publish each row as JSON keyed by ``key`` (at least once; a replay repeats identical records)."""
    key = F.col(key) if isinstance(key, str) else key
    (df.select(key.cast("string").alias("key"), F.to_json(F.struct(*df.columns), JSON_OPTIONS).alias("value"))
        .write.format("kafka").options(**settings.kafka.spark_options())
        .option("topic", topic).save())


def write_dead_letters(letters: DataFrame, settings: Settings, stage_tag: str) -> None:
    """DEAD_LETTER rows to MySQL ``dead_letters`` (upsert by Kafka position)."""
    write_to_mysql(letters, settings, "dead_letters", stage_tag)


SINKS = ("delta", "mysql", "elasticsearch", "kafka")


def check_sinks(sinks: tuple[str, ...]) -> None:
    """Raises ValueError naming any sink that is not one of SINKS."""
    unknown = set(sinks) - set(SINKS)
    if unknown:
        raise ValueError(f"unknown sink(s) {sorted(unknown)}; choose from {SINKS}")


def scored_writers(rows: DataFrame, settings: Settings, sinks: tuple[str, ...], stage_tag: str,
                   batch: tuple[str, int] | None = None) -> dict[str, Callable[[], None]]:
    """The write of scored rows (SCORED_ROW + ``features``, and DECIDED_AT from the stream) to each named sink, to
    run with ``write_concurrently``.

    Delta keeps the ``features`` struct, the other sinks take SCORED_ROW (and DECIDED_AT). ``batch`` is a stream's
    (query id, batch id) (see write_to_delta). Raises ValueError for an unknown sink.
    """
    check_sinks(sinks)
    scored = rows.select(*SCORED_ROW.fieldNames(), *([DECIDED_AT] if DECIDED_AT in rows.columns else []))
    writers = {"delta": lambda: write_to_delta(rows, settings.scored_table, batch),
               "mysql": lambda: write_to_mysql(scored, settings, "scored_transactions", stage_tag),
               "elasticsearch": lambda: write_to_elasticsearch(scored, settings),
               "kafka": lambda: write_to_kafka(scored, settings, settings.kafka.topics.scored)}
    return {sink: writers[sink] for sink in sinks}


def write_to_sinks(rows: DataFrame, settings: Settings, sinks: tuple[str, ...], stage_tag: str) -> dict[str, int]:
    """Write scored rows (fraud.scoring.scored_rows) to each named sink, deduplicated by transaction id (the
    backfill). The rows are computed once (cached), then written to the sinks concurrently; returns how many got
    each decision. Raises ValueError for an unknown sink, SinkError for a Delta table whose ids are not text
    (``require_text_ids``), and the first write's error once all are done.
    """
    check_sinks(sinks)
    if "delta" in sinks:
        require_text_ids(rows.sparkSession, [settings.scored_table])
    rows = rows.dropDuplicates([KEY]).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        decisions = {r["decision"]: r["count"] for r in rows.groupBy("decision").count().collect()}
        seconds = write_concurrently(scored_writers(rows, settings, sinks, stage_tag))
        for sink in sinks:
            log.info("%s: %d rows written in %.1fs", sink, sum(decisions.values()), seconds[sink])
    finally:
        rows.unpersist()
    return decisions
