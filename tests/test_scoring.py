"""Scoring: the plain pandas function, and the same result through the pandas UDF in Spark."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from training.artifacts import ModelArtifact, load_model, model_inputs, save_model
from udfs.scoring import score_column, score_features

FEATURES = ["TX_AMOUNT", "CUSTOMER_ID_AMOUNT_RATIO_30DAY", "TERMINAL_ID_RISK_30DAY_WINDOW"]


@pytest.fixture(scope="module")
def artifact() -> ModelArtifact:
    rng = np.random.default_rng(1)
    x = rng.random((2000, 3)) * [300, 6, 1]
    y = (x[:, 0] > 220) | (x[:, 2] > 0.8)
    model = LogisticRegression(max_iter=1000).fit(x, y)
    return ModelArtifact(model, {
        "version": "toy-1", "features": FEATURES,
        "thresholds": {"review": {"value": 0.2}, "block": {"value": 0.4}},  # toy scores: ~0.002, 0.46, 0.31
        "reason_limits": {"TX_AMOUNT": 200.0, "CUSTOMER_ID_AMOUNT_RATIO_30DAY": 3.0,
                          "TERMINAL_ID_RISK_30DAY_WINDOW": 0.1},
    })


ROWS = pd.DataFrame({"TX_AMOUNT": [20.0, 290.0, 35.0], "CUSTOMER_ID_AMOUNT_RATIO_30DAY": [1.0, 5.12, 0.9],
                     "TERMINAL_ID_RISK_30DAY_WINDOW": [0.0, 0.0, 0.95]})


def test_scores_decisions_and_readable_reasons(artifact):
    scored = score_features(artifact, ROWS)
    expected = artifact.model.predict_proba(ROWS.to_numpy())[:, 1]
    np.testing.assert_allclose(scored.fraud_score, expected)
    assert list(scored.decision) == ["approve", "block", "review"]
    assert scored.reason_codes[0] == ""
    assert scored.reason_codes[1] == ("amount 5.1x the card's 30-day average; "
                                      "amount 290.00 above 200.00 (99% of legitimate amounts)")
    assert scored.reason_codes[2] == "terminal fraud rate 95% in the 30 days before the label delay"
    assert set(scored.model_version) == {"toy-1"}


def test_the_udf_in_spark_gives_the_pandas_result(artifact, spark):
    frame = spark.createDataFrame(ROWS)
    rows = frame.select(score_column(spark, artifact).alias("s")).select("s.*").toPandas()
    pd.testing.assert_frame_equal(rows, score_features(artifact, ROWS), check_exact=False, rtol=1e-12)


def test_saved_model_round_trips_with_a_content_version(artifact, tmp_path):
    saved = save_model(tmp_path / "toy", artifact.model, {"features": FEATURES, "thresholds": {}})
    loaded = load_model(tmp_path / "toy")
    assert loaded.version == saved.version and loaded.version.startswith("toy-")
    np.testing.assert_array_equal(loaded.model.coef_, artifact.model.coef_)
    with pytest.raises(FileNotFoundError, match="is not a model folder"):
        load_model(tmp_path)


def test_ids_are_never_model_inputs():
    frame = pd.DataFrame({"TX_AMOUNT": [1.0], "CUSTOMER_ID": ["C1231006815"]})
    with pytest.raises(ValueError, match="ids are not model inputs: \\['CUSTOMER_ID'\\]"):
        model_inputs(frame, ["TX_AMOUNT", "CUSTOMER_ID"])
    assert model_inputs(frame, ["TX_AMOUNT"]).tolist() == [[1.0]]
