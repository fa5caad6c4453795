"""The decision query in Spark, in-process (``tests/inprocess.py``): features, scores, replays, dead letters."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from fraud.features import EXTRA_FEATURES, HANDBOOK_FEATURES, LABEL_DELAY_DAYS
from fraud.features_pandas import add_all_features_pandas
from fraud.producer import transaction_message
from fraud.stream.store import StateMismatchError
from fraud.stream.warm_start import warm_start
from fraud.testing.data import BROKEN_IDS, VALID, odd_id_messages, random_transactions
from fraud.testing.inprocess import DEFAULT_MODEL, InProcessStream
from training.artifacts import load_model
from udfs.scoring import score_features

DELAY_DAYS = LABEL_DELAY_DAYS
FEATURES = [*HANDBOOK_FEATURES, *EXTRA_FEATURES]


@pytest.fixture
def stream(spark, tmp_path):
    running = InProcessStream(spark, tmp_path)
    yield running
    running.stop()


def published_features(stream: InProcessStream) -> pd.DataFrame:
    rows = [{"transaction_id": r["transaction_id"], "fraud_score": r["fraud_score"], "decision": r["decision"],
             **r["features"]} for r in stream.results()]
    return pd.DataFrame(rows).set_index("transaction_id")


def batch_features(transactions: pd.DataFrame) -> pd.DataFrame:
    """The batch features of ``transactions`` (integer ids), indexed by the transaction id as the stream publishes
    it: its decimal text."""
    features = add_all_features_pandas(transactions, DELAY_DAYS)
    return features.set_index(features.TRANSACTION_ID.astype(str))


def test_streamed_features_and_scores_equal_the_batch_ones(stream):
    transactions = random_transactions(n=2500, days=100)
    stream.start().send_in_order(transactions, batches=12)
    streamed = published_features(stream)
    expected = batch_features(transactions)
    assert streamed.index.is_unique and sorted(streamed.index) == sorted(expected.index)
    streamed = streamed.loc[expected.index]
    np.testing.assert_allclose(streamed[FEATURES].to_numpy(float), expected[FEATURES].to_numpy(float),
                               rtol=1e-12, atol=1e-9)
    scores = score_features(load_model(DEFAULT_MODEL), expected)
    np.testing.assert_allclose(streamed.fraud_score.to_numpy(), scores.fraud_score.to_numpy(), rtol=0, atol=1e-12)
    assert (streamed.decision.to_numpy() == scores.decision.to_numpy()).all()


def test_a_micro_batch_replayed_after_a_crash_publishes_the_same_records(stream):
    transactions = random_transactions(n=600, days=20)
    stream.start().send_in_order(transactions, batches=3)
    first = list(stream.published)
    stream.stop()
    checkpoint = stream.settings.checkpoint_dir / "decision"
    last = max(int(p.name) for p in (checkpoint / "commits").iterdir() if p.name.isdigit())
    for name in (str(last), f".{last}.crc"):  # the crash came after the records were published, before the commit
        (checkpoint / "commits" / name).unlink()
    replayed = stream.start().process()
    assert replayed, "the last micro-batch was not replayed"
    keys = {record["key"] for record in replayed}
    as_tuples = lambda records: sorted(tuple(sorted(r.items())) for r in records)  # noqa: E731
    assert as_tuples(replayed) == as_tuples(r for r in first if r["key"] in keys)
    assert len(replayed) == len(keys) >= 100


def test_the_reported_contamination_case_is_gone_in_spark(stream):
    """Issue 12's reproduction on the real path: card 9000042 spends 1e22, then card 9000106 spends 10, 20, 60,
    and card 9000107, in another shard, the same; both get the same features and scores."""
    def tx(tid, card, minute, amount):
        return {"transaction_id": tid, "tx_datetime": f"2026-01-09T10:{minute:02d}:00Z", "customer_id": card,
                "terminal_id": 7000000 + tid, "tx_amount": amount}
    messages = [tx(1, 9000042, 0, 1e22), *(tx(t, 9000106, m, a) for t, m, a in ((2, 5, 10.0), (3, 10, 20.0),
                                                                              (4, 15, 60.0))),
                *(tx(t, 9000107, m, a) for t, m, a in ((12, 5, 10.0), (13, 10, 20.0), (14, 15, 60.0)))]
    stream.start().send(stream.settings.kafka.topics.raw, messages)
    stream.process()
    by_id = {int(r["transaction_id"]): r for r in stream.results()}  # published as text: "2"
    for w in (1, 7, 30):
        assert [by_id[t]["features"][f"CUSTOMER_ID_AVG_AMOUNT_{w}DAY_WINDOW"] for t in (2, 3, 4)] == [10.0, 15.0, 30.0]
    assert [round(by_id[t]["features"]["CUSTOMER_ID_AMOUNT_ZSCORE_30DAY"], 2) for t in (2, 3, 4)] == [0.0, 0.83, 1.33]
    assert [by_id[t]["fraud_score"] for t in (2, 3, 4)] == [by_id[t]["fraud_score"] for t in (12, 13, 14)]


def test_invalid_records_are_published_as_dead_letters_with_their_reason(stream):
    topics = stream.start().settings.kafka.topics
    stream.send(topics.raw, [b"not json", b'{"transaction_id": 5}', None,
                             {"transaction_id": 6, "tx_datetime": "2026-01-09T10:00:00Z", "customer_id": 1,
                              "terminal_id": 2, "tx_amount": 3.5}])
    stream.process()
    letters = {letter.get("payload"): letter["reason"] for letter in stream.results(topics.deadletter)}
    assert letters == {"not json": "payload is not a JSON object", '{"transaction_id": 5}': "missing tx_datetime",
                       None: "empty payload"}
    assert [r["transaction_id"] for r in stream.results()] == ["6"]


def test_ids_of_every_kind_come_out_exactly_and_refused_ids_get_their_reason(stream):
    """A UUID, a card number above 2^63, a merchant name with a comma and an apostrophe, a PaySim id, an integer
    of 23 digits, ...: each comes out of the decision query exactly, as transaction, card and terminal id. Each
    kind of refused id is a dead letter with its reason. Two transactions of a card at the same instant are taken
    in id order (``fraud.features.id_order``): 9 before "10", though "10" < "9" as text and was sent first."""
    topics = stream.start().settings.kafka.topics
    messages = odd_id_messages()
    twins = [{**VALID, "transaction_id": "10", "customer_id": "twin card"},
             {**VALID, "transaction_id": 9, "customer_id": "twin card"}]
    stream.send(topics.raw, [json.dumps(m, ensure_ascii=False).encode() for m, _ in messages] + twins
                + [value for value, _ in BROKEN_IDS])
    stream.process()
    out = {r["transaction_id"]: r for r in stream.results()}
    assert len(out) == len(messages) + 2
    for _, (transaction, card, terminal) in messages:
        assert (out[transaction]["customer_id"], out[transaction]["terminal_id"]) == (card, terminal)
    assert {"6c0b3a0e-8f4e-4b6a-9a53-2f1e7d1f0a11", "9876543210987654321", "fraud_Kirlin and Sons, O'Hara",
            "C1231006815", "12345678901234567890123"} <= set(out)
    assert [out[tid]["features"]["CUSTOMER_ID_NB_TX_1DAY_WINDOW"] for tid in ("9", "10")] == [1.0, 2.0]
    letters = stream.results(topics.deadletter)
    assert sorted(letter["reason"] for letter in letters) == sorted(reason for _, reason in BROKEN_IDS)


def test_a_transaction_id_is_decided_once_however_late_it_comes_again(stream):
    """Sent again after its card's look-back (60 days) has passed, a transaction is not decided twice (its first
    decision stands in every sink); the same id on a transaction at another time is a dead letter."""
    def tx(tid, day, amount=10.0):
        return {"transaction_id": tid, "tx_datetime": f"2026-{day}T10:00:00Z", "customer_id": 42,
                "terminal_id": 7, "tx_amount": amount}
    topics = stream.start().settings.kafka.topics
    stream.send(topics.raw, [tx(1, "01-02"), tx(1, "01-02")])  # a producer's retry in the same batch
    stream.process()
    stream.send(topics.raw, [tx(2, "05-01")])  # 119 days later: transaction 1 has left the card's history
    stream.process()
    stream.send(topics.raw, [tx(1, "01-02"), tx(1, "05-02", 999.0), tx(3, "05-02")])
    stream.process()
    assert [r["transaction_id"] for r in stream.results()] == ["1", "2", "3"]
    letters = stream.results(topics.deadletter)
    assert len(letters) == 1 and letters[0]["source_offset"] == 4
    assert letters[0]["reason"].startswith("transaction_id 1 is already used by the transaction at 2026-01-02T10:00")


def test_a_warm_started_stream_scores_its_first_transactions_with_their_full_history(spark, stream, tmp_path):
    """Seeded from the first 80 days, the stream's features of the next 20 equal the batch features over all 100;
    without the seed they would not (the cards and terminals would start empty)."""
    transactions = random_transactions(n=3000, days=100).sort_values(["TX_DATETIME", "TRANSACTION_ID"])
    cut = transactions.TX_DATETIME.min() + pd.Timedelta(days=80)
    history, later = transactions[transactions.TX_DATETIME < cut], transactions[transactions.TX_DATETIME >= cut]
    history.to_parquet(tmp_path / "history.parquet", index=False, coerce_timestamps="us")  # what Spark 3.5 reads
    report = warm_start(spark, stream.settings, tmp_path / "history.parquet")
    assert report["card"]["keys"] == history.CUSTOMER_ID.nunique()
    stream.start().send_in_order(later, batches=4)  # the history's labels came with it
    streamed = published_features(stream)
    expected = batch_features(transactions).loc[streamed.index]
    assert sorted(streamed.index) == sorted(later.TRANSACTION_ID.astype(str))
    np.testing.assert_allclose(streamed[FEATURES].to_numpy(float), expected[FEATURES].to_numpy(float),
                               rtol=1e-12, atol=1e-9)
    cold = batch_features(later).loc[streamed.index]
    assert (cold["CUSTOMER_ID_NB_TX_30DAY_WINDOW"] < expected["CUSTOMER_ID_NB_TX_30DAY_WINDOW"]).mean() > 0.5
    resent = history.iloc[0]  # sent again, a history transaction older than the card look-back is not decided
    stream.send(stream.settings.kafka.topics.raw, [transaction_message(resent)])
    assert stream.process() == [] and stream.results(stream.settings.kafka.topics.deadletter) == []
    with pytest.raises(StateMismatchError, match="already holds state"):
        warm_start(spark, stream.settings, tmp_path / "history.parquet")
