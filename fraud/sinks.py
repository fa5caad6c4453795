"""Idempotent sinks keyed by ``transaction_id``: a replayed micro-batch never duplicates.

Each writer takes a (static) DataFrame, so it serves ``foreachBatch`` in the
stream and the batch backfill alike. None of them swallows errors: a batch that
did not reach every sink fails, and Spark retries it from the checkpoint.
"""
from __future__ import annotations

import logging
import re
import time

from delta.tables import DeltaTable
from pyspark import StorageLevel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from fraud.config import Settings
from fraud.stack.mariadb import connect

KEY = "transaction_id"
log = logging.getLogger(__name__)


def write_to_mysql(df: DataFrame, settings: Settings, table: str, stage_tag: str) -> None:
    """Upsert ``df`` into ``table`` by primary key: JDBC into a stage table, then one
    ``INSERT ... SELECT ... ON DUPLICATE KEY UPDATE`` (valid on MariaDB and MySQL 8).

    ``stage_tag`` names the stage table (e.g. query name + batch id), so a retried
    batch reuses, rather than leaks, its stage.
    """
    stage = f"_stage_{table}_{re.sub(r'[^0-9A-Za-z_]', '_', stage_tag)}"[:64]
    columns = ", ".join(f"`{c}`" for c in df.columns)
    updates = ", ".join(f"`{c}` = VALUES(`{c}`)" for c in df.columns if c != KEY)
    with connect(settings) as conn, conn.cursor() as cur:
        cur.execute(f"DROP TABLE IF EXISTS `{stage}`")
        cur.execute(f"CREATE TABLE `{stage}` LIKE `{table}`")
    conf = settings.mysql
    (df.write.format("jdbc")
        .option("url", conf.jdbc_url).option("driver", conf.jdbc_driver)
        .option("dbtable", stage).option("user", conf.user).option("password", conf.password)
        .option("batchsize", 5000).option("isolationLevel", "READ_COMMITTED")
        .mode("append").save())
    with connect(settings) as conn, conn.cursor() as cur:
        cur.execute(f"INSERT INTO `{table}` ({columns}) SELECT {columns} FROM `{stage}` "
                    f"ON DUPLICATE KEY UPDATE {updates}")
        cur.execute(f"DROP TABLE `{stage}`")


def write_to_elasticsearch(df: DataFrame, settings: Settings) -> None:
    """Index ``df`` into the alias with the document id = transaction id (a rewrite replaces)."""
    conf = settings.elasticsearch
    (df.write.format("org.elasticsearch.spark.sql")
        .option("es.nodes", conf.host).option("es.port", str(conf.port))
        .option("es.nodes.wan.only", "true")
        .option("es.mapping.id", KEY)
        .option("es.write.operation", "index")
        .option("es.index.auto.create", "false")
        .option("es.mapping.date.rich", "true")
        .mode("append").save(conf.index))


def write_to_delta(df: DataFrame, path: str) -> None:
    """MERGE ``df`` into the Delta table at ``path`` on transaction id.

    The first write creates the table with the rows (a plain write, much cheaper
    than a MERGE into nothing); it fails if another writer created the table
    meanwhile, so a retry MERGEs instead of duplicating.
    """
    spark = df.sparkSession
    if not DeltaTable.isDeltaTable(spark, path):
        df.write.format("delta").mode("errorifexists").save(path)
        return
    (DeltaTable.forPath(spark, path).alias("t")
        .merge(df.alias("s"), f"t.{KEY} = s.{KEY}")
        .whenMatchedUpdateAll().whenNotMatchedInsertAll().execute())


def write_to_kafka(df: DataFrame, settings: Settings, topic: str) -> None:
    """Publish each row as JSON keyed by transaction id (at least once; a replay repeats identical records)."""
    (df.select(F.col(KEY).cast("string").alias("key"), F.to_json(F.struct(*df.columns)).alias("value"))
        .write.format("kafka")
        .option("kafka.bootstrap.servers", settings.kafka.bootstrap_servers)
        .option("topic", topic).save())


SINKS = ("delta", "mysql", "elasticsearch", "kafka")


def write_to_sinks(rows: DataFrame, settings: Settings, sinks: tuple[str, ...], stage_tag: str) -> dict[str, int]:
    """Write scored rows (fraud.schemas.SCORED_ROW) to each named sink, deduplicated by transaction id.

    The rows are computed once (cached) for all sinks; returns how many got each decision.
    """
    unknown = set(sinks) - set(SINKS)
    if unknown:
        raise ValueError(f"unknown sink(s) {sorted(unknown)}; choose from {SINKS}")
    rows = rows.dropDuplicates([KEY]).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        decisions = {r["decision"]: r["count"] for r in rows.groupBy("decision").count().collect()}
        writers = {"delta": lambda: write_to_delta(rows, settings.scored_table),
                   "mysql": lambda: write_to_mysql(rows, settings, "scored_transactions", stage_tag),
                   "elasticsearch": lambda: write_to_elasticsearch(rows, settings),
                   "kafka": lambda: write_to_kafka(rows, settings, settings.kafka.topics.scored)}
        for sink in sinks:
            started = time.monotonic()
            writers[sink]()
            log.info("%s: %d rows written in %.1fs", sink, sum(decisions.values()), time.monotonic() - started)
    finally:
        rows.unpersist()
    return decisions
