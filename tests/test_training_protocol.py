"""The handbook protocol and metrics (pandas only)."""
from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd
import pytest

from training.metrics import card_precision_ceiling, card_precision_top_k
from training.protocol import Split, handbook_test_set, training_set
from training.thresholds import choose_thresholds, decide


def test_split_windows_follow_the_handbook():
    split = Split(datetime(2018, 8, 8), train_days=7)
    assert (split.train_start, split.train_end, split.test_end) == (
        datetime(2018, 7, 25), datetime(2018, 8, 1), datetime(2018, 8, 15))
    assert Split(datetime(2018, 8, 8), train_days=56).train_start == datetime(2018, 6, 6)


def test_handbook_test_set_has_58264_transactions_and_385_frauds(data_dir):
    transactions = pd.read_parquet(data_dir / "transactions.parquet",
                                   columns=["TX_DATETIME", "CUSTOMER_ID", "TX_FRAUD"])
    for train_days in (7, 56):  # the test set does not depend on how much history trains
        test = handbook_test_set(transactions, Split(datetime(2018, 8, 8), train_days=train_days))
        assert (len(test), int(test.TX_FRAUD.sum())) == (58_264, 385)
    assert len(training_set(transactions, Split(datetime(2018, 8, 8), train_days=7))) == 67_240


def _frame(rows):
    return pd.DataFrame(rows, columns=["TX_DATETIME", "CUSTOMER_ID", "TX_FRAUD"]).assign(
        TX_DATETIME=lambda f: pd.to_datetime(f.TX_DATETIME))


def test_known_compromised_cards_are_dropped_from_later_test_days():
    rows = [("2018-07-28 10:00", 1, 1),   # card 1: fraud in the training week -> out of the whole test
            ("2018-08-01 09:00", 2, 1),   # card 2: fraud on the first delay day -> known from test day 2 on
            ("2018-08-08 10:00", 1, 0), ("2018-08-08 11:00", 2, 0), ("2018-08-09 11:00", 2, 0),
            ("2018-08-09 12:00", 3, 0)]
    test = handbook_test_set(_frame(rows), Split(datetime(2018, 8, 8), train_days=7))
    assert list(zip(test.TX_DATETIME.dt.strftime("%m-%d %H"), test.CUSTOMER_ID)) == [
        ("08-08 11", 2), ("08-09 12", 3)]


def test_card_precision_counts_each_card_once_per_day_and_removes_detected_cards():
    test = _frame([("2018-08-08 10:00", 1, 1), ("2018-08-08 11:00", 1, 0), ("2018-08-08 12:00", 2, 0),
                   ("2018-08-09 10:00", 1, 1), ("2018-08-09 11:00", 3, 1), ("2018-08-09 12:00", 4, 0)])
    scores = np.array([0.9, 0.1, 0.8, 0.99, 0.5, 0.7])
    # day 1: top-2 cards are 1 (fraud) and 2 -> 1/2; day 2: card 1 is removed, top-2 are 4 and 3 -> 1/2
    assert card_precision_top_k(test, scores, k=2) == pytest.approx(0.5)
    assert card_precision_top_k(test, scores, k=1) == pytest.approx((1 + 0) / 2)  # day 2: card 4 ranks first


def test_card_precision_ceiling_counts_the_cards_with_a_fraud_the_labels_can_reveal():
    test = _frame([("2018-08-08 10:00", 1, 1), ("2018-08-08 11:00", 2, 1), ("2018-08-08 12:00", 3, 1),
                   ("2018-08-08 13:00", 4, 0), ("2018-08-09 10:00", 1, 1), ("2018-08-09 11:00", 2, 1),
                   *(("2018-08-09 12:00", card, 0) for card in (5, 6, 7))])
    test = test.assign(TX_FRAUD_SCENARIO=[2, 2, 3, 0, 2, 2, 0, 0, 0],  # 2 compromised terminal, 3 card, 0 genuine
                       TERMINAL_ID_RISK_30DAY_WINDOW=[0.2, 0.0, 0.0, 0.5, 0.2, 0.0, 0, 0, 0])  # none known at card 2's
    # day 1: cards 1 and 3 are revealable (card 2's fraud is hidden) -> 2/3; day 2: card 1 already found,
    # card 2 still hidden: it ranks below the genuine cards -> 0/3
    assert card_precision_ceiling(test, k=3) == pytest.approx((2 / 3 + 0) / 2)
    assert card_precision_ceiling(test, k=1) == pytest.approx((1 + 0) / 2)


def test_thresholds_give_a_review_queue_and_a_precise_block_level():
    days = pd.date_range("2018-07-25", periods=7, freq="D").repeat(300)
    rng = np.random.default_rng(0)
    validation = pd.DataFrame({"TX_DATETIME": days, "CUSTOMER_ID": np.tile(np.arange(300), 7),
                               "TX_FRAUD": (rng.random(len(days)) < 0.05).astype(int)})
    scores = np.clip(validation.TX_FRAUD * 0.6 + rng.random(len(days)) * 0.5, 0, 1).to_numpy()
    chosen = choose_thresholds(validation, scores)
    review, block = chosen["review"]["value"], chosen["block"]["value"]
    assert review <= block
    flagged_per_day = pd.Series(scores >= review).groupby(validation.TX_DATETIME.dt.day).sum()
    assert flagged_per_day.median() == 100  # the median day queues exactly 100 cards (one transaction each here)
    assert validation.TX_FRAUD[scores >= block].mean() >= 0.9
    assert list(decide(np.array([0.0, review, block]), review, block)) == ["approve", "review", "block"]
