"""Decision thresholds: approve below ``review``, review from it, block from ``block``.

Chosen on a validation week the model did not train on:
- review: the score of the 100th riskiest card of a day, median over the days
  (a queue of about 100 cards a day, the handbook's CP@100 analyst budget);
- block: the lowest score at which at least 90% of the flagged transactions
  were fraud (never below review).
"""
from __future__ import annotations

from typing import TypedDict

import numpy as np
import pandas as pd
from sklearn.metrics import precision_recall_curve

REVIEW_CARDS_PER_DAY = 100
BLOCK_PRECISION = 0.90


class Threshold(TypedDict):
    value: float
    how: str


def choose_thresholds(validation: pd.DataFrame, scores: np.ndarray) -> dict[str, Threshold]:
    frame = pd.DataFrame({"day": validation.TX_DATETIME.dt.floor("D").to_numpy(),
                          "card": validation.CUSTOMER_ID.to_numpy(), "score": scores})
    daily_cutoffs = [cards.nlargest(REVIEW_CARDS_PER_DAY).min()
                     for _, cards in frame.groupby(["day", "card"]).score.max().groupby(level="day")]
    review = float(np.median(daily_cutoffs))
    precision, _, cutoffs = precision_recall_curve(validation.TX_FRAUD.to_numpy(), scores)
    reaching = np.flatnonzero(precision[:-1] >= BLOCK_PRECISION)
    block = float(cutoffs[reaching[0]]) if len(reaching) else 1.0
    return {
        "review": {"value": round(review, 6),
                   "how": f"median over the validation days of the {REVIEW_CARDS_PER_DAY}th highest card score "
                          f"(a review queue of about {REVIEW_CARDS_PER_DAY} cards a day)"},
        "block": {"value": round(max(block, review), 6),
                  "how": f"lowest score with precision >= {BLOCK_PRECISION:.0%} on the validation week"},
    }


def decide(scores: np.ndarray, review: float, block: float) -> np.ndarray:
    return np.where(scores >= block, "block", np.where(scores >= review, "review", "approve"))
