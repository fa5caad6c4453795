"""Single-process (pandas / numpy) twin of ``fraud.features``: same columns, same semantics.

It is the baseline the Spark transforms are benchmarked against, and the
per-key logic a streaming job can run on its state: ``customer_features`` and
``terminal_features`` take one key's arrays sorted by (event time,
TRANSACTION_ID), event times as int64 microseconds since the epoch, and return
one value per transaction for each feature.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import pandas as pd

from fraud.features import (BASELINE_DAYS, DAY_US, EXTRA_FEATURES, FRAUD_RECENCY_DAYS, HANDBOOK_FEATURES, HIGH_RATIO,
                            HOUR_US, MINUTE_US, NO_BASELINE, NO_KNOWN_FRAUD, NO_PREVIOUS_TX, SECOND_US,
                            TERMINAL_WINDOWS_DAYS)


def window_count_sum(times: np.ndarray, values: np.ndarray, span_us: int,
                     lag_us: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """For each transaction i: count of the transactions j with times[j] in (t_i - lag - span, t_i - lag], sum of values[j].

    With no lag the window ends at i itself (j <= i), which is the tie rule for
    same-instant transactions. Sums are differences of a running sum kept in
    extended precision (80-bit on x86-64), so long histories cost no accuracy.
    """
    lower = np.searchsorted(times, times - (lag_us + span_us), side="right")
    upper = np.arange(1, len(times) + 1) if lag_us == 0 else np.searchsorted(times, times - lag_us, side="right")
    running = np.concatenate(([0], np.cumsum(values, dtype=np.longdouble)))
    return (upper - lower).astype(float), (running[upper] - running[lower]).astype(float)


def customer_features(times: np.ndarray, amounts: np.ndarray,
                      windows_days: Sequence[int] = (1, 7, 30)) -> dict[str, np.ndarray]:
    """One customer's spending and velocity features (see the Spark transforms for the definitions)."""
    features = {}
    for w in windows_days:
        count, total = window_count_sum(times, amounts, w * DAY_US)
        average = total / count
        features[f"CUSTOMER_ID_NB_TX_{w}DAY_WINDOW"] = count
        features[f"CUSTOMER_ID_AVG_AMOUNT_{w}DAY_WINDOW"] = average
        features[f"CUSTOMER_ID_AMOUNT_RATIO_{w}DAY"] = np.divide(amounts, average, out=np.ones_like(average),
                                                                 where=average != 0)
    seconds_since_previous = np.full(len(times), NO_PREVIOUS_TX)
    seconds_since_previous[1:] = np.diff(times) / SECOND_US
    features["CUSTOMER_ID_SECONDS_SINCE_PREV_TX"] = seconds_since_previous
    features["CUSTOMER_ID_NB_TX_10MIN_WINDOW"] = window_count_sum(times, amounts, 10 * MINUTE_US)[0]
    (features["CUSTOMER_ID_NB_TX_1HOUR_WINDOW"],
     features["CUSTOMER_ID_SUM_AMOUNT_1HOUR_WINDOW"]) = window_count_sum(times, amounts, HOUR_US)
    count_30, sum_30 = window_count_sum(times, amounts, 30 * DAY_US)
    mean_30, sum_squares_30 = sum_30 / count_30, window_count_sum(times, amounts * amounts, 30 * DAY_US)[1]
    std_30 = np.sqrt(np.maximum(sum_squares_30 / count_30 - mean_30 * mean_30, 0.0))
    features["CUSTOMER_ID_AMOUNT_ZSCORE_30DAY"] = (amounts - mean_30) / (std_30 + 1)
    recent_days, oldest_days = BASELINE_DAYS
    count_baseline, sum_baseline = window_count_sum(times, amounts, (oldest_days - recent_days) * DAY_US,
                                                    recent_days * DAY_US)
    baseline = np.divide(sum_baseline, count_baseline, out=np.full(len(times), NO_BASELINE), where=count_baseline > 0)
    features["CUSTOMER_ID_BASELINE_AVG_AMOUNT"] = baseline
    ratio = np.divide(amounts, baseline, out=np.ones(len(times)), where=(count_baseline > 0) & (baseline != 0))
    features["CUSTOMER_ID_AMOUNT_RATIO_BASELINE"] = ratio
    count_14, high_14 = window_count_sum(times, (ratio > HIGH_RATIO).astype(float), recent_days * DAY_US)
    features["CUSTOMER_ID_NB_HIGH_RATIO_14DAY"] = high_14
    features["CUSTOMER_ID_SHARE_HIGH_RATIO_14DAY"] = high_14 / count_14
    return features


def terminal_features(times: np.ndarray, frauds: np.ndarray, delay_days: int = 7,
                      windows_days: Sequence[int] = TERMINAL_WINDOWS_DAYS) -> dict[str, np.ndarray]:
    """One terminal's delayed counts, fraud counts, risks and fraud recency, undelayed 1-hour and 1-day counts.

    Labels younger than the delay are never read, so they may be NaN (not known yet).
    """
    if delay_days <= 0:
        raise ValueError(f"delay_days must be positive (labels are not known at once), got {delay_days}")
    features = {}
    for w in windows_days:
        count, fraud_count = window_count_sum(times, frauds, w * DAY_US, delay_days * DAY_US)
        features[f"TERMINAL_ID_NB_TX_{w}DAY_WINDOW"] = count
        features[f"TERMINAL_ID_NB_FRAUD_{w}DAY_WINDOW"] = fraud_count
        features[f"TERMINAL_ID_RISK_{w}DAY_WINDOW"] = np.divide(fraud_count, count, out=np.zeros_like(count),
                                                                where=count > 0)
    # known frauds in the recency window are fraud_times[oldest:newest]; the padding keeps every index valid
    fraud_times = np.append(times[frauds == 1], np.iinfo(np.int64).max)
    newest = np.searchsorted(fraud_times, times - delay_days * DAY_US, side="right")
    oldest = np.searchsorted(fraud_times, times - (delay_days + FRAUD_RECENCY_DAYS) * DAY_US, side="right")
    for name, position in (("FIRST", oldest), ("LAST", newest - 1)):
        features[f"TERMINAL_ID_DAYS_SINCE_{name}_FRAUD"] = np.where(
            newest > oldest, (times - fraud_times[position]) / DAY_US, NO_KNOWN_FRAUD)
    features["TERMINAL_ID_NB_TX_1HOUR_WINDOW"] = window_count_sum(times, frauds, HOUR_US)[0]
    features["TERMINAL_ID_NB_TX_1DAY_CURRENT"] = window_count_sum(times, frauds, DAY_US)[0]
    return features


def _per_key(keys: np.ndarray, times: np.ndarray, ids: np.ndarray,
             compute: Callable[[np.ndarray], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Apply ``compute`` to each key's row positions sorted by (time, id); results come back in input row order."""
    order = np.lexsort((ids, times, keys))
    sorted_keys = keys[order]
    groups = np.split(order, np.flatnonzero(sorted_keys[1:] != sorted_keys[:-1]) + 1)
    parts = [compute(rows) for rows in groups]
    columns = {}
    for name in parts[0]:
        columns[name] = np.empty(len(order))
        columns[name][order] = np.concatenate([part[name] for part in parts])
    return columns


def add_all_features_pandas(pdf: pd.DataFrame, delay_days: int = 7) -> pd.DataFrame:
    """The input columns followed by HANDBOOK_FEATURES and EXTRA_FEATURES, like ``fraud.features.add_all_features``."""
    when = pdf["TX_DATETIME"].dt
    times = pdf["TX_DATETIME"].to_numpy("datetime64[us]").view("int64")
    ids, amounts, frauds = (pdf[c].to_numpy() for c in ("TRANSACTION_ID", "TX_AMOUNT", "TX_FRAUD"))
    features = {
        "TX_DURING_WEEKEND": (when.dayofweek >= 5).to_numpy("int32"),  # 5 = Saturday, 6 = Sunday
        "TX_DURING_NIGHT": (when.hour <= 6).to_numpy("int32"),
        **_per_key(pdf["CUSTOMER_ID"].to_numpy(), times, ids,
                   lambda rows: customer_features(times[rows], amounts[rows].astype(float))),
        **_per_key(pdf["TERMINAL_ID"].to_numpy(), times, ids,
                   lambda rows: terminal_features(times[rows], frauds[rows].astype(float), delay_days)),
    }
    return pdf.assign(**{name: features[name] for name in [*HANDBOOK_FEATURES, *EXTRA_FEATURES]})
