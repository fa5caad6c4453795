"""The evaluation protocol: time split with a label delay; on the handbook's data, known-compromised cards removed.

Training covers the ``train_days`` days that end ``delay_days`` before the test
start. On the handbook's data (it has the TX_FRAUD_SCENARIO column) the test set is
the handbook's, whatever ``train_days`` is: on each test day, the transactions of
cards already known to be compromised are dropped, known meaning a fraud in the 7
days before the delay, or on a day whose labels have arrived by then (test day minus
the delay). On other data (a source mapping's) it is every transaction of the test
days: a plain time split. Frames use the handbook's column names; ``TX_DATETIME`` is
a naive UTC timestamp.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

import pandas as pd

from fraud.features import LABEL_DELAY_DAYS

HANDBOOK_TRAIN_DAYS = 7  # the window that defines "already known compromised" for the test set


@dataclass(frozen=True)
class Split:
    test_start: datetime
    train_days: int
    delay_days: int = LABEL_DELAY_DAYS
    test_days: int = 7

    @property
    def train_start(self) -> datetime:
        return self.test_start - timedelta(days=self.delay_days + self.train_days)

    @property
    def train_end(self) -> datetime:  # exclusive
        return self.test_start - timedelta(days=self.delay_days)

    @property
    def test_end(self) -> datetime:  # exclusive
        return self.test_start + timedelta(days=self.test_days)

    def describe(self) -> dict[str, str | int]:
        return {"train_start": self.train_start.isoformat(), "train_end": self.train_end.isoformat(),
                "test_start": self.test_start.isoformat(), "test_end": self.test_end.isoformat(),
                "train_days": self.train_days, "delay_days": self.delay_days, "test_days": self.test_days}


def parse_day(text: str | date | datetime) -> datetime:
    if isinstance(text, datetime):
        return text
    if isinstance(text, date):
        return datetime(text.year, text.month, text.day)
    return datetime.fromisoformat(text)


def training_set(df: pd.DataFrame, split: Split) -> pd.DataFrame:
    return df[(df.TX_DATETIME >= split.train_start) & (df.TX_DATETIME < split.train_end)]


SCENARIO_COLUMN = "TX_FRAUD_SCENARIO"  # only the handbook's simulated data has it


def evaluation_set(df: pd.DataFrame, split: Split) -> pd.DataFrame:
    """The test days of ``df``: ``handbook_test_set`` on the handbook's data, else every transaction of those days."""
    if SCENARIO_COLUMN in df.columns:
        return handbook_test_set(df, split)
    return df[(df.TX_DATETIME >= split.test_start) & (df.TX_DATETIME < split.test_end)]


def protocol(df: pd.DataFrame) -> str:
    """What ``evaluation_set`` does with ``df``, in words (for reports and metadata)."""
    return ("handbook: known-compromised cards removed" if SCENARIO_COLUMN in df.columns
            else "time split: every transaction of the test days")


def handbook_test_set(df: pd.DataFrame, split: Split) -> pd.DataFrame:
    """The handbook test set: test days minus the cards known compromised as of each day."""
    day = pd.Timedelta(days=1)
    reference_train_start = split.train_end - timedelta(days=HANDBOOK_TRAIN_DAYS)
    in_reference_training = (df.TX_DATETIME >= reference_train_start) & (df.TX_DATETIME < split.train_end)
    known = set(df.loc[in_reference_training & (df.TX_FRAUD == 1), "CUSTOMER_ID"])
    kept = []
    for offset in range(split.test_days):
        # labels of the day (test day - delay - 1) arrive in time for this test day
        labelled_day_start = split.train_end + (offset - 1) * day
        labelled = (df.TX_DATETIME >= labelled_day_start) & (df.TX_DATETIME < labelled_day_start + day)
        known |= set(df.loc[labelled & (df.TX_FRAUD == 1), "CUSTOMER_ID"])
        day_start = split.test_start + offset * day
        on_day = df[(df.TX_DATETIME >= day_start) & (df.TX_DATETIME < day_start + day)]
        kept.append(on_day[~on_day.CUSTOMER_ID.isin(known)])
    return pd.concat(kept)
