"""The features of a whole transaction history in Spark (backfill, training, ``fraud features``): rows go by card,
then by terminal, to tasks that compute all their keys' features at once with the numpy implementation
(``fraud.features_pandas``); the definitions are in ``fraud.features``."""
from __future__ import annotations

import functools
from typing import Iterator

import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import DataType, DoubleType, StructField, StructType, TimestampNTZType, TimestampType

from fraud.features import CUSTOMER_FEATURES, EXTRA_FEATURES, HANDBOOK_FEATURES, LABEL_DELAY_DAYS, TERMINAL_FEATURES
from fraud.features_pandas import card_features_of, terminal_features_of


def add_calendar_features(df: DataFrame) -> DataFrame:
    """TX_DURING_WEEKEND (Saturday or Sunday) and TX_DURING_NIGHT (hour <= 6), as 0/1 ints."""
    return df.withColumns({
        "TX_DURING_WEEKEND": F.dayofweek("TX_DATETIME").isin(1, 7).cast("int"),  # 1 = Sunday, 7 = Saturday
        "TX_DURING_NIGHT": (F.hour("TX_DATETIME") <= 6).cast("int"),
    })


def _as_micros(df: DataFrame) -> tuple[DataFrame, dict[str, DataType]]:
    """``df`` with every timestamp column as int64 µs since the epoch (pandas cannot hold every instant Spark can),
    and those columns' types, to restore them."""
    times: dict[str, DataType] = {f.name: f.dataType for f in df.schema.fields
                                  if isinstance(f.dataType, (TimestampType, TimestampNTZType))}
    return df.select(*(F.unix_micros(F.col(c).cast("timestamp")).alias(c) if c in times else F.col(c)
                       for c in df.columns)), times


def _key_stage(frames: Iterator[pd.DataFrame], *, route: str, delay_days: int) -> Iterator[pd.DataFrame]:
    """mapInPandas body: every row of the partition's cards (or terminals) at once, with the route's features."""
    batch = list(frames)
    rows = pd.concat(batch, ignore_index=True) if batch else pd.DataFrame()
    if len(rows):
        times = rows["TX_DATETIME"].to_numpy("int64")
        computed, names = ((card_features_of(rows, times), CUSTOMER_FEATURES) if route == "card" else
                           (terminal_features_of(rows, times, delay_days), TERMINAL_FEATURES))
        yield rows.assign(**{name: computed[name] for name in names})


def add_all_features(df: DataFrame, delay_days: int = LABEL_DELAY_DAYS) -> DataFrame:
    """The input columns followed by HANDBOOK_FEATURES and EXTRA_FEATURES (TX_AMOUNT is already an input).

    Rows go by card, then by terminal, to ``spark.sql.shuffle.partitions`` tasks, each computing the features of all
    its keys' rows at once with the numpy implementation (``fraud.features_pandas``): a partition holds every row of
    its keys in memory.

    Raises ValueError when ``delay_days`` is not positive.
    """
    if delay_days <= 0:
        raise ValueError(f"delay_days must be positive (labels are not known at once), got {delay_days}")
    shuffle_partitions = df.sparkSession.conf.get("spark.sql.shuffle.partitions")
    assert shuffle_partitions is not None  # a SQL setting with a default: never unset
    partitions = int(shuffle_partitions)
    rows, times = _as_micros(df)
    with_cards = StructType([*rows.schema.fields, *(StructField(n, DoubleType()) for n in CUSTOMER_FEATURES)])
    with_both = StructType([*with_cards.fields, *(StructField(n, DoubleType()) for n in TERMINAL_FEATURES)])
    featured = (rows.repartition(partitions, "CUSTOMER_ID")
                .mapInPandas(functools.partial(_key_stage, route="card", delay_days=delay_days), with_cards)
                .repartition(partitions, "TERMINAL_ID")
                .mapInPandas(functools.partial(_key_stage, route="terminal", delay_days=delay_days), with_both))
    restored = featured.withColumns({c: F.timestamp_micros(c).cast(kind) for c, kind in times.items()})
    return restored.transform(add_calendar_features).select(*df.columns, *HANDBOOK_FEATURES, *EXTRA_FEATURES)
