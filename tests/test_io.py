"""Reading histories whose ids were integers, and Delta tables written before ids were text (Spark, no service)."""
from __future__ import annotations

from datetime import datetime

import pytest

from fraud.io import InputError, read_transactions
from fraud.sinks import SinkError, require_text_ids

OLD = "TRANSACTION_ID long, TX_DATETIME timestamp, CUSTOMER_ID long, TERMINAL_ID long, TX_AMOUNT double"


def test_integer_ids_of_an_older_delta_table_read_back_as_their_exact_text(spark, tmp_path):
    rows = [(2 ** 53 + 1, datetime(2018, 4, 1), 9_223_372_036_854_775_807, 0, 1.5),
            (7, datetime(2018, 4, 2), 3, 4, 2.0)]
    spark.createDataFrame(rows, OLD).write.format("delta").save(str(tmp_path / "old"))
    read = read_transactions(spark, tmp_path / "old")
    assert dict(read.dtypes)["TRANSACTION_ID"] == dict(read.dtypes)["CUSTOMER_ID"] == "string"
    assert sorted((r.TRANSACTION_ID, r.CUSTOMER_ID, r.TERMINAL_ID) for r in read.collect()) == [
        ("7", "3", "4"), ("9007199254740993", "9223372036854775807", "0")]


def test_floating_point_ids_are_refused(spark, tmp_path):
    floats = OLD.replace("TRANSACTION_ID long", "TRANSACTION_ID double")
    spark.createDataFrame([(1.0, datetime(2018, 4, 1), 3, 4, 2.0)], floats).write.parquet(str(tmp_path / "f.parquet"))
    with pytest.raises(InputError, match=r"id column\(s\) \['TRANSACTION_ID'\] hold floating-point numbers"):
        read_transactions(spark, tmp_path / "f.parquet")


def test_writing_to_a_delta_table_with_bigint_ids_is_refused_with_the_rewrite_to_do(spark, tmp_path):
    old, new, missing = (str(tmp_path / name) for name in ("old", "new", "missing"))
    spark.createDataFrame([(7, 3)], "transaction_id long, customer_id long").write.format("delta").save(old)
    spark.createDataFrame([("7", "3")], "transaction_id string, customer_id string").write.format("delta").save(new)
    require_text_ids(spark, [new, missing])  # text ids, no table yet: nothing to say
    with pytest.raises(SinkError) as refused:
        require_text_ids(spark, [new, old, missing])
    message = str(refused.value)
    assert f"{old} (transaction_id, customer_id)" in message and new not in message
    assert "cast('string')" in message and "overwriteSchema" in message
