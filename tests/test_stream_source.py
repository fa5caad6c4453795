"""The stream reading the user's own messages through a source mapping (issue 15): the Sparkov slice as its own
producer would send it (``fraud produce --as-sent``), in-process and against the services."""
from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fraud.clients.elasticsearch import elasticsearch_client
from fraud.clients.kafka import kafka_producer
from fraud.config import PROJECT_ROOT
from fraud.features import EXTRA_FEATURES, HANDBOOK_FEATURES
from fraud.io import read_archive
from fraud.producer import Pace, load_history, mapped_history, replay
from fraud.scoring import score_transactions
from fraud.sources import SourceError, SourceMapping, load_source, read_history
from fraud.stream.serving import unservable
from fraud.stream.warm_start import warm_start
from fraud.testing.inprocess import DEFAULT_MODEL, InProcessStream
from fraud.testing.pipeline import StreamProcess, assert_exactly_once_everywhere, ids_in_sinks, mysql_count
from training.artifacts import load_model
from training.protocol import Split
from training.train import shipped_recipe, train

REAL = PROJECT_ROOT.parent / "shared" / "data" / "real"
SPARKOV = PROJECT_ROOT / "conf" / "sources" / "sparkov.yaml"
DELAY_DAYS = 1  # the Sparkov files hold two to four days
FEATURES = [*HANDBOOK_FEATURES, *EXTRA_FEATURES]


@pytest.fixture(scope="module")
def sparkov() -> SourceMapping:
    if not REAL.is_dir():
        pytest.skip(f"{REAL} not available")
    return load_source(SPARKOV)


@pytest.fixture(scope="module")
def sparkov_model(spark, sparkov, tmp_path_factory) -> Path:
    """A model trained on the Sparkov training head with its own features (city_pop, category: categorical)."""
    folder = tmp_path_factory.mktemp("models") / "sparkov"
    train(spark, REAL / "sparkov_train_head.csv", Split(datetime(2019, 1, 4), 2, DELAY_DAYS, 1), shipped_recipe(),
          folder, source=sparkov)
    return folder


@pytest.fixture(scope="module")
def sparkov_sent(spark, sparkov) -> pd.DataFrame:
    """The Sparkov test head in event-time order, each row with the JSON message its own producer sends."""
    return load_history(mapped_history(spark, REAL / "sparkov_test_head.csv", sparkov, as_sent=True))


def in_process(spark, folder: Path, model: Path, source: Path = SPARKOV) -> InProcessStream:
    return InProcessStream(spark, folder, model, FRAUD_STREAM_SOURCE=str(source),
                           FRAUD_STREAM_DELAY_DAYS=str(DELAY_DAYS))


def the_file_ids() -> list[tuple[str, str, str]]:
    """(trans_num, cc_num, merchant) of every row of the Sparkov test head, as the file writes them."""
    rows = pd.read_csv(REAL / "sparkov_test_head.csv", dtype=str, keep_default_na=False)
    return sorted(zip(rows.trans_num, rows.cc_num, rows.merchant))


def test_the_users_own_messages_are_scored_with_their_own_features_as_the_backfill_scores_them(
        spark, sparkov, sparkov_model, sparkov_sent, tmp_path):
    stream = in_process(spark, tmp_path, sparkov_model)
    try:
        stream.start().send_in_order(sparkov_sent, batches=4, label_delay_days=DELAY_DAYS)
    finally:
        stream.stop()
    assert stream.results(stream.settings.kafka.topics.deadletter) == []
    results = {r["transaction_id"]: r for r in stream.results()}
    assert sorted((r["transaction_id"], r["customer_id"], r["terminal_id"]) for r in results.values()) \
        == the_file_ids()  # 32-hex ids, 19-digit card numbers and merchant names, exactly
    assert max(len(card) for _, card, _ in the_file_ids()) == 19

    transactions = read_history(spark, REAL / "sparkov_test_head.csv", sparkov)
    own = transactions.select("TRANSACTION_ID", "OWN_city_pop", "OWN_category").toPandas().set_index("TRANSACTION_ID")
    backfill = score_transactions(transactions, load_model(sparkov_model), DELAY_DAYS).toPandas()
    backfill = backfill.set_index("transaction_id").loc[list(results)]
    streamed = pd.DataFrame([{**r["features"], "fraud_score": r["fraud_score"], "decision": r["decision"],
                              "city_pop": r["own_features"]["city_pop"], "category": r["own_features"]["category"]}
                             for r in results.values()], index=list(results))
    np.testing.assert_allclose(streamed[FEATURES].to_numpy(float),
                               pd.DataFrame(list(backfill.features), index=backfill.index)[FEATURES].to_numpy(float),
                               rtol=1e-12, atol=1e-9)
    assert (streamed.city_pop == own.OWN_city_pop.loc[streamed.index]).all()
    assert (streamed.category == own.OWN_category.loc[streamed.index]).all()
    np.testing.assert_allclose(streamed.fraud_score, backfill.fraud_score, rtol=0, atol=1e-12)
    assert (streamed.decision == backfill.decision).all()
    assert streamed.fraud_score.nunique() > 100  # the own features and the history move the scores


def test_a_stream_warm_started_from_their_file_scores_its_first_messages_with_the_file_history(
        spark, sparkov, sparkov_model, tmp_path):
    """`fraud warm-start --input fraudTrain.csv --source sparkov.yaml`: the cards and merchants of the user's own
    file seed the state, so a card's first streamed transaction counts the file's."""
    stream = in_process(spark, tmp_path, sparkov_model)
    report = warm_start(spark, stream.settings, REAL / "sparkov_train_head.csv", sparkov)
    file = pd.read_csv(REAL / "sparkov_train_head.csv", dtype=str)
    assert (report["card"]["keys"], report["terminal"]["keys"]) == (file.cc_num.nunique(), file.merchant.nunique())
    last = file.iloc[-1]  # the same card a minute after the file's last transaction
    message = {**last.to_dict(), "trans_num": "next", "amt": 10.0, "trans_date_trans_time": str(
        pd.Timestamp(last.trans_date_trans_time) + pd.Timedelta(minutes=1))}
    try:
        stream.start().send(stream.settings.kafka.topics.raw, [json.dumps(message)])
        stream.process()
    finally:
        stream.stop()
    [scored] = stream.results()
    day = pd.Timestamp(last.trans_date_trans_time) - pd.Timedelta(days=1)
    mine = file[(file.cc_num == last.cc_num)
                & (pd.to_datetime(file.trans_date_trans_time) > day + pd.Timedelta(minutes=1))]
    assert scored["features"]["CUSTOMER_ID_NB_TX_1DAY_WINDOW"] == len(mine) + 1


def _broken(row: dict, **change) -> str:
    return json.dumps({**row, **change})


def test_a_message_the_mapping_cannot_read_is_a_dead_letter_naming_the_field(spark, sparkov, sparkov_sent, tmp_path):
    first = json.loads(sparkov_sent.MESSAGE.iloc[0])
    without_id = {k: v for k, v in first.items() if k != "trans_num"}
    broken = {
        _broken(first, trans_num="a1", amt="twelve"): "tx_amount: 'amt' gave the text \"twelve\", not a number",
        _broken(first, trans_num="a6", city_pop="many"): "features.city_pop: 'city_pop' gave the text \"many\", not a "
                                                         "number",
        _broken(first, trans_num="a7", trans_date_trans_time="2019-1-1 10:00:00"):  # once a micro-batch's failure
            "missing tx_datetime: \"to_timestamp(trans_date_trans_time, 'yyyy-MM-dd HH:mm:ss')\" gave no value (a "
            "format that does not fit the text gives none)",
        _broken(first, trans_num="a8", amt=None): "missing tx_amount: 'amt' gave no number",
        _broken(first, trans_num="a2", cc_num=4.5): "customer_id (cc_num) is a number that is not an integer; an id "
                                                    "is a JSON string or integer",
        _broken(first, trans_num="a3", merchant=["shop"]): "terminal_id (merchant) is an array; an id is a JSON "
                                                           "string or integer",
        _broken(first, trans_num="a4", trans_date_trans_time="2019-01-01T10:00:00Z"):
            "missing tx_datetime: \"to_timestamp(trans_date_trans_time, 'yyyy-MM-dd HH:mm:ss')\" gave no value (a "
            "format that does not fit the text gives none)",
        json.dumps(without_id): "missing transaction_id: 'trans_num' gave no value",
        _broken(first, trans_num="a5", merchant=" shop"): "terminal_id begins or ends with whitespace",
        "[1, 2]": "payload is not a JSON object",
    }
    fine = [_broken(first, trans_num="ok1", amt="12.50", city_pop="3495"),  # a number sent as text is read as one
            _broken(first, trans_num="ok2", cc_num=4613314721966123456789)]  # a JSON integer card: every digit
    stream = in_process(spark, tmp_path, DEFAULT_MODEL).start()
    topics = stream.settings.kafka.topics
    try:
        stream.send(topics.raw, [*broken, *fine])
        stream.send(topics.labels, [_broken(first, trans_num="ok1", is_fraud=2), _broken(first, trans_num="ok2",
                                                                                          is_fraud=True),
                                    _broken(first, trans_num="ok1")])
        stream.process()
    finally:
        stream.stop()
    letters = {letter["payload"]: letter["reason"] for letter in stream.results(topics.deadletter)}
    assert letters == {**broken, _broken(first, trans_num="ok1", is_fraud=2): "tx_fraud is not 0 or 1",
                       _broken(first, trans_num="ok2", is_fraud=True): "label: 'is_fraud' gave the text \"true\", not "
                                                                       "a number"}
    scored = {r["transaction_id"]: r for r in stream.results()}
    assert sorted(scored) == ["ok1", "ok2"] and scored["ok1"]["tx_amount"] == 12.5
    assert scored["ok2"]["customer_id"] == "4613314721966123456789"
    assert scored["ok1"]["own_features"] == {"city_pop": 3495.0, "category": first["category"]}


def test_message_fields_named_like_functions_spark_calls_without_parentheses_are_the_messages(
        spark, sparkov, sparkov_sent, tmp_path):
    source = tmp_path / "source.yaml"
    source.write_text(json.dumps(sparkov.model_copy(update={
        "customer_id": "concat('u-', user)", "terminal_id": "current_date", "categorical": {"who": "`user`"}}
    ).model_dump(exclude_none=True)))
    first = json.loads(sparkov_sent.MESSAGE.iloc[0])
    stream = in_process(spark, tmp_path, DEFAULT_MODEL, source).start()
    try:
        stream.send(stream.settings.kafka.topics.raw, [_broken(first, trans_num=name, user=name, current_date="shop")
                                                       for name in ("alice", "bob")])
        stream.process()
    finally:
        stream.stop()
    assert sorted((r["customer_id"], r["terminal_id"], r["own_features"]["who"]) for r in stream.results()) == [
        ("u-alice", "shop", "alice"), ("u-bob", "shop", "bob")]


def test_the_stream_refuses_a_mapping_without_transaction_id_before_spark_starts(sparkov, monkeypatch, capsys):
    import fraud.spark
    from fraud.cli import main
    monkeypatch.setattr(fraud.spark, "spark_session", None)  # calling it would fail the test: nothing may start
    assert main(["stream", "--source", str(PROJECT_ROOT / "conf" / "sources" / "paysim.yaml")]) == 2
    assert "transaction_id: not mapped, and a stream has no row numbers" in capsys.readouterr().err


@pytest.mark.parametrize("change, message", [
    ({"tx_datetime": "trans_date_trans_time"}, "tx_datetime: 'trans_date_trans_time' is string, not a timestamp: "
                                               "use to_timestamp(trans_date_trans_time, 'its format')"),
    ({"tx_amount": "amt +"}, "tx_amount: 'amt +' is not a Spark SQL expression"),
    ({"transaction_id": None}, "transaction_id: not mapped, and this source has no row numbers"),
    ({"customer_id": "no_such_function(cc_num)"}, "customer_id: 'no_such_function(cc_num)'"),
])
def test_a_mapping_the_stream_cannot_use_stops_it_before_any_micro_batch_naming_the_field(
        spark, sparkov, tmp_path, change, message):
    source = tmp_path / "source.yaml"
    source.write_text(json.dumps(sparkov.model_copy(update=change).model_dump(exclude_none=True)))
    stream = in_process(spark, tmp_path, DEFAULT_MODEL, source)
    with pytest.raises(SourceError, match=message.replace("(", r"\(").replace(")", r"\)").replace("+", r"\+")):
        stream.start()


def test_a_model_with_own_features_is_served_only_to_a_mapping_giving_them_of_the_same_kind(sparkov, tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "metadata.json").write_text(json.dumps({"features": ["TX_AMOUNT", "OWN_city_pop", "OWN_category"],
                                                     "categorical": ["OWN_category"]}))
    assert unservable(model, sparkov) is None
    assert unservable(DEFAULT_MODEL, None) is None and unservable(DEFAULT_MODEL, sparkov) is None
    assert "are read as the message contract's fields (no stream.source)" in unservable(model, None)
    swapped = sparkov.model_copy(update={"features": {"category": "city_pop"}, "categorical": {"city_pop": "category"}})
    assert "needs its source mapping's own features ['OWN_city_pop', 'OWN_category']" in unservable(model, swapped)


@pytest.mark.services
def test_the_sparkov_slice_streams_through_its_mapping_into_every_sink_ids_intact(
        pipeline, spark, sparkov_model, sparkov_sent, tmp_path):
    """Against the services: `fraud stream --source sparkov.yaml` serving the model with Sparkov's own features,
    its messages and labels as its own producer sends them; every sink holds each row once with its ids exact, the
    archive its labels and own features."""
    settings, env = pipeline("sparkov", FRAUD_STREAM_DELAY_DAYS=str(DELAY_DAYS))
    stream = StreamProcess(env, tmp_path / "stream.log", "--model", str(sparkov_model), "--source",
                           str(SPARKOV)).start()
    try:
        replay(settings, sparkov_sent, Pace(rate=1000), DELAY_DAYS, progress=False)  # under a day: no label due
        labels = kafka_producer(settings)
        for row in sparkov_sent.itertuples():  # then every label, as the same rows (is_fraud)
            labels.produce(settings.kafka.topics.labels, key=row.TERMINAL_ID, value=row.MESSAGE)
        assert labels.flush(30) == 0
        stream.wait_for(lambda: mysql_count(settings) == len(sparkov_sent), 600, "every transaction in MySQL")
        stream.wait_for(lambda: es_labelled(settings) == len(sparkov_sent), 300, "every label in Elasticsearch")
    finally:
        assert stream.stop() == 0, stream.log_tail()
    assert mysql_count(settings, "dead_letters") == 0
    expected = the_file_ids()
    assert ids_in_sinks(spark, settings) == {sink: expected for sink in ("mysql", "elasticsearch", "delta", "kafka")}
    assert_exactly_once_everywhere(spark, settings, [transaction_id for transaction_id, _, _ in expected])
    file = pd.read_csv(REAL / "sparkov_test_head.csv", dtype=str, keep_default_na=False).set_index("trans_num")
    archive = read_archive(spark, settings).toPandas().set_index("TRANSACTION_ID").loc[file.index]
    assert (archive.TX_FRAUD == file.is_fraud.astype(int)).all()  # every label, mapped from the same rows
    assert (archive.OWN_category == file.category).all()  # the own features, archived for retraining
    assert (archive.OWN_city_pop == file.city_pop.astype(float)).all()


def es_labelled(settings) -> int:
    """Documents of the pipeline's Elasticsearch index with a label."""
    es = elasticsearch_client(settings)
    es.indices.refresh(index=settings.elasticsearch.index)
    return es.count(index=settings.elasticsearch.index, query={"exists": {"field": "tx_fraud"}})["count"]


def test_a_field_both_id_and_feature_and_an_amount_computed_over_text_are_read_as_from_a_file(
        spark, sparkov, sparkov_sent, tmp_path):
    source = tmp_path / "source.yaml"
    source.write_text(json.dumps(sparkov.model_copy(update={
        "terminal_id": "zip", "features": {"zip": "zip"},
        "tx_amount": "CASE WHEN kind = 'refund' THEN 0 - amt ELSE amt END"}).model_dump(exclude_none=True)))
    first = {**json.loads(sparkov_sent.MESSAGE.iloc[0]), "zip": 29209, "kind": "sale"}
    stream = in_process(spark, tmp_path, DEFAULT_MODEL, source).start()
    topics = stream.settings.kafka.topics
    try:
        stream.send(topics.raw, [_broken(first, trans_num="sale"), _broken(first, trans_num="refund", kind="refund")])
        stream.process()
    finally:
        stream.stop()
    [sale] = stream.results()
    assert (sale["terminal_id"], sale["own_features"]["zip"], sale["tx_amount"]) == ("29209", 29209.0, first["amt"])
    assert [letter["reason"] for letter in stream.results(topics.deadletter)] == ["tx_amount is negative"]
