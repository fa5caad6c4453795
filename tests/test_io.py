"""Reading histories whose ids were integers, and Delta tables written before ids were text; ids that break the id
rules (Spark, no service)."""
from __future__ import annotations

import subprocess
import sys
from datetime import datetime

import pytest

from fraud.config import PROJECT_ROOT
from fraud.io import InputError, raised_input_error, read_transactions
from fraud.schemas import ID_MAX_CHARS
from fraud.sinks import SinkError, require_text_ids
from fraud.sources import read_history

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


BROKEN_IDS = [  # (transaction id, card, terminal) -> the first rule broken, as the stream's dead letter says it
    (("7", "3 ", "4"), "CUSTOMER_ID begins or ends with whitespace"),  # MySQL would merge it with card "3"
    (("7", "3", ""), "TERMINAL_ID is empty or only whitespace"),
    (("7", "3", "shop\u0007"), "TERMINAL_ID holds a control character"),
    (("9" * (ID_MAX_CHARS + 1), "3", "4"), f"TRANSACTION_ID is longer than {ID_MAX_CHARS} characters"),
    (("\u00a0x", "3", "4"), "TRANSACTION_ID begins or ends with whitespace"),  # Unicode whitespace too
]


@pytest.mark.parametrize("ids, reason", BROKEN_IDS, ids=[reason for _, reason in BROKEN_IDS])
def test_a_history_with_an_id_the_sinks_cannot_keep_exactly_stops_naming_the_rule_and_the_transaction(
        spark, tmp_path, ids, reason):
    rows = [("1", datetime(2018, 4, 1), "3", "4", 2.0), (*ids[:1], datetime(2018, 4, 1), *ids[1:], 5.0)]
    spark.createDataFrame(rows, OLD.replace("long", "string")).write.parquet(str(tmp_path / "h.parquet"))
    history = read_history(spark, tmp_path / "h.parquet")
    with pytest.raises(Exception) as stopped:
        history.collect()
    error = raised_input_error(stopped.value)
    assert error is not None and reason in str(error), stopped.value
    assert str(error).startswith(f"{tmp_path / 'h.parquet'}: ") and f'in the transaction ["{ids[0][:40]}' in \
        str(error).replace("\\u00a0", "\u00a0")


def test_the_command_line_says_which_id_in_one_line_and_exits_1(spark, tmp_path):
    rows = [("1", datetime(2018, 4, 1), "3", "4", 2.0), ("2", datetime(2018, 4, 1), "C123 ", "4", 5.0)]
    spark.createDataFrame(rows, OLD.replace("long", "string")).write.parquet(str(tmp_path / "h.parquet"))
    run = subprocess.run([sys.executable, "-m", "fraud.cli", "features", "--input", str(tmp_path / "h.parquet"),
                          "--output", str(tmp_path / "out")], cwd=PROJECT_ROOT, capture_output=True, text=True)
    assert run.returncode == 1, run.stderr[-3000:]
    assert run.stderr.strip().splitlines()[-1] == (
        f'error: {tmp_path / "h.parquet"}: CUSTOMER_ID begins or ends with whitespace in the transaction ["2"]; '
        f"ids are 1 to {ID_MAX_CHARS} characters, without control characters or whitespace at either end")
