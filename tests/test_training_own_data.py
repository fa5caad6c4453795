"""Training, evaluation and scoring on other people's data through a source mapping (issue 15, items 1 and 4).

The PaySim tests map its ids to their digits (``substring(nameOrig, 2)``): numeric-looking ids, so they run whether
the product's ids are still integers or already text. The Sparkov tests map the shipped conf/sources/sparkov.yaml,
whose ids (card numbers, merchant names, hex transaction numbers) only fit once the product reads ids as text: they
are skipped until ``fraud.schemas.HANDBOOK_COLUMNS`` declares the ids "string".
"""
from __future__ import annotations

import contextlib
import json
from datetime import datetime

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier

from fraud.cli import main
from fraud.config import PROJECT_ROOT
from fraud.io import InputError
from fraud.sources import SourceMapping, load_source
from training.artifacts import load_model, model_inputs
from training.metrics import quality
from training.protocol import Split, evaluation_set
from training.train import Recipe, evaluate, shipped_recipe, train, with_own_features

REAL = PROJECT_ROOT.parent / "shared" / "data" / "real"
SOURCES = PROJECT_ROOT / "conf" / "sources"


@pytest.fixture(scope="module")
def paysim() -> SourceMapping:
    """conf/sources/paysim.yaml, as shipped: text ids such as C1231006815."""
    if not REAL.is_dir():
        pytest.skip(f"{REAL} not available")
    return load_source(SOURCES / "paysim.yaml")


# ---------------------------------------------------------------- pure logic

def _frame(rows):
    return pd.DataFrame(rows, columns=["TX_DATETIME", "CUSTOMER_ID", "TX_FRAUD"]).assign(
        TX_DATETIME=lambda f: pd.to_datetime(f.TX_DATETIME))


def test_without_the_scenario_column_the_test_set_is_every_transaction_of_the_test_days():
    rows = [("2018-07-28 10:00", 1, 1), ("2018-08-08 10:00", 1, 0), ("2018-08-09 10:00", 2, 1),
            ("2018-08-15 00:00", 3, 0)]
    split = Split(datetime(2018, 8, 8), train_days=7)
    assert evaluation_set(_frame(rows), split).CUSTOMER_ID.tolist() == [1, 2]  # card 1, known compromised, stays
    handbook = _frame(rows).assign(TX_FRAUD_SCENARIO=0)
    assert evaluation_set(handbook, split).CUSTOMER_ID.tolist() == [2]  # the handbook's protocol drops it


def test_quality_gives_precision_and_recall_at_the_thresholds_and_card_precision_by_day():
    test = _frame([("2018-08-08 10:00", 1, 1), ("2018-08-08 11:00", 2, 0), ("2018-08-09 10:00", 3, 1),
                   ("2018-08-09 11:00", 4, 1)])
    metrics = quality(test, np.array([0.9, 0.6, 0.7, 0.2]), {"review": 0.5, "block": 0.8})
    assert (metrics["review_precision"], metrics["review_recall"]) == (0.6667, 0.6667)  # rounded to 4 places
    assert (metrics["block_precision"], metrics["block_recall"]) == (1.0, 0.3333)
    assert metrics["cp100_by_day"] == {"2018-08-08": 0.01, "2018-08-09": 0.02}
    assert metrics["cp100"] == pytest.approx(0.015)


def test_own_categories_are_encoded_in_the_model_and_an_unseen_one_is_scored():
    mapping = SourceMapping(tx_datetime="t", customer_id="c", tx_amount="a", features={"size": "s"},
                            categorical={"kind": "k"})
    recipe = with_own_features(Recipe(HistGradientBoostingClassifier(random_state=0), ["TX_AMOUNT"], 7), mapping)
    assert recipe.features == ["TX_AMOUNT", "OWN_size", "OWN_kind"] and recipe.categorical == ("OWN_kind",)
    rng = np.random.default_rng(0)
    kinds = rng.choice(["PAYMENT", "TRANSFER", "CASH_OUT"], 600)
    train = pd.DataFrame({"TX_AMOUNT": rng.uniform(1, 100, 600), "OWN_size": rng.uniform(0, 1, 600),
                          "OWN_kind": kinds, "TX_FRAUD": (kinds == "TRANSFER").astype(int)})
    model = recipe.estimator.fit(model_inputs(train, recipe.features, recipe.categorical), train.TX_FRAUD)
    new = pd.DataFrame({"TX_AMOUNT": [50.0] * 4, "OWN_size": [0.5] * 4,
                        "OWN_kind": ["TRANSFER", "PAYMENT", "DEBIT", None]})  # DEBIT never seen, None missing
    scores = model.predict_proba(model_inputs(new, recipe.features, recipe.categorical))[:, 1]
    assert scores[0] > 0.9 > 0.1 > scores[1] and np.isfinite(scores).all()
    assert with_own_features(recipe, None) is recipe


# ---------------------------------------------------------------- Spark: train, evaluate, score

PAYSIM_SPLIT = Split(datetime(2017, 1, 21), train_days=13, delay_days=7, test_days=11)


@pytest.fixture(scope="module")
def paysim_model(spark, paysim, tmp_path_factory):
    model_dir = tmp_path_factory.mktemp("models") / "paysim"
    metrics, artifact = train(spark, REAL / "paysim_sample.csv", PAYSIM_SPLIT, shipped_recipe(), model_dir,
                              source=paysim)
    return model_dir, metrics, artifact


def test_training_on_paysim_through_the_mapping_measures_the_time_split_and_writes_the_report(paysim_model,
                                                                                             paysim):
    model_dir, metrics, artifact = paysim_model
    for name in ("auc", "ap", "cp100", "review_precision", "review_recall", "block_precision", "block_recall"):
        assert 0 <= metrics[name] <= 1, (name, metrics)
    assert metrics["auc"] > 0.5  # the model learnt something: TRANSFER and CASH_OUT hold every PaySim fraud
    assert list(metrics["cp100_by_day"]) == ["2017-01-30", "2017-01-31"]  # the sample's test days
    assert "cp100_ceiling" not in metrics
    metadata = json.loads((model_dir / "metadata.json").read_text())
    assert metadata["protocol"].startswith("time split")
    assert metadata["source"] == paysim.model_dump() and metadata["categorical"] == ["OWN_type"]
    assert "OWN_type" in metadata["features"]
    report = (model_dir / "report" / "report.md").read_text()
    assert "time split" in report and "review: precision" in report and "source mapping" in report
    assert "Published handbook results" not in report
    for plot in ("curves.png", "score_distribution.png", "confusion_matrix.png", "feature_importance.png"):
        assert (model_dir / "report" / plot).stat().st_size > 1000


def test_evaluate_measures_the_model_at_its_thresholds_and_needs_its_mapping(spark, paysim_model, paysim):
    model_dir, metrics, _ = paysim_model
    again = evaluate(spark, model_dir, REAL / "paysim_sample.csv", PAYSIM_SPLIT, paysim)
    assert again == metrics
    plain = SourceMapping(**{**paysim.model_dump(), "categorical": {}})
    with pytest.raises(InputError, match=r"no column\(s\) \['OWN_type'\], the model's own features"):
        evaluate(spark, model_dir, REAL / "paysim_sample.csv", PAYSIM_SPLIT, plain)


def test_the_backfill_scores_a_mapped_source_with_own_features_and_the_default_model_too(spark, paysim_model,
                                                                                         paysim):
    from fraud.scoring import score_transactions
    from fraud.sources import read_history
    transactions = read_history(spark, REAL / "paysim_sample.csv", paysim)
    for model in (paysim_model[0], PROJECT_ROOT / "models" / "default"):  # own features; contract fields only
        scored = score_transactions(transactions, load_model(model)).toPandas()
        assert len(scored) == 12651 and scored.fraud_score.between(0, 1).all()
        assert scored.transaction_id.nunique() == 12651


def test_the_producer_replays_a_mapped_source_in_event_time_order(spark, paysim):
    from fraud.producer import load_history, mapped_history, transaction_message
    history = load_history(mapped_history(spark, REAL / "paysim_sample.csv", paysim), "2017-01-13")
    assert len(history) == 778 + 1183 + 282 and history.TX_DATETIME.is_monotonic_increasing
    message = json.loads(transaction_message(next(history.itertuples(index=False))))
    assert list(message) == ["transaction_id", "tx_datetime", "customer_id", "terminal_id", "tx_amount"]
    assert message["tx_datetime"] == history.TX_DATETIME.iloc[0].isoformat() >= "2017-01-13T00:00:00"


def test_training_on_sparkov_through_the_shipped_mapping(spark, tmp_path):
    metrics, artifact = train(spark, REAL / "sparkov_train_head.csv", Split(datetime(2019, 1, 4), 2, 1, 1),
                              shipped_recipe(), tmp_path / "sparkov", source=load_source(SOURCES / "sparkov.yaml"))
    assert 0 <= metrics["auc"] <= 1 and (tmp_path / "sparkov" / "report" / "report.md").exists()
    assert artifact is not None and artifact.categorical == ["OWN_category"]


# ---------------------------------------------------------------- the command line

def test_a_bad_source_mapping_exits_2_naming_the_key_before_any_work(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text((SOURCES / "paysim.yaml").read_text() + "colour: red\n")
    for argv in (["features", "--input", "x.csv", "--output", str(tmp_path / "out")],
                 ["train", "--data", "x.csv"], ["evaluate", "--model", "m", "--data", "x.csv", "--test-start", "d"],
                 ["backfill", "--input", "x.csv"], ["produce", "--input", "x.csv", "--rate", "1"]):
        assert main([*argv, "--source", str(bad)]) == 2
        assert "unknown key 'colour'" in capsys.readouterr().err
    assert main(["produce", "--simulate", "--source", str(SOURCES / "paysim.yaml"), "--rate", "1"]) == 2
    assert "--simulate is not allowed with --source" in capsys.readouterr().err


def test_fraud_features_maps_the_source(spark, tmp_path, capsys, paysim, monkeypatch):
    import fraud.spark
    monkeypatch.setattr(fraud.spark, "spark_session", lambda *args, **kwargs: contextlib.nullcontext(spark))
    mapping = tmp_path / "paysim.yaml"
    mapping.write_text(json.dumps(paysim.model_dump()))  # YAML is a superset of JSON
    out = tmp_path / "features"
    assert main(["features", "--input", str(REAL / "paysim_sample.csv"), "--source", str(mapping),
                 "--output", str(out)]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["rows"] == 12651
    features = pd.read_parquet(out)
    assert {"OWN_type", "TERMINAL_ID_RISK_7DAY_WINDOW", "CUSTOMER_ID_NB_TX_1DAY_WINDOW"} <= set(features.columns)


def test_a_mapping_that_does_not_fit_the_file_exits_2_naming_the_field(spark, tmp_path, capsys, monkeypatch):
    import fraud.spark
    monkeypatch.setattr(fraud.spark, "spark_session", lambda *args, **kwargs: contextlib.nullcontext(spark))
    mapping = tmp_path / "paysim.yaml"
    mapping.write_text((SOURCES / "paysim.yaml").read_text().replace("tx_amount: amount", "tx_amount: nameOrig"))
    assert main(["features", "--input", str(REAL / "paysim_sample.csv"), "--source", str(mapping),
                 "--output", str(tmp_path / "out")]) == 2
    assert "tx_amount: 'nameOrig' is string, not a number" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
