"""Model quality as the handbook measures it: AUC ROC, average precision, card precision top-k."""
from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score


def card_precision_top_k(test: pd.DataFrame, scores: np.ndarray, k: int = 100) -> float:
    """Mean over test days of the share of fraudulent cards among the day's top-k cards.

    A card's daily score is its highest transaction score; it is fraudulent that day
    if any of its transactions is. Cards detected on an earlier day are removed.
    """
    frame = pd.DataFrame({"day": test.TX_DATETIME.dt.floor("D").to_numpy(), "card": test.CUSTOMER_ID.to_numpy(),
                          "fraud": test.TX_FRAUD.to_numpy(), "score": scores})
    detected: set[int] = set()
    daily = []
    for _, day in frame.groupby("day", sort=True):
        cards = day[~day.card.isin(detected)].groupby("card")[["score", "fraud"]].max()
        top = cards.sort_values("score", ascending=False, kind="stable").head(k)
        hits = top.index[top.fraud == 1]
        daily.append(len(hits) / k)
        detected.update(hits)
    return float(np.mean(daily))


def quality(test: pd.DataFrame, scores: np.ndarray) -> dict[str, float]:
    labels = test.TX_FRAUD.to_numpy()
    return {"auc": round(float(roc_auc_score(labels, scores)), 4),
            "ap": round(float(average_precision_score(labels, scores)), 4),
            "cp100": round(card_precision_top_k(test, scores, 100), 4)}
