"""Reason codes: the readable signals given with a flagged decision.

A reason is given for a feature whose value is beyond what 99% of the legitimate
training transactions show: training stores each feature's 99th percentile in the
model's metadata (``reason_limits``), scoring compares a flagged row against them.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

# feature -> (direction, sentence)
REASONS = {
    "TX_AMOUNT": (1, "amount {value:.2f} above {limit:.2f} (99% of legitimate amounts)"),
    "CUSTOMER_ID_AMOUNT_RATIO_30DAY": (1, "amount {value:.1f}x the card's 30-day average"),
    "CUSTOMER_ID_AMOUNT_RATIO_7DAY": (1, "amount {value:.1f}x the card's 7-day average"),
    "TERMINAL_ID_RISK_7DAY_WINDOW": (1, "terminal fraud rate {value:.0%} in the week before the label delay"),
    "TERMINAL_ID_RISK_30DAY_WINDOW": (1, "terminal fraud rate {value:.0%} in the 30 days before the label delay"),
    "CUSTOMER_ID_NB_TX_1HOUR_WINDOW": (1, "{value:.0f} transactions on the card within an hour"),
    "TERMINAL_ID_NB_TX_1HOUR_WINDOW": (1, "{value:.0f} transactions at the terminal within an hour"),
    "CUSTOMER_ID_NB_TX_1DAY_WINDOW": (1, "{value:.0f} transactions on the card within a day"),
}
MAX_REASONS = 3


def reason_limits(legitimate: pd.DataFrame) -> dict[str, float]:
    """The 99th percentile of each reason feature among legitimate training transactions."""
    return {name: float(legitimate[name].quantile(0.99)) for name in REASONS if name in legitimate}


def reason_codes(features: pd.DataFrame, limits: dict[str, float]) -> pd.Series:
    """Up to MAX_REASONS readable signals per row, the most extreme first, '; '-separated."""
    names = list(limits)
    values = features[names].to_numpy(dtype=float)
    bounds = np.array([limits[name] for name in names], dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        excess = np.where(bounds > 0, values / bounds, values * np.inf)  # any positive value beyond a 0 limit
    excess = np.where(excess > 1, excess, -np.inf)  # not beyond (or NaN): no reason
    top = np.argsort(-excess, axis=1, kind="stable")[:, :MAX_REASONS]
    return pd.Series(["; ".join(REASONS[names[j]][1].format(value=values[row, j], limit=bounds[j])
                                for j in columns if excess[row, j] > 1)
                      for row, columns in enumerate(top)], index=features.index, dtype="object")
