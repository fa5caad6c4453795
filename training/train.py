"""``fraud train`` and ``fraud evaluate``: the evaluation protocol (``training.protocol``) on the product's own
feature code.

Features come from ``fraud.features_spark`` (the feature code the stream and the
backfill run too), computed over the history each window needs, then the model is
fitted with scikit-learn on the driver. Data read with a source mapping
(``fraud.sources``) adds its own features to the recipe's: numbers as they are,
categories through an encoder stored in the model (``with_own_features``).
"""
from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from sklearn.base import ClassifierMixin, clone
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OrdinalEncoder

from fraud.features import HANDBOOK_FEATURES, MODEL_FEATURES, id_order, lookback_days
from fraud.features_spark import add_all_features
from fraud.io import InputError
from fraud.sources import SourceMapping, check_own_features, read_history
from training.artifacts import ModelArtifact, fingerprint, library_versions, load_model, model_inputs, save_model
from training.metrics import quality
from training.protocol import SCENARIO_COLUMN, Split, evaluation_set, protocol, training_set
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
    categorical: tuple[str, ...] = ()  # features that are categories (text); the estimator encodes them


def with_own_features(recipe: Recipe, source: SourceMapping | None) -> Recipe:
    """``recipe`` plus the own features of ``source`` (``OWN_*`` columns); the same recipe without any.

    Categorical features go through an OrdinalEncoder fitted with the model (at most 255 categories each, rarer
    ones grouped; a category unseen in training, or null, is scored as a missing value, never an error); a
    HistGradientBoostingClassifier treats them as categories, other estimators as numbers."""
    if source is None or not (source.own_features or source.own_categorical):
        return recipe
    features = [*recipe.features, *source.own_columns]
    estimator = recipe.estimator
    if source.own_categorical:
        encoder = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=np.nan, max_categories=255)
        categories_first = ColumnTransformer([("categories", encoder, source.own_categorical)],
                                             remainder="passthrough", verbose_feature_names_out=False)
        if isinstance(estimator, HistGradientBoostingClassifier):
            estimator = clone(estimator).set_params(categorical_features=list(range(len(source.own_categorical))))
        estimator = Pipeline([("encode", categories_first), ("model", estimator)])
    return dataclasses.replace(recipe, estimator=estimator, features=features,
                               categorical=tuple(source.own_categorical),
                               description=f"{recipe.description}; with the source's own features "
                                           f"{source.own_columns}")


def handbook_baseline() -> Recipe:
    """The handbook's default-parameter random forest on its 15 inputs and 7 training days."""
    return Recipe(RandomForestClassifier(n_estimators=100, random_state=0, n_jobs=-1), HANDBOOK_INPUTS, 7,
                  "handbook baseline: RandomForestClassifier(n_estimators=100, random_state=0)")


def shipped_recipe() -> Recipe:
    """The recipe of the model the product ships (models/default)."""
    model = HistGradientBoostingClassifier(max_iter=600, learning_rate=0.03, l2_regularization=1.0, random_state=0)
    return Recipe(model, MODEL_FEATURES, 56,
                  "HistGradientBoostingClassifier on the handbook's 15 inputs and the extra features "
                  "(56 training days by default, chosen on the validation weeks 2018-07-11, -18 and -25)")


def feature_frame(spark: SparkSession, data: str | Path, split: Split, columns: list[str],
                  until: datetime | None = None, source: SourceMapping | None = None) -> pd.DataFrame:
    """Features of every transaction from the training start to the test end (or ``until``), as pandas; ``data``
    read with the mapping ``source`` if given (``fraud.sources.read_history``). Raises InputError when the data
    holds no transaction in that range, InputError when it lacks the own features among ``columns``
    (``fraud.sources.check_own_features``), SourceError for a mapping that does not fit it."""
    end = max(split.test_end, until or split.test_end)
    start = min(split.train_start, split.train_end - pd.Timedelta(days=7))  # the test set looks 7 days back
    transactions = read_history(spark, data, source)
    check_own_features(transactions.columns, columns, data)
    history = transactions.where(
        (F.col("TX_DATETIME") >= start - pd.Timedelta(days=lookback_days(split.delay_days)))
        & (F.col("TX_DATETIME") < end))
    features = add_all_features(history, delay_days=split.delay_days)
    scenario = [SCENARIO_COLUMN] if SCENARIO_COLUMN in history.columns else []  # the handbook's data
    keep = ["TRANSACTION_ID", "TX_DATETIME", "CUSTOMER_ID", "TX_FRAUD", *scenario, *columns]
    frame: pd.DataFrame = features.where(F.col("TX_DATETIME") >= start).select(*dict.fromkeys(keep)).toPandas()
    if frame.empty:
        raise InputError(f"no transactions between {start} and {end} in {data}")
    return frame.iloc[np.argsort(id_order(frame["TRANSACTION_ID"].to_numpy()), kind="stable")].reset_index(drop=True)


def score(model: ClassifierMixin, frame: pd.DataFrame, recipe: Recipe) -> np.ndarray:
    return model.predict_proba(model_inputs(frame, recipe.features, recipe.categorical))[:, 1]


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
        return week, score(model, week, recipe), "in-sample (training window too short to hold out a week)"
    held_out = clone(recipe.estimator).fit(*_xy(training_set(frame, early), recipe))
    return week, score(held_out, week, recipe), "held-out validation week"


def train(spark: SparkSession, data: str | Path, split: Split, recipe: Recipe,
          model_out: str | Path | None = None, later_weeks: tuple[datetime, ...] = (),
          source: SourceMapping | None = None) -> tuple[dict[str, Any], ModelArtifact | None]:
    """Fit ``recipe`` on the split's training window, measure it on the test set (``training.protocol.evaluation_set``),
    save it with its thresholds, metadata and report.

    ``later_weeks`` are further test-week starts the saved model is also measured
    on (same protocol), to show how it holds up on data it never saw. ``source``:
    ``data``'s source mapping; its own features join the recipe's (``with_own_features``)
    and the model's metadata records it. The metrics (``training.metrics.quality``)
    include precision and recall at the review and block thresholds when the model is
    saved (the thresholds are chosen then). Raises fraud.io.InputError when a window is empty.
    """
    began = time.monotonic()
    recipe = with_own_features(recipe, source)
    later = [Split(start, 7, split.delay_days, split.test_days) for start in later_weeks]
    frame = feature_frame(spark, data, split, recipe.features, until=max((w.test_end for w in later), default=None),
                          source=source)
    train_set, tested = training_set(frame, split), evaluation_set(frame, split)
    if train_set.empty or tested.empty:
        raise InputError(f"{data}: {len(train_set)} transactions to train on and {len(tested)} to test on in "
                         f"{split.describe()}: choose --test-start and --train-days inside the data")
    log.info("training on %d transactions (%d frauds), testing on %d (%d frauds; %s)", len(train_set),
             int(train_set.TX_FRAUD.sum()), len(tested), int(tested.TX_FRAUD.sum()), protocol(frame))
    model = clone(recipe.estimator).fit(*_xy(train_set, recipe))
    test_scores = score(model, tested, recipe)
    if model_out is None:
        metrics = quality(tested, test_scores)
        log.info("test %s: %s", split.test_start.date(), metrics)
        return metrics, None

    validation_set, validation_scores, validation_kind = _validation(frame, split, recipe, model)
    thresholds = choose_thresholds(validation_set, validation_scores)
    for spec in thresholds.values():
        spec["how"] += f" ({validation_kind})"
    values = {name: spec["value"] for name, spec in thresholds.items()}
    metrics = quality(tested, test_scores, values)
    log.info("test %s: %s", split.test_start.date(), metrics)
    all_metrics = {split.test_start.date().isoformat(): metrics}
    for week in later:
        week_set = evaluation_set(frame, week)
        all_metrics[week.test_start.date().isoformat()] = quality(week_set, score(model, week_set, recipe), values)
        log.info("later week %s: %s", week.test_start.date(), all_metrics[week.test_start.date().isoformat()])
    estimator = recipe.estimator[-1] if isinstance(recipe.estimator, Pipeline) else recipe.estimator  # no encoder
    artifact = save_model(model_out, model, {
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "recipe": {"description": recipe.description, "estimator": type(estimator).__name__,
                   "params": estimator.get_params()},
        "features": recipe.features,
        **({"categorical": list(recipe.categorical)} if recipe.categorical else {}),
        **({"source": source.model_dump()} if source else {}),
        "protocol": protocol(frame),
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
    write_report(Path(model_out), artifact, tested, test_scores)
    return metrics, artifact


def _xy(frame: pd.DataFrame, recipe: Recipe) -> tuple[np.ndarray | pd.DataFrame, pd.Series]:
    return model_inputs(frame, recipe.features, recipe.categorical), frame.TX_FRAUD


def evaluate(spark: SparkSession, model_dir: str | Path, data: str | Path, split: Split,
             source: SourceMapping | None = None) -> dict[str, Any]:
    """The test-set protocol (``training.protocol.evaluation_set``) on any week, for an already trained model: its
    ``quality`` at its own thresholds. ``source``: ``data``'s source mapping, which must give the model's own
    features if it has any. Raises InputError when the data lacks a feature of the model."""
    artifact = load_model(model_dir)
    frame = feature_frame(spark, data, split, artifact.features, source=source)
    tested = evaluation_set(frame, split)
    return quality(tested, artifact.model.predict_proba(artifact.inputs(tested))[:, 1], artifact.thresholds)
