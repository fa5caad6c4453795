"""The feature code (numpy): every feature ``fraud.features`` defines, for many keys at once.

Spark runs it over a whole history by card and by terminal (``fraud.features_spark.add_all_features``: backfill,
training), the streaming scorer over a micro-batch and its keys' state (``fraud.stream.state``), and
``add_all_features_pandas`` over one pandas frame (tests, benchmarks, notebooks).

``customer_features`` and ``terminal_features`` take the rows of many keys at
once, sorted by (key, event time, tie order), event times as int64 microseconds since the epoch, and return
one value per requested row (``at``: all rows, or only the new ones of a
micro-batch) for each feature. Every key is computed alone: windows are searched
by (key, time), and every window sum adds up the values inside its own window
only (no running total), so what another key holds, or what this key held before
the window, never changes a value (an amount of 1e22 on one card once turned
another card's averages to 0).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from fraud.features import (
    BASELINE_DAYS,
    DAY_US,
    EXTRA_FEATURES,
    FRAUD_RECENCY_DAYS,
    HANDBOOK_FEATURES,
    HIGH_RATIO,
    HOUR_US,
    LABEL_DELAY_DAYS,
    MINUTE_US,
    NO_BASELINE,
    NO_KNOWN_FRAUD,
    NO_PREVIOUS_TX,
    SECOND_US,
    TERMINAL_WINDOWS_DAYS,
    id_order,
)


def range_sums(values: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """``values[lower[i]:upper[i]].sum()`` for every i (0.0 for an empty range), each range summed on its own.

    Cost: the total length of the ranges. Unlike differences of a running sum, a
    value outside a range never costs that range its precision.
    """
    if len(lower) == 0:
        return np.zeros(0)
    bounds = np.empty(2 * len(lower), dtype=np.intp)
    bounds[0::2], bounds[1::2] = lower, upper
    sums = np.add.reduceat(np.append(values.astype(float), 0.0), bounds)[0::2]  # the padding keeps bounds in range
    return np.where(upper > lower, sums, 0.0)


KEY_TIME = np.dtype([("key", "<i8"), ("time", "<i8")])  # what rows are sorted by: (key rank, event time µs)
MAX_REACH_US = 100 * DAY_US  # beyond the longest window and lag any feature reads


def key_times(keys: np.ndarray, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For rows sorted by (key, time): (what windows are searched in, True on each key's first row).

    Searching (key, time) keeps every window inside its key, whatever the times. Usually the pairs fit one int64
    axis, each key shifted past the previous key's times plus MAX_REACH_US (fast to search); when the keys' time
    spans are too wide for that (a year-1 event beside a 2026 one), they are KEY_TIME records (10x slower).
    """
    starts = np.r_[True, keys[1:] != keys[:-1]] if len(keys) else np.zeros(0, dtype=bool)
    rank = np.cumsum(starts) - 1
    if not len(keys):
        return times.astype(np.int64), starts
    first = np.flatnonzero(starts)
    relative = times - np.repeat(times[first], np.diff(np.r_[first, len(times)]))
    stride = int(relative.max()) + MAX_REACH_US + 1
    if stride * len(first) < 1 << 62:
        return rank * stride + relative, starts
    pairs = np.empty(len(times), KEY_TIME)
    pairs["key"], pairs["time"] = rank, times
    return pairs, starts


def _earlier(pairs: np.ndarray, at: np.ndarray, by_us: int) -> np.ndarray:
    """The (key, time - by_us) of the rows ``at`` (``by_us`` <= MAX_REACH_US)."""
    if pairs.dtype != KEY_TIME:
        return pairs[at] - by_us
    moved = pairs[at]
    moved["time"] -= by_us
    return moved


def window_count_sum(pairs: np.ndarray, values: np.ndarray, span_us: int, lag_us: int = 0,
                     at: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """For each requested row i: count of the same key's rows j with time in (t_i - lag - span, t_i - lag], and
    the sum of values[j] over them.

    ``pairs``: ``key_times`` of rows sorted by (key, time); ``at``: the requested positions (default all). With
    no lag the window ends at row i itself (j <= i), the tie rule for same-instant transactions.
    """
    at = np.arange(len(pairs)) if at is None else at
    lower = np.searchsorted(pairs, _earlier(pairs, at, lag_us + span_us), side="right")
    upper = at + 1 if lag_us == 0 else np.searchsorted(pairs, _earlier(pairs, at, lag_us), side="right")
    return (upper - lower).astype(float), range_sums(values, lower, upper)


def customer_features(keys: np.ndarray, times: np.ndarray, amounts: np.ndarray, at: np.ndarray | None = None,
                      high: np.ndarray | None = None,
                      windows_days: tuple[int, ...] = (1, 7, 30)) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Cards' spending, velocity and baseline features (``fraud.features`` defines them).

    Rows sorted by (card, event time µs, tie order); ``at``: the rows to compute
    (default all). ``high``: for the rows not in ``at``, whether their amount was
    above HIGH_RATIO times their baseline (a stream's state keeps it, so the 14-day
    count needs 60 days of history, not 74). Returns the features of the ``at`` rows
    and their own ``high`` flags (0.0 / 1.0).
    """
    at = np.arange(len(times)) if at is None else at
    pairs, starts = key_times(keys, times)
    amount = amounts[at]
    features = {}
    for w in windows_days:
        count, total = window_count_sum(pairs, amounts, w * DAY_US, at=at)
        average = total / count
        features[f"CUSTOMER_ID_NB_TX_{w}DAY_WINDOW"] = count
        features[f"CUSTOMER_ID_AVG_AMOUNT_{w}DAY_WINDOW"] = average
        features[f"CUSTOMER_ID_AMOUNT_RATIO_{w}DAY"] = np.divide(amount, average, out=np.ones_like(average),
                                                                 where=average != 0)
    previous = np.maximum(at - 1, 0)
    features["CUSTOMER_ID_SECONDS_SINCE_PREV_TX"] = np.where(starts[at], NO_PREVIOUS_TX,
                                                             (times[at] - times[previous]) / SECOND_US)
    features["CUSTOMER_ID_NB_TX_10MIN_WINDOW"] = window_count_sum(pairs, amounts, 10 * MINUTE_US, at=at)[0]
    (features["CUSTOMER_ID_NB_TX_1HOUR_WINDOW"],
     features["CUSTOMER_ID_SUM_AMOUNT_1HOUR_WINDOW"]) = window_count_sum(pairs, amounts, HOUR_US, at=at)
    count_30, sum_30 = window_count_sum(pairs, amounts, 30 * DAY_US, at=at)
    mean_30, sum_squares_30 = sum_30 / count_30, window_count_sum(pairs, amounts * amounts, 30 * DAY_US, at=at)[1]
    std_30 = np.sqrt(np.maximum(sum_squares_30 / count_30 - mean_30 * mean_30, 0.0))
    features["CUSTOMER_ID_AMOUNT_ZSCORE_30DAY"] = (amount - mean_30) / (std_30 + 1)
    recent_days, oldest_days = BASELINE_DAYS
    count_baseline, sum_baseline = window_count_sum(pairs, amounts, (oldest_days - recent_days) * DAY_US,
                                                    recent_days * DAY_US, at=at)
    baseline = np.divide(sum_baseline, count_baseline, out=np.full(len(at), NO_BASELINE), where=count_baseline > 0)
    features["CUSTOMER_ID_BASELINE_AVG_AMOUNT"] = baseline
    ratio = np.divide(amount, baseline, out=np.ones(len(at)), where=(count_baseline > 0) & (baseline != 0))
    features["CUSTOMER_ID_AMOUNT_RATIO_BASELINE"] = ratio
    high_at = (ratio > HIGH_RATIO).astype(float)
    every_high = np.zeros(len(times)) if high is None else high.astype(float)  # copies
    every_high[at] = high_at
    count_14, high_14 = window_count_sum(pairs, every_high, recent_days * DAY_US, at=at)
    features["CUSTOMER_ID_NB_HIGH_RATIO_14DAY"] = high_14
    features["CUSTOMER_ID_SHARE_HIGH_RATIO_14DAY"] = high_14 / count_14
    return features, high_at


def terminal_features(keys: np.ndarray, times: np.ndarray, frauds: np.ndarray, delay_days: int = LABEL_DELAY_DAYS,
                      at: np.ndarray | None = None,
                      windows_days: tuple[int, ...] = TERMINAL_WINDOWS_DAYS) -> dict[str, np.ndarray]:
    """Terminals' delayed counts, fraud counts, risks and fraud recency, undelayed 1-hour and 1-day counts.

    Rows sorted by (terminal, event time µs, tie order); ``at``: the rows to compute
    (default all). ``frauds``: 1.0 / 0.0, NaN while unknown; labels younger than the
    delay are never read, and a label older than it that has not arrived counts as 0.

    Raises ValueError when ``delay_days`` is not positive.
    """
    if delay_days <= 0:
        raise ValueError(f"delay_days must be positive (labels are not known at once), got {delay_days}")
    at = np.arange(len(times)) if at is None else at
    pairs, _ = key_times(keys, times)
    known = np.nan_to_num(frauds.astype(float), nan=0.0)
    features = {}
    for w in windows_days:
        count, fraud_count = window_count_sum(pairs, known, w * DAY_US, delay_days * DAY_US, at=at)
        features[f"TERMINAL_ID_NB_TX_{w}DAY_WINDOW"] = count
        features[f"TERMINAL_ID_NB_FRAUD_{w}DAY_WINDOW"] = fraud_count
        features[f"TERMINAL_ID_RISK_{w}DAY_WINDOW"] = np.divide(fraud_count, count, out=np.zeros_like(count),
                                                                where=count > 0)
    # the key's known frauds in the recency window are fraud_pairs[oldest:newest]
    fraud_pairs = pairs[known == 1]
    newest = np.searchsorted(fraud_pairs, _earlier(pairs, at, delay_days * DAY_US), side="right")
    oldest = np.searchsorted(fraud_pairs, _earlier(pairs, at, (delay_days + FRAUD_RECENCY_DAYS) * DAY_US),
                             side="right")
    fraud_times = np.append(times[known == 1], 0)  # the padding keeps every index valid
    for name, position in (("FIRST", oldest), ("LAST", newest - 1)):
        features[f"TERMINAL_ID_DAYS_SINCE_{name}_FRAUD"] = np.where(
            newest > oldest, (times[at] - fraud_times[position]) / DAY_US, NO_KNOWN_FRAUD)
    features["TERMINAL_ID_NB_TX_1HOUR_WINDOW"] = window_count_sum(pairs, known, HOUR_US, at=at)[0]
    features["TERMINAL_ID_NB_TX_1DAY_CURRENT"] = window_count_sum(pairs, known, DAY_US, at=at)[0]
    return features


def _by_key(key: str, pdf: pd.DataFrame, times: np.ndarray) -> np.ndarray:
    """Row positions of ``pdf`` sorted by (key, event time, TRANSACTION_ID in ``id_order``)."""
    return np.lexsort((id_order(pdf["TRANSACTION_ID"].to_numpy()), times, pdf[key].to_numpy()))


def _in_row_order(computed: dict[str, np.ndarray], order: np.ndarray) -> dict[str, np.ndarray]:
    out = {}
    for name, values in computed.items():
        out[name] = np.empty(len(order))
        out[name][order] = values
    return out


def card_features_of(pdf: pd.DataFrame, times: np.ndarray) -> dict[str, np.ndarray]:
    """CUSTOMER_FEATURES of every row of ``pdf`` (CUSTOMER_ID, TRANSACTION_ID, TX_AMOUNT; every row of each of its
    cards), in row order; ``times``: the rows' event times, int64 µs since the epoch."""
    order = _by_key("CUSTOMER_ID", pdf, times)
    card, _ = customer_features(pdf["CUSTOMER_ID"].to_numpy()[order], times[order],
                                pdf["TX_AMOUNT"].to_numpy(float)[order])
    return _in_row_order(card, order)


def terminal_features_of(pdf: pd.DataFrame, times: np.ndarray,
                         delay_days: int = LABEL_DELAY_DAYS) -> dict[str, np.ndarray]:
    """TERMINAL_FEATURES of every row of ``pdf`` (TERMINAL_ID, TRANSACTION_ID, TX_FRAUD: 1 / 0, null while
    unknown; every row of each of its terminals), in row order; ``times`` as in ``card_features_of``.

    Raises ValueError when ``delay_days`` is not positive.
    """
    order = _by_key("TERMINAL_ID", pdf, times)
    terminal = terminal_features(pdf["TERMINAL_ID"].to_numpy()[order], times[order],
                                 pdf["TX_FRAUD"].to_numpy(float, na_value=np.nan)[order], delay_days)
    return _in_row_order(terminal, order)


def add_all_features_pandas(pdf: pd.DataFrame, delay_days: int = LABEL_DELAY_DAYS) -> pd.DataFrame:
    """The input columns followed by HANDBOOK_FEATURES and EXTRA_FEATURES, like
    ``fraud.features_spark.add_all_features``.

    Raises ValueError when ``delay_days`` is not positive.
    """
    when = pdf["TX_DATETIME"].dt
    times = pdf["TX_DATETIME"].to_numpy("datetime64[us]").view("int64")
    features = {"TX_DURING_WEEKEND": (when.dayofweek >= 5).to_numpy("int32"),  # 5 = Saturday, 6 = Sunday
                "TX_DURING_NIGHT": (when.hour <= 6).to_numpy("int32"),
                **card_features_of(pdf, times), **terminal_features_of(pdf, times, delay_days)}
    return pdf.assign(**{name: features[name] for name in [*HANDBOOK_FEATURES, *EXTRA_FEATURES]})
