"""Model quality on the handbook protocol, through the product's own Spark features."""
from __future__ import annotations

from datetime import datetime

import pytest

from fraud.config import PROJECT_ROOT
from training.artifacts import load_model
from training.protocol import Split
from training.train import evaluate, handbook_baseline, train

DEFAULT_MODEL = PROJECT_ROOT / "models" / "default"
TEST_WEEK = datetime(2018, 8, 8)
PUBLISHED_BASELINE = {"auc": 0.867, "ap": 0.658, "cp100": 0.287}  # default random forest, handbook
TARGETS = {"auc": 0.88, "ap": 0.72, "cp100": 0.31}  # above every published handbook result


@pytest.fixture(scope="module")
def shipped_metrics(spark, data_dir):
    return evaluate(spark, DEFAULT_MODEL, data_dir / "transactions.parquet", Split(TEST_WEEK, 7))


def test_default_random_forest_reproduces_the_published_baseline(spark, data_dir):
    metrics, _ = train(spark, data_dir / "transactions.parquet", Split(TEST_WEEK, 7), handbook_baseline())
    for name, published in PUBLISHED_BASELINE.items():
        assert metrics[name] == pytest.approx(published, abs=0.01), (name, metrics)


def test_shipped_model_reproduces_its_recorded_metrics(shipped_metrics):
    recorded = load_model(DEFAULT_MODEL).metadata["metrics"][TEST_WEEK.date().isoformat()]
    assert {name: shipped_metrics[name] for name in recorded} == pytest.approx(recorded, abs=1e-4)
    assert {"review_precision", "review_recall", "block_precision", "block_recall"} <= set(shipped_metrics)


@pytest.mark.parametrize("metric", ["auc", "ap"])
def test_shipped_model_beats_the_published_results(shipped_metrics, metric):
    assert shipped_metrics[metric] >= TARGETS[metric], shipped_metrics


@pytest.mark.xfail(strict=True, reason="target missed: CP@100 measured 0.3029 on 2018-08-08 (target 0.31, best "
                                       "published 0.305), above what the data can reveal: cp100_ceiling is 0.3057")
def test_shipped_model_beats_the_published_card_precision(shipped_metrics):
    assert shipped_metrics["cp100"] >= TARGETS["cp100"], shipped_metrics


def test_shipped_model_finds_nearly_every_card_the_labels_can_reveal(shipped_metrics):
    """A regression guard, not the issue's target: at most 7 revealable cards a week (0.01) left out."""
    assert shipped_metrics["cp100"] >= shipped_metrics["cp100_ceiling"] - 0.01, shipped_metrics
