"""Warm start: a new deployment's card and terminal state seeded from history, so its first transactions are
scored with full features instead of an empty past.

The history is the stream's own Delta archive (``transactions_raw`` with the labels
of ``labels``) or a Parquet / CSV / Delta history in the handbook's columns
(``fraud.io``). The look-back before its newest transaction (74 days for cards,
whose high-amount flags read 60 days behind each of the last 14; the terminal
look-back for terminals) is written into the decision query's state as micro-batch
-1, which the first run of the query adopts, with the ids of the last
``stream.duplicate_days`` as decided (sent again, they are not decided twice). Only a state that has not served a
micro-batch yet is seeded.
"""
from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from fraud.config import Settings
from fraud.features import DAY_US, customer_history_days, id_order
from fraud.features_pandas import customer_features
from fraud.io import read_archive
from fraud.sources import SourceMapping, read_history
from fraud.stream.decisions import id_hash, keyed_by
from fraud.stream.queries import state_folder
from fraud.stream.state import (
    CARD,
    CARD_HISTORY,
    TERMINAL,
    TERMINAL_HISTORY,
    card_reach_us,
    key_updates,
    terminal_reach_us,
)
from fraud.stream.store import StateMismatchError, shard_batch, shard_path, state_size

log = logging.getLogger(__name__)
SEED_BATCH = -1


def _seed(frames: Iterator[pd.DataFrame], *, route: str, folder: str, shards: int,
          delay_days: int, duplicate_days: int) -> Iterator[pd.DataFrame]:
    """mapInPandas body: every key of a partition's history rows into its shard's state (micro-batch -1), and
    for cards the ids of the last ``duplicate_days`` as decided."""
    nonempty = [frame for frame in frames if len(frame)]
    if not nonempty:
        return
    rows = pd.concat(nonempty, ignore_index=True)
    for shard, part in rows.groupby("shard"):
        part = part.iloc[np.lexsort((id_order(part["TRANSACTION_ID"].to_numpy()), part["event_us"].to_numpy(),
                                     part["key"].to_numpy(dtype=object)))]
        keys, owner = np.unique(part["key"].to_numpy(dtype=object), return_inverse=True)
        order = np.lexsort((np.arange(len(part)), part["event_us"].to_numpy(), owner))
        owner, part = owner[order], part.iloc[order]
        if route == CARD:
            records = np.zeros(len(part), CARD_HISTORY)
            records["amount"] = part["TX_AMOUNT"].to_numpy(float)
            records["time"] = part["event_us"].to_numpy()
            _, records["high"] = customer_features(owner, records["time"], records["amount"])
            reach = card_reach_us()
        else:
            records = np.zeros(len(part), TERMINAL_HISTORY)
            records["fraud"] = part["TX_FRAUD"].to_numpy(float)
            reach = terminal_reach_us(delay_days)
        records["time"], records["id"] = part["event_us"].to_numpy(), part["id_hash"].to_numpy()
        updates = key_updates(keys, owner, records, [None] * len(keys), reach)
        with shard_batch(shard_path(Path(folder), route, int(shard)), None, SEED_BATCH, shards) as store:
            store.get(list(updates))
            store.put(updates)
            newest = store.newest_seen(int(records["time"].max()))
            if route == CARD:
                recent = records["time"] >= newest - duplicate_days * DAY_US
                store.decide(records["id"][recent].tolist(), records["time"][recent].tolist(), SEED_BATCH)
        yield pd.DataFrame({"route": [route], "shard": [int(shard)], "keys": [len(updates)],
                            "records": [sum(u.records for u in updates.values())]})


def warm_start(spark: SparkSession, settings: Settings, history: str | Path | None = None,
               source: SourceMapping | None = None) -> dict[str, object]:
    """Seed the decision query's state from ``history`` (a Parquet / CSV / Delta path, read with the source mapping
    ``source`` when given: ``fraud.sources.read_history``; None: the stream's Delta archive). Returns what was
    written: keys and records per route, the history's last event time.

    Raises StateMismatchError when the state already served a micro-batch, fraud.io.InputError for a history
    that cannot be read.
    """
    folder = state_folder(settings)
    if state_size(folder).keys or any(folder.glob("*.sqlite")):
        raise StateMismatchError(f"{folder} already holds state: a warm start seeds a new deployment only (remove "
                                 f"{folder} and the checkpoints under {settings.checkpoint_dir} to start over)")
    transactions = read_history(spark, history, source) if history else read_archive(spark, settings)
    last = transactions.agg(F.max("TX_DATETIME")).first()
    assert last is not None  # an aggregate without grouping has one row
    end = last[0]
    if end is None:
        raise StateMismatchError(f"{history or settings.raw_table}: the history is empty, nothing to seed")
    conf = settings.stream
    days = max(customer_history_days(), conf.duplicate_days)
    since = F.lit(end).cast("timestamp") - F.expr(f"INTERVAL {days} DAYS")
    rows = transactions.where(F.col("TX_DATETIME").cast("timestamp") > since).select(
        "TRANSACTION_ID", "CUSTOMER_ID", "TERMINAL_ID", "TX_AMOUNT", F.col("TX_FRAUD").cast("double"),
        F.unix_micros(F.col("TX_DATETIME").cast("timestamp")).alias("event_us"),
        id_hash(F.col("TRANSACTION_ID")).alias("id_hash"))
    written = []
    for route, key in ((CARD, "CUSTOMER_ID"), (TERMINAL, "TERMINAL_ID")):
        keyed = keyed_by(rows, key, conf.state_shards)
        seed = functools.partial(_seed, route=route, folder=str(folder), shards=conf.state_shards,
                                 delay_days=conf.delay_days, duplicate_days=conf.duplicate_days)
        written += keyed.mapInPandas(seed, "route string, shard int, keys long, records long").collect()
    report: dict[str, object] = {
        route: {"keys": sum(r.keys for r in written if r.route == route),
                "records": sum(r.records for r in written if r.route == route)} for route in (CARD, TERMINAL)}
    report["history_end"] = str(end)
    log.info("warm start: %s", report)
    return report
