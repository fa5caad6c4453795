"""Prototypes of the decision query's other layouts, measured beside the stream and the floor (issue 12).

    python -m bench.prototypes single-stage|driver-state   (environment: the isolated pipeline's FRAUD_* variables)

- ``single-stage``: no shuffle. The state is partitioned the way the raw topic is (the
  topic is keyed by card, so a card's records are all in one partition): one task per
  Kafka partition validates its records, runs the card and the terminal state steps of
  ``fraud.stream.decisions`` on that partition's own SQLite shards, and the same task
  scores them with the served model's pandas UDF and writes the result topic. One Spark
  stage a micro-batch, against the product's three (validate; card shard; terminal shard
  and scoring).

  It measures the cost of that layout, not its answer: a terminal's transactions come
  from every partition, and here a partition's terminal features read only its own
  share of them, and the labels (their own topic, their own tasks) go to shards of their
  own (LABEL_SHARDS_FROM + the label partition), so the transactions' terminal risk
  features never see a label: the labels' work is done, on their shards, but never
  merged. A real single-stage design must read every partition's share (the terminal
  features look only at transactions older than the label delay, so committed shares
  suffice while a micro-batch spans less than the delay) and route each label to the
  partition of its transaction.

- ``driver-state``: the state in the driver. The query validates the records (Spark, as the
  product) and hands each micro-batch to ``foreachBatch``, which collects it to the driver,
  runs the same card and terminal state steps there (the same SQLite store, exactly once
  by batch id), and scores the result with the pandas UDF in a second job that writes the
  result topic. Two jobs of one stage each; the state work on one core, in one process:
  it does not scale out on a cluster. The scoring job's ``current_timestamp`` is its own,
  so a micro-batch replayed after a crash publishes other ``scored_at`` times.

Each runs in its own process on ``local[2]``, fed and measured by ``bench.stream`` as the stream is.
"""
from __future__ import annotations

import functools
import sys
from typing import Callable, Iterator

import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from bench.floor import run_until_stopped
from fraud.config import Settings, load_settings
from fraud.features import CUSTOMER_FEATURES, TERMINAL_FEATURES
from fraud.sources import stream_source
from fraud.spark import spark_session
from fraud.stream import stop_on_signals
from fraud.stream.decisions import (
    CARD,
    TERMINAL,
    _stage,
    _state_rows,
    _with_features,
    handbook_rows,
    outgoing_records,
    state_stage,
)
from fraud.stream.queries import kafka_source
from fraud.stream.serving import newest_model
from fraud.stream.state import FEATURES
from training.artifacts import load_model
from udfs.scoring import score_column

KINDS = ("single-stage", "driver-state")
# single-stage: a label partition's shard is this plus its number; a raw topic partition's, its number (fewer than
# this many partitions: ``shards``, which a store only records and checks, is this too)
LABEL_SHARDS_FROM = 1_000


def _card_then_terminal(rows: pd.DataFrame, run: Callable[[pd.DataFrame, str], list[pd.DataFrame]]) -> pd.DataFrame:
    """Transactions and labels (``_state_rows``' columns) -> the card step over the transactions, then the terminal
    step over them and the labels: every row with every card and terminal feature. ``run(rows, route)``: the
    frames a route's state step yields for rows keyed by ``key``."""
    def through(part: pd.DataFrame, route: str, key: str) -> pd.DataFrame:
        out = run(part.assign(key=part[key]), route)
        return pd.concat(out, ignore_index=True) if out else part.iloc[:0].assign(
            key="", **{name: float("nan") for name in FEATURES[route]})

    labels, transactions = rows[rows["is_label"]], rows[~rows["is_label"]]
    carded = through(transactions, CARD, "customer_id")
    return through(pd.concat([carded, labels.assign(**{name: float("nan") for name in CUSTOMER_FEATURES})],
                             ignore_index=True), TERMINAL, "terminal_id")


def _single_stage(frames: Iterator[pd.DataFrame], *, folder: str, shards: int, delay_days: int,
                  duplicate_days: int) -> Iterator[pd.DataFrame]:
    """mapInPandas body: one Kafka partition's rows through the card step, then (with that partition's labels)
    the terminal step, on the partition's own shards."""
    nonempty = [frame for frame in frames if len(frame)]
    if nonempty:
        yield _card_then_terminal(pd.concat(nonempty, ignore_index=True), lambda part, route: list(_stage(
            iter([part]), route=route, folder=folder, shards=shards, delay_days=delay_days,
            duplicate_days=duplicate_days)))


def single_stage_features(transactions: DataFrame, labels: DataFrame, settings: Settings) -> DataFrame:
    """``fraud.stream.decisions.transaction_features``' rows, computed in one stage (this module's doc)."""
    conf, topics = settings.stream, settings.kafka.topics
    mapping = stream_source(settings)
    rows = _state_rows(transactions, None, mapping).unionByName(
        _state_rows(labels, topics.labels, mapping)).select(
        "*", F.lit(None).cast("string").alias("key"),
        (F.col("kafka_partition") + F.when(F.col("kafka_topic") == topics.labels,
                                           LABEL_SHARDS_FROM).otherwise(0)).alias("shard"))
    body = functools.partial(_single_stage, folder=str(settings.checkpoint_dir / "single-stage-state"),
                             shards=LABEL_SHARDS_FROM, delay_days=conf.delay_days, duplicate_days=conf.duplicate_days)
    return handbook_rows(rows.mapInPandas(body, _with_features(rows.schema, [*CUSTOMER_FEATURES,
                                                                            *TERMINAL_FEATURES])), mapping)


class DriverState:
    """foreachBatch function of ``driver-state``: a validated micro-batch -> the state steps in the driver ->
    scored by ``score`` -> the result and dead-letter topics."""

    def __init__(self, settings: Settings, score):
        self.settings, self.score, self.mapping = settings, score, stream_source(settings)
        self.folder = str(settings.checkpoint_dir / "driver-state-state")

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        rows: pd.DataFrame = batch.toPandas()
        if not len(rows):
            return
        conf = self.settings.stream
        featured = _card_then_terminal(rows, lambda part, route: list(state_stage(
            part.assign(shard=0), route=route, batch_id=batch_id, owner=None, folder=self.folder, shards=1,
            delay_days=conf.delay_days, duplicate_days=conf.duplicate_days)))
        schema = _with_features(batch.schema, [*CUSTOMER_FEATURES, *TERMINAL_FEATURES])
        frame = batch.sparkSession.createDataFrame(featured[schema.fieldNames()], schema)
        (outgoing_records(handbook_rows(frame, self.mapping), self.settings, self.score).write.format("kafka")
         .options(**self.settings.kafka.spark_options()).save())


def main(kind: str) -> int:
    if kind not in KINDS:
        raise SystemExit(f"usage: python -m bench.prototypes {'|'.join(KINDS)}")
    settings = load_settings()
    stop = stop_on_signals()
    with spark_session(settings, f"prototype-{kind}", ui=False) as spark:
        score = score_column(spark, load_model(newest_model(settings.stream.model)))
        topics = settings.kafka.topics
        transactions, labels = (kafka_source(spark, settings, [topic], settings.stream.max_offsets_per_trigger)
                                for topic in (topics.raw, topics.labels))
        if kind == "single-stage":
            writer = (outgoing_records(single_stage_features(transactions, labels, settings), settings, score)
                      .writeStream.format("kafka").options(**settings.kafka.spark_options()))
        else:
            mapping = stream_source(settings)
            writer = (_state_rows(transactions, None, mapping).unionByName(
                _state_rows(labels, topics.labels, mapping)).writeStream.foreachBatch(DriverState(settings, score)))
        query = (writer.option("checkpointLocation", str(settings.checkpoint_dir / f"prototype-{kind}"))
                 .trigger(processingTime=f"{settings.stream.trigger_seconds} seconds").start())
        return run_until_stopped(query, stop)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else ""))
