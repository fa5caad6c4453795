"""Backfill end to end: a slice of history scored into every sink, twice, leaves one row per transaction."""
from __future__ import annotations

from datetime import datetime

import pandas as pd
import pytest

from fraud.backfill import backfill
from fraud.clients.elasticsearch import elasticsearch_client
from fraud.clients.mysql import connect
from fraud.config import PROJECT_ROOT
from fraud.sinks import SINKS
from training.artifacts import load_model

pytestmark = pytest.mark.services
DEFAULT_MODEL = PROJECT_ROOT / "models" / "default"


@pytest.fixture()
def history(data_dir, tmp_path):
    transactions = pd.read_parquet(data_dir / "transactions.parquet")
    window = transactions[(transactions.TX_DATETIME >= "2018-09-01") & (transactions.TX_DATETIME < "2018-09-02")]
    path = tmp_path / "history.parquet"
    window.to_parquet(path, index=False)
    return path, window


def test_backfilling_a_slice_twice_leaves_exactly_one_row_per_transaction(stack, spark, history, tmp_path):
    path, window = history
    settings = stack.model_copy(update={"delta_dir": tmp_path / "delta"})
    first, last = int(window.TRANSACTION_ID.min()), int(window.TRANSACTION_ID.max())
    version = load_model(DEFAULT_MODEL).version
    for _ in range(2):
        report = backfill(spark, settings, path, DEFAULT_MODEL, SINKS)
        assert report["rows"] == len(window)
        assert sum(report["decisions"].values()) == len(window)

    with connect(settings) as conn, conn.cursor() as cur:
        cur.execute("SELECT COUNT(*), COUNT(DISTINCT transaction_id), SUM(model_version = %s), SUM(tx_amount) "
                    "FROM scored_transactions WHERE transaction_id BETWEEN %s AND %s", (version, first, last))
        count, distinct, stamped, amount = cur.fetchone()
    assert count == distinct == stamped == len(window)
    assert amount == pytest.approx(window.TX_AMOUNT.sum())

    es = elasticsearch_client(settings)
    es.indices.refresh(index=settings.elasticsearch.index)
    in_window = {"terms": {"transaction_id": [str(tid) for tid in window.TRANSACTION_ID]}}  # ids are text
    assert es.count(index=settings.elasticsearch.index, query=in_window)["count"] == len(window)

    delta = spark.read.format("delta").load(settings.scored_table)
    assert delta.count() == delta.select("transaction_id").distinct().count() == len(window)
    assert delta.where("fraud_score IS NULL OR decision IS NULL").count() == 0


def test_a_delta_table_from_an_older_feature_set_takes_the_new_features(spark, tmp_path):
    """A table written before a feature existed gets the new field, by stream append and by backfill MERGE;
    older rows read it as null, and every id is still there once."""
    from fraud.sinks import write_to_delta
    path = str(tmp_path / "scored")
    old = "transaction_id long, features struct<A: double>"
    new = "transaction_id long, features struct<A: double, B: double>"
    write_to_delta(spark.createDataFrame([(1, (1.0,))], old), path)
    write_to_delta(spark.createDataFrame([(2, (2.0, 20.0))], new), path, batch=("query", 0))
    write_to_delta(spark.createDataFrame([(2, (2.0, 20.0)), (3, (3.0, 30.0))], new), path)
    table = spark.read.format("delta").load(path)
    assert table.schema.simpleString() == "struct<transaction_id:bigint,features:struct<A:double,B:double>>"
    assert sorted(tuple(row) for row in table.select("transaction_id", "features.A", "features.B").collect()) == [
        (1, 1.0, None), (2, 2.0, 20.0), (3, 3.0, 30.0)]


def test_a_rescore_of_a_date_range_overwrites_it_and_any_other_rewrite_merges(spark, tmp_path):
    from delta.tables import DeltaTable

    from fraud.sinks import write_to_delta
    path = str(tmp_path / "scored")
    schema = "transaction_id long, tx_datetime timestamp, fraud_score double"
    day = lambda d, score, *ids: [(i, datetime(2018, 4, d, 12), score) for i in ids]  # noqa: E731

    def rewrite(rows):
        write_to_delta(spark.createDataFrame(rows, schema), path)
        operation = DeltaTable.forPath(spark, path).history(1).first()["operation"]
        table = sorted(tuple(row) for row in spark.read.format("delta").load(path).collect())
        return operation, [(i, t.day, score) for i, t, score in table]

    write_to_delta(spark.createDataFrame(day(1, 0.1, 1, 2) + day(2, 0.1, 3), schema), path)
    # every transaction of 04-01 again: that day is overwritten
    assert rewrite(day(1, 0.2, 1, 2)) == ("WRITE", [(1, 1, 0.2), (2, 1, 0.2), (3, 2, 0.1)])
    # only one of them: overwriting the day would lose transaction 2
    assert rewrite(day(1, 0.3, 1)) == ("MERGE", [(1, 1, 0.3), (2, 1, 0.2), (3, 2, 0.1)])
    # transaction 3 at another time: overwriting 04-01 would leave it twice
    assert rewrite(day(1, 0.4, 1, 2, 3)) == ("MERGE", [(1, 1, 0.4), (2, 1, 0.4), (3, 1, 0.4)])

