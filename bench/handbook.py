"""The backfill's baseline: the handbook's own pandas computation of its 14 features, one process.

As the Fraud Detection Handbook writes it (Le Borgne et al., "Reproducible Machine
Learning for Credit Card Fraud Detection - Practical Handbook", chapter 3.4,
"Baseline feature transformation"): a per-customer ``groupby().apply`` with
time-based rolling windows of 1, 7 and 30 days for the spending features, and a
per-terminal one with rolling windows shifted by the 7-day delay for the risk
features, plus the weekend and night flags. Straightforward pandas, no scoring,
no writing: what "computing the features in pandas" costs.
"""
from __future__ import annotations

import pandas as pd

from fraud.features import LABEL_DELAY_DAYS

WINDOWS_DAYS = (1, 7, 30)
DELAY_DAYS = LABEL_DELAY_DAYS


def _customer_spending(customer: pd.DataFrame) -> pd.DataFrame:
    customer = customer.sort_values("TX_DATETIME").set_index("TX_DATETIME", drop=False)
    for w in WINDOWS_DAYS:
        total = customer["TX_AMOUNT"].rolling(f"{w}d").sum()
        count = customer["TX_AMOUNT"].rolling(f"{w}d").count()
        customer[f"CUSTOMER_ID_NB_TX_{w}DAY_WINDOW"] = list(count)
        customer[f"CUSTOMER_ID_AVG_AMOUNT_{w}DAY_WINDOW"] = list(total / count)
    return customer.set_index("TRANSACTION_ID")


def _terminal_risk(terminal: pd.DataFrame) -> pd.DataFrame:
    terminal = terminal.sort_values("TX_DATETIME").set_index("TX_DATETIME", drop=False)
    frauds_delay = terminal["TX_FRAUD"].rolling(f"{DELAY_DAYS}d").sum()
    count_delay = terminal["TX_FRAUD"].rolling(f"{DELAY_DAYS}d").count()
    for w in WINDOWS_DAYS:
        frauds = terminal["TX_FRAUD"].rolling(f"{DELAY_DAYS + w}d").sum() - frauds_delay
        count = terminal["TX_FRAUD"].rolling(f"{DELAY_DAYS + w}d").count() - count_delay
        terminal[f"TERMINAL_ID_NB_TX_{w}DAY_WINDOW"] = list(count)
        terminal[f"TERMINAL_ID_RISK_{w}DAY_WINDOW"] = list(frauds / count)
    return terminal.set_index("TRANSACTION_ID").fillna(0)


def handbook_features(transactions: pd.DataFrame) -> pd.DataFrame:
    """Handbook columns (TRANSACTION_ID, TX_DATETIME, CUSTOMER_ID, TERMINAL_ID, TX_AMOUNT, TX_FRAUD) -> the same
    rows with the handbook's 14 features added, indexed by TRANSACTION_ID."""
    out = transactions.assign(TX_DURING_WEEKEND=(transactions.TX_DATETIME.dt.weekday >= 5).astype(int),
                              TX_DURING_NIGHT=(transactions.TX_DATETIME.dt.hour <= 6).astype(int))
    out = out.groupby("CUSTOMER_ID", group_keys=False).apply(_customer_spending)
    out = out.reset_index().groupby("TERMINAL_ID", group_keys=False).apply(_terminal_risk)
    return out
