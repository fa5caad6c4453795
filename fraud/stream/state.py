"""Per-card and per-terminal state of the decision query: one micro-batch of one shard, without Spark.

A shard's state maps each key (a card or terminal id, as text) to its history:
the transactions its features read back, as one compact binary record per key
(``encode`` / ``decode``). A micro-batch reads the histories of the keys it
touches, and only those; computes the features of its new transactions with the
single-process twin (``fraud.features_pandas``), every key alone; and hands back
the updated histories. Nothing else in the state is read or written, and a key's
history is never re-sorted (new transactions are inserted in place), so a batch
costs what its own transactions and their keys' bounded histories cost, however
many keys the state holds.

Order. Transactions are scored on arrival: a new transaction's features read the
key's history plus the batch's transactions before it in (event time, arrival)
order. Everything in the history arrived before the batch; within the batch,
arrival order is Kafka timestamp, then transaction id (``fraud.features.id_order``), then Kafka position
(``ARRIVAL``); for a card, whose records share one partition of the raw topic
(keyed by customer), it is the order they were sent. A transaction delivered late
(after others of its key with later event times) is put in its place among what
has arrived and scored with that; those already scored are not scored again.
In-order delivery gives exactly the batch features (``fraud.features``).

Cards keep, per transaction, the event time, a 64-bit hash of the id, the amount
and whether the amount was above ``HIGH_RATIO`` times its baseline (so 60 days of
history serve the 14-day count of such amounts). A transaction whose id its
card's shard decided before (``repeated_ids``: remembered for ``stream.duplicate_days``,
longer than any look-back) or that came earlier in the batch is sent again: with the
same event time it is dropped, not scored again; with another it is a dead letter
(another transaction under a used id). A card's history also drops a repeat of an
(event time, id) it holds. Terminals keep the event time, id
hash and fraud label (NaN until known), plus labels that arrived before their
transaction (pending). History older than the key's newest transaction minus the
look-back is dropped.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np
import pandas as pd

from fraud.features import BASELINE_DAYS, CUSTOMER_FEATURES, DAY_US, TERMINAL_FEATURES, id_order, terminal_history_days
from fraud.features_pandas import KEY_TIME, customer_features, terminal_features

CARD, TERMINAL = "card", "terminal"
CARD_HISTORY = np.dtype([("time", "<i8"), ("id", "<i8"), ("amount", "<f8"), ("high", "u1")])  # 25 bytes
TERMINAL_HISTORY = np.dtype([("time", "<i8"), ("id", "<i8"), ("fraud", "<f4")])  # 20 bytes; NaN: unknown
PENDING_LABELS = np.dtype([("id", "<i8"), ("time", "<i8"), ("fraud", "<f4")])
HISTORY = {CARD: CARD_HISTORY, TERMINAL: TERMINAL_HISTORY}
FEATURES = {CARD: CUSTOMER_FEATURES, TERMINAL: TERMINAL_FEATURES}
# the columns a shard's rows come with (pandas dtypes after Arrow): the key as text, a 64-bit hash of the transaction
# id, event time in µs, amount, label (NaN on a transaction), is_label, and the arrival order within the batch
ARRIVAL = ["kafka_ms", "transaction_id", "kafka_partition", "kafka_offset"]
ROW_COLUMNS = ["key", "id_hash", "event_us", "tx_amount", "tx_fraud", "is_label", *ARRIVAL]
_HEADER = 16  # two int64 counts: history records, pending labels
_EMPTY = np.zeros(2, "<i8").tobytes()


def card_reach_us() -> int:
    """History a card keeps: the baseline window's far end (the 14-day count reads stored flags)."""
    return BASELINE_DAYS[1] * DAY_US


def terminal_reach_us(delay_days: int) -> int:
    """History a terminal keeps: its longest label window, shifted by the label delay."""
    return terminal_history_days(delay_days) * DAY_US


def encode(history: np.ndarray, pending: np.ndarray | None = None) -> bytes:
    """A key's history (and pending labels) as one byte string: two int64 counts, then the records."""
    pending = np.zeros(0, PENDING_LABELS) if pending is None else pending
    return np.array([len(history), len(pending)], "<i8").tobytes() + history.tobytes() + pending.tobytes()


def decode(blob: bytes, route: str) -> tuple[np.ndarray, np.ndarray]:
    """``encode``'s inverse: (history records, pending labels)."""
    count, pending = np.frombuffer(blob, "<i8", 2)
    dtype = HISTORY[route]
    history = np.frombuffer(blob, dtype, int(count), _HEADER)
    return history, np.frombuffer(blob, PENDING_LABELS, int(pending), _HEADER + int(count) * dtype.itemsize)


@dataclass(frozen=True)
class KeyUpdate:
    """A key's new state: the encoded history, its newest event time (µs) and its number of records."""
    blob: bytes
    newest_us: int
    records: int


@dataclass(frozen=True)
class ShardOutcome:
    """What one micro-batch of one shard produced.

    features: one row per transaction scored (the input's index), the route's features as doubles;
    updates: the new state of every key the batch touched.
    """
    features: pd.DataFrame
    updates: dict[str, KeyUpdate]


def arrival_rank(rows: pd.DataFrame) -> np.ndarray:
    """Each row's place in the batch's arrival order (``ARRIVAL``; transaction ids in ``id_order``)."""
    rank = np.empty(len(rows), np.int64)
    arrival = rows[ARRIVAL].reset_index(drop=True).assign(transaction_id=id_order(rows["transaction_id"].to_numpy()))
    rank[arrival.sort_values(ARRIVAL, kind="stable").index.to_numpy()] = np.arange(len(rows))
    return rank


def repeated_ids(rows: pd.DataFrame, decided: Mapping[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Which of a card shard's transactions repeat a transaction id: one decided in an earlier micro-batch
    (``decided``: id hash -> event time in µs) or arriving earlier in this one.

    ``rows``: ROW_COLUMNS (transactions only). Returns two boolean arrays in ``rows`` order: the repeats, and among
    them the conflicts, whose event time differs from the first's (another transaction under a used id: a dead
    letter). A repeat with the same event time is the same transaction sent again: dropped, never decided twice.
    """
    ids, times = rows["id_hash"].to_numpy(), rows["event_us"].to_numpy()
    order = np.argsort(arrival_rank(rows), kind="stable")
    first = np.zeros(len(rows), bool)
    first[order[~pd.Series(ids[order]).duplicated().to_numpy()]] = True
    earlier = pd.Series(times[first], index=ids[first])
    if decided:
        known = pd.Series(decided, dtype=np.int64)
        earlier = pd.concat([known, earlier[~earlier.index.isin(known.index)]])
        first &= ~np.isin(ids, known.index.to_numpy())
    repeat = ~first
    return repeat, repeat & (earlier.reindex(ids).to_numpy() != times)


def _histories(keys: np.ndarray, stored: Mapping[str, bytes], route: str) -> tuple[np.ndarray, np.ndarray, list]:
    """(history records of ``keys`` laid end to end in key order, the key index of each, each key's pending labels
    or None). All keys are decoded at once: their record bytes are joined and read as one array."""
    blobs = [stored.get(key, _EMPTY) for key in keys]
    counts = np.frombuffer(b"".join(blob[:_HEADER] for blob in blobs), "<i8").reshape(-1, 2)
    ends = (_HEADER + counts[:, 0] * HISTORY[route].itemsize).tolist()
    history = np.frombuffer(b"".join(blob[_HEADER:end] for blob, end in zip(blobs, ends)), HISTORY[route]).copy()
    pending = [np.frombuffer(blob, PENDING_LABELS, n, end) if n else None
               for blob, n, end in zip(blobs, counts[:, 1].tolist(), ends)]
    return history, np.repeat(np.arange(len(keys)), counts[:, 0]), pending


def _pairs(owner: np.ndarray, time: np.ndarray) -> np.ndarray:
    pairs = np.empty(len(owner), KEY_TIME)
    pairs["key"], pairs["time"] = owner, time
    return pairs


def _insertion(owner: np.ndarray, time: np.ndarray, new_owner: np.ndarray, new_time: np.ndarray,
               keys: int) -> np.ndarray:
    """Where each new (owner, time), sorted, goes among the records (sorted by owner, time): after every record
    of its owner at or before its time. Most go at the end of their owner's records (searched only when not)."""
    bounds = np.searchsorted(owner, np.arange(keys + 1))
    end = bounds[new_owner + 1]
    has = end > bounds[new_owner]
    last = np.full(len(new_time), np.iinfo(np.int64).min)
    last[has] = time[end[has] - 1]
    late = new_time < last
    position = end.copy()
    if late.any():
        position[late] = np.searchsorted(_pairs(owner, time), _pairs(new_owner[late], new_time[late]), side="right")
    return position


def _merged(history: np.ndarray, owner: np.ndarray, new: np.ndarray, new_owner: np.ndarray, rank: np.ndarray,
            keys: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """History and new records in (key, time, arrival) order, without re-sorting the history: (records, owners,
    positions of the new records, in (key, time, arrival) order, and that order of the new records)."""
    order = np.lexsort((rank, new["time"], new_owner))
    position = _insertion(owner, history["time"], new_owner[order], new["time"][order], keys)
    records = np.insert(history, position, new[order])
    owners = np.insert(owner, position, new_owner[order])
    return records, owners, position + np.arange(len(order)), order


def key_updates(keys: np.ndarray, owner: np.ndarray, records: np.ndarray, pending: list[np.ndarray | None],
             reach_us: int) -> dict[str, KeyUpdate]:
    """Each key's records (sorted by owner, time) and pending labels trimmed to its newest transaction's time minus
    ``reach_us`` (a label ahead of its transaction moves nothing: the transaction may be earlier than others
    still to come), encoded. A key's ``newest_us`` (what idle keys expire by) counts its pending labels too."""
    never = np.iinfo(np.int64).min
    starts = np.searchsorted(owner, np.arange(len(keys) + 1))
    has_records = starts[1:] > starts[:-1]
    newest = np.full(len(keys), never)
    if len(records):
        newest[has_records] = np.maximum.reduceat(records["time"], starts[:-1][has_records])
    keep = records["time"] >= newest[owner] - reach_us
    kept, kept_owner = records[keep], owner[keep]
    starts = np.searchsorted(kept_owner, np.arange(len(keys) + 1)).tolist()
    raw, size = kept.tobytes(), kept.dtype.itemsize
    updates = {}
    for index, key in enumerate(keys):
        count, labels, newest_us = starts[index + 1] - starts[index], pending[index], int(newest[index])
        if labels is not None and newest_us != never:
            labels = labels[labels["time"] >= newest_us - reach_us]
        waiting, waiting_bytes = 0, b""
        if labels is not None and len(labels):
            waiting, waiting_bytes = len(labels), labels.tobytes()
            newest_us = max(newest_us, int(labels["time"].max()))
        blob = (np.array([count, waiting], "<i8").tobytes() + raw[starts[index] * size:starts[index + 1] * size]
                + waiting_bytes)
        updates[key] = KeyUpdate(blob, newest_us, count + waiting)
    return updates


def _same_as_earlier(owner: np.ndarray, time: np.ndarray, ids: np.ndarray, new_owner: np.ndarray,
                     new_time: np.ndarray, new_ids: np.ndarray, rank: np.ndarray) -> np.ndarray:
    """Which new records repeat a (key, event time, id) of the history or of an earlier arrival in the batch.

    ``owner``/``time``/``ids``: the history, sorted by (owner, time). A resend has its original's event time,
    so only the history records of the same key and instant are compared.
    """
    repeat = np.zeros(len(new_ids), bool)
    order = np.lexsort((rank, new_ids, new_time, new_owner))
    same = ((new_owner[order][1:] == new_owner[order][:-1]) & (new_time[order][1:] == new_time[order][:-1])
            & (new_ids[order][1:] == new_ids[order][:-1]))
    repeat[order[1:][same]] = True
    if len(time):
        pairs, wanted = _pairs(owner, time), _pairs(new_owner, new_time)
        lower = np.searchsorted(pairs, wanted, side="left")
        upper = np.searchsorted(pairs, wanted, side="right")
        for row in np.flatnonzero(upper > lower):
            repeat[row] |= bool((ids[lower[row]:upper[row]] == new_ids[row]).any())
    return repeat


def _in_row_order(features: dict[str, np.ndarray], names: list[str], index: pd.Index,
                  order: np.ndarray) -> pd.DataFrame:
    """Features computed for the new records in ``order`` (``_merged``), as a frame in ``index`` order."""
    return pd.DataFrame({name: features[name] for name in names}, index=index[order]).loc[index]


def card_step(rows: pd.DataFrame, stored: Mapping[str, bytes], batch_id: int) -> ShardOutcome:
    """Score a shard's new transactions against their cards' histories.

    ``rows``: ROW_COLUMNS (transactions only), keyed by card; ``stored``: blobs of
    (at least) the touched cards. Duplicates get no features row. ``batch_id`` is
    not read (the history is what came before the batch).
    """
    rank = arrival_rank(rows)
    keys, new_owner = np.unique(rows["key"].to_numpy(dtype=object), return_inverse=True)
    history, owner, pending = _histories(keys, stored, CARD)
    new = np.zeros(len(rows), CARD_HISTORY)
    new["time"], new["id"] = rows["event_us"].to_numpy(), rows["id_hash"].to_numpy()
    new["amount"] = rows["tx_amount"].to_numpy(float)
    fresh = ~_same_as_earlier(owner, history["time"], history["id"], new_owner, new["time"], new["id"], rank)
    records, owners, at, order = _merged(history, owner, new[fresh], new_owner[fresh], rank[fresh], len(keys))
    features, high = customer_features(owners, records["time"], records["amount"], at, records["high"])
    records["high"][at] = high
    return ShardOutcome(_in_row_order(features, CUSTOMER_FEATURES, rows.index[fresh], order),
                        key_updates(keys, owners, records, pending, card_reach_us()))


def _apply_labels(labels: pd.DataFrame, keys: np.ndarray, records: np.ndarray, owners: np.ndarray,
                  pending: list[np.ndarray | None]) -> None:
    """Mark the labelled transactions of ``records`` (in place; found by key, event time and id); keep the others'
    labels pending (in place). Of several labels of one transaction in a batch, the last to arrive wins."""
    if not len(labels):
        return
    labels = labels.iloc[np.argsort(arrival_rank(labels), kind="stable")].drop_duplicates(["key", "id_hash"],
                                                                                            keep="last")
    owner = np.searchsorted(keys, labels["key"].to_numpy(dtype=object))
    times, ids = labels["event_us"].to_numpy(), labels["id_hash"].to_numpy()
    frauds = labels["tx_fraud"].to_numpy(np.float32)
    pairs, wanted = _pairs(owners, records["time"]), _pairs(owner, times)
    lower, upper = np.searchsorted(pairs, wanted, side="left"), np.searchsorted(pairs, wanted, side="right")
    found = np.zeros(len(labels), bool)
    for row in np.flatnonzero(upper > lower):
        matching = lower[row] + np.flatnonzero(records["id"][lower[row]:upper[row]] == ids[row])
        records["fraud"][matching] = frauds[row]
        found[row] = len(matching) > 0
    for row in np.flatnonzero(~found):
        mine = pending[owner[row]]
        extra = np.array([(ids[row], times[row], frauds[row])], PENDING_LABELS)
        pending[owner[row]] = extra if mine is None else np.concatenate([mine[mine["id"] != ids[row]], extra])


def terminal_step(rows: pd.DataFrame, stored: Mapping[str, bytes], batch_id: int, delay_days: int) -> ShardOutcome:
    """Score a shard's new transactions against their terminals' histories, after taking in the batch's labels.

    ``rows``: ROW_COLUMNS, transactions and labels, keyed by terminal. ``batch_id`` is not read.
    """
    is_label = rows["is_label"].to_numpy(bool)
    keys, owner_rows = np.unique(rows["key"].to_numpy(dtype=object), return_inverse=True)
    history, owner, pending = _histories(keys, stored, TERMINAL)
    transactions = rows[~is_label]
    new = np.zeros(len(transactions), TERMINAL_HISTORY)
    new["time"], new["id"] = transactions["event_us"].to_numpy(), transactions["id_hash"].to_numpy()
    new["fraud"] = np.nan
    new_owner = owner_rows[~is_label]
    for owner_index in np.unique(new_owner):  # labels that came before their transaction
        waiting = pending[owner_index]
        if waiting is not None:
            mine = np.flatnonzero(new_owner == owner_index)
            index = pd.Index(waiting["id"]).get_indexer(new["id"][mine])
            new["fraud"][mine[index >= 0]] = waiting["fraud"][index[index >= 0]]
            pending[owner_index] = waiting[~np.isin(waiting["id"], new["id"][mine])]
    records, owners, at, order = _merged(history, owner, new, new_owner, arrival_rank(transactions), len(keys))
    _apply_labels(rows[is_label], keys, records, owners, pending)
    features = terminal_features(owners, records["time"], records["fraud"], delay_days, at)
    return ShardOutcome(_in_row_order(features, TERMINAL_FEATURES, transactions.index, order),
                        key_updates(keys, owners, records, pending, terminal_reach_us(delay_days)))
