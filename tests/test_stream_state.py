"""The stream's per-key state, driven micro-batch by micro-batch without Spark, against the batch features."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fraud.features import DAY_US, EXTRA_FEATURES, HANDBOOK_FEATURES
from fraud.features_pandas import add_all_features_pandas
from fraud.stream_state import (CUSTOMER, CUSTOMER_FEATURES, INPUT_COLUMNS, OUTPUT_COLUMNS, TERMINAL,
                                TERMINAL_FEATURES, KeyState, advance)
from test_features import _random_transactions

DELAY_DAYS = 7
STREAM_FEATURES = [f for f in [*HANDBOOK_FEATURES, *EXTRA_FEATURES] if not f.startswith("TX_DURING")]


def _operator_rows(transactions: pd.DataFrame) -> pd.DataFrame:
    """What the job feeds the operator: each transaction to its card and its terminal, each label to the
    terminal once known (Kafka time = event time + delay); Kafka time of a transaction = its event time."""
    event_us = transactions.TX_DATETIME.to_numpy("datetime64[us]").view("int64")
    base = pd.DataFrame({"transaction_id": transactions.TRANSACTION_ID.to_numpy(), "event_us": event_us,
                         "customer_id": transactions.CUSTOMER_ID.to_numpy(),
                         "terminal_id": transactions.TERMINAL_ID.to_numpy(),
                         "tx_amount": transactions.TX_AMOUNT.to_numpy(float), "kafka_us": event_us,
                         "tx_fraud": np.nan, "arrival_us": event_us})
    known = event_us + DELAY_DAYS * DAY_US
    labels = base.assign(kafka_us=known, arrival_us=known, tx_fraud=transactions.TX_FRAUD.to_numpy(float))
    rows = pd.concat([base.assign(route=CUSTOMER, key=base.customer_id),
                      base.assign(route=TERMINAL, key=base.terminal_id),
                      labels.assign(route=TERMINAL, key=labels.terminal_id)], ignore_index=True)
    return rows.assign(bucket=rows.key % 3)[INPUT_COLUMNS]  # several keys share a bucket


def _run(rows: pd.DataFrame, batch_of: np.ndarray, batches: int) -> pd.DataFrame:
    """Micro-batches as Spark runs them: each key invoked with its new rows, or alone while it has a buffer;
    the watermark passes the Kafka times of the earlier batches (the start of the previous batch)."""
    states: dict[tuple[str, int], KeyState] = {}
    watermark, released = np.iinfo(np.int64).min, []
    for batch in range(batches + 1):
        arrived = rows[batch_of == batch]
        buckets = set(zip(arrived.route, arrived.bucket)) | {k for k, s in states.items() if s.buffered}
        groups = dict(iter(arrived.groupby(["route", "bucket"])))
        for route, bucket in sorted(buckets):
            state = states.get((route, bucket), KeyState.empty())
            group = groups.get((route, bucket), arrived.iloc[:0])
            states[route, bucket], out = advance(route, KeyState.from_row(state.to_row()), group, watermark,
                                                 DELAY_DAYS)
            assert list(out.columns) == OUTPUT_COLUMNS
            assert (out.transaction_id.isna() | out.event_us.notna() == (route == CUSTOMER)).all()
            if len(out):
                released.append(out)
        if len(arrived):
            watermark = max(watermark, int(arrived.kafka_us.max()))
    assert not any(s.buffered for s in states.values()), "a transaction was never released"
    return pd.concat(released, ignore_index=True)


def _join_halves(released: pd.DataFrame) -> pd.DataFrame:
    cards = released[released.event_us.notna()].drop(columns=TERMINAL_FEATURES)
    terminals = released[released.event_us.isna()][["transaction_id", *TERMINAL_FEATURES]]
    assert cards.transaction_id.is_unique and terminals.transaction_id.is_unique
    return cards.merge(terminals, on="transaction_id", validate="one_to_one").set_index("transaction_id")


@pytest.fixture(scope="module")
def transactions() -> pd.DataFrame:
    return _random_transactions(n=3000, days=100).sort_values("TRANSACTION_ID", ignore_index=True)


@pytest.fixture(scope="module")
def expected(transactions) -> pd.DataFrame:
    return add_all_features_pandas(transactions, DELAY_DAYS).set_index("TRANSACTION_ID")


def _batches_by_kafka_time(rows: pd.DataFrame, batches: int, seed: int) -> np.ndarray:
    cuts = np.sort(np.random.default_rng(seed).choice(np.unique(rows.kafka_us), batches - 1, replace=False))
    return np.searchsorted(cuts, rows.kafka_us.to_numpy(), side="left")


def _assert_same_features(stream: pd.DataFrame, expected: pd.DataFrame) -> None:
    assert sorted(stream.index) == sorted(expected.index)
    stream = stream.loc[expected.index]
    assert (stream.customer_id.to_numpy() == expected.CUSTOMER_ID.to_numpy()).all()
    assert (stream.terminal_id.to_numpy() == expected.TERMINAL_ID.to_numpy()).all()
    np.testing.assert_allclose(stream[STREAM_FEATURES].to_numpy(float), expected[STREAM_FEATURES].to_numpy(float),
                               rtol=0, atol=1e-9)


def test_in_order_micro_batches_give_the_batch_features(transactions, expected):
    rows = _operator_rows(transactions)
    _assert_same_features(_join_halves(_run(rows, _batches_by_kafka_time(rows, 40, seed=1), 40)), expected)


def test_rows_a_batch_late_and_duplicate_deliveries_change_nothing(transactions, expected):
    rows = _operator_rows(transactions)
    batch_of = _batches_by_kafka_time(rows, 40, seed=2)
    rng = np.random.default_rng(3)
    late = rng.random(len(rows)) < 0.05  # another partition delivered them one micro-batch later
    batch_of = np.where(late, batch_of + 1, batch_of)
    again = rng.random(len(rows)) < 0.02  # the producer sent them twice
    rows, batch_of = pd.concat([rows, rows[again]], ignore_index=True), np.concatenate([batch_of, batch_of[again] + 2])
    _assert_same_features(_join_halves(_run(rows, batch_of, 43)), expected)


def test_a_label_before_its_transaction_waits_in_the_state():
    state = KeyState.empty()
    label = pd.DataFrame([{"route": TERMINAL, "bucket": 9, "key": 9, "transaction_id": 1, "event_us": 0,
                           "customer_id": 5, "terminal_id": 9, "tx_amount": 10.0, "kafka_us": 5, "tx_fraud": 1.0,
                           "arrival_us": 5}])
    state, out = advance(TERMINAL, state, label[INPUT_COLUMNS], watermark_us=0)
    assert out.empty and list(state.p_id) == [1]
    tx = label.assign(tx_fraud=np.nan, kafka_us=3, arrival_us=4)
    state, out = advance(TERMINAL, state, tx[INPUT_COLUMNS], watermark_us=10)
    assert list(out.transaction_id) == [1] and list(state.h_value) == [1.0] and len(state.p_id) == 0


def test_history_is_trimmed_to_what_the_features_read():
    rows = pd.DataFrame({"route": CUSTOMER, "bucket": 1, "key": 1, "transaction_id": np.arange(3),
                         "event_us": np.array([0, 10, 100]) * DAY_US, "customer_id": 1, "terminal_id": 2,
                         "tx_amount": 5.0, "kafka_us": np.arange(3), "tx_fraud": np.nan,
                         "arrival_us": np.arange(3)})[INPUT_COLUMNS]
    state, out = advance(CUSTOMER, KeyState.empty(), rows, watermark_us=10)
    assert len(out) == 3 and list(state.h_id) == [2]  # 74 days back from day 100: days 0 and 10 are gone
    assert len(CUSTOMER_FEATURES) + len(TERMINAL_FEATURES) == len(STREAM_FEATURES)
