"""Retraining from the archive (``fraud train --from-archive``, ``fraud.retrain``): the archive as of a cut-off, the
split the label delay gives, publication only when the candidate beats the served model, and the stream serving a
published candidate."""
from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import subprocess
import sys
from datetime import datetime, timedelta

import pandas as pd
import pytest
from pyspark.errors import AnalysisException
from pyspark.sql import functions as F

from fraud.config import PROJECT_ROOT, ConfigError
from fraud.io import InputError, read_archive
from fraud.producer import Pace, load_history, replay
from fraud.retrain import archive_split, plan_retraining, retrain_from_archive
from fraud.stream.serving import newest_model
from fraud.testing.data import constant_model
from fraud.testing.pipeline import StreamProcess, mysql_count, mysql_scored
from fraud.testing.stack import stack_settings
from training.protocol import Split
from training.train import shipped_recipe


def test_the_test_days_end_where_labels_stop_being_all_due():
    split = archive_split(datetime(2018, 4, 30, 23, 59), train_days=7, delay_days=7, test_days=7)
    assert split == Split(datetime(2018, 4, 16), 7, 7, 7)
    assert (split.train_start, split.train_end, split.test_end) == (
        datetime(2018, 4, 2), datetime(2018, 4, 9), datetime(2018, 4, 23))


@pytest.fixture(scope="module")
def archive(spark, data_dir, tmp_path_factory):
    """The Delta archive a stream would have written for 30 days of every 64th card sent live: each transaction
    reached Kafka at its own time, its label 7 days later (every transaction gets one, 0 or 1, as the replay sends
    them). Returns (delta folder, the history)."""
    history = load_history(data_dir / "transactions.parquet")
    history = history[(history.TX_DATETIME >= "2018-04-01") & (history.TX_DATETIME < "2018-05-01")
                      & (history.CUSTOMER_ID % 64 == 0)].reset_index(drop=True)
    ids = {"transaction_id": history.TRANSACTION_ID.astype(str), "customer_id": history.CUSTOMER_ID.astype(str),
           "terminal_id": history.TERMINAL_ID.astype(str), "tx_datetime": history.TX_DATETIME}
    delta = tmp_path_factory.mktemp("archive") / "delta"
    spark.createDataFrame(pd.DataFrame({**ids, "tx_amount": history.TX_AMOUNT, "kafka_timestamp": history.TX_DATETIME})
                          ).write.format("delta").save(str(delta / "transactions_raw"))
    spark.createDataFrame(pd.DataFrame({
        **ids, "tx_fraud": history.TX_FRAUD.astype("int32"), "kafka_topic": "labels", "kafka_partition": 0,
        "kafka_offset": range(len(history)), "kafka_timestamp": history.TX_DATETIME + pd.Timedelta(days=7)})
    ).write.format("delta").save(str(delta / "labels"))
    return delta, history


def test_the_archive_as_of_a_time_holds_what_had_arrived_by_then(spark, archive, tmp_path):
    delta, history = archive
    settings = stack_settings(FRAUD_DELTA_DIR=str(delta))
    as_of = datetime(2018, 4, 20)
    seen = read_archive(spark, settings, as_of).toPandas()
    arrived = history[history.TX_DATETIME <= as_of]
    assert sorted(seen.TRANSACTION_ID) == sorted(arrived.TRANSACTION_ID.astype(str))
    labelled = arrived.TX_DATETIME + pd.Timedelta(days=7) <= as_of
    expected = dict(zip(arrived.TRANSACTION_ID.astype(str), arrived.TX_FRAUD.where(labelled)))
    got = dict(zip(seen.TRANSACTION_ID, seen.TX_FRAUD))
    assert {tid: (None if pd.isna(v) else int(v)) for tid, v in got.items()} == {
        tid: (None if pd.isna(v) else int(v)) for tid, v in expected.items()}
    assert read_archive(spark, settings).count() == len(history)  # no cut-off: everything


def test_a_candidate_is_published_only_when_it_beats_the_served_model(spark, archive, tmp_path):
    delta, _ = archive
    models = tmp_path / "models"
    constant_model(models / "first", "constant-1")
    settings = stack_settings(FRAUD_DELTA_DIR=str(delta), FRAUD_STREAM_MODEL=str(models),
                              FRAUD_STATE_DIR=str(tmp_path / "state"))
    recipe = dataclasses.replace(shipped_recipe(), train_days=7)
    outcome = retrain_from_archive(spark, settings, plan_retraining(settings, datetime(2018, 5, 1)), recipe,
                                   delay_days=7, test_days=7)
    assert (outcome["test_start"], outcome["train_start"]) == ("2018-04-16T00:00:00", "2018-04-02T00:00:00")
    assert outcome["serving"]["version"] == "constant-1"
    assert outcome["published"] and outcome["candidate"]["ap"] > outcome["serving"]["ap"], outcome
    published = models / "archive-20180501T000000"
    assert outcome["published_to"] == str(published) and newest_model(models) == published
    assert json.loads((published / "metadata.json").read_text())["version"] == outcome["candidate"]["version"]
    assert "Published: the candidate's ap" in (published / "report" / "report.md").read_text()

    # the same archive a second later: the same candidate, not better than itself served: the served model stays
    again = retrain_from_archive(spark, settings, plan_retraining(settings, datetime(2018, 5, 1, 0, 0, 1)), recipe,
                                 delay_days=7, test_days=7)
    assert not again["published"] and "published_to" not in again
    assert again["serving"]["version"] == outcome["candidate"]["version"]
    assert again["candidate"]["ap"] == again["serving"]["ap"]
    assert "is not higher than the served model's" in again["why"]
    assert newest_model(models) == published
    report = tmp_path / "state" / "retraining" / "archive-20180501T000001" / "report" / "report.md"
    assert "Not published" in report.read_text() and outcome["candidate"]["version"] in report.read_text()
    with pytest.raises(ConfigError, match="archive-20180501T000001 exists: the archive as of 2018-05-01 00:00:01 UTC "
                                          "was retrained on already"):
        plan_retraining(settings, datetime(2018, 5, 1, 0, 0, 1))


def test_the_own_features_a_stream_archived_join_the_candidate_and_the_comparison(spark, archive, tmp_path):
    """A stream reading with a source mapping archives its own features (the ``own_features`` struct): retraining
    reads them back as OWN_ columns, the candidate learns from them (a category from text), and a served model that
    needs them is compared on them."""
    delta, _ = archive
    raw = spark.read.format("delta").load(str(delta / "transactions_raw"))
    own = F.struct(F.floor(F.log10(F.col("tx_amount") + 1)).cast("double").alias("amount_digits"),
                   F.date_format("tx_datetime", "E").alias("weekday"))
    raw.withColumn("own_features", own).write.format("delta").save(str(tmp_path / "delta" / "transactions_raw"))
    shutil.copytree(delta / "labels", tmp_path / "delta" / "labels")
    models = tmp_path / "models"
    constant_model(models / "first", "constant-1")
    source = tmp_path / "source.yaml"  # the mapping the stream read with, which gave those own features
    source.write_text("transaction_id: id\ntx_datetime: \"to_timestamp(time)\"\ncustomer_id: card\n"
                      "terminal_id: shop\ntx_amount: amount\nfeatures:\n  amount_digits: \"floor(log10(amount + 1))\"\n"
                      "categorical:\n  weekday: \"date_format(to_timestamp(time), 'E')\"\n")
    settings = stack_settings(FRAUD_DELTA_DIR=str(tmp_path / "delta"), FRAUD_STREAM_MODEL=str(models),
                              FRAUD_STATE_DIR=str(tmp_path / "state"), FRAUD_STREAM_SOURCE=str(source))
    archived = read_archive(spark, settings).toPandas()
    assert archived.OWN_weekday.isin(["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]).all()
    assert (archived.OWN_amount_digits == (archived.TX_AMOUNT + 1).map(math.log10).map(math.floor)).all()
    recipe = dataclasses.replace(shipped_recipe(), train_days=7)
    outcome = retrain_from_archive(spark, settings, plan_retraining(settings, datetime(2018, 5, 1)), recipe,
                                   delay_days=7, test_days=7)
    candidate = json.loads((models / "archive-20180501T000000" / "metadata.json").read_text())
    assert outcome["published"] and candidate["features"][-2:] == ["OWN_amount_digits", "OWN_weekday"]
    assert candidate["categorical"] == ["OWN_weekday"]
    again = retrain_from_archive(spark, settings, plan_retraining(settings, datetime(2018, 5, 1, 0, 0, 1)), recipe,
                                 delay_days=7, test_days=7)  # the served model now needs them: compared on them
    assert again["serving"]["version"] == candidate["version"] and again["serving"]["ap"] == again["candidate"]["ap"]


@pytest.mark.parametrize("as_of, train_days, labels, message", [
    (datetime(2018, 3, 1), 7, True, "the archive held no transaction as of 2018-03-01 00:00:00 UTC"),
    (datetime(2018, 5, 1), 56, True, "holds transactions from 2018-04-01 .* need them from 2018-02-12 .*"
                                     r"\(--train-days 8 at most fits\)"),
    (datetime(2018, 4, 10), 7, True, r"it needs at least 22 days\)"),
    (datetime(2018, 5, 1), 7, False, "no fraud label in the training days .* nothing to learn from"),
])
def test_an_archive_that_cannot_give_the_split_says_what_is_missing_and_leaves_nothing(
        spark, archive, tmp_path, as_of, train_days, labels, message):
    delta, _ = archive
    if not labels:  # the stream archived transactions but no label ever came
        shutil.copytree(delta / "transactions_raw", tmp_path / "delta" / "transactions_raw")
        delta = tmp_path / "delta"
    models = tmp_path / "models"
    shutil.copytree(PROJECT_ROOT / "models" / "default", models / "default")
    settings = stack_settings(FRAUD_DELTA_DIR=str(delta), FRAUD_STREAM_MODEL=str(models),
                              FRAUD_STATE_DIR=str(tmp_path / "state"))
    recipe = dataclasses.replace(shipped_recipe(), train_days=train_days)
    with pytest.raises(InputError, match=message):
        retrain_from_archive(spark, settings, plan_retraining(settings, as_of), recipe, delay_days=7, test_days=7)
    assert sorted(p.name for p in models.iterdir()) == ["default"]
    assert not list((tmp_path / "state" / "retraining").glob("*"))


@pytest.mark.services
def test_a_model_retrained_from_the_streams_archive_scores_the_next_transactions(pipeline, spark, data_dir,
                                                                                 tmp_path):
    """A week of every 16th card streamed with its labels a day later; the candidate trained on the archive beats the
    constant model served, is published, and the next transactions carry its version."""
    history = load_history(data_dir / "transactions.parquet", start="2018-06-01")
    history = history[history.CUSTOMER_ID % 16 == 0]
    sent, later = history[history.TX_DATETIME < "2018-06-08"], history[history.TX_DATETIME >= "2018-06-08"].iloc[:50]
    models = tmp_path / "models"
    constant_model(models / "first", "constant-1")

    def archived_labels() -> int:
        try:
            return spark.read.format("delta").load(settings.labels_table).count()
        except AnalysisException:  # no table yet (or its first commit under way)
            return 0

    settings, env = pipeline("retrain", FRAUD_STREAM_DELAY_DAYS="1", FRAUD_STREAM_MODEL=str(models))
    stream = StreamProcess(env, tmp_path / "stream.log", "--model", str(models)).start()
    try:
        labels = replay(settings, sent, Pace(rate=2000), delay_days=1, progress=False)["labels"]
        stream.wait_for(lambda: mysql_count(settings) == len(sent), 600, "the week scored")
        stream.wait_for(lambda: archived_labels() == labels, 300, "the labels archived")
        retrained = subprocess.run([sys.executable, "-m", "fraud.cli", "train", "--from-archive", "--train-days", "2",
                                    "--test-days", "2"], cwd=PROJECT_ROOT,
                                   env={**os.environ, **env, "FRAUD_STATE_DIR": str(tmp_path / "state")},
                                   capture_output=True, text=True)
        assert retrained.returncode == 0, retrained.stderr[-3000:]
        outcome = json.loads(retrained.stdout.strip().splitlines()[-1])
        assert labels > 0 and outcome["published"], outcome
        version = outcome["candidate"]["version"]
        stream.wait_for(lambda: f"serving model {version}" in stream.log_file.read_text(), 120, "the new model served")
        replay(settings, later, Pace(rate=1000), delay_days=1, progress=False)
        stream.wait_for(lambda: mysql_count(settings) == len(sent) + len(later), 300, "the next transactions scored")
    finally:
        assert stream.stop() == 0, stream.log_tail()
    versions = dict(mysql_scored(settings, "transaction_id, model_version"))
    assert {versions[str(tid)] for tid in sent.TRANSACTION_ID} == {"constant-1"}
    assert {versions[str(tid)] for tid in later.TRANSACTION_ID} == {version}
    assert outcome["test_start"] == (datetime(2018, 6, 7) - timedelta(days=1 + 2)).isoformat()
