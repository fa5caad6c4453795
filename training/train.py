"""``fraud train`` and ``fraud evaluate``: the handbook protocol on the product's own feature code.

Features come from ``fraud.features_spark`` (the feature code the stream and the
backfill run too), computed over the history each window needs, then the model is
fitted with scikit-learn on the driver.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from sklearn.base import ClassifierMixin, clone
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier

from fraud.features import HANDBOOK_FEATURES, MODEL_FEATURES, id_order, lookback_days
from fraud.features_spark import add_all_features
from fraud.io import read_transactions
from training.artifacts import ModelArtifact, fingerprint, library_versions, load_model, model_inputs, save_model
from training.metrics import quality
from training.protocol import Split, handbook_test_set, training_set
from training.reasons import reason_limits
from training.thresholds import choose_thresholds

log = logging.getLogger(__name__)

HANDBOOK_INPUTS = ["TX_AMOUNT", *HANDBOOK_FEATURES]  # the handbook's 15 model inputs


@dataclass(frozen=True)
class Recipe:
    """A model family, its parameters, its inputs and how much history it trains on."""
    estimator: ClassifierMixin
    features: list[str]
    train_days: int
    description: str = ""


def handbook_baseline() -> Recipe:
    """The handbook's default-parameter random forest on its 15 inputs and 7 training days."""
    return Recipe(RandomForestClassifier(n_estimators=100, random_state=0, n_jobs=-1), HANDBOOK_INPUTS, 7,
                  "handbook baseline: RandomForestClassifier(n_estimators=100, random_state=0)")


def shipped_recipe() -> Recipe:
    """The recipe of the model the product ships (models/default)."""
    model = HistGradientBoostingClassifier(max_iter=600, learning_rate=0.03, l2_regularization=1.0, random_state=0)
    return Recipe(model, MODEL_FEATURES, 56,
                  "HistGradientBoostingClassifier on the handbook's 15 inputs and the extra features, "
                  "trained on 56 days (chosen on the validation weeks 2018-07-11, -18 and -25)")


def feature_frame(spark: SparkSession, data: str | Path, split: Split, columns: list[str],
                  until: datetime | None = None) -> pd.DataFrame:
    """Features of every transaction from the training start to the test end (or ``until``), as pandas. Raises
    ValueError when the data holds no transaction in that range."""
    end = max(split.test_end, until or split.test_end)
    start = min(split.train_start, split.train_end - pd.Timedelta(days=7))  # the test set looks 7 days back
    history = read_transactions(spark, data).where(
        (F.col("TX_DATETIME") >= start - pd.Timedelta(days=lookback_days(split.delay_days)))
        & (F.col("TX_DATETIME") < end))
    features = add_all_features(history, delay_days=split.delay_days)
    scenario = ["TX_FRAUD_SCENARIO"] if "TX_FRAUD_SCENARIO" in history.columns else []  # the handbook's data
    keep = ["TRANSACTION_ID", "TX_DATETIME", "CUSTOMER_ID", "TX_FRAUD", *scenario, *columns]
    frame: pd.DataFrame = features.where(F.col("TX_DATETIME") >= start).select(*dict.fromkeys(keep)).toPandas()
    if frame.empty:
        raise ValueError(f"no transactions between {start} and {end} in {data}")
    return frame.iloc[np.argsort(id_order(frame["TRANSACTION_ID"].to_numpy()), kind="stable")].reset_index(drop=True)


def score(model: ClassifierMixin, frame: pd.DataFrame, features: list[str]) -> np.ndarray:
    return model.predict_proba(model_inputs(frame, features))[:, 1]


def _validation(frame: pd.DataFrame, split: Split, recipe: Recipe, model: ClassifierMixin):
    """Scores of the last training week by a model that did not train on it, for choosing thresholds.

    The held-out model trains on the window's days before that week minus the delay;
    when the window is too short for that, the final model's own scores are used
    (optimistic, and the metadata says so).
    """
    week_start = split.train_end - pd.Timedelta(days=7)
    week = frame[(frame.TX_DATETIME >= week_start) & (frame.TX_DATETIME < split.train_end)]
    early = Split(week_start, split.train_days - 7 - split.delay_days, split.delay_days, 7)
    if early.train_days < 7:
        return week, score(model, week, recipe.features), "in-sample (training window too short to hold out a week)"
    held_out = clone(recipe.estimator).fit(*_xy(training_set(frame, early), recipe.features))
    return week, score(held_out, week, recipe.features), "held-out validation week"


def train(spark: SparkSession, data: str | Path, split: Split, recipe: Recipe,
          model_out: str | Path | None = None,
          later_weeks: tuple[datetime, ...] = ()) -> tuple[dict[str, float], ModelArtifact | None]:
    """Fit ``recipe`` on the split's training window, measure it on the handbook test set, save it.

    ``later_weeks`` are further test-week starts the saved model is also measured
    on (same protocol), to show how it holds up on data it never saw.
    """
    began = time.monotonic()
    later = [Split(start, 7, split.delay_days, split.test_days) for start in later_weeks]
    frame = feature_frame(spark, data, split, recipe.features, until=max((w.test_end for w in later), default=None))
    train_set, test_set = training_set(frame, split), handbook_test_set(frame, split)
    log.info("training on %d transactions (%d frauds), testing on %d (%d frauds)", len(train_set),
             int(train_set.TX_FRAUD.sum()), len(test_set), int(test_set.TX_FRAUD.sum()))
    model = clone(recipe.estimator).fit(*_xy(train_set, recipe.features))
    test_scores = score(model, test_set, recipe.features)
    metrics = quality(test_set, test_scores)
    log.info("test %s: %s", split.test_start.date(), metrics)
    if model_out is None:
        return metrics, None

    validation_set, validation_scores, validation_kind = _validation(frame, split, recipe, model)
    thresholds = choose_thresholds(validation_set, validation_scores)
    for spec in thresholds.values():
        spec["how"] += f" ({validation_kind})"
    all_metrics = {split.test_start.date().isoformat(): metrics}
    for week in later:
        week_set = handbook_test_set(frame, week)
        all_metrics[week.test_start.date().isoformat()] = quality(week_set, score(model, week_set, recipe.features))
        log.info("later week %s: %s", week.test_start.date(), all_metrics[week.test_start.date().isoformat()])
    artifact = save_model(model_out, model, {
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "recipe": {"description": recipe.description, "estimator": type(recipe.estimator).__name__,
                   "params": recipe.estimator.get_params()},
        "features": recipe.features,
        "training_window": split.describe(),
        "training_rows": len(train_set), "training_frauds": int(train_set.TX_FRAUD.sum()),
        "data": {"path": str(data), "sha256": fingerprint(data)},
        "libraries": library_versions(),
        "metrics": all_metrics,
        "thresholds": thresholds,
        "reason_limits": reason_limits(train_set[train_set.TX_FRAUD == 0]),
        "seconds_to_train": round(time.monotonic() - began, 1),
    })
    from training.report import write_report
    write_report(Path(model_out), artifact, test_set, test_scores)
    return metrics, artifact


def _xy(frame: pd.DataFrame, features: list[str]) -> tuple[np.ndarray, pd.Series]:
    return model_inputs(frame, features), frame.TX_FRAUD


def evaluate(spark: SparkSession, model_dir: str | Path, data: str | Path, split: Split) -> dict[str, float]:
    """The handbook test-set protocol on any week, for an already trained model."""
    artifact = load_model(model_dir)
    frame = feature_frame(spark, data, split, artifact.features)
    test_set = handbook_test_set(frame, split)
    return quality(test_set, score(artifact.model, test_set, artifact.features))
