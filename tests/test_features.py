"""Feature definitions on hand-made rows (the numpy implementation, alone and through Spark's add_all_features),
and the two paths' agreement on random rows."""
from __future__ import annotations

from datetime import datetime
from unittest import mock

import numpy as np
import pandas as pd
import pytest

from fraud.features import EXTRA_FEATURES, HANDBOOK_FEATURES, MODEL_FEATURES, id_order
from fraud.features_pandas import add_all_features_pandas
from fraud.features_spark import add_all_features
from fraud.testing.data import COLUMNS, random_transactions

# pyspark.testing imports pyspark.pandas, which (3.5) still uses np.NaN
with mock.patch.object(np, "NaN", np.nan, create=True):
    from pyspark.testing import assertDataFrameEqual

SCHEMA = ("TRANSACTION_ID long, TX_DATETIME timestamp_ntz, CUSTOMER_ID long, TERMINAL_ID long, "
          "TX_AMOUNT double, TX_FRAUD long")


def _tx(tx_id, when, customer=1, terminal=1, amount=1.0, fraud=0):
    return tx_id, datetime.fromisoformat(when), customer, terminal, float(amount), fraud


# Each case: input rows (deliberately not in id order), feature columns, expected (TRANSACTION_ID, *values) rows.
CALENDAR = (
    [_tx(1, "2018-04-06 07:00:00"), _tx(2, "2018-04-07 06:59:59"),   # Friday morning, Saturday night
     _tx(3, "2018-04-08 23:59:59"), _tx(4, "2018-04-09 00:00:00")],  # Sunday evening, Monday night
    ["TX_DURING_WEEKEND", "TX_DURING_NIGHT"],
    [(1, 0, 0), (2, 1, 1), (3, 1, 0), (4, 0, 1)],
)
CUSTOMER_SPENDING = (
    [_tx(4, "2018-04-02 00:00:00", amount=60), _tx(3, "2018-04-02 00:00:00", amount=30),
     _tx(1, "2018-04-01 00:00:00", amount=10), _tx(2, "2018-04-01 12:00:00", amount=20),
     _tx(6, "2018-04-01 06:00:00", customer=2, amount=1000), _tx(5, "2018-04-08 12:00:00", amount=40),
     _tx(7, "2018-05-01 00:00:00", amount=50), _tx(8, "2018-04-03 00:00:00", customer=3, amount=0)],
    [f"CUSTOMER_ID_{kind}_{w}DAY_WINDOW" for w in (1, 7, 30) for kind in ("NB_TX", "AVG_AMOUNT")]
    + [f"CUSTOMER_ID_AMOUNT_RATIO_{w}DAY" for w in (1, 7, 30)],
    [(1, 1, 10, 1, 10, 1, 10, 1, 1, 1),
     (2, 2, 15, 2, 15, 2, 15, 20 / 15, 20 / 15, 20 / 15),
     # 1 day back is exactly tx 1: excluded; tx 4 (same second, later id) unseen
     (3, 2, 25, 3, 20, 3, 20, 1.2, 1.5, 1.5),
     (4, 3, 110 / 3, 4, 30, 4, 30, 60 / (110 / 3), 2, 2),  # sees tx 3 at the same second
     (5, 1, 40, 3, 130 / 3, 5, 32, 1, 40 / (130 / 3), 1.25),  # 7 days back is exactly tx 2: excluded
     (6, 1, 1000, 1, 1000, 1, 1000, 1, 1, 1),
     (7, 1, 50, 1, 50, 5, 40, 1, 1, 1.25),                  # 30 days back is exactly tx 1: excluded
     (8, 1, 0, 1, 0, 1, 0, 1, 1, 1)],                       # average 0: ratio 1
)
CUSTOMER_VELOCITY = (
    [_tx(1, "2018-04-02 10:00:00", amount=5), _tx(2, "2018-04-02 10:09:59.999999", amount=7),
     _tx(3, "2018-04-02 10:10:00", amount=11), _tx(5, "2018-04-02 11:00:00", amount=17),
     _tx(4, "2018-04-02 11:00:00", amount=13), _tx(6, "2018-04-02 10:30:00", customer=2, amount=100)],
    ["CUSTOMER_ID_SECONDS_SINCE_PREV_TX", "CUSTOMER_ID_NB_TX_10MIN_WINDOW", "CUSTOMER_ID_NB_TX_1HOUR_WINDOW",
     "CUSTOMER_ID_SUM_AMOUNT_1HOUR_WINDOW"],
    [(1, -1, 1, 1, 5),  # first transaction: the sentinel
     (2, 599.999999, 2, 2, 12),  # 10 minutes back is 1 us before tx 1: included
     (3, 0.000001, 2, 3, 23),    # 10 minutes back is exactly tx 1: excluded
     (4, 3000, 1, 3, 31),        # tx 5 at the same second has a later id: unseen
     (5, 0, 2, 4, 48),
     (6, -1, 1, 1, 100)],
)


def _zscore(amount, window):
    """(amount - mean) / (population std + 1) of the amounts in the 30-day window, written out by hand."""
    return (amount - np.mean(window)) / (np.std(window) + 1)


CUSTOMER_BASELINE = (
    [_tx(4, "2018-04-15 00:00:00", amount=50), _tx(1, "2018-04-01 00:00:00", amount=10),
     _tx(2, "2018-04-02 00:00:00", amount=30), _tx(3, "2018-04-15 00:00:00", amount=40),
     _tx(5, "2018-04-16 00:00:00", amount=60), _tx(6, "2018-05-31 00:00:00", amount=60),
     _tx(7, "2018-04-01 00:00:00", customer=2, amount=0), _tx(8, "2018-04-20 00:00:00", customer=2, amount=5)],
    ["CUSTOMER_ID_AMOUNT_ZSCORE_30DAY", "CUSTOMER_ID_BASELINE_AVG_AMOUNT", "CUSTOMER_ID_AMOUNT_RATIO_BASELINE",
     "CUSTOMER_ID_NB_HIGH_RATIO_14DAY", "CUSTOMER_ID_SHARE_HIGH_RATIO_14DAY"],
    [(1, 0, -1, 1, 0, 0),                 # one amount: std 0, z 0; empty baseline: sentinel -1, ratio 1
     (2, 10 / 11, -1, 1, 0, 0),           # amounts 10, 30: mean 20, std 10
     (3, _zscore(40, [10, 30, 40]), 10, 4, 1, 1 / 2),  # 14 days back is exactly tx 1: in the baseline; tx 4 unseen
     (4, _zscore(50, [10, 30, 40, 50]), 10, 5, 2, 2 / 3),  # sees tx 3 at the same instant: 2 high of 3
     # tx 2 exactly 14 days back: in; ratio exactly 3: not high
     (5, _zscore(60, [10, 30, 40, 50, 60]), 20, 3, 2, 2 / 3),
     (6, 0, 45, 60 / 45, 0, 0),           # 60 days back is exactly tx 1: out of the baseline
     (7, 0, -1, 1, 0, 0),
     (8, 2.5 / 3.5, 0, 1, 0, 0)],         # baseline mean 0: ratio 1
)
TERMINAL_RISK = (
    [_tx(1, "2018-04-01 00:00:00", fraud=1), _tx(2, "2018-04-01 00:00:00", terminal=2, fraud=1),
     _tx(3, "2018-04-01 12:00:00"), _tx(4, "2018-04-08 00:00:00"), _tx(5, "2018-04-08 00:00:00", terminal=2),
     _tx(6, "2018-04-08 12:00:00", fraud=1), _tx(7, "2018-04-09 00:00:00"), _tx(8, "2018-04-16 12:00:00"),
     _tx(9, "2018-04-22 00:00:00")],
    [f"TERMINAL_ID_{kind}_{w}DAY_WINDOW" for w in (1, 7, 14, 30) for kind in ("NB_TX", "RISK")]
    + [f"TERMINAL_ID_NB_FRAUD_{w}DAY_WINDOW" for w in (1, 7, 30)],
    [(1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), (2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0),  # nothing older than the delay: risk 0
     (3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0),
     (4, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1),           # 7 days back is exactly tx 1: included
     (5, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1),
     (6, 2, 0.5, 2, 0.5, 2, 0.5, 2, 0.5, 1, 1, 1),
     (7, 1, 0, 2, 0.5, 2, 0.5, 2, 0.5, 0, 1, 1),     # 8 days back is exactly tx 1: out of the 1-day window
     (8, 1, 0, 3, 1 / 3, 5, 0.4, 5, 0.4, 0, 1, 2),
     (9, 0, 0, 2, 0.5, 4, 0.25, 5, 0.4, 0, 1, 2)],   # 21 days back is exactly tx 1: out of the 14-day window
)
TERMINAL_FRAUD_RECENCY = (
    [_tx(3, "2018-04-05 00:00:00"), _tx(1, "2018-04-01 00:00:00", fraud=1), _tx(2, "2018-04-03 00:00:00", fraud=1),
     _tx(4, "2018-04-08 00:00:00"), _tx(5, "2018-04-10 12:00:00"), _tx(6, "2018-05-08 00:00:00"),
     _tx(7, "2018-05-10 00:00:00"), _tx(8, "2018-04-20 00:00:00", terminal=2)],
    ["TERMINAL_ID_DAYS_SINCE_FIRST_FRAUD", "TERMINAL_ID_DAYS_SINCE_LAST_FRAUD"],
    [(1, -1, -1), (2, -1, -1), (3, -1, -1),  # no fraud older than the delay yet: the sentinel
     (4, 7, 7),       # tx 1 exactly 7 days back: known
     (5, 9.5, 7.5),   # tx 1 and tx 2 known
     (6, 35, 35),     # 37 days back is exactly tx 1: out of the window
     (7, -1, -1),     # tx 2 is 37 days back: out too
     (8, -1, -1)],    # another terminal
)
TERMINAL_VELOCITY = (
    [_tx(2, "2018-04-01 10:00:00", customer=2), _tx(1, "2018-04-01 10:00:00", customer=1),
     _tx(3, "2018-04-01 10:59:59", customer=3), _tx(4, "2018-04-01 11:00:00", customer=4),
     _tx(5, "2018-04-01 10:30:00", terminal=2), _tx(7, "2018-04-02 10:00:00"), _tx(6, "2018-04-02 10:00:00")],
    ["TERMINAL_ID_NB_TX_1HOUR_WINDOW", "TERMINAL_ID_NB_TX_1DAY_CURRENT"],
    [(1, 1, 1), (2, 2, 2), (3, 3, 3), (4, 2, 4), (5, 1, 1),
     (6, 1, 3),   # 1 day back is exactly tx 1 and 2: excluded; tx 7 at the same instant has a later id: unseen
     (7, 2, 4)],
)
CASES = {"calendar": CALENDAR, "customer_spending": CUSTOMER_SPENDING, "customer_velocity": CUSTOMER_VELOCITY,
         "customer_baseline": CUSTOMER_BASELINE, "terminal_risk": TERMINAL_RISK,
         "terminal_fraud_recency": TERMINAL_FRAUD_RECENCY, "terminal_velocity": TERMINAL_VELOCITY}


def test_model_features_are_the_handbook_ones_then_the_extras():
    assert HANDBOOK_FEATURES[:2] == ["TX_DURING_WEEKEND", "TX_DURING_NIGHT"]
    assert HANDBOOK_FEATURES[2:4] == ["CUSTOMER_ID_NB_TX_1DAY_WINDOW", "CUSTOMER_ID_AVG_AMOUNT_1DAY_WINDOW"]
    assert HANDBOOK_FEATURES[-1] == "TERMINAL_ID_RISK_30DAY_WINDOW" and len(HANDBOOK_FEATURES) == 14
    assert MODEL_FEATURES == ["TX_AMOUNT", *HANDBOOK_FEATURES, *EXTRA_FEATURES]  # the handbook's 15 model inputs first
    assert len(set(MODEL_FEATURES)) == len(MODEL_FEATURES) == 36


@pytest.mark.parametrize("case", CASES)
def test_pandas_features_on_hand_made_rows(case):
    rows, columns, expected = CASES[case]
    actual = add_all_features_pandas(pd.DataFrame(rows, columns=COLUMNS)).sort_values("TRANSACTION_ID")
    pd.testing.assert_frame_equal(actual[["TRANSACTION_ID", *columns]].reset_index(drop=True),
                                  pd.DataFrame(expected, columns=["TRANSACTION_ID", *columns]),
                                  check_dtype=False, check_exact=False, rtol=0, atol=1e-9)


@pytest.mark.parametrize("case", CASES)
def test_spark_transform_on_inline_rows(spark, case):
    rows, columns, expected = CASES[case]
    actual = add_all_features(spark.createDataFrame(rows, SCHEMA)).select("TRANSACTION_ID", *columns)
    types = {c: int if c.startswith("TX_DURING") else float for c in columns}
    expected_df = spark.createDataFrame(
        [(tx_id, *(types[c](v) for c, v in zip(columns, values))) for tx_id, *values in expected],
        ", ".join(["TRANSACTION_ID long", *(f"{c} {types[c].__name__.replace('float', 'double')}" for c in columns)]))
    assertDataFrameEqual(actual, expected_df, rtol=0, atol=1e-9)


def test_labels_younger_than_the_delay_are_never_read():
    pdf = random_transactions()
    recent = pdf["TX_DATETIME"] > pdf["TX_DATETIME"].max() - pd.Timedelta(days=7)
    assert recent.sum() > 100
    expected = add_all_features_pandas(pdf).drop(columns="TX_FRAUD")
    flipped, unknown = np.where(recent, 1 - pdf["TX_FRAUD"], pdf["TX_FRAUD"]), pdf["TX_FRAUD"].where(~recent)
    for labels in (flipped, unknown):
        pd.testing.assert_frame_equal(add_all_features_pandas(pdf.assign(TX_FRAUD=labels)).drop(columns="TX_FRAUD"),
                                      expected)


def test_a_delay_that_would_read_fresh_labels_is_refused(spark):
    rows = spark.createDataFrame(CALENDAR[0], SCHEMA)
    with pytest.raises(ValueError, match="delay_days"):
        add_all_features(rows, delay_days=0)
    with pytest.raises(ValueError, match="delay_days"):
        add_all_features_pandas(rows.toPandas(), delay_days=0)


def test_spark_and_pandas_agree_on_random_rows(spark):
    pdf = random_transactions()
    customer_ties = pdf.duplicated(["CUSTOMER_ID", "TX_DATETIME"], keep=False).sum()
    terminal_ties = pdf.duplicated(["TERMINAL_ID", "TX_DATETIME"], keep=False).sum()
    assert customer_ties > 100 and terminal_ties > 10  # the tie rule is exercised
    expected = add_all_features_pandas(pdf).sort_values("TRANSACTION_ID").reset_index(drop=True)
    assert (expected["CUSTOMER_ID_BASELINE_AVG_AMOUNT"] > 0).mean() > 0.5  # the baseline features are exercised
    assert (expected["CUSTOMER_ID_NB_HIGH_RATIO_14DAY"] > 0).sum() > 50
    assert (expected["TERMINAL_ID_NB_FRAUD_30DAY_WINDOW"] > 0).sum() > 100
    assert (expected["TERMINAL_ID_DAYS_SINCE_FIRST_FRAUD"] > expected["TERMINAL_ID_DAYS_SINCE_LAST_FRAUD"]).sum() > 100
    actual = (add_all_features(spark.createDataFrame(pdf, SCHEMA)).toPandas()
              .sort_values("TRANSACTION_ID").reset_index(drop=True))
    assert list(actual.columns) == list(expected.columns) == [*COLUMNS, *MODEL_FEATURES[1:]]
    for column in MODEL_FEATURES[1:]:
        np.testing.assert_allclose(actual[column], expected[column], rtol=0, atol=1e-9, err_msg=column)


def test_id_order_puts_shorter_ids_first_then_compares_code_points():
    """Of same-instant transactions: 9 before 10 before 100 (numeric for integers without leading zeros, though
    "10" < "9" as text), "007" among the three-character ids, equal ids equal ranks; integers count as their text."""
    ids = ["10", "9", "abc", "9", "100", "007", "C1231006815", "B22", "\u00e9"]
    assert list(id_order(ids)) == [2, 0, 6, 0, 4, 3, 7, 5, 1]
    assert list(id_order(np.array([10, 9, 100, 9]))) == [1, 0, 2, 0]
    assert list(id_order(np.array([], dtype=object))) == []


def test_same_instant_text_ids_are_taken_in_id_order_by_the_batch_features():
    """Two transactions of a card at the same instant: the one with id 9 counts before the one with id "10" in the
    card's windows, whether the ids come as integers or as text (both paths)."""
    rows = [_tx("10", "2018-04-01 10:00:00"), _tx("9", "2018-04-01 10:00:00")]
    features = add_all_features_pandas(pd.DataFrame(rows, columns=COLUMNS))
    assert dict(zip(features.TRANSACTION_ID, features.CUSTOMER_ID_NB_TX_1DAY_WINDOW)) == {"9": 1, "10": 2}
    as_integers = add_all_features_pandas(pd.DataFrame([_tx(10, "2018-04-01 10:00:00"), _tx(9, "2018-04-01 10:00:00")],
                                                       columns=COLUMNS))
    assert dict(zip(as_integers.TRANSACTION_ID, as_integers.CUSTOMER_ID_NB_TX_1DAY_WINDOW)) == {9: 1, 10: 2}
