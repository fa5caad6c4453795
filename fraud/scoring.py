"""From features to scored rows: the shaping the backfill and the stream share.

``scored_rows`` scores feature rows with the broadcast model's pandas UDF
(``udfs.scoring``) and shapes them as the one output schema every sink takes
(``fraud.schemas.SCORED_ROW``) plus the ``features`` struct the Delta table keeps
for retraining and audits. ``score_transactions`` is the backfill's path: the
batch features first.
"""
from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import DoubleType, StructField, StructType

from fraud.features import EXTRA_FEATURES, HANDBOOK_FEATURES, LABEL_DELAY_DAYS
from fraud.features_spark import add_all_features
from fraud.schemas import FEATURES_COLUMN
from training.artifacts import ModelArtifact
from udfs.scoring import score_column

# the type of the FEATURES_COLUMN struct: every feature, as a double
FEATURES_TYPE = StructType([StructField(name, DoubleType()) for name in [*HANDBOOK_FEATURES, *EXTRA_FEATURES]])


def scored_columns(kafka_timestamp: Column, scored_at: Column, score: str = "_score") -> list[Column]:
    """SCORED_ROW's columns and the ``features`` struct, from rows with the canonical columns, every feature and the
    ``score`` struct column (``udfs.scoring.score_column``). Ids come out as text (integer ids as their decimal
    text)."""
    return [
        F.col("TRANSACTION_ID").cast("string").alias("transaction_id"),
        F.col("TX_DATETIME").cast("timestamp").alias("tx_datetime"),
        F.col("CUSTOMER_ID").cast("string").alias("customer_id"),
        F.col("TERMINAL_ID").cast("string").alias("terminal_id"),
        F.col("TX_AMOUNT").alias("tx_amount"),
        *(F.col(f"{score}.{name}").alias(name) for name in ("fraud_score", "decision", "reason_codes",
                                                            "model_version")),
        kafka_timestamp.cast("timestamp").alias("kafka_timestamp"),
        scored_at.cast("timestamp").alias("scored_at"),
        F.struct(*(F.col(name).cast("double").alias(name) for name in FEATURES_TYPE.fieldNames()))
        .alias(FEATURES_COLUMN),
    ]


def scored_rows(features: DataFrame, score: Column, kafka_timestamp: Column, scored_at: Column) -> DataFrame:
    """Rows with the canonical columns and every feature -> SCORED_ROW columns + ``features``.

    ``score`` is the struct column of ``udfs.scoring.score_column``.
    """
    return features.withColumn("_score", score).select(*scored_columns(kafka_timestamp, scored_at))


def score_transactions(transactions: DataFrame, artifact: ModelArtifact,
                       delay_days: int = LABEL_DELAY_DAYS) -> DataFrame:
    """Canonical transactions (fraud.io) -> scored rows, one per transaction (the backfill)."""
    features = add_all_features(transactions, delay_days=delay_days)
    return scored_rows(features, score_column(transactions.sparkSession, artifact), F.lit(None),
                       F.current_timestamp())
