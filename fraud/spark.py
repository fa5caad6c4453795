"""The one place a SparkSession is made.

Every session of the project (jobs, tests, notebooks) gets the Kafka, Delta,
Elasticsearch and MySQL jars from ``.jars/spark`` without any flag, and the
same time zone (UTC: event times carry no zone and must not shift) in the JVMs,
the SQL session, the Python workers and the driver process itself: PySpark turns a
Python ``datetime`` into a timestamp, and back (``collect``), in the process's
local time zone, so under TZ=Asia/Tokyo a filter on ``datetime(2018, 8, 8)`` would
cut the data 9 hours early. The driver's ``TZ`` is set to UTC when its first
session is made (its logs show UTC).
"""
from __future__ import annotations

import os
import sys
import time
import zipfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Mapping

from pyspark.sql import SparkSession

from fraud.config import PROJECT_ROOT, Settings
from fraud.jvm import jars


def build_spark_session(settings: Settings, app_name: str, *, master: str | None = None,
                        ui: bool = True, extra_conf: Mapping[str, str] | None = None) -> SparkSession:
    """Create (or return the running) session configured for this project.

    Under ``spark-submit`` the master, the jars and the driver memory are the
    submitter's (its command line wins); everywhere else they come from ``settings``.
    """
    os.environ["TZ"] = "UTC"  # the driver's datetime <-> timestamp conversions (see the module doc)
    time.tzset()
    builder = SparkSession.builder.appName(app_name)
    if not launched_by_spark_submit():
        master = master or settings.spark.master
        if master.startswith("local"):
            os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")  # a local run stays on loopback
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # workers run this interpreter (the venv)
        builder = (builder.master(master)
                   .config("spark.jars", ",".join(str(jar) for jar in jars("spark")))
                   .config("spark.driver.memory", settings.spark.driver_memory)
                   # Python workers start their tasks 140 ms sooner (see the module); it must be importable where
                   # the workers run, which this machine's are: spark-submit users add it where it is
                   .config("spark.python.daemon.module", "fraud.spark_daemon")
                   # one OpenMP thread per Python task: the tasks already use every core, and scikit-learn's
                   # threads spinning beside another task's cost more than they give (3x slower predictions)
                   .config("spark.executorEnv.OMP_NUM_THREADS", "1"))
    builder = (
        builder
        .config("spark.sql.shuffle.partitions", str(settings.spark.shuffle_partitions))
        # Delta rebuilds a table's snapshot (log replay) with 50 tasks by default: on two cores that is most of
        # a small append's commit; the same parallelism as every other shuffle is enough
        .config("spark.databricks.delta.snapshotPartitions", str(settings.spark.shuffle_partitions))
        .config("spark.sql.session.timeZone", "UTC")
        # a date-time text that does not fit its pattern (to_timestamp in a source mapping) reads as null: Spark 3.5's
        # default (EXCEPTION) fails the whole job or micro-batch for text the old parser would have read differently
        # ("2020-6-21 12:14:25" with yyyy-MM-dd), so one message could stop the stream
        .config("spark.sql.legacy.timeParserPolicy", "CORRECTED")
        .config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension")
        .config("spark.sql.catalog.spark_catalog", "org.apache.spark.sql.delta.catalog.DeltaCatalog")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.sql.execution.arrow.maxRecordsPerBatch", str(settings.spark.arrow_batch_rows))
        .config("spark.ui.enabled", str(ui).lower())
        .config("spark.ui.showConsoleProgress", str(ui).lower())  # the stage progress bar of long runs
        .config("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")  # what pandas and Spark 3.5 both read
        .config("spark.driver.extraJavaOptions", "-Duser.timezone=UTC")
        .config("spark.executor.extraJavaOptions", "-Duser.timezone=UTC")
        .config("spark.executorEnv.TZ", "UTC")
    )
    for key, value in (extra_conf or {}).items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


def launched_by_spark_submit() -> bool:
    # spark-submit starts the Python driver with the gateway port of its own JVM.
    return "PYSPARK_GATEWAY_PORT" in os.environ


@contextmanager
def spark_session(settings: Settings, app_name: str, **options) -> Iterator[SparkSession]:
    """``build_spark_session`` for one command: the session is stopped however the command ends."""
    spark = build_spark_session(settings, app_name, **options)
    try:
        yield spark
    finally:
        spark.stop()


CODE_PACKAGES = ("fraud", "training", "udfs")  # what executors import


def package_code(dest: Path) -> Path:
    """``dest``/fraud-code.zip holding the packages fraud, training and udfs: what ``--py-files`` takes."""
    dest.mkdir(parents=True, exist_ok=True)
    archive = dest / "fraud-code.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for package in CODE_PACKAGES:
            for source in sorted((PROJECT_ROOT / package).rglob("*.py")):
                zf.write(source, source.relative_to(PROJECT_ROOT))
    return archive
