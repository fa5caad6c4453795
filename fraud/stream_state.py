"""Per-card and per-terminal stream state: the stateful half of the streaming scorer, without Spark.

The stream keeps the state of the cards (route ``C``) and of the terminals
(route ``T``) in a single ``applyInPandasWithState`` operator (Spark 3.5 allows
only one per query): every transaction goes to its card and its terminal,
labels only to the terminal. Keys are grouped into ``BUCKETS`` buckets per
route (key mod BUCKETS), one state each, so a micro-batch costs a few hundred
Python calls however many cards and terminals it touches, and the features of
all the keys of a bucket are computed in one vectorised pass. A bucket's state
holds, per key, the recent history (what its features read back) and a buffer
of transactions not released yet.

Release follows the Kafka ingest time: the query's watermark is the start time
of the previous micro-batch (minus ``stream.lateness``), and a buffered
transaction is released, and its features computed, once the watermark has
passed its Kafka timestamp; released transactions are sorted by (key, event
time, transaction id). Since both halves of a transaction obey the same rule
in the same micro-batch, they come out together and the job joins them by id.
A transaction that reaches Kafka after others that were produced later
(another partition, another producer) is still put in its place, as long as it
arrives within the lateness plus one micro-batch; later than that it is scored
on arrival, never dropped.

The features are computed with ``fraud.features_pandas`` over history +
released transactions, so they equal the batch features of the same history.
Labels mark the terminal history (fraud = 1/0, NaN until known); a label that
arrives before its transaction waits in the state until the transaction does.
A transaction id seen before in the bucket is dropped (a duplicate delivery).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, fields, replace

import numpy as np
import pandas as pd

from fraud.features import (DAY_US, EXTRA_FEATURES, HANDBOOK_FEATURES, NO_PREVIOUS_TX, customer_history_days,
                            terminal_history_days)
from fraud.features_pandas import customer_features, terminal_features

CUSTOMER, TERMINAL = "C", "T"
CUSTOMER_FEATURES = [f for f in [*HANDBOOK_FEATURES, *EXTRA_FEATURES] if f.startswith("CUSTOMER_ID_")]
TERMINAL_FEATURES = [f for f in [*HANDBOOK_FEATURES, *EXTRA_FEATURES] if f.startswith("TERMINAL_ID_")]
BASE_COLUMNS = ["transaction_id", "event_us", "customer_id", "terminal_id", "tx_amount", "kafka_us"]

# rows into the operator: transactions (tx_fraud null) and labels (tx_fraud 0 or 1)
INPUT_COLUMNS = ["route", "bucket", "key", *BASE_COLUMNS, "tx_fraud", "arrival_us"]
# rows out, all doubles (one block: cheap to hand back to Spark; ids are exact below 2**53, which the
# validation enforces): a card half (base columns + card features) or a terminal half (transaction_id +
# terminal features, the base columns null)
OUTPUT_COLUMNS = [*BASE_COLUMNS, *CUSTOMER_FEATURES, *TERMINAL_FEATURES]
OUTPUT_SCHEMA = ", ".join(f"{name} double" for name in OUTPUT_COLUMNS)
_OUTPUT_INDEX = {name: i for i, name in enumerate(OUTPUT_COLUMNS)}


# pyspark's applyInPandasWithState serializer concatenates the frames ``advance`` returns; the terminal
# halves' all-null base columns make pandas print this deprecation notice in every micro-batch
warnings.filterwarnings("ignore", message="The behavior of DataFrame concatenation with empty or all-NA",
                        category=FutureWarning)

BUCKETS = 64  # per route; fixed for the life of a checkpoint (it decides which state holds a key)


@dataclass(frozen=True)
class KeyState:
    """A bucket's state as parallel arrays (stored as one row of byte strings: cheap to hand to Spark).

    history: released transactions within each key's look-back; ``h_value`` is the amount
    (card) or the fraud label (terminal, NaN = unknown).
    buffer: received, not yet released; ``b_other`` is the terminal (card state), ``b_release`` the
    Kafka time (or the arrival time if earlier: a producer clock running ahead) the watermark must pass.
    pending labels: labels whose transaction is not in the history yet.
    """
    h_key: np.ndarray
    h_id: np.ndarray
    h_time: np.ndarray
    h_value: np.ndarray
    b_key: np.ndarray
    b_id: np.ndarray
    b_time: np.ndarray
    b_amount: np.ndarray
    b_other: np.ndarray
    b_kafka: np.ndarray
    b_release: np.ndarray
    p_id: np.ndarray
    p_time: np.ndarray
    p_fraud: np.ndarray

    @classmethod
    def empty(cls) -> "KeyState":
        return cls(**{f.name: np.array([], dtype=_dtype(f.name)) for f in fields(cls)})

    @classmethod
    def from_row(cls, row: tuple) -> "KeyState":
        return cls(**{f.name: np.frombuffer(value, dtype=_dtype(f.name)) for f, value in zip(fields(cls), row)})

    def to_row(self) -> tuple:
        return tuple(np.ascontiguousarray(getattr(self, f.name), dtype=_dtype(f.name)).tobytes()
                     for f in fields(self))

    @property
    def buffered(self) -> int:
        return len(self.b_id)

    @property
    def is_empty(self) -> bool:
        return not (len(self.h_id) or len(self.b_id) or len(self.p_id))


STATE_SCHEMA = ", ".join(f"{f.name} binary" for f in fields(KeyState))


def _dtype(name: str):
    return np.float64 if name in ("h_value", "b_amount", "p_fraud") else np.int64


def history_us(route: str, delay_days: int) -> int:
    days = customer_history_days() if route == CUSTOMER else terminal_history_days(delay_days)
    return days * DAY_US


def advance(route: str, state: KeyState, rows: pd.DataFrame, watermark_us: int,
            delay_days: int = 7) -> tuple[KeyState, pd.DataFrame]:
    """Take in ``rows`` (INPUT_COLUMNS) of a bucket's cards or terminals, release what the watermark allows;
    returns the new state and the released transactions' halves (OUTPUT_COLUMNS)."""
    column = {name: rows[name].to_numpy() for name in INPUT_COLUMNS[2:]}
    is_tx = np.isnan(column["tx_fraud"].astype(np.float64))
    keys, ids, kafka, times, arrival = (column[name][is_tx].astype(np.int64)
                                        for name in ("key", "transaction_id", "kafka_us", "event_us", "arrival_us"))
    order = np.lexsort((times, kafka, ids))  # of the copies of an id, the first to reach Kafka is kept
    first = order[np.r_[True, ids[order][1:] != ids[order][:-1]]] if len(order) else order
    new = first[~np.isin(ids[first], np.concatenate([state.h_id, state.b_id]))]
    other = column["terminal_id" if route == CUSTOMER else "customer_id"][is_tx].astype(np.int64)
    state = replace(
        state, b_key=np.concatenate([state.b_key, keys[new]]),
        b_id=np.concatenate([state.b_id, ids[new]]), b_time=np.concatenate([state.b_time, times[new]]),
        b_amount=np.concatenate([state.b_amount, column["tx_amount"][is_tx].astype(np.float64)[new]]),
        b_other=np.concatenate([state.b_other, other[new]]), b_kafka=np.concatenate([state.b_kafka, kafka[new]]),
        b_release=np.concatenate([state.b_release, np.minimum(kafka, arrival)[new]]))
    is_label = ~is_tx
    if is_label.any():
        state = _take_labels(state, column["transaction_id"][is_label].astype(np.int64),
                             column["event_us"][is_label].astype(np.int64),
                             column["tx_fraud"][is_label].astype(np.float64))
    return _release(route, state, watermark_us, delay_days)


def _take_labels(state: KeyState, ids: np.ndarray, times: np.ndarray, frauds: np.ndarray) -> KeyState:
    """Mark known transactions; keep the others' labels pending (the last label of an id wins)."""
    last = len(ids) - 1 - np.unique(ids[::-1], return_index=True)[1]
    ids, times, frauds = ids[last], times[last], frauds[last]
    known = np.isin(ids, state.h_id)
    h_value = state.h_value.copy()
    h_value[_positions(state.h_id, ids[known])] = frauds[known]
    keep = ~np.isin(state.p_id, ids)
    return replace(state, h_value=h_value,
                   p_id=np.concatenate([state.p_id[keep], ids[~known]]),
                   p_time=np.concatenate([state.p_time[keep], times[~known]]),
                   p_fraud=np.concatenate([state.p_fraud[keep], frauds[~known]]))


def _positions(haystack: np.ndarray, needles: np.ndarray) -> np.ndarray:
    """Indices in ``haystack`` (unique values) of ``needles`` (all present)."""
    sorter = np.argsort(haystack)
    return sorter[np.searchsorted(haystack, needles, sorter=sorter)]


def _keyed_features(route: str, keys: np.ndarray, times: np.ndarray, values: np.ndarray, delay_days: int,
                    reach_us: int) -> dict[str, np.ndarray]:
    """The features of rows sorted by (key, time, id), every key computed alone.

    The keys are laid end to end on one time axis, each shifted past the previous one's
    reach (``reach_us``: the longest look-back), so the windows of the single-key
    functions never cross from one key into another.
    """
    starts = np.r_[True, keys[1:] != keys[:-1]]
    rank = np.cumsum(starts) - 1
    relative = times - times.min()
    stride = int(relative.max()) + reach_us + 1
    per_chunk = max(1, (1 << 62) // stride)  # keys per pass without int64 overflow (one pass in practice)
    parts = []
    for first in range(0, int(rank[-1]) + 1, per_chunk):
        rows = (rank >= first) & (rank < first + per_chunk)
        axis = (rank[rows] - first) * stride + relative[rows]
        parts.append(customer_features(axis, values[rows]) if route == CUSTOMER else
                     terminal_features(axis, np.nan_to_num(values[rows], nan=0.0), delay_days))  # unknown = 0
    features = {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}
    if route == CUSTOMER:
        features["CUSTOMER_ID_SECONDS_SINCE_PREV_TX"][starts] = NO_PREVIOUS_TX
    return features


def _release(route: str, state: KeyState, watermark_us: int, delay_days: int) -> tuple[KeyState, pd.DataFrame]:
    ready = state.b_release <= watermark_us
    if not ready.any():
        return state, pd.DataFrame(np.empty((0, len(OUTPUT_COLUMNS))), columns=OUTPUT_COLUMNS)
    order = np.lexsort((state.b_id[ready], state.b_time[ready], state.b_key[ready]))  # (key, time, id)
    new_key, new_id, new_time = (a[ready][order] for a in (state.b_key, state.b_id, state.b_time))
    if route == CUSTOMER:
        new_value = state.b_amount[ready][order]
    else:  # a label may have come first
        new_value = np.full(len(new_id), np.nan)
        waiting = np.isin(new_id, state.p_id)
        new_value[waiting] = state.p_fraud[_positions(state.p_id, new_id[waiting])]
    touched = np.isin(state.h_key, new_key)
    keys = np.concatenate([state.h_key[touched], new_key])
    ids = np.concatenate([state.h_id[touched], new_id])
    times = np.concatenate([state.h_time[touched], new_time])
    values = np.concatenate([state.h_value[touched], new_value])
    combined = np.lexsort((ids, times, keys))
    keys, ids, times, values = keys[combined], ids[combined], times[combined], values[combined]
    reach = history_us(route, delay_days)
    features = _keyed_features(route, keys, times, values, delay_days, reach)
    released = np.isin(ids, new_id)  # in (key, time, id) order, like new_id
    out = np.full((len(new_id), len(OUTPUT_COLUMNS)), np.nan)
    columns = {"transaction_id": new_id, **{name: values_[released] for name, values_ in features.items()
                                            if name in _OUTPUT_INDEX}}
    if route == CUSTOMER:
        columns.update({"event_us": new_time, "customer_id": new_key, "tx_amount": new_value,
                        "terminal_id": state.b_other[ready][order], "kafka_us": state.b_kafka[ready][order]})
    for name, values_ in columns.items():
        out[:, _OUTPUT_INDEX[name]] = values_
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    newest = np.repeat(np.maximum.reduceat(times, starts), np.diff(np.r_[starts, len(keys)]))
    keep = times >= newest - reach
    taken = np.isin(state.p_id, new_id) | (state.p_time < times.max() - reach)
    state = KeyState(h_key=np.concatenate([state.h_key[~touched], keys[keep]]),
                     h_id=np.concatenate([state.h_id[~touched], ids[keep]]),
                     h_time=np.concatenate([state.h_time[~touched], times[keep]]),
                     h_value=np.concatenate([state.h_value[~touched], values[keep]]),
                     **{f"b_{name}": getattr(state, f"b_{name}")[~ready]
                        for name in ("key", "id", "time", "amount", "other", "kafka", "release")},
                     p_id=state.p_id[~taken], p_time=state.p_time[~taken], p_fraud=state.p_fraud[~taken])
    return state, pd.DataFrame(out, columns=OUTPUT_COLUMNS)
