"""Per-transaction features as Spark transforms, shared by stream, backfill and training.

Every feature of a transaction is computed as of its own event time from the
transactions of the same card (CUSTOMER_ID) or terminal (TERMINAL_ID) up to that
moment, and fraud labels are only read for transactions older than the label
delay, so a streaming job holding per-key state can compute exactly the same
values. The handbook features reproduce ``reference_features.parquet`` (see the
dataset README); ``fraud.features_pandas`` is the single-process twin.

Time resolution is the microsecond (Spark's timestamp precision): a trailing
window of width w over (t - w, t] is exact at that resolution. Order within a
key is (TX_DATETIME, TRANSACTION_ID): of transactions at the same instant, one
sees only those with TRANSACTION_ID <= its own (ids increase with time), which is
what the handbook's pandas rolling does and what a stream processing them in id
order sees.

Each key needs one shuffle: all windows of a key share its partitioning, so
``add_all_features`` runs the customer transforms, then the terminal ones.
"""
from __future__ import annotations

from typing import Sequence

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

SECOND_US = 1_000_000
MINUTE_US = 60 * SECOND_US
HOUR_US = 60 * MINUTE_US
DAY_US = 24 * HOUR_US
NO_PREVIOUS_TX = -1.0  # CUSTOMER_ID_SECONDS_SINCE_PREV_TX of a customer's first transaction
NO_BASELINE = -1.0  # CUSTOMER_ID_BASELINE_AVG_AMOUNT when the baseline window is empty
BASELINE_DAYS = (14, 60)  # baseline window (t - 60 days, t - 14 days]: older than a 14-day card compromise
HIGH_RATIO = 3.0  # an amount over 3 times the baseline mean is "high"
TERMINAL_WINDOWS_DAYS = (1, 7, 14, 30)
FRAUD_RECENCY_DAYS = 30  # known frauds at a terminal in (t - delay - 30 days, t - delay] date its compromise
NO_KNOWN_FRAUD = -1.0  # TERMINAL_ID_DAYS_SINCE_{FIRST,LAST}_FRAUD when that window holds no known fraud


def customer_history_days() -> int:
    """How far back a card's features reach: the 14-day high-ratio count reads ratios whose baselines
    reach 60 days further back."""
    return BASELINE_DAYS[1] + BASELINE_DAYS[0]


def terminal_history_days(delay_days: int = 7) -> int:
    """How far back a terminal's features reach: the longest label window, shifted by the label delay."""
    return max(*TERMINAL_WINDOWS_DAYS, FRAUD_RECENCY_DAYS) + delay_days


def lookback_days(delay_days: int = 7) -> int:
    """How far back a transaction's features reach: history a backfill or a stream's state must hold."""
    return max(customer_history_days(), terminal_history_days(delay_days))


HANDBOOK_FEATURES = [
    "TX_DURING_WEEKEND", "TX_DURING_NIGHT",
    *(f"CUSTOMER_ID_{kind}_{w}DAY_WINDOW" for w in (1, 7, 30) for kind in ("NB_TX", "AVG_AMOUNT")),
    *(f"TERMINAL_ID_{kind}_{w}DAY_WINDOW" for w in (1, 7, 30) for kind in ("NB_TX", "RISK")),
]
EXTRA_FEATURES = [
    *(f"CUSTOMER_ID_AMOUNT_RATIO_{w}DAY" for w in (1, 7, 30)),
    "CUSTOMER_ID_SECONDS_SINCE_PREV_TX",
    "CUSTOMER_ID_NB_TX_10MIN_WINDOW",
    "CUSTOMER_ID_NB_TX_1HOUR_WINDOW",
    "CUSTOMER_ID_SUM_AMOUNT_1HOUR_WINDOW",
    "TERMINAL_ID_NB_TX_1HOUR_WINDOW",
    "CUSTOMER_ID_AMOUNT_ZSCORE_30DAY",
    "CUSTOMER_ID_BASELINE_AVG_AMOUNT",
    "CUSTOMER_ID_AMOUNT_RATIO_BASELINE",
    "CUSTOMER_ID_NB_HIGH_RATIO_14DAY",
    "CUSTOMER_ID_SHARE_HIGH_RATIO_14DAY",
    "TERMINAL_ID_NB_TX_14DAY_WINDOW",
    "TERMINAL_ID_RISK_14DAY_WINDOW",
    *(f"TERMINAL_ID_NB_FRAUD_{w}DAY_WINDOW" for w in (1, 7, 30)),
    "TERMINAL_ID_NB_TX_1DAY_CURRENT",
    "TERMINAL_ID_DAYS_SINCE_FIRST_FRAUD",
    "TERMINAL_ID_DAYS_SINCE_LAST_FRAUD",
]
MODEL_FEATURES = ["TX_AMOUNT", *HANDBOOK_FEATURES, *EXTRA_FEATURES]

_EVENT_US = "_EVENT_US"  # working column: event time in microseconds since the epoch


def _with_event_micros(df: DataFrame) -> DataFrame:
    # TX_DATETIME may be timestamp_ntz (Parquet without zone) or timestamp; the session zone is UTC.
    return df.withColumn(_EVENT_US, F.unix_micros(F.col("TX_DATETIME").cast("timestamp")))


def _window_count_sum(key: str, value: str | Column, span_us: int, lag_us: int = 0) -> tuple[Column, Column]:
    """Count of the key's transactions with event time in (t - lag - span, t - lag], and sum of ``value`` over them.

    ``value`` is a column name or an expression of the row (e.g. a squared amount).

    With no lag the window ends at the current transaction, so same-instant
    transactions with a larger TRANSACTION_ID are taken out again (tie rule).
    """
    window = Window.partitionBy(key).orderBy(_EVENT_US).rangeBetween(1 - lag_us - span_us, -lag_us)
    count, total = F.count(F.lit(1)).over(window), F.coalesce(F.sum(value).over(window), F.lit(0))
    if lag_us == 0:
        later_ties = (Window.partitionBy(key, _EVENT_US).orderBy("TRANSACTION_ID")
                      .rowsBetween(1, Window.unboundedFollowing))
        count = count - F.count(F.lit(1)).over(later_ties)
        total = total - F.coalesce(F.sum(value).over(later_ties), F.lit(0))
    return count.cast("double"), total.cast("double")


def add_calendar_features(df: DataFrame) -> DataFrame:
    """TX_DURING_WEEKEND (Saturday or Sunday) and TX_DURING_NIGHT (hour <= 6), as 0/1 ints."""
    return df.withColumns({
        "TX_DURING_WEEKEND": F.dayofweek("TX_DATETIME").isin(1, 7).cast("int"),  # 1 = Sunday, 7 = Saturday
        "TX_DURING_NIGHT": (F.hour("TX_DATETIME") <= 6).cast("int"),
    })


def add_customer_spending_features(df: DataFrame, windows_days: Sequence[int] = (1, 7, 30)) -> DataFrame:
    """Per window w (days): CUSTOMER_ID_NB_TX_{w}DAY_WINDOW and CUSTOMER_ID_AVG_AMOUNT_{w}DAY_WINDOW.

    Count and mean TX_AMOUNT of the customer's transactions in (t - w days, t],
    this one included (the handbook's definition), plus
    CUSTOMER_ID_AMOUNT_RATIO_{w}DAY = TX_AMOUNT / that mean (1.0 when the mean is 0):
    how unusual this amount is for the card.
    """
    counts_and_sums, averages, ratios = {}, {}, {}
    for w in windows_days:
        count, total, average = f"CUSTOMER_ID_NB_TX_{w}DAY_WINDOW", f"_SUM_{w}", f"CUSTOMER_ID_AVG_AMOUNT_{w}DAY_WINDOW"
        counts_and_sums[count], counts_and_sums[total] = _window_count_sum("CUSTOMER_ID", "TX_AMOUNT", w * DAY_US)
        averages[average] = F.col(total) / F.col(count)
        ratios[f"CUSTOMER_ID_AMOUNT_RATIO_{w}DAY"] = (F.when(F.col(average) != 0, F.col("TX_AMOUNT") / F.col(average))
                                                     .otherwise(1.0))
    return (_with_event_micros(df).withColumns(counts_and_sums).withColumns(averages).withColumns(ratios)
            .drop(_EVENT_US, *(f"_SUM_{w}" for w in windows_days)))


def add_customer_velocity_features(df: DataFrame) -> DataFrame:
    """Short-term activity of the card, the signature of a compromised card being emptied.

    CUSTOMER_ID_SECONDS_SINCE_PREV_TX: seconds since the customer's previous
    transaction in (TX_DATETIME, TRANSACTION_ID) order, NO_PREVIOUS_TX (-1.0) for
    the first; CUSTOMER_ID_NB_TX_10MIN_WINDOW, CUSTOMER_ID_NB_TX_1HOUR_WINDOW,
    CUSTOMER_ID_SUM_AMOUNT_1HOUR_WINDOW: count / total amount in (t - 10 min, t]
    and (t - 1 h, t], this transaction included.
    """
    df = _with_event_micros(df)
    previous = F.lag(_EVENT_US).over(Window.partitionBy("CUSTOMER_ID").orderBy(_EVENT_US, "TRANSACTION_ID"))
    count_10min, _ = _window_count_sum("CUSTOMER_ID", "TX_AMOUNT", 10 * MINUTE_US)
    count_1hour, total_1hour = _window_count_sum("CUSTOMER_ID", "TX_AMOUNT", HOUR_US)
    return df.withColumns({
        "CUSTOMER_ID_SECONDS_SINCE_PREV_TX": F.coalesce((F.col(_EVENT_US) - previous) / SECOND_US,
                                                        F.lit(NO_PREVIOUS_TX)),
        "CUSTOMER_ID_NB_TX_10MIN_WINDOW": count_10min,
        "CUSTOMER_ID_NB_TX_1HOUR_WINDOW": count_1hour,
        "CUSTOMER_ID_SUM_AMOUNT_1HOUR_WINDOW": total_1hour,
    }).drop(_EVENT_US)


def add_customer_baseline_features(df: DataFrame) -> DataFrame:
    """How this amount compares with the card's usual spending.

    CUSTOMER_ID_AMOUNT_ZSCORE_30DAY = (TX_AMOUNT - mean) / (std + 1), mean and
    population std of the amounts in (t - 30 days, t], this one included (std
    from the window's sum of squares, floored at 0). CUSTOMER_ID_BASELINE_AVG_AMOUNT:
    mean amount in (t - 60 days, t - 14 days], a baseline a 14-day card compromise
    cannot contaminate (NO_BASELINE = -1.0 when empty); CUSTOMER_ID_AMOUNT_RATIO_BASELINE
    = TX_AMOUNT / that mean (1.0 when empty or 0). CUSTOMER_ID_NB_HIGH_RATIO_14DAY /
    CUSTOMER_ID_SHARE_HIGH_RATIO_14DAY: count / share of the transactions in
    (t - 14 days, t], this one included, whose ratio to the baseline is > HIGH_RATIO.
    """
    key, (recent_days, oldest_days) = "CUSTOMER_ID", BASELINE_DAYS
    count_30, sum_30 = _window_count_sum(key, "TX_AMOUNT", 30 * DAY_US)
    _, sum_squares_30 = _window_count_sum(key, F.col("TX_AMOUNT") * F.col("TX_AMOUNT"), 30 * DAY_US)
    count_baseline, sum_baseline = _window_count_sum(key, "TX_AMOUNT", (oldest_days - recent_days) * DAY_US,
                                                     recent_days * DAY_US)
    mean_30 = sum_30 / count_30
    std_30 = F.sqrt(F.greatest(sum_squares_30 / count_30 - mean_30 * mean_30, F.lit(0.0)))
    baseline = sum_baseline / count_baseline
    df = _with_event_micros(df).withColumns({
        "CUSTOMER_ID_AMOUNT_ZSCORE_30DAY": (F.col("TX_AMOUNT") - mean_30) / (std_30 + 1),
        "CUSTOMER_ID_BASELINE_AVG_AMOUNT": F.when(count_baseline > 0, baseline).otherwise(NO_BASELINE),
        "CUSTOMER_ID_AMOUNT_RATIO_BASELINE": F.when((count_baseline > 0) & (baseline != 0),
                                                    F.col("TX_AMOUNT") / baseline).otherwise(1.0),
    }).withColumn("_HIGH", (F.col("CUSTOMER_ID_AMOUNT_RATIO_BASELINE") > HIGH_RATIO).cast("double"))
    count_14, high_14 = _window_count_sum(key, "_HIGH", recent_days * DAY_US)  # second pass, same partitioning
    return (df.withColumns({"CUSTOMER_ID_NB_HIGH_RATIO_14DAY": high_14,
                            "CUSTOMER_ID_SHARE_HIGH_RATIO_14DAY": high_14 / count_14})
            .drop(_EVENT_US, "_HIGH"))


def add_terminal_risk_features(df: DataFrame, windows_days: Sequence[int] = TERMINAL_WINDOWS_DAYS,
                               delay_days: int = 7) -> DataFrame:
    """Per window w (days): TERMINAL_ID_{NB_TX,NB_FRAUD,RISK}_{w}DAY_WINDOW.

    Count of the terminal's transactions in (t - delay - w days, t - delay], the
    number of them with TX_FRAUD = 1, and their share (0 when there are none). Labels arrive
    about ``delay_days`` late, so only transactions older than the delay are
    used: TX_FRAUD of younger transactions is never read, and may be unknown.
    """
    if delay_days <= 0:
        raise ValueError(f"delay_days must be positive (labels are not known at once), got {delay_days}")
    counts_and_frauds, risks = {}, {}
    for w in windows_days:
        count, frauds = f"TERMINAL_ID_NB_TX_{w}DAY_WINDOW", f"TERMINAL_ID_NB_FRAUD_{w}DAY_WINDOW"
        counts_and_frauds[count], counts_and_frauds[frauds] = _window_count_sum(
            "TERMINAL_ID", "TX_FRAUD", w * DAY_US, delay_days * DAY_US)
        risks[f"TERMINAL_ID_RISK_{w}DAY_WINDOW"] = F.when(F.col(count) > 0, F.col(frauds) / F.col(count)).otherwise(0.0)
    return _with_event_micros(df).withColumns(counts_and_frauds).withColumns(risks).drop(_EVENT_US)


def add_terminal_fraud_recency_features(df: DataFrame, delay_days: int = 7) -> DataFrame:
    """TERMINAL_ID_DAYS_SINCE_FIRST_FRAUD and TERMINAL_ID_DAYS_SINCE_LAST_FRAUD: days from the earliest and
    the latest known fraud at the terminal in (t - delay - FRAUD_RECENCY_DAYS, t - delay] to t
    (NO_KNOWN_FRAUD when there is none).

    How long a terminal has been showing fraud tells an ongoing compromise from one
    that has run its course, and a fresh one from an old one, where the risk ratios
    alone look alike. Only labels older than the delay are read.
    """
    if delay_days <= 0:
        raise ValueError(f"delay_days must be positive (labels are not known at once), got {delay_days}")
    lag_us = delay_days * DAY_US
    window = (Window.partitionBy("TERMINAL_ID").orderBy(_EVENT_US)
              .rangeBetween(1 - lag_us - FRAUD_RECENCY_DAYS * DAY_US, -lag_us))
    fraud_us = F.when(F.col("TX_FRAUD") == 1, F.col(_EVENT_US))

    def days_since(moment: Column) -> Column:
        return F.coalesce((F.col(_EVENT_US) - moment) / F.lit(DAY_US), F.lit(NO_KNOWN_FRAUD))

    return _with_event_micros(df).withColumns({
        "TERMINAL_ID_DAYS_SINCE_FIRST_FRAUD": days_since(F.min(fraud_us).over(window)),
        "TERMINAL_ID_DAYS_SINCE_LAST_FRAUD": days_since(F.max(fraud_us).over(window)),
    }).drop(_EVENT_US)


def add_terminal_velocity_features(df: DataFrame) -> DataFrame:
    """TERMINAL_ID_NB_TX_1HOUR_WINDOW, TERMINAL_ID_NB_TX_1DAY_CURRENT: the terminal's transactions in
    (t - 1 h, t] and (t - 1 day, t], this one included (undelayed: no labels)."""
    return _with_event_micros(df).withColumns({
        "TERMINAL_ID_NB_TX_1HOUR_WINDOW": _window_count_sum("TERMINAL_ID", "TX_AMOUNT", HOUR_US)[0],
        "TERMINAL_ID_NB_TX_1DAY_CURRENT": _window_count_sum("TERMINAL_ID", "TX_AMOUNT", DAY_US)[0],
    }).drop(_EVENT_US)


def add_all_features(df: DataFrame, delay_days: int = 7) -> DataFrame:
    """The input columns followed by HANDBOOK_FEATURES and EXTRA_FEATURES (TX_AMOUNT is already an input)."""
    return (df.transform(add_calendar_features)
            .transform(add_customer_spending_features)
            .transform(add_customer_velocity_features)
            .transform(add_customer_baseline_features)
            .transform(add_terminal_risk_features, delay_days=delay_days)
            .transform(add_terminal_fraud_recency_features, delay_days=delay_days)
            .transform(add_terminal_velocity_features)
            .select(*df.columns, *HANDBOOK_FEATURES, *EXTRA_FEATURES))
