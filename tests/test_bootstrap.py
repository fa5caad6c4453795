"""``fraud init`` on what an older version created: BIGINT id columns in MySQL, an index with ``long`` ids."""
from __future__ import annotations

import pytest

from fraud.bootstrap import MigrationError, bootstrap
from fraud.clients.elasticsearch import elasticsearch_client
from fraud.clients.mysql import connect

pytestmark = pytest.mark.services

# scored_transactions as the version before text ids created it
OLD_SCORED = """CREATE TABLE scored_transactions (
    transaction_id BIGINT NOT NULL, tx_datetime DATETIME(6) NOT NULL, customer_id BIGINT NOT NULL,
    terminal_id BIGINT NOT NULL, tx_amount DOUBLE NOT NULL, fraud_score DOUBLE NULL, decision VARCHAR(16) NULL,
    reason_codes VARCHAR(1024) NULL, model_version VARCHAR(64) NULL, kafka_timestamp DATETIME(3) NULL,
    scored_at DATETIME(3) NULL, decided_at DATETIME(3) NULL, PRIMARY KEY (transaction_id),
    KEY idx_scored_tx_datetime (tx_datetime), KEY idx_scored_customer (customer_id, tx_datetime),
    KEY idx_scored_decision (decision, tx_datetime)) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4"""
OLD_ROWS = [(9007199254740993, 1, 4000000000000000000, 0.5), (42, 7, 9, 12.25), (0, 3, 2, 1.0)]
LONG_IDS = {name: {"type": "long"} for name in ("transaction_id", "customer_id", "terminal_id")}


def _old_index(settings) -> str:
    """The pipeline's index replaced by one whose ids are ``long`` (what an older version made); its name."""
    es, alias = elasticsearch_client(settings), settings.elasticsearch.index
    (index,) = es.indices.get_alias(name=alias)
    es.indices.delete(index=index)
    es.indices.create(index=index, aliases={alias: {"is_write_index": True}}, mappings={"properties": LONG_IDS})
    assert es.indices.get_mapping(index=index)[index]["mappings"]["properties"]["transaction_id"]["type"] == "long"
    return index


def _id_types(settings, index: str) -> set[str]:
    fields = elasticsearch_client(settings).indices.get_mapping(index=index)[index]["mappings"]["properties"]
    return {fields[name]["type"] for name in LONG_IDS}


def test_init_migrates_bigint_ids_in_mysql_and_an_empty_index_with_long_ids(pipeline):
    settings, _ = pipeline("migrate")
    with connect(settings) as conn, conn.cursor() as cur:
        cur.execute("DROP TABLE scored_transactions")
        cur.execute(OLD_SCORED)
        cur.executemany("INSERT INTO scored_transactions (transaction_id, tx_datetime, customer_id, terminal_id, "
                        "tx_amount) VALUES (%s, '2018-04-01 00:00:31.123456', %s, %s, %s)", OLD_ROWS)
    index = _old_index(settings)

    done = bootstrap(settings)

    assert done["columns_changed"] == ["scored_transactions.transaction_id", "scored_transactions.customer_id",
                                       "scored_transactions.terminal_id"]
    assert done["columns_added"] == [] and done["index_created"] is False
    with connect(settings) as conn, conn.cursor() as cur:
        cur.execute("SELECT transaction_id, customer_id, terminal_id, tx_amount, tx_datetime FROM scored_transactions")
        rows = sorted(cur.fetchall())
        cur.execute("SELECT column_name, data_type, character_maximum_length, collation_name FROM "
                    "information_schema.columns WHERE table_schema = DATABASE() AND table_name = "
                    "'scored_transactions' AND column_name IN ('transaction_id', 'customer_id', 'terminal_id')")
        types = {row[0]: row[1:] for row in cur.fetchall()}
        # text ids compare byte for byte: "a" and "A" are two transactions
        cur.execute("INSERT INTO scored_transactions (transaction_id, tx_datetime, customer_id, terminal_id, "
                    "tx_amount) VALUES ('a', NOW(), 'c', 't', 1), ('A', NOW(), 'c', 't', 1)")
    assert [row[:4] for row in rows] == sorted((str(t), str(c), str(m), a) for t, c, m, a in OLD_ROWS)
    assert {row[4].isoformat() for row in rows} == {"2018-04-01T00:00:31.123456"}
    assert types == {name: ("varchar", 128, "utf8mb4_bin") for name in LONG_IDS}
    assert _id_types(settings, index) == {"keyword"}  # the empty index was made anew

    again = bootstrap(settings)
    assert again["columns_changed"] == [] and again["columns_added"] == []


def test_init_refuses_an_index_with_long_ids_that_holds_documents_and_says_how_to_migrate(pipeline):
    settings, _ = pipeline("migrate-es")
    index = _old_index(settings)
    elasticsearch_client(settings).index(index=index, id="42", document={"transaction_id": 42}, refresh=True)
    with pytest.raises(MigrationError) as refused:
        bootstrap(settings)
    message = str(refused.value)
    assert index in message and "POST /_reindex" in message and "POST /_aliases" in message
    assert f"PUT /{settings.elasticsearch.index}-000002" in message
    assert _id_types(settings, index) == {"long"}  # left as it was
