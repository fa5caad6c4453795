"""Reading transaction history (Parquet, CSV or Delta) into the canonical columns.

Canonical columns are the handbook's: TRANSACTION_ID, TX_DATETIME, CUSTOMER_ID,
TERMINAL_ID, TX_AMOUNT and, when labels are known, TX_FRAUD. The Kafka message
names (transaction_id, tx_datetime, ...) are accepted too, so the stream's Delta
archive reads back the same way. Other input columns are carried through.

Ids come out as text (``fraud.schemas``): text as stored, integers (the handbook's
Parquet, a Delta table written when ids were bigint) as their exact decimal text.
"""
from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import DecimalType, FractionalType

from fraud.config import Settings
from fraud.schemas import HANDBOOK_COLUMNS as REQUIRED
from fraud.schemas import ID_COLUMNS, OWN_FEATURES_COLUMN, OWN_PREFIX
from fraud.schemas import LABEL_COLUMN as LABEL


class InputError(ValueError):
    """Input that cannot be read as transactions; the message says what is wrong."""


_RAISED = "input error: "  # how a Spark job stopped by raise_input_error says so


def raise_input_error(message: Column) -> Column:
    """A column that stops the Spark job computing it, with ``message`` (a string column) as the reason: a row
    found wrong only when the data is read. ``raised_input_error`` turns the job's failure back into an
    InputError."""
    return F.raise_error(F.concat(F.lit(_RAISED), message))


def raised_input_error(error: BaseException) -> InputError | None:
    """The InputError of a Spark job stopped by ``raise_input_error`` (its message, one line), read from the job
    failure ``error`` (a Py4JJavaError holding the executor's exception); None for any other error."""
    found = re.search(re.escape(_RAISED) + r"([^\n]*)", str(error))
    return InputError(found.group(1).strip()) if found else None


def input_format(path: str | Path) -> str:
    """"delta", "csv" or "parquet": what ``path`` (a file or a folder) holds. Raises InputError for anything else."""
    p = Path(path)
    if (p / "_delta_log").is_dir():
        return "delta"
    suffixes = {s.lower() for s in (p.suffixes or [])} | {q.suffix.lower() for q in p.glob("*") if p.is_dir()}
    if ".csv" in suffixes:
        return "csv"
    if ".parquet" in suffixes:
        return "parquet"
    raise InputError(f"{path}: not a Delta table, nor Parquet or CSV files")


def read_transactions(spark: SparkSession, path: str | Path) -> DataFrame:
    """Transactions at ``path`` with canonical names and types (TX_FRAUD null where unknown; ids text).

    Raises InputError when ``path`` does not exist, is not Delta, Parquet or CSV, lacks a handbook column, or holds
    ids as floating-point numbers (not exact; 1.0 would become "1.0")."""
    if not Path(path).exists():
        raise InputError(f"{path}: no such file or directory")
    fmt = input_format(path)
    reader = spark.read.format(fmt)
    if fmt == "csv":
        reader = reader.option("header", True).option("inferSchema", False)
    df = reader.load(str(path))
    df = df.toDF(*(c.upper() if c.upper() in {*REQUIRED, LABEL} else c for c in df.columns))
    missing = sorted(set(REQUIRED) - set(df.columns))
    if missing:
        raise InputError(f"{path}: missing column(s) {missing}; found {df.columns}")
    inexact = [f.name for f in df.schema.fields if f.name in ID_COLUMNS and isinstance(f.dataType, FractionalType)
               and not isinstance(f.dataType, DecimalType)]
    if inexact:
        raise InputError(f"{path}: id column(s) {inexact} hold floating-point numbers; ids are text or integers")
    if LABEL not in df.columns:
        df = df.withColumn(LABEL, F.lit(None))
    typed = {name: F.col(name).cast(kind) for name, kind in {**REQUIRED, LABEL: "int"}.items()}
    return df.withColumns(typed)


def read_archive(spark: SparkSession, settings: Settings, as_of: datetime | None = None) -> DataFrame:
    """The stream's Delta archive as a history in canonical columns: each transaction of ``settings.raw_table`` once,
    with TX_FRAUD its newest label in ``settings.labels_table`` (null: none known), and the own features of a stream
    that read with a source mapping as ``OWN_<name>`` columns (``fraud.schemas.OWN_PREFIX``; null on rows archived
    without them).

    ``as_of`` (naive UTC): only what had reached Kafka by then (the records' Kafka timestamps): later transactions
    are left out, a label that came later is not known (the labels archive keeps one label per transaction, the
    newest: a relabel after ``as_of`` leaves that transaction's label unknown). Raises InputError when the stream
    has archived nothing yet.
    """
    transactions = read_transactions(spark, settings.raw_table).drop(LABEL)
    if OWN_FEATURES_COLUMN in transactions.columns:  # a stream reading with a source mapping: its own features
        own = transactions.select(f"{OWN_FEATURES_COLUMN}.*").columns
        transactions = transactions.select("*", *(F.col(OWN_FEATURES_COLUMN).getField(name).alias(OWN_PREFIX + name)
                                                  for name in own))
    if as_of is not None:
        transactions = transactions.where(F.col("kafka_timestamp") <= F.lit(as_of))
    transactions = transactions.dropDuplicates(["TRANSACTION_ID"])
    if not Path(settings.labels_table).exists():
        return transactions.withColumn(LABEL, F.lit(None).cast("int"))
    labels = spark.read.format("delta").load(settings.labels_table)
    if as_of is not None:
        labels = labels.where(F.col("kafka_timestamp") <= F.lit(as_of))
    newest = labels.groupBy("transaction_id").agg(F.max_by("tx_fraud", "kafka_offset").cast("int").alias(LABEL))
    return transactions.join(newest.withColumnRenamed("transaction_id", "TRANSACTION_ID"), "TRANSACTION_ID", "left")
