"""From transactions to scored rows: the transform the backfill and the stream share.

``score_transactions`` adds the features (``fraud.features``), scores them with
the broadcast model (``udfs.scoring``) and shapes the result as the one output
schema every sink takes (``fraud.schemas.SCORED_ROW``).
"""
from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from fraud.features import add_all_features
from fraud.schemas import SCORED_ROW
from training.artifacts import ModelArtifact
from udfs.scoring import score_column


def score_transactions(transactions: DataFrame, artifact: ModelArtifact, delay_days: int = 7,
                       kafka_timestamp: Column | None = None) -> DataFrame:
    """Canonical transactions (fraud.io) -> SCORED_ROW rows, one per transaction."""
    spark = transactions.sparkSession
    features = add_all_features(transactions, delay_days=delay_days)
    scored = features.withColumn("_score", score_column(spark, artifact))
    return scored.select(
        F.col("TRANSACTION_ID").alias("transaction_id"),
        F.col("TX_DATETIME").cast("timestamp").alias("tx_datetime"),
        F.col("CUSTOMER_ID").alias("customer_id"),
        F.col("TERMINAL_ID").alias("terminal_id"),
        F.col("TX_AMOUNT").alias("tx_amount"),
        "_score.fraud_score", "_score.decision", "_score.reason_codes", "_score.model_version",
        (kafka_timestamp if kafka_timestamp is not None else F.lit(None)).cast("timestamp").alias("kafka_timestamp"),
        F.current_timestamp().alias("scored_at"),
    ).select(*SCORED_ROW.fieldNames())
