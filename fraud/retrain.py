"""``fraud train --from-archive``: retraining from what the stream saw.

The stream's Delta archive (``transactions_raw`` and ``labels``, ``fraud.io.read_archive``)
as of a cut-off is the history: only the transactions and labels that had reached Kafka
by then. A transaction without a known label counts as genuine (a chargeback is the
label that comes; most transactions never get one). The split follows the label delay
(``training.protocol``): the test days are the most recent ones whose labels are all due
by the newest archived transaction, training ends ``delay_days`` before them. A candidate
of the chosen recipe is trained there and measured beside the model the stream serves,
on the same test days; it is published into the stream's model folder (the hot reload
serves it within seconds) only if it is better on the chosen metric. Either way the
candidate, its report and the comparison stay under ``<state_dir>/retraining/``.
"""
from __future__ import annotations

import json
import logging
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from fraud.config import ConfigError, Settings
from fraud.features import lookback_days
from fraud.io import read_archive
from fraud.schemas import LABEL_COLUMN
from fraud.stream.serving import model_folder, newest_model
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


def retrain_from_archive(spark: SparkSession, settings: Settings, recipe: Recipe, delay_days: int, test_days: int,
                         metric: str = "ap", as_of: datetime | None = None) -> dict[str, Any]:
    """Train a candidate on the archive as of ``as_of`` (naive UTC; default now), compare it with the served model
    (the newest under ``stream.model``) on ``metric`` over the same test days, publish it there if it is higher.

    Returns the outcome: ``published`` (bool), ``why``, the split, both models' metrics, the candidate's folder and,
    when published, where. Raises ConfigError when ``stream.model`` is one model folder (nothing to publish beside
    it) or ``metric`` is unknown; fraud.io.InputError when the stream archived nothing; ValueError when the archive
    does not reach back to the split's training days.
    """
    if metric not in METRICS:
        raise ConfigError(f"unknown metric {metric!r}: one of {', '.join(METRICS)}")
    models = model_folder(settings.stream.model)
    if (models / METADATA_FILE).exists():
        raise ConfigError(f"stream.model is the model folder {models}: a retrained model is published beside the "
                          "others in a folder of models whose newest is served (stream.model: models)")
    as_of = as_of or datetime.now(timezone.utc)
    if as_of.tzinfo is not None:  # naive: UTC already
        as_of = as_of.astimezone(timezone.utc).replace(tzinfo=None)
    history = read_archive(spark, settings, as_of).fillna({LABEL_COLUMN: 0})  # no chargeback (yet): genuine
    newest = history.agg(F.max("TX_DATETIME")).collect()[0][0]
    if newest is None:
        raise ValueError(f"the archive held no transaction as of {as_of:%Y-%m-%d %H:%M:%S}")
    split = archive_split(newest, recipe.train_days, delay_days, test_days)
    name = f"archive-{as_of:%Y%m%dT%H%M%S}"
    work = settings.state_dir / "retraining" / name
    snapshot = work / "history.parquet"  # what the candidate was trained and both models tested on
    start = split.train_start - timedelta(days=lookback_days(delay_days) + 7)
    (history.where((F.col("TX_DATETIME") >= start) & (F.col("TX_DATETIME") < split.test_end))
     .write.mode("overwrite").parquet(str(snapshot)))
    log.info("retraining on the archive as of %s: newest transaction %s; %s", as_of, newest, split.describe())
    candidate, artifact = train(spark, snapshot, split, recipe, work / name)
    assert artifact is not None  # saved: model_out was given
    served = newest_model(models)
    serving = evaluate(spark, served, snapshot, split)
    better = candidate[metric] > serving[metric]
    outcome: dict[str, Any] = {
        "published": better, "metric": metric, "as_of": as_of.isoformat(), **split.describe(),
        "candidate": {"version": artifact.version, "folder": str(work / name), **candidate},
        "serving": {"version": json.loads((served / METADATA_FILE).read_text())["version"], "folder": str(served),
                    **serving},
        "why": (f"the candidate's {metric} {candidate[metric]} is higher than the served model's {serving[metric]}"
                if better else f"the candidate's {metric} {candidate[metric]} is not higher than the served "
                               f"model's {serving[metric]}: the served model stays"),
    }
    with (work / name / "report" / "report.md").open("a") as report:
        report.write(f"\n## Publication\n\n{'Published' if better else 'Not published'}: {outcome['why']} "
                     f"(test days {split.test_start:%Y-%m-%d} to {split.test_end:%Y-%m-%d} exclusive, the archive "
                     f"as of {as_of:%Y-%m-%d %H:%M:%S} UTC).\n")
    if better:
        outcome["published_to"] = str(_publish(work / name, models / name))
    (work / "outcome.json").write_text(json.dumps(outcome, indent=2) + "\n")
    log.info("%s", outcome["why"])
    return outcome


def _publish(candidate: Path, target: Path) -> Path:
    """Copy the model folder ``candidate`` to ``target``, its metadata last: the hot reload looks for metadata.json,
    so it never sees a model half written (and its time makes this model the newest)."""
    shutil.copytree(candidate, target, ignore=shutil.ignore_patterns(METADATA_FILE))
    shutil.copy(candidate / METADATA_FILE, target / METADATA_FILE)
    return target
