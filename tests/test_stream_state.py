"""The decision query's state, micro-batch by micro-batch without Spark or Kafka, against the batch features."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fraud.features import (
    CUSTOMER_FEATURES,
    DAY_US,
    EXTRA_FEATURES,
    HANDBOOK_FEATURES,
    LABEL_DELAY_DAYS,
    TERMINAL_FEATURES,
)
from fraud.features_pandas import add_all_features_pandas
from fraud.stream.state import (
    CARD,
    ROW_COLUMNS,
    TERMINAL,
    card_reach_us,
    card_step,
    decode,
    repeated_ids,
    terminal_step,
)
from fraud.testing.data import random_transactions

DELAY_DAYS = LABEL_DELAY_DAYS
STREAM_FEATURES = [f for f in [*HANDBOOK_FEATURES, *EXTRA_FEATURES] if not f.startswith("TX_DURING")]
SHARDS = 3


def shard_rows(transactions: pd.DataFrame, label_delay_days: float | None = DELAY_DAYS) -> pd.DataFrame:
    """The records as the decision query hands them to the state: each transaction (Kafka time = event time), and
    its label when ``label_delay_days`` have passed (None: no labels); ROW_COLUMNS plus customer and terminal."""
    event_us = transactions.TX_DATETIME.to_numpy("datetime64[us]").view("int64")
    base = pd.DataFrame({"id_hash": transactions.TRANSACTION_ID.to_numpy() * 7919 + 13, "event_us": event_us,
                         "tx_amount": transactions.TX_AMOUNT.to_numpy(float), "tx_fraud": np.nan, "is_label": False,
                         "kafka_ms": event_us // 1000, "transaction_id": transactions.TRANSACTION_ID.to_numpy(),
                         "kafka_partition": 0, "kafka_offset": 0,
                         "customer_id": transactions.CUSTOMER_ID.to_numpy(),
                         "terminal_id": transactions.TERMINAL_ID.to_numpy()})
    if label_delay_days is None:
        return base
    known = (event_us + label_delay_days * DAY_US).astype(np.int64)
    labels = base.assign(is_label=True, kafka_ms=known // 1000, tx_fraud=transactions.TX_FRAUD.to_numpy(float))
    return pd.concat([base, labels], ignore_index=True)


class Shards:
    """The store as the state steps see it (key -> encoded history), one dict per route and shard."""

    def __init__(self):
        self.stored: dict[tuple[str, int], dict[str, bytes]] = {}

    def step(self, route: str, rows: pd.DataFrame, batch_id: int) -> pd.DataFrame:
        """One micro-batch of one route: every shard's rows through its step; the scored rows with features."""
        scored = []
        for shard, part in rows.groupby(rows["key"].map(hash) % SHARDS):
            stored = self.stored.setdefault((route, shard), {})
            if route == CARD:
                outcome = card_step(part, stored, batch_id)
            else:
                outcome = terminal_step(part, stored, batch_id, DELAY_DAYS)
            stored.update({key: update.blob for key, update in outcome.updates.items()})
            scored.append(part.loc[outcome.features.index].join(outcome.features))
        return pd.concat(scored) if scored else rows.iloc[:0]


def run_batches(rows: pd.DataFrame, batch_of: np.ndarray, shards: Shards | None = None) -> pd.DataFrame:
    """Feed ``rows`` micro-batch by micro-batch (``batch_of``), card stage then terminal stage, like the query;
    returns the scored transactions with every feature, indexed by transaction id."""
    shards = shards or Shards()
    out = []
    for batch in np.unique(batch_of):
        arrived = rows[batch_of == batch].reset_index(drop=True)
        transactions = arrived[~arrived.is_label]
        cards = shards.step(CARD, transactions.assign(key=transactions.customer_id.astype(str)), int(batch))
        labels = arrived[arrived.is_label]
        both = pd.concat([cards, labels], ignore_index=True)
        terminals = shards.step(TERMINAL, both.assign(key=both.terminal_id.astype(str)), int(batch))
        out.append(terminals)
    scored = pd.concat(out, ignore_index=True)
    assert scored.transaction_id.is_unique, "a transaction was scored twice"
    return scored.set_index("transaction_id")


def by_kafka_time(rows: pd.DataFrame, batches: int, seed: int) -> np.ndarray:
    cuts = np.sort(np.random.default_rng(seed).choice(np.unique(rows.kafka_ms), batches - 1, replace=False))
    return np.searchsorted(cuts, rows.kafka_ms.to_numpy(), side="left")


def assert_same_features(stream: pd.DataFrame, expected: pd.DataFrame, atol: float = 1e-9) -> None:
    assert sorted(stream.index) == sorted(expected.index)
    stream = stream.loc[expected.index]
    assert (stream.customer_id.to_numpy() == expected.CUSTOMER_ID.to_numpy()).all()
    np.testing.assert_allclose(stream[STREAM_FEATURES].to_numpy(float), expected[STREAM_FEATURES].to_numpy(float),
                               rtol=1e-12, atol=atol)


@pytest.fixture(scope="module")
def transactions() -> pd.DataFrame:
    return random_transactions(n=3000, days=100).sort_values("TRANSACTION_ID", ignore_index=True)


@pytest.fixture(scope="module")
def expected(transactions) -> pd.DataFrame:
    return add_all_features_pandas(transactions, DELAY_DAYS).set_index("TRANSACTION_ID")


def test_in_order_micro_batches_give_the_batch_features(transactions, expected):
    rows = shard_rows(transactions)
    assert set(ROW_COLUMNS) - {"key"} <= set(rows.columns)  # the key is set per route
    assert_same_features(run_batches(rows, by_kafka_time(rows, 40, seed=1)), expected)


def test_one_micro_batch_or_many_give_the_same_features(transactions, expected):
    rows = shard_rows(transactions)
    assert_same_features(run_batches(rows, np.zeros(len(rows), int)), expected)
    assert_same_features(run_batches(rows, by_kafka_time(rows, 400, seed=2)), expected)


def test_a_duplicate_delivery_is_scored_once_with_the_first_copys_features(transactions, expected):
    rows = shard_rows(transactions)
    batch_of = by_kafka_time(rows, 40, seed=3)
    again = (np.random.default_rng(4).random(len(rows)) < 0.03) & ~rows.is_label.to_numpy()
    repeated = rows[again].assign(kafka_offset=1)  # the same record sent again, later in the same partition
    rows, batch_of = pd.concat([rows, repeated], ignore_index=True), np.concatenate([batch_of, batch_of[again] + 2])
    assert_same_features(run_batches(rows, batch_of), expected)


def test_a_used_transaction_id_is_a_resend_at_the_same_event_time_and_a_conflict_at_another():
    # arrival order: Kafka time, then id, then position; event times in µs
    rows = pd.DataFrame({"id_hash": [7, 8, 7, 9, 8, 5], "event_us": [100, 200, 100, 300, 999, 50],
                         "kafka_ms": [1, 1, 2, 2, 3, 0], "transaction_id": [7, 8, 7, 9, 8, 5],
                         "kafka_partition": 0, "kafka_offset": [0, 1, 2, 3, 4, 5]})
    repeat, conflict = repeated_ids(rows, decided={5: 50, 9: 301})
    # 7 twice (same time): the second is a resend; 8 again at another time: a conflict; 9 was decided at another
    # time in an earlier batch: a conflict; 5 was decided at the same time: a resend
    assert repeat.tolist() == [False, False, True, True, True, True]
    assert conflict.tolist() == [False, False, False, True, True, False]
    none, _ = repeated_ids(rows.iloc[[0, 1]], decided={})
    assert not none.any()


def test_a_key_depends_on_its_own_history_only():
    """Extreme amounts on some cards (1e22, 1e-300, 0) must not change other cards' features, in the same shard
    and micro-batch or not; nor the card's own features once the extreme amount has left its windows."""
    rng = np.random.default_rng(5)
    n = 4000
    ordinary = pd.DataFrame({
        "TRANSACTION_ID": np.arange(n), "CUSTOMER_ID": rng.integers(0, 200, n), "TERMINAL_ID": rng.integers(0, 50, n),
        "TX_DATETIME": pd.Timestamp("2026-01-01") + pd.to_timedelta(np.sort(rng.integers(0, 90 * 86400, n)), "s"),
        "TX_AMOUNT": rng.gamma(2.0, 30.0, n).round(2), "TX_FRAUD": (rng.random(n) < 0.05).astype(int)})
    extreme = ordinary.sample(60, random_state=6).assign(
        TRANSACTION_ID=lambda f: np.arange(n, n + len(f)), TX_AMOUNT=np.tile([1e22, 1e-300, 0.0, 3e15], 15))
    everything = pd.concat([ordinary, extreme]).sort_values(["TX_DATETIME", "TRANSACTION_ID"], ignore_index=True)
    rows = shard_rows(everything)
    streamed = run_batches(rows, by_kafka_time(rows, 30, seed=7))
    # each ordinary card computed alone, in a frame with nothing else in it
    clean_cards = sorted(set(ordinary.CUSTOMER_ID) - set(extreme.CUSTOMER_ID))
    alone = pd.concat([add_all_features_pandas(everything[everything.CUSTOMER_ID == card], DELAY_DAYS)
                       for card in clean_cards]).set_index("TRANSACTION_ID")
    assert len(alone) > 2000
    np.testing.assert_allclose(streamed.loc[alone.index, CUSTOMER_FEATURES].to_numpy(float),
                               alone[CUSTOMER_FEATURES].to_numpy(float), rtol=1e-12, atol=1e-9)
    # every row, extreme cards included, equals the batch features of the whole frame
    assert_same_features(streamed, add_all_features_pandas(everything, DELAY_DAYS).set_index("TRANSACTION_ID"))


def test_the_reported_contamination_case_is_gone():
    """Issue 12's reproduction: card 9000042 spends 1e22, then card 9000106 (same key mod 64) spends 10, 20, 60."""
    rows = pd.DataFrame({"TRANSACTION_ID": [1, 2, 3, 4], "CUSTOMER_ID": [9000042, 9000106, 9000106, 9000106],
                         "TERMINAL_ID": [1, 2, 3, 4], "TX_AMOUNT": [1e22, 10.0, 20.0, 60.0], "TX_FRAUD": 0,
                         "TX_DATETIME": pd.to_datetime(["2026-01-09 10:00", "2026-01-09 10:05", "2026-01-09 10:10",
                                                        "2026-01-09 10:15"])})
    streamed = run_batches(shard_rows(rows, None), np.zeros(4, int)).loc[[2, 3, 4]]
    for w in (1, 7, 30):
        assert list(streamed[f"CUSTOMER_ID_AVG_AMOUNT_{w}DAY_WINDOW"]) == [10.0, 15.0, 30.0]
    zscores = streamed["CUSTOMER_ID_AMOUNT_ZSCORE_30DAY"].to_numpy()
    third = 30 / (np.sqrt(((10 - 30) ** 2 + (20 - 30) ** 2 + 30 ** 2) / 3) + 1)
    np.testing.assert_allclose(zscores, [0.0, 5 / 6, third])
    assert round(zscores[1], 2) == 0.83 and round(zscores[2], 2) == 1.33


def test_a_late_transaction_is_scored_with_what_has_arrived_and_changes_no_earlier_score():
    """Out of order: a card's transaction of 10:00 arrives after its 10:05 one. It is scored in its place among
    what has arrived (it sees nothing after it); 10:05, already scored, keeps its score."""
    rows = pd.DataFrame({"TRANSACTION_ID": [1, 2, 3], "CUSTOMER_ID": 5, "TERMINAL_ID": 9,
                         "TX_AMOUNT": [100.0, 40.0, 10.0], "TX_FRAUD": 0,
                         "TX_DATETIME": pd.to_datetime(["2026-01-09 09:00", "2026-01-09 10:00", "2026-01-09 10:05"])})
    arrivals = shard_rows(rows, None)
    streamed = run_batches(arrivals, np.array([0, 2, 1]))  # id 2 (10:00) arrives last
    assert streamed.loc[3, "CUSTOMER_ID_NB_TX_1DAY_WINDOW"] == 2  # scored before 10:00 arrived: 09:00 and itself
    assert streamed.loc[2, "CUSTOMER_ID_NB_TX_1DAY_WINDOW"] == 2  # 09:00 and itself, not the later 10:05
    assert streamed.loc[2, "CUSTOMER_ID_SECONDS_SINCE_PREV_TX"] == 3600
    assert streamed.loc[2, "CUSTOMER_ID_AVG_AMOUNT_1DAY_WINDOW"] == 70.0


def test_a_label_before_its_transaction_waits_in_the_state():
    shards = Shards()
    rows = shard_rows(pd.DataFrame({"TRANSACTION_ID": [1], "CUSTOMER_ID": [5], "TERMINAL_ID": [9],
                                    "TX_AMOUNT": [10.0], "TX_FRAUD": [1], "TX_DATETIME": [pd.Timestamp("2026-01-01")]}))
    label, transaction = rows[rows.is_label], rows[~rows.is_label]
    shards.step(TERMINAL, label.assign(key="9"), 0)
    history, pending = decode(shards.stored[TERMINAL, hash("9") % SHARDS]["9"], TERMINAL)
    assert len(history) == 0 and list(pending["fraud"]) == [1.0]
    run_batches(transaction, np.array([1]), shards)
    history, pending = decode(shards.stored[TERMINAL, hash("9") % SHARDS]["9"], TERMINAL)
    assert list(history["fraud"]) == [1.0] and len(pending) == 0


def test_history_is_trimmed_to_what_the_features_read():
    rows = shard_rows(pd.DataFrame({"TRANSACTION_ID": [0, 1, 2], "CUSTOMER_ID": 1, "TERMINAL_ID": 2, "TX_AMOUNT": 5.0,
                                    "TX_FRAUD": 0, "TX_DATETIME": pd.Timestamp("2026-01-01")
                                    + pd.to_timedelta([0, 10, 100], "D")}), None)
    shards = Shards()
    run_batches(rows, np.array([0, 1, 2]), shards)
    history, _ = decode(shards.stored[CARD, hash("1") % SHARDS]["1"], CARD)
    assert list(history["id"]) == [2 * 7919 + 13]  # 60 days back from day 100: days 0 and 10 are gone
    assert card_reach_us() == 60 * DAY_US
    assert len(CUSTOMER_FEATURES) + len(TERMINAL_FEATURES) == len(STREAM_FEATURES)


def test_labels_ahead_of_their_transactions_trim_nothing_the_features_still_read():
    """The labels of the last 60 transactions arrive one micro-batch before them (a label feed ahead of the
    transactions): each terminal's older history must stay until those transactions come."""
    rng = np.random.default_rng(8)
    n = 600
    transactions = pd.DataFrame({
        "TRANSACTION_ID": np.arange(n), "CUSTOMER_ID": rng.integers(0, 40, n), "TERMINAL_ID": rng.integers(0, 6, n),
        "TX_DATETIME": pd.Timestamp("2026-01-01") + pd.to_timedelta(np.sort(rng.integers(0, 80 * 86400, n)), "s"),
        "TX_AMOUNT": 10.0, "TX_FRAUD": (rng.random(n) < 0.2).astype(int)})
    rows = shard_rows(transactions)
    batch_of = by_kafka_time(rows, 20, seed=9) * 2
    last = (rows.transaction_id >= n - 60).to_numpy()
    batch_of[last & rows.is_label.to_numpy()] = batch_of.max() + 1
    batch_of[last & ~rows.is_label.to_numpy()] = batch_of.max() + 1
    assert_same_features(run_batches(rows, batch_of),
                         add_all_features_pandas(transactions, DELAY_DAYS).set_index("TRANSACTION_ID"))


def test_a_year_one_transaction_beside_todays_ones_keeps_every_window_in_its_key():
    """Times far apart (year 1 and 2026, on one card and on others) cannot share one int64 axis: the windows are
    then searched as (key, time) pairs, with the same values."""
    rows = pd.DataFrame({"TRANSACTION_ID": [1, 2, 3, 4], "CUSTOMER_ID": [5, 5, 6, 6], "TERMINAL_ID": [9, 9, 9, 8],
                         "TX_AMOUNT": [1e6, 10.0, 20.0, 30.0], "TX_FRAUD": 0,
                         "TX_DATETIME": np.array(["0001-01-01", "2026-01-09T10:00", "2026-01-09T10:05",
                                                  "2026-01-09T10:06"], dtype="datetime64[us]")})
    streamed = run_batches(shard_rows(rows, None), np.array([0, 1, 1, 2]))
    assert list(streamed.loc[[2, 3, 4], "CUSTOMER_ID_AVG_AMOUNT_30DAY_WINDOW"]) == [10.0, 20.0, 25.0]
    assert list(streamed.loc[[2, 3, 4], "CUSTOMER_ID_NB_TX_1DAY_WINDOW"]) == [1, 1, 2]
    assert list(streamed.loc[[2, 3], "TERMINAL_ID_NB_TX_1HOUR_WINDOW"]) == [1, 2]
