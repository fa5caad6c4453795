"""``fraud train --from-archive``: retraining from what the stream saw.

The stream's Delta archive (``transactions_raw`` and ``labels``, ``fraud.io.read_archive``)
as of a cut-off is the history: only the transactions and labels that had reached Kafka
by then. A transaction without a known label counts as genuine (a chargeback is the
label that comes; most transactions never get one). The split follows the label delay
(``training.protocol``): the test days are the most recent ones whose labels are all due
by the newest archived transaction, training ends ``delay_days`` before them. A candidate
of the chosen recipe is trained there and measured beside the model the stream serves,
on the same test days; it is published into the stream's model folder (the hot reload
serves it within seconds) only if it is better on the chosen metric. The own features of
a stream that reads with a source mapping, archived with its transactions, join the
recipe's (``fraud.sources.archive_source``), and the served model is measured on them.
Either way the candidate (``<state_dir>/retraining/archive-<as of>/``, its report with a "Publication"
section), the archive snapshot it was trained on (``….history.parquet``) and the outcome
(``….outcome.json``) stay beside each other.
"""
from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from fraud.config import ConfigError, Settings
from fraud.features import lookback_days
from fraud.io import InputError, read_archive
from fraud.schemas import LABEL_COLUMN
from fraud.sources import archive_source, stream_source
from fraud.stream.serving import check_servable, model_folder, newest_model
from training.artifacts import METADATA_FILE
from training.protocol import Split
from training.train import Recipe, evaluate, train

log = logging.getLogger(__name__)
METRICS = ("ap", "auc", "cp100")  # what a candidate can be compared on: higher is better for each


def archive_split(newest: datetime, train_days: int, delay_days: int, test_days: int) -> Split:
    """The split for an archive whose newest transaction is at ``newest``: test on the ``test_days`` whole days
    that end where labels stop being all due (``newest`` minus the delay, to the day), train on the ``train_days``
    ending ``delay_days`` before them."""
    labelled_until = (newest - timedelta(days=delay_days)).replace(hour=0, minute=0, second=0, microsecond=0)
    return Split(labelled_until - timedelta(days=test_days), train_days, delay_days, test_days)


@dataclass(frozen=True)
class Retraining:
    """A retraining as of ``as_of`` (naive UTC), compared on ``metric``, and where it writes: ``candidate`` (the
    model folder, named ``archive-<as of>``), ``snapshot`` and ``outcome`` beside it, ``target`` (where it is
    published)."""
    as_of: datetime
    metric: str
    candidate: Path
    target: Path

    @property
    def snapshot(self) -> Path:
        return self.candidate.with_name(f"{self.candidate.name}.history.parquet")

    @property
    def outcome(self) -> Path:
        return self.candidate.with_name(f"{self.candidate.name}.outcome.json")


def plan_retraining(settings: Settings, as_of: datetime | None = None, metric: str = "ap") -> Retraining:
    """Checks that need no Spark, made before any work: ``metric`` is known, ``stream.model`` is a folder of models
    whose newest the stream can serve (``check_servable``), and no retraining as of the same time exists.
    ``as_of``: naive UTC, or aware (converted); default now. Raises ConfigError naming what is wrong."""
    if metric not in METRICS:
        raise ConfigError(f"unknown metric {metric!r}: one of {', '.join(METRICS)}")
    models = model_folder(settings.stream.model)
    if (models / METADATA_FILE).exists():
        raise ConfigError(f"stream.model is the model folder {models}: a retrained model is published beside the "
                          "others in a folder of models whose newest is served (stream.model: models)")
    check_servable(models, stream_source(settings))
    as_of = as_of or datetime.now(timezone.utc)
    if as_of.tzinfo is not None:  # naive: UTC already
        as_of = as_of.astimezone(timezone.utc).replace(tzinfo=None)
    name = f"archive-{as_of:%Y%m%dT%H%M%S}"
    plan = Retraining(as_of, metric, settings.state_dir / "retraining" / name, models / name)
    for taken in (plan.candidate, plan.target):
        if taken.exists():
            raise ConfigError(f"{taken} exists: the archive as of {as_of:%Y-%m-%d %H:%M:%S} UTC was retrained "
                              f"on already (see {plan.outcome}); give another --as-of")
    return plan


def _checked_split(history: DataFrame, plan: Retraining, train_days: int, delay_days: int,
                   test_days: int) -> Split:
    """The split of ``history`` (the archive as of ``plan.as_of``, labels filled), checked: the archive reaches
    back to the training days' start, and both the training and the test days hold a known fraud. Raises
    InputError saying what is missing and what to change."""
    first, newest = history.agg(F.min("TX_DATETIME"), F.max("TX_DATETIME")).collect()[0]
    if newest is None:
        raise InputError(f"the archive held no transaction as of {plan.as_of:%Y-%m-%d %H:%M:%S} UTC")
    split = archive_split(newest, train_days, delay_days, test_days)
    needed = f"--train-days {train_days}, a {delay_days}-day label delay and {test_days} test days"
    if first.date() > split.train_start.date():  # a window's first day need not start at midnight
        room = (split.train_end.date() - first.date()).days
        raise InputError(f"the archive as of {plan.as_of:%Y-%m-%d %H:%M:%S} UTC holds transactions from {first} to "
                         f"{newest}: {needed} need them from {split.train_start} ("
                         + (f"--train-days {room} at most fits)" if room >= 1 else
                            f"it needs at least {delay_days * 2 + test_days + 1} days)"))
    windows = {"training": (split.train_start, split.train_end), "test": (split.test_start, split.test_end)}
    counts = history.agg(*(F.count_if((F.col("TX_DATETIME") >= start) & (F.col("TX_DATETIME") < end)
                                      & (F.col(LABEL_COLUMN) == 1)) for start, end in windows.values())).collect()[0]
    for name, count in zip(windows, counts):
        if count == 0:
            raise InputError(f"no fraud label in the {name} days of {split.describe()} (the archive as of "
                             f"{plan.as_of:%Y-%m-%d %H:%M:%S} UTC): nothing to "
                             f"{'learn from' if name == 'training' else 'compare the models on'}; do labels reach "
                             "the labels topic? (a longer --train-days or --test-days may hold some)")
    return split


def retrain_from_archive(spark: SparkSession, settings: Settings, plan: Retraining, recipe: Recipe,
                         delay_days: int, test_days: int) -> dict[str, Any]:
    """Train a candidate on the archive as of ``plan.as_of`` (``plan_retraining``: its checks come before Spark),
    compare it with the served model (the newest under ``stream.model``) on ``plan.metric`` over the same test days,
    publish it there if it is higher.

    Returns the outcome: ``published`` (bool), ``why``, the split, both models' metrics, the candidate's folder and,
    when published, where. Raises fraud.io.InputError when the stream archived nothing, or too little for the split,
    or no fraud label in its training or test days. A failed retraining leaves nothing behind.
    """
    metric = plan.metric
    history = read_archive(spark, settings, plan.as_of).fillna({LABEL_COLUMN: 0})  # no chargeback (yet): genuine
    archived = archive_source(history)  # a stream's own features (source mapping) join the recipe's
    split = _checked_split(history, plan, recipe.train_days, delay_days, test_days)
    log.info("retraining on the archive as of %s: %s", plan.as_of, split.describe())
    start = split.train_start - timedelta(days=lookback_days(delay_days) + 7)
    try:
        (history.where((F.col("TX_DATETIME") >= start) & (F.col("TX_DATETIME") < split.test_end))
         .write.mode("overwrite").parquet(str(plan.snapshot)))
        candidate, artifact = train(spark, plan.snapshot, split, recipe, plan.candidate, source=archived)
        assert artifact is not None  # saved: model_out was given
        served = newest_model(plan.target.parent)
        serving = evaluate(spark, served, plan.snapshot, split, archived)
    except BaseException:
        shutil.rmtree(plan.snapshot, ignore_errors=True)
        shutil.rmtree(plan.candidate, ignore_errors=True)
        raise
    served_version = json.loads((served / METADATA_FILE).read_text())["version"]
    better = candidate[metric] > serving[metric]
    outcome: dict[str, Any] = {
        "published": better, "metric": metric, "as_of": plan.as_of.isoformat(), **split.describe(),
        "candidate": {"version": artifact.version, "folder": str(plan.candidate), **candidate},
        "serving": {"version": served_version, "folder": str(served), **serving},
        "why": (f"the candidate's {metric} {candidate[metric]} is higher than the served model's ({served_version}) "
                f"{serving[metric]}" if better else
                f"the candidate's {metric} {candidate[metric]} is not higher than the served model's "
                f"({served_version}) {serving[metric]}: the served model stays"),
    }
    with (plan.candidate / "report" / "report.md").open("a") as report:
        report.write(f"\n## Publication\n\n{'Published' if better else 'Not published'}: {outcome['why']} "
                     f"(test days {split.test_start:%Y-%m-%d} to {split.test_end:%Y-%m-%d} exclusive, the archive "
                     f"as of {plan.as_of:%Y-%m-%d %H:%M:%S} UTC).\n")
    if better:
        outcome["published_to"] = str(_publish(plan.candidate, plan.target))
    plan.outcome.write_text(json.dumps(outcome, indent=2) + "\n")
    log.info("%s", outcome["why"])
    return outcome


def _publish(candidate: Path, target: Path) -> Path:
    """Copy the model folder ``candidate`` to ``target``, its metadata last: the hot reload looks for metadata.json,
    so it never sees a model half written (and its time makes this model the newest)."""
    shutil.copytree(candidate, target, ignore=shutil.ignore_patterns(METADATA_FILE))
    shutil.copy(candidate / METADATA_FILE, target / METADATA_FILE)
    return target
