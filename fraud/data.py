"""The published dataset (Fraud Detection Handbook), found through one setting.

Tests, benchmarks and commands locate ``transactions.parquet`` and
``reference_features.parquet`` in ``Settings.data_dir`` (``FRAUD_DATA_DIR``, else
``../shared/data/fdh`` when it exists). ``fraud data`` rebuilds the same
two files from the handbook's public repositories for users with internet
access. The product itself never needs them.
"""
from __future__ import annotations

import io
import urllib.request
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from fraud.config import Settings
from fraud.features import HANDBOOK_FEATURES

TRANSACTIONS = "transactions.parquet"
REFERENCE_FEATURES = "reference_features.parquet"
RAW_URL = "https://raw.githubusercontent.com/Fraud-Detection-Handbook/simulated-data-raw/main/data/{day}.pkl"
TRANSFORMED_URL = ("https://raw.githubusercontent.com/Fraud-Detection-Handbook/simulated-data-transformed/main/"
                   "data/{day}.pkl")
FIRST_DAY, DAYS = date(2018, 4, 1), 183
REFERENCE_COLUMNS = ["TRANSACTION_ID", *HANDBOOK_FEATURES]  # reference_features.parquet


class DatasetMissing(FileNotFoundError):
    pass


def dataset_path(settings: Settings, name: str = TRANSACTIONS) -> Path:
    """Path of a dataset file in ``settings.data_dir``.

    Raises DatasetMissing, saying how to get it, when the folder is unset or lacks the file."""
    if settings.data_dir is None or not (settings.data_dir / name).exists():
        raise DatasetMissing(
            f"{name} not found (data_dir={settings.data_dir}); set FRAUD_DATA_DIR to the folder holding it, "
            f"or run `make data` to download it from the handbook's public repositories")
    return settings.data_dir / name


def _fetch_day(url: str) -> pd.DataFrame:
    with urllib.request.urlopen(url, timeout=60) as response:
        return pd.read_pickle(io.BytesIO(response.read()))


def fetch_dataset(target: Path) -> None:
    """Download the 183 daily pickles of both repositories and store them as two Parquet files."""
    target.mkdir(parents=True, exist_ok=True)
    days = [(FIRST_DAY + timedelta(days=i)).isoformat() for i in range(DAYS)]
    raw, transformed = [], []
    for day in tqdm(days, desc="downloading handbook days", unit="day"):
        raw.append(_fetch_day(RAW_URL.format(day=day)))
        transformed.append(_fetch_day(TRANSFORMED_URL.format(day=day)))
    transactions = pd.concat(raw, ignore_index=True).sort_values("TRANSACTION_ID")
    transactions = transactions.drop(columns=[c for c in transactions.columns if c.startswith("Unnamed")])
    transactions["TX_DATETIME"] = transactions["TX_DATETIME"].astype("datetime64[us]")  # Spark 3.5 reads us, not ns
    transactions.to_parquet(target / TRANSACTIONS, index=False)
    features = pd.concat(transformed, ignore_index=True).sort_values("TRANSACTION_ID")
    features[REFERENCE_COLUMNS].to_parquet(target / REFERENCE_FEATURES, index=False)
