"""Scoring: a plain pandas function, and the pandas UDF that runs it inside Spark.

``score_features`` turns feature rows into (fraud_score, decision, reason_codes,
model_version) and is tested without Spark. ``scoring_udf`` ships the model to
the executors once as a broadcast variable; each Python worker deserialises it
on first use and keeps it, so a model is loaded once per worker process, not
per batch or row.
"""
from __future__ import annotations

from typing import Iterator

import pandas as pd
from pyspark.sql import Column, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.functions import pandas_udf

from training.artifacts import ModelArtifact
from training.reasons import reason_codes
from training.thresholds import decide

SCORE_TYPE = "fraud_score double, decision string, reason_codes string, model_version string"

def score_features(artifact: ModelArtifact, features: pd.DataFrame) -> pd.DataFrame:
    """Score feature rows: probability of fraud, decision at the model's thresholds, reasons, version."""
    scores = artifact.model.predict_proba(artifact.inputs(features))[:, 1]
    thresholds = artifact.thresholds
    decisions = decide(scores, thresholds["review"], thresholds["block"])
    reasons = pd.Series("", index=features.index, dtype="object")
    flagged = decisions != "approve"
    if flagged.any():
        reasons[flagged] = reason_codes(features.loc[flagged], artifact.metadata.get("reason_limits", {}))
    return pd.DataFrame({"fraud_score": scores, "decision": decisions, "reason_codes": reasons,
                         "model_version": artifact.version}, index=features.index)


def scoring_udf(spark: SparkSession, artifact: ModelArtifact):
    """A pandas UDF over a struct of the model's features; the model travels as one broadcast."""
    shipped = spark.sparkContext.broadcast(artifact)

    @pandas_udf(SCORE_TYPE)  # type: ignore[call-overload]  # stubs lack the type-hinted (Spark 3) form
    def score(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        model = shipped.value  # deserialised once per Python worker process
        for features in batches:
            yield score_features(model, features)

    return score


def score_column(spark: SparkSession, artifact: ModelArtifact) -> Column:
    """The struct column (fraud_score, decision, reason_codes, model_version) for a DataFrame with the features."""
    return scoring_udf(spark, artifact)(F.struct(*artifact.features))
