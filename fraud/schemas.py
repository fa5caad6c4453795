"""Schemas declared once: the Kafka message contract and the scored-row contract."""
from __future__ import annotations

from pyspark.sql.types import DoubleType, IntegerType, LongType, StringType, StructField, StructType, TimestampType

# transactions.raw message contract (JSON). tx_datetime is ISO-8601 text on the
# wire and parsed to a timestamp (UTC, no zone) after validation.
TRANSACTION_MESSAGE = StructType([
    StructField("transaction_id", LongType()),
    StructField("tx_datetime", StringType()),
    StructField("customer_id", LongType()),
    StructField("terminal_id", LongType()),
    StructField("tx_amount", DoubleType()),
])

# One row per transaction in every sink (MySQL scored_transactions, the
# Elasticsearch index, Delta, the result topic); kept in step with
# conf/mysql/schema.sql and conf/elasticsearch/transactions-scored.template.json.
SCORED_ROW = StructType([
    StructField("transaction_id", LongType(), False),
    StructField("tx_datetime", TimestampType(), False),
    StructField("customer_id", LongType(), False),
    StructField("terminal_id", LongType(), False),
    StructField("tx_amount", DoubleType(), False),
    StructField("fraud_score", DoubleType()),
    StructField("decision", StringType()),
    StructField("reason_codes", StringType()),
    StructField("model_version", StringType()),
    StructField("kafka_timestamp", TimestampType()),
    StructField("scored_at", TimestampType()),
])

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
