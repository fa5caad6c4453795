"""Scoring: a plain pandas function, and the pandas UDF that runs it inside Spark.

``score_features`` turns feature rows into (fraud_score, decision, reason_codes,
model_version) and is tested without Spark. ``scoring_udf`` ships the model to
the executors once as a broadcast variable; each Python worker deserialises it
on first use and keeps it, so a model is loaded once per worker process, not
per batch or row.
"""
from __future__ import annotations

from typing import Iterator

import numpy as np
import pandas as pd
from pyspark.sql import Column, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.functions import pandas_udf

from training.artifacts import ModelArtifact, model_inputs
from training.thresholds import decide

SCORE_TYPE = "fraud_score double, decision string, reason_codes string, model_version string"

# feature -> (direction, sentence); a reason is given when a value is beyond what
# 99% of legitimate training transactions show (metadata "reason_limits")
REASONS = {
    "TX_AMOUNT": (1, "amount {value:.2f} above {limit:.2f} (99% of legitimate amounts)"),
    "CUSTOMER_ID_AMOUNT_RATIO_30DAY": (1, "amount {value:.1f}x the card's 30-day average"),
    "CUSTOMER_ID_AMOUNT_RATIO_7DAY": (1, "amount {value:.1f}x the card's 7-day average"),
    "TERMINAL_ID_RISK_7DAY_WINDOW": (1, "terminal fraud rate {value:.0%} in the week before the label delay"),
    "TERMINAL_ID_RISK_30DAY_WINDOW": (1, "terminal fraud rate {value:.0%} in the 30 days before the label delay"),
    "CUSTOMER_ID_NB_TX_1HOUR_WINDOW": (1, "{value:.0f} transactions on the card within an hour"),
    "TERMINAL_ID_NB_TX_1HOUR_WINDOW": (1, "{value:.0f} transactions at the terminal within an hour"),
    "CUSTOMER_ID_NB_TX_1DAY_WINDOW": (1, "{value:.0f} transactions on the card within a day"),
}
MAX_REASONS = 3


def reason_limits(legitimate: pd.DataFrame) -> dict[str, float]:
    """The 99th percentile of each reason feature among legitimate training transactions."""
    return {name: float(legitimate[name].quantile(0.99)) for name in REASONS if name in legitimate}


def reason_codes(features: pd.DataFrame, limits: dict[str, float]) -> pd.Series:
    """Up to MAX_REASONS readable signals per row, the most extreme first, '; '-separated."""
    names = list(limits)
    values = features[names].to_numpy(dtype=float)
    bounds = np.array([limits[name] for name in names], dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        excess = np.where(bounds > 0, values / bounds, values * np.inf)  # any positive value beyond a 0 limit
    excess = np.where(excess > 1, excess, -np.inf)  # not beyond (or NaN): no reason
    top = np.argsort(-excess, axis=1, kind="stable")[:, :MAX_REASONS]
    return pd.Series(["; ".join(REASONS[names[j]][1].format(value=values[row, j], limit=bounds[j])
                                for j in columns if excess[row, j] > 1)
                      for row, columns in enumerate(top)], index=features.index, dtype="object")


def score_features(artifact: ModelArtifact, features: pd.DataFrame) -> pd.DataFrame:
    """Score feature rows: probability of fraud, decision at the model's thresholds, reasons, version."""
    scores = artifact.model.predict_proba(model_inputs(features, artifact.features))[:, 1]
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

    @pandas_udf(SCORE_TYPE)
    def score(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        model = shipped.value  # deserialised once per Python worker process
        for features in batches:
            yield score_features(model, features)

    return score


def score_column(spark: SparkSession, artifact: ModelArtifact) -> Column:
    """The struct column (fraud_score, decision, reason_codes, model_version) for a DataFrame with the features."""
    return scoring_udf(spark, artifact)(F.struct(*artifact.features))
