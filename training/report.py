"""The training report: PNG plots and a markdown summary next to the model."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure  # figures drawn to files without pyplot: no backend is switched
from sklearn.inspection import permutation_importance
from sklearn.metrics import ConfusionMatrixDisplay, PrecisionRecallDisplay, RocCurveDisplay, confusion_matrix

from training.artifacts import ModelArtifact
from training.thresholds import decide

PUBLISHED = {  # the handbook's best published results on the 2018-08-08 week (AUC / AP / CP@100)
    "logistic regression (default)": (0.871, 0.606, 0.291),
    "random forest (default)": (0.867, 0.658, 0.287),
    "random forest (tuned)": (0.870, 0.678, 0.299),
    "XGBoost (tuned)": (0.869, 0.687, 0.303),
    "balanced bagging (tuned)": (0.879, 0.680, 0.305),
}


def _save(fig, path: Path) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path.name


def write_report(model_dir: Path, artifact: ModelArtifact, test: pd.DataFrame, scores: np.ndarray) -> Path:
    out = model_dir / "report"
    out.mkdir(parents=True, exist_ok=True)
    labels = test.TX_FRAUD.to_numpy()
    review, block = artifact.thresholds["review"], artifact.thresholds["block"]
    plots = []

    fig = Figure(figsize=(11, 4.5))
    left, right = fig.subplots(1, 2)
    PrecisionRecallDisplay.from_predictions(labels, scores, ax=left, name=artifact.version)
    left.set_title("Precision-recall (test week)")
    RocCurveDisplay.from_predictions(labels, scores, ax=right, name=artifact.version)
    right.set_title("ROC (test week)")
    plots.append(_save(fig, out / "curves.png"))

    fig = Figure(figsize=(7, 4.5))
    ax = fig.subplots()
    bins = np.linspace(0, 1, 51).tolist()
    ax.hist(scores[labels == 0], bins=bins, alpha=0.6, label="legitimate", log=True)
    ax.hist(scores[labels == 1], bins=bins, alpha=0.6, label="fraud", log=True)
    for name, value in (("review", review), ("block", block)):
        ax.axvline(value, linestyle="--", color="black")
        ax.text(value, ax.get_ylim()[1], f" {name}", va="top")
    ax.set(xlabel="fraud score", ylabel="transactions (log)", title="Score distribution by class (test week)")
    ax.legend()
    plots.append(_save(fig, out / "score_distribution.png"))

    decisions = decide(scores, review, block)
    fig = Figure(figsize=(10, 4.2))
    axes = fig.subplots(1, 2)
    flagged_by = (("review or block", decisions != "approve"), ("block", decisions == "block"))
    for ax, (name, flagged) in zip(axes, flagged_by):
        ConfusionMatrixDisplay(confusion_matrix(labels, flagged.astype(int), labels=[0, 1]),
                               display_labels=["legit", "fraud"]).plot(ax=ax, colorbar=False, values_format="d")
        ax.set(title=f"Flagged = {name}", xlabel="decision", ylabel="label")
    plots.append(_save(fig, out / "confusion_matrix.png"))

    sample = test.sample(n=min(len(test), 20_000), random_state=0)
    importance = permutation_importance(artifact.model, artifact.inputs(sample),
                                        sample.TX_FRAUD.to_numpy(), scoring="average_precision", n_repeats=3,
                                        random_state=0, n_jobs=1)
    order = np.argsort(importance.importances_mean)
    fig = Figure(figsize=(8, 0.3 * len(order) + 1.5))
    ax = fig.subplots()
    ax.barh(np.array(artifact.features)[order], importance.importances_mean[order],
            xerr=importance.importances_std[order])
    ax.set(xlabel="drop in average precision when shuffled", title="Permutation feature importance (test week sample)")
    plots.append(_save(fig, out / "feature_importance.png"))

    metadata = artifact.metadata
    metrics_rows = "\n".join(f"| {week} | {m['auc']:.3f} | {m['ap']:.3f} | {m['cp100']:.3f} | "
                             f"{m.get('cp100_ceiling', float('nan')):.3f} |" for week, m in metadata["metrics"].items())
    published_rows = "\n".join(f"| {name} | {auc:.3f} | {ap:.3f} | {cp:.3f} |"
                               for name, (auc, ap, cp) in PUBLISHED.items())
    handbook = f"""
The ceiling (handbook data only) is the CP@100 of an oracle that catches every card
with a fraud the delayed labels can reveal; frauds at terminals compromised too
recently for any of their labels to be known cannot be (`training.metrics.card_precision_ceiling`).

Published handbook results on the 2018-08-08 week, for comparison:

| model | AUC ROC | AP | CP@100 |
|---|---|---|---|
{published_rows}
"""
    if "source" in metadata:  # other data: the handbook's figures do not compare
        handbook = f"\nData read with the source mapping `{json.dumps(metadata['source'])}`.\n"
    window = metadata["training_window"]
    first = next(iter(metadata["metrics"].values()))
    by_day = ", ".join(f"{day} {value:.3f}" for day, value in first.get("cp100_by_day", {}).items()) or "-"
    at_thresholds = "".join(f"- {name}: precision {first[f'{name}_precision']:.3f}, recall "
                            f"{first[f'{name}_recall']:.3f} (transactions scored from the threshold on)\n"
                            for name in ("review", "block") if f"{name}_precision" in first)
    flagged = decisions != "approve"
    summary = f"""# Model `{artifact.version}`

{metadata['recipe']['description']}

Trained on {window['train_start'][:10]} .. {window['train_end'][:10]} (exclusive; {metadata['training_rows']:,}
transactions, {metadata['training_frauds']:,} frauds), label delay {window['delay_days']} days, on
{len(artifact.features)} features. Data sha256 `{metadata['data']['sha256'][:16]}…`.

## Test weeks ({metadata.get('protocol', 'handbook: known-compromised cards removed')}; CP@100 per day)

| test week start | AUC ROC | average precision | card precision top-100 | CP@100 ceiling |
|---|---|---|---|---|
{metrics_rows}

CP@100 by day of the first test week: {by_day}.
{handbook}
## Decisions at the shipped thresholds (test week)

- review from score {review:.4f}: {metadata['thresholds']['review']['how']}
- block from score {block:.4f}: {metadata['thresholds']['block']['how']}
- flagged {int(flagged.sum()):,} of {len(scores):,} transactions, catching {int(labels[flagged].sum())} of
  {int(labels.sum())} frauds; blocked {int((decisions == 'block').sum()):,}, of which
  {int(labels[decisions == 'block'].sum())} fraud.
{at_thresholds}
""" + "\n".join(f"![{name}]({name})" for name in plots) + "\n"
    (out / "report.md").write_text(summary)
    return out
