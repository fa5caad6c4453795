"""Schemas declared once: the Kafka message contract and the scored-row contract."""
from __future__ import annotations

from pyspark.sql.types import (DoubleType, LongType, StringType, StructField, StructType, TimestampType)

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

# The Delta scored table also keeps every feature of the row (HANDBOOK_FEATURES then
# EXTRA_FEATURES, as doubles) in this struct column: what retraining and audits read.
FEATURES_COLUMN = "features"
