"""The shapes data takes, declared once.

A transaction takes three shapes:

1. **Handbook columns** (``HANDBOOK_COLUMNS``, ``LABEL_COLUMN``): TRANSACTION_ID, TX_DATETIME, CUSTOMER_ID,
   TERMINAL_ID, TX_AMOUNT and TX_FRAUD (1 / 0, null while unknown), as in the handbook's dataset (Le Borgne et al.,
   ch. 3). Files and Delta tables read by ``fraud.io``, pandas frames of the features, training and backfill.
   The three ids (``ID_COLUMNS``: transaction, card, terminal) are text everywhere (Spark ``string``, Python
   ``str``, MySQL ``VARCHAR(128)``, Elasticsearch ``keyword``, JSON strings on the result topic): card numbers
   beyond 2^63, UUIDs, merchant names. An integer id (the handbook's data, a JSON integer) is its exact decimal
   text. Of the transactions of a card or terminal at the same instant, ``fraud.features.id_order`` says which
   came first.
2. **Message fields** (``TRANSACTION_FIELDS``, ``LABEL_FIELDS``): the same names in lower case, as JSON on the
   Kafka topics (``transactions.raw``: a transaction; ``transactions.labels``: its label with tx_fraud instead of
   tx_amount); tx_datetime is ISO-8601 text. Written by ``fraud.producer`` (``transaction_message``,
   ``label_message``), parsed and checked by ``fraud.validation``, archived and scored in these names (SCORED_ROW
   below); ``fraud.io`` reads either names.
3. **Stream state rows** (``fraud.stream.state.ROW_COLUMNS``): the key as text, a 64-bit hash of the transaction
   id, the event time as µs since the epoch, amount, label and arrival order: what the decision query's state
   stages take, made from validated messages in ``fraud.stream.decisions`` (``_state_rows``) and turned back into
   handbook columns there (``transaction_features``) for scoring.
"""
from __future__ import annotations

from pyspark.sql import Column
from pyspark.sql import functions as F
from pyspark.sql.types import DoubleType, IntegerType, LongType, StringType, StructField, StructType, TimestampType

# 1. handbook columns -> their Spark SQL types
HANDBOOK_COLUMNS = {"TRANSACTION_ID": "string", "TX_DATETIME": "timestamp", "CUSTOMER_ID": "string",
                    "TERMINAL_ID": "string", "TX_AMOUNT": "double"}
LABEL_COLUMN = "TX_FRAUD"
ID_COLUMNS = ("TRANSACTION_ID", "CUSTOMER_ID", "TERMINAL_ID")
ID_FIELDS = tuple(column.lower() for column in ID_COLUMNS)  # their message field names
# The longest id, in characters (Unicode code points): MySQL VARCHAR(128) (utf8mb4, binary collation), and 128
# characters of UTF-8 are at most 512 bytes, Elasticsearch's limit for a document id.
ID_MAX_CHARS = 128
_PLAIN_ID = rf"^[A-Za-z0-9_.:@#/+-]{{1,{ID_MAX_CHARS}}}\z"  # digits, UUIDs, C1231006815 (\z: $ passes "T\u0085")


def id_text_problem(text: Column, name: str) -> Column:
    """Why the id ``text`` (of field ``name``, as text) cannot be a key every sink keeps exactly, or null: the first
    rule it breaks of, in order: not empty or only whitespace; at most ID_MAX_CHARS characters; no control
    character (Unicode category Cc); no whitespace at either end (MySQL's collation ignores trailing spaces: "a"
    and "a " would be one row there). The stream dead-letters a message with such an id (``fraud.validation``); a
    batch read stops naming it (``fraud.sources.read_history``)."""
    problem = F.lit(None).cast("string")
    for broken, reason in reversed([
        (text.rlike(r"(?U)^\s*$"), f"{name} is empty or only whitespace"),
        (F.length(text) > ID_MAX_CHARS, f"{name} is longer than {ID_MAX_CHARS} characters"),
        (text.rlike(r"\p{Cc}"), f"{name} holds a control character (U+0000-U+001F or U+007F-U+009F)"),
        (text.rlike(r"(?U)^\s|\s$"), f"{name} begins or ends with whitespace"),
    ]):
        problem = F.when(broken, F.lit(reason)).otherwise(problem)
    return F.when(~text.rlike(_PLAIN_ID), problem)  # one match for the usual ids: 3x faster on the handbook's

# 2. message fields: a transaction's and a label's, in the order they are written
TRANSACTION_FIELDS = [column.lower() for column in HANDBOOK_COLUMNS]
LABEL_FIELDS = [name for name in TRANSACTION_FIELDS if name != "tx_amount"] + [LABEL_COLUMN.lower()]
# a transaction message as Spark reads its JSON before any check (the benchmark's stateless floor): time as text
TRANSACTION_MESSAGE = StructType([StructField(name, DoubleType() if kind == "double" else StringType())
                                  for name, kind in zip(TRANSACTION_FIELDS, HANDBOOK_COLUMNS.values())])

# One row per transaction in every sink (MySQL scored_transactions, the
# Elasticsearch index, Delta, the result topic); kept in step with
# conf/mysql/schema.sql and conf/elasticsearch/transactions-scored.template.json.
SCORED_ROW = StructType([
    StructField("transaction_id", StringType(), False),
    StructField("tx_datetime", TimestampType(), False),
    StructField("customer_id", StringType(), False),
    StructField("terminal_id", StringType(), False),
    StructField("tx_amount", DoubleType(), False),
    StructField("fraud_score", DoubleType()),
    StructField("decision", StringType()),
    StructField("reason_codes", StringType()),
    StructField("model_version", StringType()),
    StructField("kafka_timestamp", TimestampType()),
    StructField("scored_at", TimestampType()),
])

# A source mapping's own features (``fraud.sources``): the column of own feature NAME is OWN_PREFIX + NAME in the
# handbook-column shape (no built-in feature starts with it); the stream publishes them on the result topic, and the
# delivery keeps them in the Delta scored table and archive, as the struct OWN_FEATURES_COLUMN of NAME -> value
# (a double, or text for a categorical one). ``fraud.io.read_archive`` turns it back into OWN_ columns.
OWN_PREFIX = "OWN_"
OWN_FEATURES_COLUMN = "own_features"

# Where the stream delivers a scored row (MySQL, Elasticsearch, Delta) it adds when the decision was published: the
# timestamp of its record on the result topic (which is that record's own Kafka timestamp). Null from a backfill.
DECIDED_AT = "decided_at"

# The Delta scored table also keeps every feature of the row (HANDBOOK_FEATURES then
# EXTRA_FEATURES, as doubles) in this struct column: what retraining and audits read.
FEATURES_COLUMN = "features"

# A record that does not fit the contract, on the dead-letter topic (JSON) and in MySQL dead_letters: where it
# was in Kafka, why it was refused, and what it held: the payload as text (its first 10,000 characters; bytes that
# are not UTF-8 shown as U+FFFD), the payload's size in bytes and the SHA-256 (hex) of its bytes. The record
# itself stays in Kafka at its position until the topic's retention.
DEAD_LETTER = StructType([
    StructField("source_topic", StringType(), False),
    StructField("source_partition", IntegerType(), False),
    StructField("source_offset", LongType(), False),
    StructField("reason", StringType(), False),
    StructField("payload", StringType()),
    StructField("payload_bytes", IntegerType()),
    StructField("payload_sha256", StringType()),
    StructField("kafka_timestamp", TimestampType()),
    StructField("received_at", TimestampType(), False),
])

# JSON written and read by the stream (result and dead-letter topics): timestamps to the microsecond (Spark's own
# default keeps milliseconds), in UTC with a zone designator.
JSON_OPTIONS = {"timestampFormat": "yyyy-MM-dd'T'HH:mm:ss.SSSSSSXXX"}
